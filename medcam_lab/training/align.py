"""``medcam-lab align``: MedCAM alignment of an image-pretrained encoder with the ICU time series.

The image encoder starts from an image-only checkpoint (``weights``), the LSTM and both projection heads
start fresh, and the global + local contrastive losses pull the EHR representation into the image space
(``spec/method.md`` §3–4). After training the heads are dropped and the adapted backbone is saved alone,
as a plain state_dict (``adapted_backbone.pt``, loadable into a fresh torchvision ResNet of the same kind).
**Decision:** with ``keep_best`` (default) it is the backbone of the epoch with the lowest validation
alignment loss (validation split only; the test split is never used here), otherwise the last epoch's;
``selected.json`` says which.

Multi-GPU: launched by ``torchrun`` (``torchrun --standalone --nproc_per_node=G -m medcam_lab.cli align ...``)
every process trains on its slice of each global batch of ``batch_size × G`` pairs, the losses gather the
other ranks' embeddings with gradient (:mod:`medcam_lab.losses.distributed`) and DDP averages the gradients,
which together equal one process training on the global batch. Crop parameters are drawn for the global
batch and sliced, per-process randomness (dropout) is seeded by rank, rank 0 alone writes checkpoints, logs
and outputs, and all ranks resume from the same checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from tqdm.auto import tqdm

from medcam_lab.config import AlignConfig
from medcam_lab.data.cohort import load_cohort
from medcam_lab.data.loading import PairedDataset, make_loader
from medcam_lab.data.transforms import eval_transform, random_crop_params, train_transform
from medcam_lab.losses import MedCAMLoss
from medcam_lab.losses.distributed import all_reduce_sum
from medcam_lab.models import (
    EHREncoder,
    MedCAMAligner,
    backbone_param_groups,
    backbone_state_dict,
    build_image_encoder,
    encoder_spec,
    save_state_dict_atomic,
)
from medcam_lab.runinfo import write_json_atomic, write_run_info
from medcam_lab.training.checkpoint import resume_training_state, save_training_state
from medcam_lab.training.progress import EpochProgress
from medcam_lab.training.runtime import (
    Runtime,
    autocast,
    barrier,
    compile_image_encoder,
    epoch_seed,
    init_distributed,
    prepare_model,
    process_seed,
    resolve_runtime,
    seed_everything,
    shutdown_distributed,
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


class AlignmentModule(torch.nn.Module):
    """Model and loss in one module: one state_dict/optimizer covers a learnable temperature too, and DDP
    wraps one forward that returns the loss.

    Shape:
        - images: (B, 3, H, W); ehr: (B, T, F); lengths: (B,).
        - output: the :class:`MedCAMLoss` dict plus ``outputs`` (the aligner's dict).
    """

    def __init__(self, model: MedCAMAligner, loss: MedCAMLoss) -> None:
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, images: torch.Tensor, ehr: torch.Tensor, lengths: torch.Tensor,
                precision_context=None) -> dict:
        """Embed the batch (under ``precision_context``, e.g. bf16 autocast) and compute the loss in fp32."""
        import contextlib

        with precision_context or contextlib.nullcontext():
            out = self.model(images, ehr, lengths)
        result = self.loss(out["z_cxr"], out["z_ehr"], out["z_ehr_steps"], out["attention"], out["step_mask"])
        return result | {"outputs": out}


def alignment_step(step_module: torch.nn.Module, loss_module: MedCAMLoss, optimizer: torch.optim.Optimizer,
                   images: torch.Tensor, ehr: torch.Tensor, lengths: torch.Tensor, runtime: Runtime) -> dict:
    """One optimizer step on a batch already on the device; returns the detached loss terms (on the device).

    Nothing here waits for the device (no ``.item()``/``float()``), so the host runs ahead of the GPU.
    ``step_module`` is the :class:`AlignmentModule` or its DDP wrapper; ``loss_module`` its loss (clamped).

    Shape:
        - images: (B, 3, H, W) float; ehr: (B, T, F); lengths: (B,) (CPU).
        - output values: () tensors.
    """
    result = step_module(images, ehr, lengths, autocast(runtime))
    optimizer.zero_grad(set_to_none=True)
    result["loss"].backward()
    optimizer.step()
    loss_module.clamp_()
    return {k: result[k].detach() for k in ("loss", "global", "local") if torch.is_tensor(result.get(k))}


@torch.no_grad()
def evaluate_alignment(module: AlignmentModule, dataset: PairedDataset, cfg: AlignConfig,
                       device: torch.device | Runtime, batch_size: int | None = None) -> dict[str, float]:
    """Validation losses and image→EHR retrieval accuracy (top-1/top-5 over the whole split), in one process.

    ``batch_size`` (default ``cfg.batch_size``) sets the contrastive batch of the validation losses; a
    data-parallel run passes its global batch so its numbers match a single-process run.
    """
    runtime = device if isinstance(device, Runtime) else resolve_runtime(str(device), "auto", "off", "off")
    module.eval()
    spec = encoder_spec(module.model.image_encoder)
    loader = make_loader(dataset, batch_size or cfg.batch_size, shuffle=False, seed=0)
    totals = {"loss": 0.0, "global": 0.0, "local": 0.0}
    n = 0
    z_img, z_ehr = [], []
    distributed, module.loss.distributed = module.loss.distributed, False
    try:
        for batch in loader:
            images = batch["image"].to(runtime.device, non_blocking=True)
            images = to_device_images(eval_transform(images, cfg.image_size, spec.mean, spec.std), runtime)
            ehr = batch["ehr"].to(runtime.device, non_blocking=True)
            result = module(images, ehr, batch["lengths"], autocast(runtime))
            b = len(batch["index"])
            for key in totals:
                if key in result and torch.is_tensor(result[key]):
                    totals[key] += float(result[key]) * b
            n += b
            z_img.append(torch.nn.functional.normalize(result["outputs"]["z_cxr"].float(), dim=-1))
            z_ehr.append(torch.nn.functional.normalize(result["outputs"]["z_ehr"].float(), dim=-1))
    finally:
        module.loss.distributed = distributed
    sims = torch.cat(z_img) @ torch.cat(z_ehr).T
    target = torch.arange(len(sims), device=sims.device)
    ranks = (sims > sims[target, target].unsqueeze(1)).sum(1)
    metrics = {f"val_{k}": v / max(n, 1) for k, v in totals.items()}
    metrics["val_retrieval_top1"] = float((ranks < 1).float().mean())
    metrics["val_retrieval_top5"] = float((ranks < 5).float().mean())
    metrics["val_pairs"] = n  # the retrieval candidates: chance is k / n
    return metrics


def _wrap_data_parallel(module: AlignmentModule, cfg: AlignConfig, runtime: Runtime, local_rank: int):
    """DDP around the module (SyncBatchNorm for trainable BatchNorms on CUDA when asked)."""
    from torch.nn.parallel import DistributedDataParallel

    if runtime.device.type == "cuda" and cfg.sync_batchnorm:
        module.model.image_encoder = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module.model.image_encoder)
    module.loss.distributed = True
    device_ids = [local_rank] if runtime.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def align(cfg: AlignConfig) -> Path:
    """Run MedCAM alignment (one process, or every rank of a ``torchrun`` launch); returns the path of the
    adapted backbone state_dict."""
    ctx, device_name = init_distributed(cfg.device)
    try:
        return _align(cfg, ctx, device_name)
    finally:
        shutdown_distributed(ctx)


def _align(cfg: AlignConfig, ctx, device_name: str) -> Path:
    out = Path(cfg.out)
    main = ctx.is_main
    if main:
        write_run_info(out, "align", cfg)
    runtime = resolve_runtime(device_name, cfg.precision, cfg.channels_last, cfg.compile)
    seed_everything(cfg.seed)  # identical initial weights on every rank
    cohort = load_cohort(cfg.cohort)
    train_set, val_set = PairedDataset(cohort, "train"), PairedDataset(cohort, "val")
    if len(train_set) < cfg.batch_size * ctx.world_size:
        raise ValueError(f"training split has fewer pairs ({len(train_set)}) than one global batch "
                         f"({cfg.batch_size} × {ctx.world_size} processes)")
    model, loss = build_aligner(cfg, n_features=cohort.ehr.shape[-1])
    module = prepare_model(AlignmentModule(model, loss), runtime)
    groups = backbone_param_groups(module.model, cfg.backbone_mode, cfg.lr, cfg.backbone_lr_mult)
    extra = [p for p in module.loss.parameters() if p.requires_grad]
    if extra:
        groups.append({"params": extra, "lr": cfg.lr, "weight_decay": 0.0})
    fused = runtime.device.type == "cuda"
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    ckpt = out / "checkpoint.pt"
    start, history, state = resume_training_state(ckpt, module, optimizer)
    best = state.get("best", {"val_loss": float("inf"), "epoch": 0})
    best_path = out / "best_backbone.pt"
    if start and main:
        log.info("resuming alignment after epoch %d", start)
    step_module = _wrap_data_parallel(module, cfg, runtime, ctx.local_rank) if ctx.launched else module
    compile_image_encoder(module.model.image_encoder, runtime)
    spec = encoder_spec(module.model.image_encoder)
    per_rank = cfg.batch_size
    lo, hi = ctx.rank * per_rank, (ctx.rank + 1) * per_rank
    progress = EpochProgress("align", cfg.epochs, start)
    for epoch in range(start, cfg.epochs):
        seed_everything(process_seed(cfg.seed, epoch, ctx.rank))
        gen = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch))  # shared: crops of the global batch
        loader = make_loader(train_set, cfg.batch_size, shuffle=True, seed=epoch_seed(cfg.seed, epoch),
                             num_workers=cfg.num_workers, drop_last=True, pin_memory=runtime.pin_memory,
                             rank=ctx.rank, world_size=ctx.world_size)
        module.train()  # the aligner keeps frozen backbone BatchNorms in eval mode itself
        sums = {k: torch.zeros((), device=runtime.device) for k in ("loss", "global", "local")}
        steps = 0
        bar = tqdm(loader, desc=f"align {epoch + 1}/{cfg.epochs}", leave=False, mininterval=2.0, disable=not main)
        for batch in bar:
            raw = batch["image"].to(runtime.device, non_blocking=True)
            offsets, flips = random_crop_params(per_rank * ctx.world_size, raw.shape[-1], cfg.image_size, gen)
            images = train_transform(raw, cfg.image_size, spec.mean, spec.std, params=(offsets[lo:hi], flips[lo:hi]))
            images = to_device_images(images, runtime)
            ehr = batch["ehr"].to(runtime.device, non_blocking=True)
            terms = alignment_step(step_module, module.loss, optimizer, images, ehr, batch["lengths"], runtime)
            for key, value in terms.items():
                sums[key] += value.float()
            steps += 1
        # Each rank's loss is its share of the global-batch loss: the mean over ranks is the global value.
        record = {"epoch": epoch + 1, **{f"train_{k}": float(all_reduce_sum(v)) / ctx.world_size / steps
                                         for k, v in sums.items()}}
        if main:
            record |= evaluate_alignment(module, val_set, cfg, runtime, cfg.batch_size * ctx.world_size)
            record["temperature"] = float(module.loss.temperature)
            history.append(record)
            if record["val_loss"] < best["val_loss"]:
                best = {"val_loss": record["val_loss"], "epoch": epoch + 1}
                save_state_dict_atomic(backbone_state_dict(module.model.image_encoder), best_path)
            progress.report(epoch + 1, record)
            if (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == cfg.epochs:
                save_training_state(ckpt, epoch + 1, module, optimizer, history, extra={"best": best})
        barrier(ctx)
    weights = out / "adapted_backbone.pt"
    if main:
        if cfg.keep_best and best["epoch"] > 0:
            save_state_dict_atomic(torch.load(best_path, map_location="cpu", weights_only=True), weights)
        else:
            save_state_dict_atomic(backbone_state_dict(module.model.image_encoder), weights)
        write_json_atomic(out / "history.json", history)
        write_json_atomic(out / "selected.json", {"keep_best": cfg.keep_best, "best_epoch": best["epoch"],
                                                  "best_val_loss": best["val_loss"], "epochs_run": len(history),
                                                  "world_size": ctx.world_size})
    barrier(ctx)
    return weights


def torchrun_align_command(cfg: AlignConfig, nproc_per_node: int, python: str | None = None) -> list[str]:
    """The ``torchrun`` command line that runs ``medcam-lab align`` with ``cfg`` on ``nproc_per_node`` processes.

    Every config field is passed as its CLI flag; ``cfg.batch_size`` is per process.
    """
    import dataclasses
    import sys

    if nproc_per_node < 1:
        raise ValueError(f"nproc_per_node must be >= 1, got {nproc_per_node}")
    argv = [python or sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc_per_node", str(nproc_per_node), "-m", "medcam_lab.cli", "align"]
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        flag = "--" + field.name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + field.name.replace("_", "-"))
        else:
            argv += [flag, str(value)]
    return argv


def launch_align(cfg: AlignConfig, nproc_per_node: int, **run_kwargs) -> Path:
    """Run data-parallel alignment in a ``torchrun`` subprocess (how notebooks use several GPUs: a kernel
    never creates process groups itself) and return the adapted backbone's path once it has finished.

    Raises:
        subprocess.CalledProcessError: when any rank fails (its output is in the exception).
    """
    import subprocess

    run_kwargs.setdefault("check", True)
    subprocess.run(torchrun_align_command(cfg, nproc_per_node), **run_kwargs)
    return Path(cfg.out) / "adapted_backbone.pt"
