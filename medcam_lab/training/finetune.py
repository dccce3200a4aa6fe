"""``medcam-lab finetune``: image-only multi-label fine-tuning with a linear head (``spec/method.md`` §5).

For each learning rate of the grid: encoder (from ``weights``) + linear head, BCE-with-logits over the known
labels (NaN labels are masked out), validation macro-AUROC from epoch ``eval_start`` on, every ``eval_every``
epochs (BenchX: 10 and 5, so an early plateau does not end a run), early stopping after
``patience`` evaluations without improvement, the best-validation weights kept. The grid's winner is chosen
on validation only; then the test split is predicted once and the predictions are written for
``medcam-lab evaluate``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from medcam_lab.config import FinetuneConfig
from medcam_lab.data.cohort import ImageLabelDataset, load_cohort, make_loader
from medcam_lab.data.nih import NIH_LABELS, load_nih
from medcam_lab.data.transforms import eval_transform, train_transform
from medcam_lab.metrics import per_label_metric
from medcam_lab.models import build_image_encoder, save_state_dict_atomic
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


def _device(device: torch.device | Runtime) -> torch.device:
    return device.device if isinstance(device, Runtime) else device


class ImageClassifier(nn.Module):
    """Image encoder + one linear layer on the pooled feature (eq. 9's logits)."""

    def __init__(self, encoder: nn.Module, n_labels: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.num_features, n_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


@dataclass
class Splits:
    """Image-only train/val/test datasets sharing one label list."""

    train: ImageLabelDataset
    val: ImageLabelDataset
    test: ImageLabelDataset
    pathologies: tuple[str, ...]
    id_column: str


def load_splits(cfg: FinetuneConfig) -> Splits:
    """The three splits of a prepared MIMIC cohort (``dataset="cohort"``), a prepared NIH set (``"nih"``) or
    a ``medcam-lab prepare-images`` directory of any dataset class (``"images"``)."""
    if cfg.dataset == "cohort":
        cohort = load_cohort(cfg.data)
        images, labels, meta, names, id_col = cohort.images, cohort.labels, cohort.pairs, cohort.pathologies, "dicom_id"
        split = meta["split"].to_numpy()
    elif cfg.dataset == "nih":
        images, meta = load_nih(cfg.data)
        names, id_col = NIH_LABELS, "Image Index"
        labels = meta[list(names)].to_numpy(dtype=np.float32)
        split = meta["split"].to_numpy()
    elif cfg.dataset == "images":
        from medcam_lab.datasets.prepared import load_prepared_images

        images, meta, names = load_prepared_images(cfg.data)
        id_col = "image_id"
        labels = meta[list(names)].to_numpy(dtype=np.float32)
        split = meta["split"].to_numpy()
    else:
        raise ValueError(f"dataset must be 'cohort', 'nih' or 'images', got {cfg.dataset!r}")
    parts = {}
    for name in ("train", "val", "test"):
        idx = np.flatnonzero(split == name)
        if len(idx) == 0:
            raise ValueError(f"split {name!r} of {cfg.data} is empty")
        parts[name] = ImageLabelDataset(images, labels, meta, names, idx)
    return Splits(parts["train"], parts["val"], parts["test"], tuple(names), id_col)


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
    spec = model.encoder.spec
    scores = []
    for batch in make_loader(dataset, max(cfg.batch_size, 256), shuffle=False, seed=0):
        raw = batch["image"].to(_device(device), non_blocking=True)
        images = to_device_images(eval_transform(raw, cfg.image_size, spec.mean, spec.std), device)
        with autocast(device):
            logits = model(images)
        scores.append(torch.sigmoid(logits.float()).cpu())
    return torch.cat(scores).numpy().astype(np.float64)


def macro_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
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


def train_one_lr(cfg: FinetuneConfig, splits: Splits, lr: float, out: Path, device: torch.device | Runtime) -> dict:
    """Train at one learning rate with early stopping; resumable; returns its summary."""
    model, optimizer = _build(cfg, len(splits.pathologies), lr, device)
    spec = model.encoder.spec
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
    bar = tqdm(total=cfg.epochs, initial=start, desc=f"finetune lr={lr:g}", leave=False, mininterval=2.0)
    progress = EpochProgress(f"finetune lr={lr:g}", cfg.epochs, start)
    while epoch < cfg.epochs and not stopped:
        seed_everything(epoch_seed(cfg.seed, epoch))
        gen = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch))
        model.train()
        if cfg.linear_probe:
            model.encoder.eval()
        losses = []
        loader = make_loader(splits.train, cfg.batch_size, shuffle=True, seed=epoch_seed(cfg.seed, epoch),
                             num_workers=cfg.num_workers, pin_memory=_device(device).type == "cuda",
                             drop_last=len(splits.train) > cfg.batch_size)  # no batch of one for BatchNorm
        for batch in loader:
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
            val_auroc = macro_auroc(splits.val.labels, predict(model, splits.val, cfg, device))
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
        save_checkpoint({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "history": history, "extra": {"best": best, "bad_evals": bad_evals, "stopped": stopped}},
                        ckpt_path)
    bar.close()
    write_json_atomic(out / "history.json", history)
    return {"lr": lr, "best_val_auroc": best["val_auroc"], "best_epoch": best["epoch"], "epochs_run": epoch,
            "early_stopped": stopped}


def finetune(cfg: FinetuneConfig) -> Path:
    """Run the learning-rate grid, pick the best on validation, predict test once.

    Returns:
        path of ``predictions_test.parquet`` (ids, ``true:<label>`` and ``score:<label>`` columns).
    """
    out = Path(cfg.out)
    write_run_info(out, "finetune", cfg)
    device = resolve_runtime(cfg.device, cfg.precision, cfg.channels_last, cfg.compile)
    splits = load_splits(cfg)
    summaries = []
    for i, lr in enumerate(cfg.lr_grid):
        summaries.append(train_one_lr(cfg, splits, lr, out / f"lr_{i}", device))
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
