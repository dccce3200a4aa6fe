"""Device, precision and seeding shared by the training loops.

On CUDA the defaults are bf16 autocast and channels_last; on CPU everything runs in float32.
"""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; any other string is passed to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available")
    return resolved


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; a no-op elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move to ``device``; channels_last memory format on CUDA."""
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def to_device_images(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch: an interrupted run resumed at an epoch boundary replays it exactly."""
    return seed * 100_003 + epoch
