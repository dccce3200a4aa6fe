"""Safe, strict loading and atomic saving of image-backbone weights.

Weights are never downloaded: every checkpoint is a local file, read with ``torch.load(weights_only=True)``
so that a pickle cannot run code. Loading is strict: apart from the classifier head (``fc.*``) every key of
the model must be in the checkpoint and vice versa, with equal shapes (cxr.md Part B §1: a silent
``strict=False`` load that drops the backbone is the failure mode to avoid).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "CheckpointKeyError",
    "LoadReport",
    "load_backbone_weights",
    "backbone_state_dict",
    "save_state_dict_atomic",
]

HEAD_KEYS = ("fc.weight", "fc.bias")


class CheckpointKeyError(KeyError, ValueError):
    """Missing or unexpected keys between a checkpoint and a model (both a ``KeyError`` and a
    ``ValueError``).

    Shape:
        - no tensors.
    """

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else ""


@dataclass
class LoadReport:
    """What :func:`load_backbone_weights` did.

    Attributes:
        path: the file that was read.
        missing_keys: model keys absent from the checkpoint (all in ``allowed_missing``; left untouched).
        ignored_keys: checkpoint keys not loaded (in ``allowed_unexpected``, or an allowed head key whose
            shape differs from the model's).

    Shape:
        - no tensors.
    """

    path: str
    missing_keys: list[str] = field(default_factory=list)
    ignored_keys: list[str] = field(default_factory=list)


def _strip_common_prefix(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    if state and all(key.startswith(prefix) for key in state):
        return {key[len(prefix):]: value for key, value in state.items()}
    return state


def _unwrap(obj: Any, path: str, select_prefix: str | None) -> dict[str, Tensor]:
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a state_dict (a mapping), got {type(obj).__name__}")
    for wrapper in ("state_dict", "model"):
        if wrapper in obj and isinstance(obj[wrapper], Mapping):
            obj = obj[wrapper]
            break
    state = dict(obj)
    state = _strip_common_prefix(state, "module.")
    if select_prefix:
        state = {k[len(select_prefix):]: v for k, v in state.items() if k.startswith(select_prefix)}
        if not state:
            raise ValueError(f"{path}: no key starts with select_prefix {select_prefix!r}")
    state = _strip_common_prefix(state, "backbone.")
    bad = [key for key, value in state.items() if not isinstance(value, Tensor)]
    if bad:
        raise ValueError(f"{path}: non-tensor entries in the state_dict: {bad[:10]}")
    return state


def _key_list(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    more = f" … (+{len(keys) - 10} more)" if len(keys) > 10 else ""
    return f"{keys[:10]}{more}"


def load_backbone_weights(
    model: nn.Module,
    path: str | os.PathLike[str],
    allowed_missing: Iterable[str] = HEAD_KEYS,
    allowed_unexpected: Iterable[str] = HEAD_KEYS,
    *,
    select_prefix: str | None = None,
) -> LoadReport:
    """Load a local backbone checkpoint into ``model``, strictly.

    Steps: ``torch.load(path, map_location="cpu", weights_only=True)``; unwrap a top-level
    ``"state_dict"`` or ``"model"`` entry; strip a leading ``module.`` (DDP) when *all* keys carry it;
    optionally keep only the keys under ``select_prefix`` (e.g. ``"backbone."`` for a BarlowTwins
    ``checkpoint.pth`` that also holds ``projector.*``); strip a leading ``backbone.`` when *all* keys carry
    it; then check keys and shapes before copying anything.

    Args:
        model: the module to load into (e.g. from :func:`medcam_lab.models.build_image_encoder`).
        path: local checkpoint file.
        allowed_missing: model keys that may be absent from the checkpoint (the classifier head).
        allowed_unexpected: checkpoint keys the model may lack; they are ignored.
        select_prefix: keep only checkpoint keys starting with this prefix (after ``module.`` stripping)
            and remove it.

    Returns:
        A :class:`LoadReport`.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        pickle.UnpicklingError: if the file holds objects that ``weights_only`` refuses (custom classes).
        CheckpointKeyError: (a ``KeyError`` and ``ValueError``) on missing/unexpected keys other than the
            allowed ones; the message lists the first 10 of each and the file.
        ValueError: on a shape mismatch (naming the key) or a non-tensor entry.

    Shape:
        - every checkpoint tensor must have the shape of the model tensor of the same key.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise pickle.UnpicklingError(
            f"{path}: refused by torch.load(weights_only=True) (it holds non-tensor objects): {err}"
        ) from err
    state = _unwrap(obj, path, select_prefix)
    target = model.state_dict()
    allowed_missing, allowed_unexpected = set(allowed_missing), set(allowed_unexpected)

    missing = set(target) - set(state)
    unexpected = set(state) - set(target)
    bad_missing, bad_unexpected = missing - allowed_missing, unexpected - allowed_unexpected
    if bad_missing or bad_unexpected:
        raise CheckpointKeyError(
            f"{path}: checkpoint does not match the model ({type(model).__name__}); "
            f"missing keys ({len(bad_missing)}): {_key_list(bad_missing)}; "
            f"unexpected keys ({len(bad_unexpected)}): {_key_list(bad_unexpected)}"
        )
    ignored = set(unexpected)
    for key in sorted(set(state) & set(target)):
        if state[key].shape != target[key].shape:
            if key in allowed_missing and key in allowed_unexpected:  # e.g. a 1000-class fc vs a 14-class fc
                ignored.add(key)
                missing.add(key)
                continue
            raise ValueError(
                f"{path}: shape mismatch for {key!r}: checkpoint {tuple(state[key].shape)} vs model "
                f"{tuple(target[key].shape)}"
            )
    to_load = {key: value for key, value in state.items() if key not in ignored}
    model.load_state_dict(to_load, strict=False)
    return LoadReport(path=path, missing_keys=sorted(missing), ignored_keys=sorted(ignored))


def backbone_state_dict(model: nn.Module, head_prefix: str = "fc.") -> dict[str, Tensor]:
    """A plain, CPU copy of the backbone's state_dict, without the classifier head.

    The result loads into a fresh ``torchvision.models.resnet50(weights=None)`` with ``strict=False``
    reporting only ``fc.weight``/``fc.bias`` missing (for a ResNet-50 backbone). A DDP/DataParallel
    wrapper is unwrapped first.

    Args:
        model: the image backbone.
        head_prefix: keys starting with this prefix are dropped.

    Returns:
        ``{key: tensor}`` (detached CPU clones).

    Shape:
        - each tensor keeps the shape of the model's parameter/buffer.
    """
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return {
        key: value.detach().cpu().clone()
        for key, value in model.state_dict().items()
        if not key.startswith(head_prefix)
    }


def save_state_dict_atomic(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically (temp file in the same directory, fsync,
    ``os.replace``), so a crash never leaves a truncated checkpoint behind.

    Args:
        obj: what to save (normally a state_dict).
        path: destination; parent directories are created.

    Returns:
        The destination path.

    Shape:
        - tensors are saved as they are.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # persist the rename itself (POSIX); not possible on every platform/filesystem
        dir_fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return dest
