"""``medcam-lab`` MedMod baselines: concurrent image–EHR pretraining (spec/baselines.md §4).

Unlike MedCAM (an image-pretrained encoder *adapted* to the EHR), MedMod trains the image encoder and the
EHR LSTM *together* from scratch on the same paired cohort, with one of three objectives: cross-modal
InfoNCE (``infonce``, MedMod's "simclr"), ``vicreg``, or ``align`` (learnable temperature, 16–20 % of the
pairs of each batch deliberately mismatched). Heads as MedMod: 3-layer MLP (F→d–ReLU–d→d–ReLU–d→d, no
final bias) for infonce/vicreg, one ``Linear`` for align. The image backbone of the epoch with the lowest
validation loss is saved alone (``pretrained_backbone.pt``) and fine-tuned image-only like every other row.

Deviation (documented in docs/decisions.md): AdamW for all three objectives (MedMod uses LARS for
infonce/vicreg) and our ResNet/LSTM sizes, so that every Table-2 row differs only in its pretraining loss.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from medcam_lab.config import MedModConfig
from medcam_lab.data.cohort import load_cohort
from medcam_lab.data.loading import PairedDataset, make_loader
from medcam_lab.data.transforms import eval_transform, train_transform
from medcam_lab.losses.align_mismatch import AlignMismatchLoss, mismatch_permutation
from medcam_lab.losses.infonce import cross_modal_infonce
from medcam_lab.losses.vicreg import vicreg_loss
from medcam_lab.models import (
    EHREncoder,
    backbone_state_dict,
    build_image_encoder,
    encoder_spec,
    encoder_width,
    save_state_dict_atomic,
)
from medcam_lab.runinfo import write_json_atomic, write_run_info
from medcam_lab.training.runtime import epoch_seed, resolve_device, seed_everything, to_device_images

log = logging.getLogger("medcam_lab")
OBJECTIVES = ("infonce", "vicreg", "align")


def medmod_head(in_dim: int, out_dim: int, objective: str) -> nn.Module:
    """MedMod's projection head for ``objective``.

    Shape:
        - (B, in_dim) → (B, out_dim).
    """
    if objective == "align":
        return nn.Linear(in_dim, out_dim)
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU(), nn.Linear(out_dim, out_dim), nn.ReLU(),
                         nn.Linear(out_dim, out_dim, bias=False))


class MedModModel(nn.Module):
    """Image encoder + EHR LSTM + the two heads of one MedMod objective.

    Shape:
        - images (B, 3, S, S), ehr (B, T, F), lengths (B,) → (z_img (B, d), z_ehr (B, d)).
    """

    def __init__(self, cfg: MedModConfig, n_features: int) -> None:
        super().__init__()
        if cfg.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {cfg.objective!r}")
        self.objective = cfg.objective
        self.image_encoder = build_image_encoder(cfg.encoder, weights=cfg.weights or None)
        self.ehr_encoder = EHREncoder(n_features, cfg.ehr_hidden, num_layers=1, dropout=0.0)
        self.image_head = medmod_head(encoder_width(self.image_encoder), cfg.proj_dim, cfg.objective)
        self.ehr_head = medmod_head(cfg.ehr_hidden, cfg.proj_dim, cfg.objective)
        self.align_loss = AlignMismatchLoss(cfg.temperature) if cfg.objective == "align" else None
        self.temperature = cfg.temperature

    def forward(self, images: torch.Tensor, ehr: torch.Tensor, lengths: torch.Tensor):
        """The projected image and EHR embeddings ``(z_img, z_ehr)`` of a paired batch."""
        _, last = self.ehr_encoder(ehr, lengths)
        return self.image_head(self.image_encoder(images)), self.ehr_head(last)

    def loss(self, z_img: torch.Tensor, z_ehr: torch.Tensor) -> torch.Tensor:
        """The loss of the model's objective (InfoNCE, VICReg or ALIGN with mismatched pairs) on a batch."""
        if self.objective == "infonce":
            return cross_modal_infonce(z_img, z_ehr, self.temperature)
        if self.objective == "vicreg":
            return vicreg_loss(z_img, z_ehr)["loss"]
        if self.align_loss is None:  # built for the align objective only
            raise ValueError(f"objective {self.objective!r} has no loss; choose one of {OBJECTIVES}")
        return self.align_loss(z_img, z_ehr)


def _batch_loss(model: MedModModel, batch: dict, images: torch.Tensor, device: torch.device,
                generator: torch.Generator | None) -> torch.Tensor:
    ehr, lengths = batch["ehr"].to(device), batch["lengths"]
    if model.objective == "align" and generator is not None:  # deliberately mismatched pairs (training only)
        perm = mismatch_permutation(len(ehr), generator=generator)
        ehr, lengths = ehr[perm.to(device)], lengths[perm]
    z_img, z_ehr = model(images, ehr, lengths)
    return model.loss(z_img, z_ehr)


def pretrain_medmod(cfg: MedModConfig) -> Path:
    """Run one MedMod objective; returns the path of the saved image backbone state_dict."""
    out = Path(cfg.out)
    write_run_info(out, "medmod", cfg)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    cohort = load_cohort(cfg.cohort)
    train_set, val_set = PairedDataset(cohort, "train"), PairedDataset(cohort, "val")
    model = MedModModel(cfg, cohort.ehr.shape[-1]).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    spec = encoder_spec(model.image_encoder)
    history, best = [], {"val_loss": float("inf"), "epoch": 0}
    weights = out / "pretrained_backbone.pt"
    for epoch in range(cfg.epochs):
        seed_everything(epoch_seed(cfg.seed, epoch))
        gen = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch))
        model.train()
        losses = []
        for batch in make_loader(train_set, cfg.batch_size, shuffle=True, seed=epoch_seed(cfg.seed, epoch),
                                 num_workers=cfg.num_workers, drop_last=True):
            images = to_device_images(train_transform(batch["image"], cfg.image_size, spec.mean, spec.std, gen),
                                      device)
            loss = _batch_loss(model, batch, images, device, gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        if not losses:
            raise ValueError(f"training split has fewer pairs ({len(train_set)}) than one batch ({cfg.batch_size})")
        model.eval()
        with torch.no_grad():
            val = [float(_batch_loss(model, b, to_device_images(
                eval_transform(b["image"], cfg.image_size, spec.mean, spec.std), device), device, None))
                for b in make_loader(val_set, cfg.batch_size, shuffle=False, seed=0, drop_last=len(val_set) > 1)]
        record = {"epoch": epoch + 1, "train_loss": sum(losses) / len(losses),
                  "val_loss": sum(val) / max(len(val), 1)}
        history.append(record)
        if record["val_loss"] < best["val_loss"]:
            best = {"val_loss": record["val_loss"], "epoch": epoch + 1}
            save_state_dict_atomic(backbone_state_dict(model.image_encoder), weights)
        log.info("medmod %s epoch %d: %s", cfg.objective, epoch + 1, record)
    if best["epoch"] == 0:
        save_state_dict_atomic(backbone_state_dict(model.image_encoder), weights)
    write_json_atomic(out / "history.json", history)
    write_json_atomic(out / "selected.json", best)
    return weights
