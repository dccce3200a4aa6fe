"""Training checkpoints: written atomically, read with ``weights_only=True``, resumable.

A checkpoint is written through :func:`medcam_lab.atomic.atomic_write`, so a run killed at any moment leaves
either the old or the new checkpoint, never half of one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from medcam_lab.atomic import atomic_write


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Atomically write ``state`` (tensors, numbers, strings, lists and dicts only) to ``path``."""
    with atomic_write(path) as tmp, open(tmp, "wb") as handle:  # a handle: the archive's records stay 'archive/'
        torch.save(state, handle)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Read a checkpoint written by :func:`save_checkpoint`, or None if there is none yet."""
    path = Path(path)
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def save_training_state(
    path: str | os.PathLike[str], epoch: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
    history: list[dict[str, Any]], extra: dict[str, Any] | None = None,
) -> None:
    """Checkpoint after ``epoch`` (completed epochs): model, optimizer, history and any extra state."""
    save_checkpoint(
        {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(), "history": history,
         "extra": extra or {}},
        path,
    )


def resume_training_state(
    path: str | os.PathLike[str], model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[int, list[dict[str, Any]], dict[str, Any]]:
    """Load the last checkpoint into ``model``/``optimizer`` if there is one.

    Returns:
        (completed epochs, history, extra) — (0, [], {}) for a fresh run.
    """
    state = load_checkpoint(path)
    if state is None:
        return 0, [], {}
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["epoch"]), list(state["history"]), dict(state.get("extra", {}))
