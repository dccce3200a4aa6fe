"""``medcam-lab align``: MedCAM alignment of an image-pretrained encoder with the ICU time series.

The image encoder starts from an image-only checkpoint (``weights``), the LSTM and both projection heads
start fresh, and the global + local contrastive losses pull the EHR representation into the image space
(``spec/method.md`` §3–4). After training the heads are dropped and the adapted backbone is saved alone,
as a plain state_dict (``adapted_backbone.pt``, loadable into a fresh torchvision ResNet of the same kind).
**Decision:** with ``keep_best`` (default) it is the backbone of the epoch with the lowest validation
alignment loss (validation split only; the test split is never used here), otherwise the last epoch's;
``selected.json`` says which.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from tqdm.auto import tqdm

from medcam_lab.config import AlignConfig
from medcam_lab.data.cohort import PairedDataset, load_cohort, make_loader
from medcam_lab.data.transforms import eval_transform, train_transform
from medcam_lab.losses import MedCAMLoss
from medcam_lab.models import (
    EHREncoder,
    MedCAMAligner,
    backbone_param_groups,
    backbone_state_dict,
    build_image_encoder,
    save_state_dict_atomic,
)
from medcam_lab.runinfo import write_json_atomic, write_run_info
from medcam_lab.training.checkpoint import resume_training_state, save_training_state
from medcam_lab.training.runtime import (
    autocast,
    epoch_seed,
    prepare_model,
    resolve_device,
    seed_everything,
    to_device_images,
)

log = logging.getLogger("medcam_lab")


def build_aligner(cfg: AlignConfig, n_features: int) -> tuple[MedCAMAligner, MedCAMLoss]:
    """The alignment model and its loss, as configured."""
    image_encoder = build_image_encoder(cfg.encoder, weights=cfg.weights or None)
    ehr_encoder = EHREncoder(n_features, cfg.ehr_hidden, cfg.ehr_layers, cfg.ehr_dropout)
    model = MedCAMAligner(image_encoder, ehr_encoder, proj_dim=cfg.proj_dim)
    loss = MedCAMLoss(
        k=cfg.k, temperature=cfg.temperature, learnable_temperature=cfg.learnable_temperature,
        lambda_global=cfg.lambda_global, lambda_local=cfg.lambda_local,
    )
    return model, loss


class _AlignmentModule(torch.nn.Module):
    """Model and loss in one module, so one state_dict/optimizer covers a learnable temperature too."""

    def __init__(self, model: MedCAMAligner, loss: MedCAMLoss) -> None:
        super().__init__()
        self.model = model
        self.loss = loss


def _forward(module: _AlignmentModule, batch: dict, images: torch.Tensor, device: torch.device) -> dict:
    ehr = batch["ehr"].to(device, non_blocking=True)
    lengths = batch["lengths"]
    with autocast(device):
        out = module.model(images, ehr, lengths)
    return module.loss(out["z_cxr"], out["z_ehr"], out["z_ehr_steps"], out["attention"], out["step_mask"]) | {
        "outputs": out
    }


@torch.no_grad()
def evaluate_alignment(module: _AlignmentModule, dataset: PairedDataset, cfg: AlignConfig,
                       device: torch.device) -> dict[str, float]:
    """Validation losses and image→EHR retrieval accuracy (top-1/top-5 over the whole split)."""
    module.eval()
    spec = module.model.image_encoder.spec
    loader = make_loader(dataset, cfg.batch_size, shuffle=False, seed=0)
    totals = {"loss": 0.0, "global": 0.0, "local": 0.0}
    n = 0
    z_img, z_ehr = [], []
    for batch in loader:
        images = to_device_images(eval_transform(batch["image"], cfg.image_size, spec.mean, spec.std), device)
        result = _forward(module, batch, images, device)
        b = len(batch["index"])
        for key in totals:
            if key in result and torch.is_tensor(result[key]):
                totals[key] += float(result[key]) * b
        n += b
        z_img.append(torch.nn.functional.normalize(result["outputs"]["z_cxr"].float(), dim=-1))
        z_ehr.append(torch.nn.functional.normalize(result["outputs"]["z_ehr"].float(), dim=-1))
    sims = torch.cat(z_img) @ torch.cat(z_ehr).T
    target = torch.arange(len(sims), device=sims.device)
    ranks = (sims > sims[target, target].unsqueeze(1)).sum(1)
    metrics = {f"val_{k}": v / max(n, 1) for k, v in totals.items()}
    metrics["val_retrieval_top1"] = float((ranks < 1).float().mean())
    metrics["val_retrieval_top5"] = float((ranks < 5).float().mean())
    return metrics


def align(cfg: AlignConfig) -> Path:
    """Run MedCAM alignment; returns the path of the adapted backbone state_dict."""
    out = Path(cfg.out)
    write_run_info(out, "align", cfg)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    cohort = load_cohort(cfg.cohort)
    train_set, val_set = PairedDataset(cohort, "train"), PairedDataset(cohort, "val")
    model, loss = build_aligner(cfg, n_features=cohort.ehr.shape[-1])
    module = prepare_model(_AlignmentModule(model, loss), device)
    groups = backbone_param_groups(module.model, cfg.backbone_mode, cfg.lr, cfg.backbone_lr_mult)
    extra = [p for p in module.loss.parameters() if p.requires_grad]
    if extra:
        groups.append({"params": extra, "lr": cfg.lr, "weight_decay": 0.0})
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type == "cuda")
    ckpt = out / "checkpoint.pt"
    start, history, state = resume_training_state(ckpt, module, optimizer)
    best = state.get("best", {"val_loss": float("inf"), "epoch": 0})
    best_path = out / "best_backbone.pt"
    if start:
        log.info("resuming alignment after epoch %d", start)
    spec = module.model.image_encoder.spec
    for epoch in range(start, cfg.epochs):
        seed_everything(epoch_seed(cfg.seed, epoch))
        gen = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch))
        loader = make_loader(train_set, cfg.batch_size, shuffle=True, seed=epoch_seed(cfg.seed, epoch),
                             num_workers=cfg.num_workers, drop_last=True, pin_memory=device.type == "cuda")
        module.train()  # the aligner keeps frozen backbone BatchNorms in eval mode itself
        sums = {"loss": torch.zeros(()), "global": torch.zeros(()), "local": torch.zeros(())}
        steps = 0
        for batch in tqdm(loader, desc=f"align {epoch + 1}/{cfg.epochs}", leave=False, mininterval=2.0):
            images = to_device_images(train_transform(batch["image"], cfg.image_size, spec.mean, spec.std, gen), device)
            result = _forward(module, batch, images, device)
            optimizer.zero_grad(set_to_none=True)
            result["loss"].backward()
            optimizer.step()
            if cfg.learnable_temperature:
                module.loss.clamp_()
            for key in sums:
                if key in result and torch.is_tensor(result[key]):
                    sums[key] += result[key].detach().float().cpu()
            steps += 1
        if steps == 0:
            raise ValueError(f"training split has fewer pairs ({len(train_set)}) than one batch ({cfg.batch_size})")
        record = {"epoch": epoch + 1, **{f"train_{k}": float(v) / steps for k, v in sums.items()}}
        record |= evaluate_alignment(module, val_set, cfg, device)
        record["temperature"] = float(module.loss.temperature)
        history.append(record)
        if record["val_loss"] < best["val_loss"]:
            best = {"val_loss": record["val_loss"], "epoch": epoch + 1}
            save_state_dict_atomic(backbone_state_dict(module.model.image_encoder), best_path)
        log.info("align epoch %d: %s", epoch + 1, {k: round(v, 4) for k, v in record.items()})
        if (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == cfg.epochs:
            save_training_state(ckpt, epoch + 1, module, optimizer, history, extra={"best": best})
    weights = out / "adapted_backbone.pt"
    if cfg.keep_best and best["epoch"] > 0:
        save_state_dict_atomic(torch.load(best_path, map_location="cpu", weights_only=True), weights)
    else:
        save_state_dict_atomic(backbone_state_dict(module.model.image_encoder), weights)
    write_json_atomic(out / "history.json", history)
    write_json_atomic(out / "selected.json", {"keep_best": cfg.keep_best, "best_epoch": best["epoch"],
                                              "best_val_loss": best["val_loss"], "epochs_run": len(history)})
    return weights
