"""``medcam-lab finetune``: image-only multi-label fine-tuning with a linear head (``spec/method.md`` §5).

For each learning rate of the grid: encoder (from ``weights``) + linear head, BCE-with-logits over the known
labels (NaN labels are masked out), validation macro-AUROC from epoch ``eval_start`` on, every ``eval_every``
epochs (BenchX: 10 and 5, so an early plateau does not end a run), early stopping after
``patience`` evaluations without improvement, the best-validation weights kept. The grid's winner is chosen
on validation only; then the test split is predicted once and the predictions are written for
``medcam-lab evaluate``.

``label_fraction`` < 1 trains on a nested, seeded, patient-level subset of the training split
(:mod:`medcam_lab.data.label_fraction`; written to ``training_subset.json``); validation and test stay whole.
A linear probe (``linear_probe``) computes the frozen encoder's features of the training and validation
images once (centre crop, as for prediction; :class:`FeatureCache`, shared by the grid and by seeds) and
trains the head on them in the same seeded batch order as a fine-tuning run. ``finetune_seeds`` repeats the
run for every seed of ``cfg.seeds``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from medcam_lab.config import FinetuneConfig
from medcam_lab.data.cohort import load_cohort
from medcam_lab.data.label_fraction import BENCHX_TRAIN_LISTS, TrainingSubset, benchx_subset, training_subset
from medcam_lab.data.loading import ImageLabelDataset, make_loader
from medcam_lab.data.transforms import eval_transform, train_transform
from medcam_lab.datasets.patient_split import SPLIT_NAMES
from medcam_lab.metrics import per_label_metric
from medcam_lab.models import build_image_encoder, encoder_spec, encoder_width, save_state_dict_atomic
from medcam_lab.runinfo import write_json_atomic, write_run_info
from medcam_lab.training.checkpoint import load_checkpoint, save_checkpoint
from medcam_lab.training.progress import EpochProgress
from medcam_lab.training.runtime import (
    Runtime,
    autocast,
    compile_image_encoder,
    epoch_seed,
    prepare_model,
    resolve_runtime,
    seed_everything,
    to_device_images,
)

log = logging.getLogger("medcam_lab")
#: What ``FinetuneConfig.dataset`` names: a prepared MIMIC cohort or a ``prepare-images`` directory.
FINETUNE_DATASETS = ("cohort", "images")
#: Longest training time between two fine-tuning checkpoints (seconds).
CHECKPOINT_SECONDS = 60.0


def _device(device: torch.device | Runtime) -> torch.device:
    return device.device if isinstance(device, Runtime) else device


class ImageClassifier(nn.Module):
    """Image encoder + one linear layer on the pooled feature (eq. 9's logits)."""

    def __init__(self, encoder: nn.Module, n_labels: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder_width(encoder), n_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits: (B, 3, S, S) → (B, n_labels)."""
        return self.head(self.encoder(x))


@dataclass
class Splits:
    """Image-only train/val/test datasets sharing one label list."""

    train: ImageLabelDataset
    val: ImageLabelDataset
    test: ImageLabelDataset
    pathologies: tuple[str, ...]
    id_column: str
    subset: TrainingSubset


def load_splits(cfg: FinetuneConfig) -> Splits:
    """The three splits of a prepared MIMIC cohort (``dataset="cohort"``) or a ``medcam-lab prepare-images``
    directory of any dataset class (``"images"``: NIH, CheXpert, VinDr-CXR); the training split is cut
    to ``cfg.label_fraction`` of its patients (seeded by ``cfg.seed``)."""
    source = None  # dataset name for the shipped BenchX fraction lists
    if cfg.dataset == "cohort":
        cohort = load_cohort(cfg.data)
        images, labels, meta, names, id_col = cohort.images, cohort.labels, cohort.pairs, cohort.pathologies, "dicom_id"
        patient_col = "subject_id"
    elif cfg.dataset == "images":
        from medcam_lab.data.prepared_images import load_prepared_images, read_dataset_info

        images, meta, names = load_prepared_images(cfg.data)
        id_col = "image_id"
        patient_col = "patient_id" if "patient_id" in meta.columns else id_col
        labels = meta[list(names)].to_numpy(dtype=np.float32)
        source = read_dataset_info(cfg.data).get("dataset")
    else:
        raise ValueError(f"dataset must be one of {list(FINETUNE_DATASETS)}, got {cfg.dataset!r}")
    split = meta["split"].to_numpy()
    rows = {}
    for name in SPLIT_NAMES:
        idx = np.flatnonzero(split == name)
        if len(idx) == 0:
            raise ValueError(f"split {name!r} of {cfg.data} is empty")
        rows[name] = idx
    subset = _training_subset(cfg, rows["train"], meta, labels, tuple(names), patient_col, id_col, source)
    rows["train"] = subset.rows
    parts = {name: ImageLabelDataset(images, labels, meta, names, idx) for name, idx in rows.items()}
    return Splits(parts["train"], parts["val"], parts["test"], tuple(names), id_col, subset)


def _training_subset(cfg: FinetuneConfig, train_rows: np.ndarray, meta: pd.DataFrame, labels: np.ndarray,
                     names: tuple[str, ...], patient_col: str, id_col: str, source: str | None) -> TrainingSubset:
    rows_labels = labels[train_rows]
    listed = BENCHX_TRAIN_LISTS.get((source, float(cfg.label_fraction))) if source else None
    if listed:
        return benchx_subset(train_rows, meta[id_col].to_numpy()[train_rows], rows_labels, listed,
                             cfg.label_fraction, cfg.seed, names)
    return training_subset(train_rows, meta[patient_col].to_numpy()[train_rows], rows_labels, cfg.label_fraction,
                           cfg.seed, names)


def masked_bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean BCE-with-logits over known labels (NaN = unknown, excluded).

    Shape:
        logits, labels: (B, L); returns a scalar.
    """
    known = ~torch.isnan(labels)
    if not known.any():
        return logits.sum() * 0.0
    loss = nn.functional.binary_cross_entropy_with_logits(
        logits.float(), torch.nan_to_num(labels), reduction="none"
    )
    return loss[known].mean()


@torch.no_grad()
def predict(model: ImageClassifier, dataset: ImageLabelDataset, cfg: FinetuneConfig,
            device: torch.device | Runtime) -> np.ndarray:
    """Sigmoid scores. Shape: returns (N, L) float64."""
    model.eval()
    spec = encoder_spec(model.encoder)
    scores = []
    for batch in make_loader(dataset, max(cfg.batch_size, 256), shuffle=False, seed=0):
        raw = batch["image"].to(_device(device), non_blocking=True)
        images = to_device_images(eval_transform(raw, cfg.image_size, spec.mean, spec.std), device)
        with autocast(device):
            logits = model(images)
        scores.append(torch.sigmoid(logits.float()).cpu())
    return torch.cat(scores).numpy().astype(np.float64)


@dataclass
class FeatureCache:
    """Features of a frozen encoder by table row, computed once per (data, encoder, weights, image size).

    The features are those :func:`predict` feeds the head: eval transform (centre crop), encoder in eval mode.
    One cache can be shared by the runs of a learning-rate grid and of several seeds (their training subsets
    differ; only rows not seen yet are computed).
    """

    store: dict[tuple, dict[int, torch.Tensor]] = field(default_factory=dict)

    @torch.no_grad()
    def features(self, model: ImageClassifier, dataset: ImageLabelDataset, cfg: FinetuneConfig,
                 device: torch.device | Runtime) -> torch.Tensor:
        """Shape: returns (len(dataset), D) float32 on the device, in the dataset's order."""
        key = (str(cfg.data), cfg.dataset, cfg.encoder, str(cfg.weights), cfg.image_size)
        done = self.store.setdefault(key, {})
        missing = np.array(sorted(set(dataset.indices.tolist()) - set(done)), dtype=np.int64)
        if len(missing):
            model.eval()
            spec = encoder_spec(model.encoder)
            chunk = max(cfg.batch_size, 256)
            for start in range(0, len(missing), chunk):
                rows = missing[start:start + chunk]
                raw = torch.from_numpy(np.asarray(dataset.images[rows])).to(_device(device))
                images = to_device_images(eval_transform(raw, cfg.image_size, spec.mean, spec.std), device)
                with autocast(device):
                    feats = model.encoder(images).float()
                done.update(zip(rows.tolist(), feats))
        return torch.stack([done[r] for r in dataset.indices.tolist()])


class _Positions(torch.utils.data.Dataset):
    """Stand-in dataset of length n whose batches are the positions: the batch order of ``make_loader``."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitems__(self, positions: list[int]) -> torch.Tensor:
        return torch.as_tensor(positions)


def macro_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean AUROC over the labels that have both classes (NaN if none has).

    Shape:
        labels, scores: (N, L); labels in {0, 1, NaN}.
    """
    values, _ = per_label_metric(labels, scores, "auroc")
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def _build(cfg: FinetuneConfig, n_labels: int, lr: float, device: torch.device | Runtime):
    seed_everything(cfg.seed)  # the head's initialization must not depend on what ran before
    encoder = build_image_encoder(cfg.encoder, weights=cfg.weights or None)
    model = prepare_model(ImageClassifier(encoder, n_labels), device)
    if cfg.linear_probe:
        for p in model.encoder.parameters():
            p.requires_grad_(False)
        groups = [{"params": model.head.parameters(), "lr": lr}]
    else:
        groups = [{"params": model.encoder.parameters(), "lr": lr * cfg.backbone_lr_mult},
                  {"params": model.head.parameters(), "lr": lr}]
    fused = _device(device).type == "cuda"
    optimizer = torch.optim.Adam(groups, lr=lr, eps=1e-8, fused=fused)
    return model, optimizer


def train_one_lr(cfg: FinetuneConfig, splits: Splits, lr: float, out: Path, device: torch.device | Runtime,
                 features: FeatureCache | None = None) -> dict:
    """Train at one learning rate with early stopping; resumable; returns its summary.

    The training state is checkpointed after the first epoch, then whenever ``CHECKPOINT_SECONDS`` have passed
    (every epoch when epochs are longer), and at the end: a killed run resumes from its last checkpoint and,
    the epochs being seeded by number, ends with the same weights; it loses at most that much work. (A
    checkpoint of the demo's encoder takes about 19 ms on the 2-core CPU machine, against 0.6–0.8 s for a
    fine-tuning epoch and a few ms for a linear-probe epoch on cached features.)

    A linear probe trains the head on the frozen encoder's cached features (``features``, a new cache if
    None) in the batch order of the image loader, so it equals a probe that runs the encoder on the
    centre-cropped images of every batch.
    """
    model, optimizer = _build(cfg, len(splits.pathologies), lr, device)
    spec = encoder_spec(model.encoder)
    cached = None
    if cfg.linear_probe:
        features = features if features is not None else FeatureCache()
        cached = {name: features.features(model, getattr(splits, name), cfg, device) for name in ("train", "val")}
        train_labels = torch.from_numpy(splits.train.labels).to(_device(device))
    ckpt_path, best_path = out / "checkpoint.pt", out / "best_model.pt"
    state = load_checkpoint(ckpt_path)
    start, history, best, bad_evals = 0, [], {"val_auroc": -np.inf, "epoch": 0}, 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, history = int(state["epoch"]), list(state["history"])
        best, bad_evals = dict(state["extra"]["best"]), int(state["extra"]["bad_evals"])
        log.info("resuming lr=%g after epoch %d", lr, start)
    if isinstance(device, Runtime):
        compile_image_encoder(model.encoder, device)
    stopped = state is not None and bool(state["extra"].get("stopped", False))
    epoch = start
    saved_at = time.monotonic()
    bar = tqdm(total=cfg.epochs, initial=start, desc=f"finetune lr={lr:g}", leave=False, mininterval=2.0)
    progress = EpochProgress(f"finetune lr={lr:g}", cfg.epochs, start)
    while epoch < cfg.epochs and not stopped:
        seed_everything(epoch_seed(cfg.seed, epoch))
        gen = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch))
        model.train()
        if cfg.linear_probe:
            model.encoder.eval()
        losses = []
        drop_last = len(splits.train) > cfg.batch_size  # no batch of one for BatchNorm
        if cached is not None:
            loader = make_loader(_Positions(len(splits.train)), cfg.batch_size, shuffle=True,
                                 seed=epoch_seed(cfg.seed, epoch), drop_last=drop_last)
        else:
            loader = make_loader(splits.train, cfg.batch_size, shuffle=True, seed=epoch_seed(cfg.seed, epoch),
                                 num_workers=cfg.num_workers, pin_memory=_device(device).type == "cuda",
                                 drop_last=drop_last)
        for batch in loader:
            if cached is not None:
                with autocast(device):
                    logits = model.head(cached["train"][batch])
                labels = train_labels[batch]
            else:
                raw = batch["image"].to(_device(device), non_blocking=True)  # uint8 bytes; crop on the device
                images = to_device_images(train_transform(raw, cfg.image_size, spec.mean, spec.std, gen), device)
                labels = batch["labels"].to(_device(device), non_blocking=True)
                with autocast(device):
                    logits = model(images)
            loss = masked_bce(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        epoch += 1
        record: dict = {"epoch": epoch, "train_loss": float(torch.stack(losses).mean())}
        if epoch == cfg.epochs or (epoch >= cfg.eval_start and (epoch - cfg.eval_start) % cfg.eval_every == 0):
            if cached is not None:
                model.eval()
                with torch.no_grad(), autocast(device):
                    val_scores = torch.sigmoid(model.head(cached["val"]).float()).cpu().numpy().astype(np.float64)
            else:
                val_scores = predict(model, splits.val, cfg, device)
            val_auroc = macro_auroc(splits.val.labels, val_scores)
            record["val_auroc"] = val_auroc
            if val_auroc > best["val_auroc"]:
                best, bad_evals = {"val_auroc": val_auroc, "epoch": epoch}, 0
                save_state_dict_atomic(model.state_dict(), best_path)
            else:
                bad_evals += 1
                stopped = bad_evals >= cfg.patience
        history.append(record)
        bar.update()
        if "val_auroc" in record or stopped:  # one line per validation (an early stop ends on one)
            progress.report(epoch, record)
        if epoch == start + 1 or stopped or epoch == cfg.epochs or time.monotonic() - saved_at >= CHECKPOINT_SECONDS:
            save_checkpoint({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "history": history, "extra": {"best": best, "bad_evals": bad_evals, "stopped": stopped}},
                            ckpt_path)
            saved_at = time.monotonic()
    bar.close()
    write_json_atomic(out / "history.json", history)
    return {"lr": lr, "best_val_auroc": best["val_auroc"], "best_epoch": best["epoch"], "epochs_run": epoch,
            "early_stopped": stopped}


def finetune(cfg: FinetuneConfig, features: FeatureCache | None = None) -> Path:
    """Run the learning-rate grid, pick the best on validation, predict test once (one seed: ``cfg.seed``).

    Returns:
        path of ``predictions_test.parquet`` (ids, ``true:<label>`` and ``score:<label>`` columns).

    Raises:
        ValueError: if ``cfg.seeds`` is set (that is :func:`finetune_seeds`).
    """
    if cfg.seeds:
        raise ValueError("cfg.seeds is set: run finetune_seeds(cfg) for repeats over seeds")
    out = Path(cfg.out)
    write_run_info(out, "finetune", cfg)
    device = resolve_runtime(cfg.device, cfg.precision, cfg.channels_last, cfg.compile)
    splits = load_splits(cfg)
    write_json_atomic(out / "training_subset.json", splits.subset.summary() | {
        "ids": splits.train.meta[splits.id_column].astype(str).tolist() if cfg.label_fraction < 1 else "all"})
    if splits.subset.labels_without_positive:
        log.warning("label fraction %g, seed %d: no positive left for %s", cfg.label_fraction, cfg.seed,
                    splits.subset.labels_without_positive)
    features = features if features is not None else FeatureCache()
    summaries = []
    for i, lr in enumerate(cfg.lr_grid):
        summaries.append(train_one_lr(cfg, splits, lr, out / f"lr_{i}", device, features))
        log.info("lr=%g: best val macro-AUROC %.4f at epoch %d", lr, summaries[-1]["best_val_auroc"],
                 summaries[-1]["best_epoch"])
    valid = [s for s in summaries if np.isfinite(s["best_val_auroc"])]
    if not valid:
        raise ValueError("no learning rate produced a finite validation AUROC")
    winner = max(valid, key=lambda s: s["best_val_auroc"])
    model, _ = _build(cfg, len(splits.pathologies), winner["lr"], device)
    best_state = torch.load(out / f"lr_{cfg.lr_grid.index(winner['lr'])}" / "best_model.pt",
                            map_location="cpu", weights_only=True)
    model.load_state_dict(best_state)
    write_predictions(model, splits.val, splits, cfg, device, out / "predictions_val.parquet")
    test_path = write_predictions(model, splits.test, splits, cfg, device, out / "predictions_test.parquet")
    write_json_atomic(out / "finetune_summary.json", {"grid": summaries, "selected": winner})
    return test_path


def seed_run_dir(out: str | Path, seed: int) -> Path:
    """Where :func:`finetune_seeds` puts the run of one seed."""
    return Path(out) / f"seed_{seed}"


def finetune_seeds(cfg: FinetuneConfig, features: FeatureCache | None = None,
                   existing: dict[int, str | Path] | None = None) -> dict[int, Path]:
    """One :func:`finetune` per seed of ``cfg.seeds`` (or ``cfg.seed`` alone) under ``out/seed_<s>``.

    The seed sets the head's initialization, the batch order, the augmentations and the training subset of a
    label fraction < 1. A linear probe computes the frozen features once for all seeds. With
    ``cfg.select_lr_once`` the first seed searches ``cfg.lr_grid`` and the others train at the learning rate it
    selected (read from its ``finetune_summary.json``).

    Args:
        cfg: the fine-tuning configuration; ``cfg.out`` holds one folder per seed (:func:`seed_run_dir`).
        features: frozen features shared by the seeds of a linear probe (a new cache when None).
        existing: ``{seed: predictions_test.parquet}`` of runs already made with this configuration (their
            folder holds ``finetune_summary.json``); used instead of training those seeds again.

    Returns:
        {seed: path of that run's ``predictions_test.parquet``}.
    """
    seeds = tuple(cfg.seeds) or (cfg.seed,)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {list(seeds)}")
    made = {int(s): Path(p) for s, p in (existing or {}).items()}
    unknown = sorted(set(made) - set(seeds))
    if unknown:
        raise ValueError(f"existing runs for seeds {unknown} that are not in seeds {list(seeds)}")
    write_run_info(cfg.out, "finetune", cfg)
    features = features if features is not None else FeatureCache()
    paths: dict[int, Path] = {}
    grid = tuple(cfg.lr_grid)
    for i, s in enumerate(seeds):
        run = replace(cfg, seed=s, seeds=(), select_lr_once=False, lr_grid=grid, out=str(seed_run_dir(cfg.out, s)))
        paths[s] = made[s] if s in made else finetune(run, features)
        if i == 0 and cfg.select_lr_once:
            summary = json.loads((paths[s].parent / "finetune_summary.json").read_text())
            grid = (float(summary["selected"]["lr"]),)
            log.info("select_lr_once: seeds %s train at lr=%g (selected on validation by seed %d)",
                     list(seeds[1:]), grid[0], s)
    write_json_atomic(Path(cfg.out) / "seeds.json", {str(s): str(p) for s, p in paths.items()})
    return paths


def write_predictions(model: ImageClassifier, dataset: ImageLabelDataset, splits: Splits, cfg: FinetuneConfig,
                      device: torch.device | Runtime, path: Path) -> Path:
    """Write ids, true labels and scores of ``dataset`` as parquet (columns ``true:<L>``, ``score:<L>``)."""
    scores = predict(model, dataset, cfg, device)
    frame = pd.DataFrame({"id": dataset.meta[splits.id_column].astype(str).to_numpy()})
    for j, name in enumerate(splits.pathologies):
        frame[f"true:{name}"] = dataset.labels[:, j]
        frame[f"score:{name}"] = scores[:, j]
    frame.to_parquet(path, index=False)
    return path


def read_predictions(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str], pd.Series]:
    """(y_true (N, L) with NaN, y_score (N, L), label names, ids) from a predictions parquet."""
    frame = pd.read_parquet(path)
    names = [c[len("true:"):] for c in frame.columns if c.startswith("true:")]
    if not names or any(f"score:{n}" not in frame.columns for n in names):
        raise ValueError(f"{path} is not a predictions file (needs matching true:<label>/score:<label> columns)")
    y_true = frame[[f"true:{n}" for n in names]].to_numpy(dtype=np.float64)
    y_score = frame[[f"score:{n}" for n in names]].to_numpy(dtype=np.float64)
    return y_true, y_score, names, frame["id"]
