"""Device, precision, memory format, compilation and seeding shared by the training loops.

On CUDA the defaults are bf16 autocast, channels_last and ``torch.compile`` of the image encoder (each with a
switch); on CPU everything runs in float32, NCHW, eager, exactly as before these switches existed.
"""

from __future__ import annotations

import contextlib
import logging
import random
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

log = logging.getLogger("medcam_lab")

SWITCH_VALUES = ("auto", "on", "off")
PRECISIONS = ("auto", "bf16", "fp32")
ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; any other string is passed to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available")
    return resolved


@dataclass(frozen=True)
class Runtime:
    """How a training loop runs its steps (resolved from the ``auto``/``on``/``off`` config switches).

    Attributes:
        device: where the model and the batches live.
        bf16: bf16 autocast for the model's forward (losses compute in float32 regardless).
        channels_last: NHWC memory format for the model and the image batches.
        compile: ``torch.compile`` the image encoder (in place: state_dict keys are unchanged).
    """

    device: torch.device
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False

    @property
    def pin_memory(self) -> bool:
        """Pinned host memory for the loader (only useful with CUDA)."""
        return self.device.type == "cuda"


def _switch(name: str, value: str, cuda: bool) -> bool:
    if value not in SWITCH_VALUES:
        raise ValueError(f"{name} must be one of {SWITCH_VALUES}, got {value!r}")
    return cuda if value == "auto" else value == "on"


def resolve_runtime(device: str = "auto", precision: str = "auto", channels_last: str = "auto",
                    compile: str = "auto") -> Runtime:
    """Resolve the config switches: ``auto`` means on for CUDA, off elsewhere.

    Raises:
        ValueError: on an unknown switch value, or bf16 asked for on a device without bf16 autocast.
    """
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    bf16 = cuda if precision == "auto" else precision == "bf16"
    return Runtime(dev, bf16, _switch("channels_last", channels_last, cuda), _switch("compile", compile, cuda))


def autocast(device: torch.device | Runtime, precision: str = "auto") -> contextlib.AbstractContextManager:
    """bf16 autocast when the runtime asks for it (default: on CUDA); a no-op otherwise."""
    runtime = device if isinstance(device, Runtime) else resolve_runtime(str(device), precision, "off", "off")
    if runtime.bf16:
        return torch.autocast(runtime.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _as_runtime(device: torch.device | Runtime) -> Runtime:
    if isinstance(device, Runtime):
        return device
    cuda = device.type == "cuda"
    return Runtime(device, bf16=cuda, channels_last=cuda, compile=False)


def prepare_model(model: ModuleT, device: torch.device | Runtime) -> ModuleT:
    """Move to the device; channels_last when the runtime asks for it (default: on CUDA).

    Compilation is separate (:func:`compile_image_encoder`): it must come after weights are loaded.
    """
    runtime = _as_runtime(device)
    model = model.to(runtime.device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def compile_image_encoder(encoder: torch.nn.Module, runtime: Runtime) -> None:
    """``torch.compile`` the image encoder in place when the runtime asks for it (keeps state_dict keys)."""
    if runtime.compile:
        log.info("compiling the image encoder (turn off with --compile off)")
        encoder.compile()


def to_device_images(x: torch.Tensor, device: torch.device | Runtime) -> torch.Tensor:
    """Copy an image batch to the device without blocking the host; channels_last when asked."""
    runtime = _as_runtime(device)
    x = x.to(runtime.device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if runtime.channels_last and x.dim() == 4 else x


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch: an interrupted run resumed at an epoch boundary replays it exactly."""
    return seed * 100_003 + epoch


def process_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of one epoch on one data-parallel rank (dropout and other per-process randomness).

    Rank 0 gets :func:`epoch_seed` (a single-process run is unchanged); other ranks get independent
    streams mixed from ``(seed, epoch, rank)`` so no two ranks draw the same dropout masks.
    """
    if rank == 0:
        return epoch_seed(seed, epoch)
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1, dtype=np.uint64)[0] % (2**63))


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in a ``torchrun`` launch (``rank 0 of 1`` without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False
    launched: bool = False  # started by torchrun (a process group exists, even with one rank)

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, outputs and logs."""
        return self.rank == 0


def init_distributed(device: str = "auto") -> tuple[DistributedContext, str]:
    """Join the process group when launched by ``torchrun`` (``RANK`` and ``WORLD_SIZE`` in the environment).

    The backend is NCCL on CUDA (one GPU per process, ``cuda:LOCAL_RANK``) and gloo on CPU. Returns the
    context and the device string each process should use; without ``torchrun`` it returns ``(rank 0 of 1,
    device)`` and touches nothing.
    """
    import os

    import torch.distributed as dist

    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:  # not launched by torchrun
        return DistributedContext(), device
    world_size = int(os.environ["WORLD_SIZE"])
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device != "cpu" and not device.startswith("cpu") and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    elif device == "auto":
        device = "cpu"
    initialized_here = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        initialized_here = True
    if dist.get_world_size() != world_size:
        raise RuntimeError(f"process group has {dist.get_world_size()} ranks, WORLD_SIZE says {world_size}")
    return DistributedContext(rank, world_size, local_rank, initialized_here, launched=True), device


def barrier(ctx: DistributedContext) -> None:
    """Wait for every rank (a no-op outside ``torchrun``)."""
    if ctx.launched:
        import torch.distributed as dist

        dist.barrier()


def shutdown_distributed(ctx: DistributedContext) -> None:
    """Leave the process group if :func:`init_distributed` created it."""
    if ctx.initialized_here:
        import torch.distributed as dist

        dist.destroy_process_group()
