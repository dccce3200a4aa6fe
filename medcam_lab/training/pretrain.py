"""Image-only self-supervised pretraining (Barlow Twins): the stand-in for BarlowTwins-CXR.

MedCAM adapts an encoder that was pretrained on images alone. On real data that is the published
BarlowTwins-CXR ResNet-50 (a local file passed as ``--weights``); on the generated demo cohort this loop
produces the equivalent from the demo's training images, with the same objective.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from medcam_lab.config import PretrainConfig
from medcam_lab.data.cohort import load_cohort
from medcam_lab.data.loading import ImageLabelDataset, make_loader
from medcam_lab.data.transforms import ssl_view
from medcam_lab.losses.barlow_twins import barlow_twins_loss
from medcam_lab.models import (
    backbone_state_dict,
    build_image_encoder,
    encoder_spec,
    encoder_width,
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


class BarlowTwinsModel(nn.Module):
    """Backbone + the Barlow Twins projector (Linear–BN–ReLU–Linear)."""

    def __init__(self, encoder: nn.Module, projector_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        f = encoder_width(encoder)
        self.projector = nn.Sequential(
            nn.Linear(f, projector_dim, bias=False), nn.BatchNorm1d(projector_dim), nn.ReLU(inplace=True),
            nn.Linear(projector_dim, projector_dim, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Projector output of the pooled feature: (B, 3, S, S) → (B, projector_dim)."""
        return self.projector(self.encoder(x))


def pretrain_image_encoder(cfg: PretrainConfig) -> Path:
    """Run Barlow Twins on the cohort's training images; returns the path of the backbone state_dict."""
    out = Path(cfg.out)
    write_run_info(out, "pretrain", cfg)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    cohort = load_cohort(cfg.cohort)
    train_idx = cohort.split_indices("train")
    dataset = ImageLabelDataset(cohort.images, cohort.labels, cohort.pairs, cohort.pathologies, train_idx)
    encoder = build_image_encoder(cfg.encoder)
    spec = encoder_spec(encoder)
    model = prepare_model(BarlowTwinsModel(encoder, cfg.projector_dim), device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ckpt = out / "checkpoint.pt"
    start, history, _ = resume_training_state(ckpt, model, optimizer)
    if start:
        log.info("resuming pretraining after epoch %d", start)
    for epoch in range(start, cfg.epochs):
        seed_everything(epoch_seed(cfg.seed, epoch))
        gen = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch))
        loader = make_loader(dataset, cfg.batch_size, shuffle=True, seed=epoch_seed(cfg.seed, epoch),
                             num_workers=cfg.num_workers, drop_last=True)
        model.train()
        losses = []
        for batch in tqdm(loader, desc=f"pretrain {epoch + 1}/{cfg.epochs}", leave=False, mininterval=2.0):
            view_a = to_device_images(ssl_view(batch["image"], cfg.image_size, spec.mean, spec.std, gen), device)
            view_b = to_device_images(ssl_view(batch["image"], cfg.image_size, spec.mean, spec.std, gen), device)
            with autocast(device):
                loss = barlow_twins_loss(model(view_a), model(view_b), cfg.lambda_offdiag)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        history.append({"epoch": epoch + 1, "loss": float(torch.stack(losses).mean())})
        log.info("pretrain epoch %d loss %.4f", epoch + 1, history[-1]["loss"])
        save_training_state(ckpt, epoch + 1, model, optimizer, history)
    weights = out / "encoder.pt"
    save_state_dict_atomic(backbone_state_dict(model.encoder), weights)
    write_json_atomic(out / "history.json", history)
    return weights
