"""Safe, strict loading and atomic saving of image-backbone weights.

Weights are never downloaded: every checkpoint is a local file, read with ``torch.load(weights_only=True)``
so that a pickle cannot run code. Loading is strict: apart from the classifier head (``fc.*``) every key of
the model must be in the checkpoint and vice versa, with equal shapes (cxr.md Part B §1: a silent
``strict=False`` load that drops the backbone is the failure mode to avoid).
"""

from __future__ import annotations

import os
import pickle
import pickletools
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from medcam_lab.atomic import atomic_write

__all__ = [
    "CHECKPOINT_LAYOUTS",
    "CheckpointLayout",
    "CheckpointKeyError",
    "CheckpointReadError",
    "LoadReport",
    "load_backbone_weights",
    "checkpoint_matches",
    "read_checkpoint",
    "backbone_state_dict",
    "save_state_dict_atomic",
]

HEAD_KEYS = ("fc.weight", "fc.bias")


class CheckpointKeyError(KeyError, ValueError):
    """Missing or unexpected keys between a checkpoint and a model (both a ``KeyError`` and a
    ``ValueError``).
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
    """

    path: str
    missing_keys: list[str] = field(default_factory=list)
    ignored_keys: list[str] = field(default_factory=list)


def _key_list(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    more = f" … (+{len(keys) - 10} more)" if len(keys) > 10 else ""
    return f"{keys[:10]}{more}"


def _strip_common_prefix(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    if state and all(key.startswith(prefix) for key in state):
        return {key[len(prefix):]: value for key, value in state.items()}
    return state


@dataclass(frozen=True)
class CheckpointLayout:
    """How one family of checkpoint files maps onto an encoder's state_dict (spec/cxr.md Part B).

    Attributes:
        name: layout name (an :class:`~medcam_lab.models.ImageEncoderSpec` names its layout).
        wrappers: container keys unwrapped at the top level, first match wins (``state_dict``, ``model``...).
        select_prefixes: if any key starts with one of these (tried in order, after stripping a common
            ``module.``), only those keys are kept, prefix removed (e.g. ``backbone.``, ``visual.model.``).
        drop_prefixes: documented non-encoder keys, dropped and listed in the report (projectors, detection
            necks/heads, MIM decoder heads). Anything else unexpected fails.
        rename: optional key mapping (the original name → the model's name).
        head_keys: classifier keys the model may lack or the file may lack.
    """

    name: str
    wrappers: tuple[str, ...] = ("state_dict", "model")
    select_prefixes: tuple[str, ...] = ()
    drop_prefixes: tuple[str, ...] = ()
    rename: Callable[[str], str] | None = None
    head_keys: tuple[str, ...] = HEAD_KEYS


def _eva_rename(key: str) -> str:
    """EVA-02/EVA-X original names → timm ``Eva`` names (EVA-X ``checkpoint_filter_fn``)."""
    for old, new in (("mlp.ffn_ln", "mlp.norm"), ("attn.inner_attn_ln", "attn.norm"), ("mlp.w12", "mlp.fc1"),
                     ("mlp.w1", "mlp.fc1_g"), ("mlp.w2", "mlp.fc1_x"), ("mlp.w3", "mlp.fc2")):
        key = key.replace(old, new)
    if key.startswith("norm."):  # MIM checkpoints: the final norm feeds the pooled feature → fc_norm
        key = "fc_" + key
    return key


CHECKPOINT_LAYOUTS: dict[str, CheckpointLayout] = {
    layout.name: layout
    for layout in (
        CheckpointLayout("torchvision"),
        # resnet50.pth (plain keys), checkpoint.pth ({epoch, model: module.backbone./projector./bn.}),
        # an mmdet detector ({meta, state_dict: backbone./neck./rpn_head./roi_head.})
        CheckpointLayout("barlowtwins_cxr", select_prefixes=("backbone.",),
                         drop_prefixes=("projector.", "bn.", "neck.", "rpn_head.", "roi_head.")),
        CheckpointLayout("eva_x", wrappers=("model_ema", "model", "module", "state_dict"),
                         select_prefixes=("visual.trunk.", "visual."),
                         drop_prefixes=("mask_token", "lm_head.", "rope."), rename=_eva_rename,
                         head_keys=("head.weight", "head.bias")),
        CheckpointLayout("convirt", select_prefixes=("visual.model.",)),
        CheckpointLayout("gloria", select_prefixes=("gloria.img_encoder.model.", "img_encoder.model.")),
        CheckpointLayout("medclip", select_prefixes=("vision_model.model.",)),
        CheckpointLayout("mgca", select_prefixes=("img_encoder_q.model.",)),
    )
}


class CheckpointReadError(ValueError):
    """A weights file that cannot be read: corrupt or truncated (the message names the file and its size)."""


def _well_formed_pickle(path: str) -> bool:
    """Whether the file starts with a complete pickle stream (read opcode by opcode up to its STOP, nothing
    executed); random bytes and a file cut short fail."""
    try:
        with open(path, "rb") as fh:
            for opcode, _, _ in pickletools.genops(fh):
                if opcode.name == "STOP":
                    return True
    except Exception:  # noqa: BLE001 - any parse failure means: not a complete pickle
        return False
    return False


def _unsafe_pickle(err: BaseException, path: str) -> bool:
    """Whether ``torch.load(weights_only=True)`` refused a well-formed pickle for what it holds (objects that
    need code execution, or opcodes its safe reader does not accept), as opposed to a damaged file."""
    if not isinstance(err, pickle.UnpicklingError):
        return False
    text = str(err)
    if "Unsupported global" in text or "not an allowed global" in text:
        return True
    return not zipfile.is_zipfile(path) and _well_formed_pickle(path)


def _global_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if "global" in ln.lower()]
    return next((ln for ln in lines if "Unsupported global" in ln), lines[0] if lines else text[:200])


def read_checkpoint(path: str | os.PathLike[str]) -> Any:
    """Read a local weights file (``torch.load(weights_only=True)``, or safetensors by extension).

    Raises:
        FileNotFoundError: no such file.
        pickle.UnpicklingError: a well-formed pickle holding Python objects that need code execution; the
            message says how to re-save the weights.
        CheckpointReadError: anything else that stops reading (empty, truncated, random bytes, a broken
            archive); the message names the file and its size.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    size = os.path.getsize(path)
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(path, device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - every reading failure is reported with the file named
        if _unsafe_pickle(err, path):
            raise pickle.UnpicklingError(
                f"{path}: refused by torch.load(weights_only=True): the file is a valid pickle but holds Python "
                f"objects that need code execution to unpickle. Re-save only the weights where the file was "
                f"written (e.g. torch.save(model.state_dict(), 'plain.pt')) or convert it to .safetensors. "
                f"Detail: {_global_line(str(err))}"
            ) from err
        kind = "empty" if size == 0 else "corrupt or truncated (an incomplete copy or download?)"
        detail = str(err).split(". ")[0] or type(err).__name__
        raise CheckpointReadError(f"{path}: not a readable weights file: {kind}; {size:,} bytes. "
                                  f"Copy it again from its source. Detail: {type(err).__name__}: {detail}") from err


def _unwrap(obj: Any, path: str, select_prefix: str | None,
            layout: CheckpointLayout | None = None) -> tuple[dict[str, Tensor], list[str]]:
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a state_dict (a mapping), got {type(obj).__name__}")
    wrappers = layout.wrappers if layout is not None else ("state_dict", "model")
    for wrapper in wrappers:
        if wrapper in obj and isinstance(obj[wrapper], Mapping):
            obj = obj[wrapper]
            break
    state = dict(obj)
    state = _strip_common_prefix(state, "module.")
    dropped: list[str] = []
    prefixes = (select_prefix,) if select_prefix else (layout.select_prefixes if layout is not None else ())
    for prefix in prefixes:
        if any(k.startswith(prefix) for k in state):
            outside = [k for k in state if not k.startswith(prefix)]
            if layout is not None and layout.drop_prefixes:
                strange = [k for k in outside if not k.startswith(layout.drop_prefixes)]
                if strange:
                    raise CheckpointKeyError(f"{path}: keys outside {prefix!r} that the {layout.name!r} layout does "
                                             f"not document: {_key_list(strange)}")
            if layout is None and outside:
                outside = []  # an explicit select_prefix: the caller chose to ignore the rest
            dropped += outside
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            break
    else:
        if select_prefix:
            raise ValueError(f"{path}: no key starts with select_prefix {select_prefix!r}")
        if layout is not None and layout.select_prefixes and not layout.drop_prefixes:
            raise ValueError(f"{path}: no key starts with any of {list(layout.select_prefixes)} "
                             f"(expected the {layout.name!r} checkpoint layout)")
    state = _strip_common_prefix(state, "backbone.")
    if layout is not None:
        kept = {}
        for key, value in state.items():
            if key.startswith(layout.drop_prefixes):
                dropped.append(key)
            else:
                kept[layout.rename(key) if layout.rename else key] = value
        state = kept
    bad = [key for key, value in state.items() if not isinstance(value, Tensor)]
    if bad:
        raise ValueError(f"{path}: non-tensor entries in the state_dict: {bad[:10]}")
    return state, dropped


def load_backbone_weights(
    model: nn.Module,
    path: str | os.PathLike[str],
    allowed_missing: Iterable[str] = HEAD_KEYS,
    allowed_unexpected: Iterable[str] = HEAD_KEYS,
    *,
    select_prefix: str | None = None,
    layout: str | CheckpointLayout | None = None,
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
        layout: a :data:`CHECKPOINT_LAYOUTS` name (or a :class:`CheckpointLayout`): its wrappers, prefix
            selection, documented dropped keys and renames are applied, and its ``head_keys`` are added
            to ``allowed_missing``/``allowed_unexpected``. Files ending in ``.safetensors`` are read with
            safetensors.

    Returns:
        A :class:`LoadReport`.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        pickle.UnpicklingError: if the file holds objects that ``weights_only`` refuses (custom classes,
            i.e. unpickling would execute code); the message says how to re-export the weights.
        CheckpointReadError: (a ``ValueError``) the file is empty, truncated or corrupt; the message names it.
        CheckpointKeyError: (a ``KeyError`` and ``ValueError``) on missing/unexpected keys other than the
            allowed ones; the message lists the first 10 of each and the file.
        ValueError: on a shape mismatch (naming the key) or a non-tensor entry.

    Shape:
        - every checkpoint tensor must have the shape of the model tensor of the same key.
    """
    path = os.fspath(path)
    obj = read_checkpoint(path)
    to_load, missing, ignored = _plan_load(model, obj, path, allowed_missing, allowed_unexpected, select_prefix,
                                           layout)
    model.load_state_dict(to_load, strict=False)
    return LoadReport(path=path, missing_keys=sorted(missing), ignored_keys=sorted(ignored))


def _plan_load(model: nn.Module, obj: Any, path: str, allowed_missing: Iterable[str],
               allowed_unexpected: Iterable[str], select_prefix: str | None,
               layout: str | CheckpointLayout | None) -> tuple[dict[str, Tensor], set[str], set[str]]:
    """What to load from a read checkpoint ``obj`` into ``model``: ``(state to load, missing, ignored)``;
    raises as :func:`load_backbone_weights` on any mismatch. Only shapes are read from ``model``."""
    if isinstance(layout, str):
        if layout not in CHECKPOINT_LAYOUTS:
            raise ValueError(f"unknown checkpoint layout {layout!r}; known: {sorted(CHECKPOINT_LAYOUTS)}")
        layout = CHECKPOINT_LAYOUTS[layout]
    state, dropped = _unwrap(obj, path, select_prefix, layout)
    target = model.state_dict()
    allowed_missing, allowed_unexpected = set(allowed_missing), set(allowed_unexpected)
    if layout is not None:
        allowed_missing |= set(layout.head_keys)
        allowed_unexpected |= set(layout.head_keys)

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
    return to_load, missing, ignored | set(dropped)


def checkpoint_matches(model: nn.Module, obj: Any, path: str = "<checkpoint>",
                       layout: str | CheckpointLayout | None = None) -> bool:
    """Whether a read checkpoint ``obj`` would load into ``model`` (keys and shapes; nothing is copied, so
    ``model`` may live on the ``meta`` device)."""
    try:
        _plan_load(model, obj, path, HEAD_KEYS, HEAD_KEYS, None, layout)
    except (CheckpointKeyError, ValueError):
        return False
    return True


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
    """``torch.save`` ``obj`` to ``path`` atomically (:func:`medcam_lab.atomic.atomic_write`), so a crash never
    leaves a truncated checkpoint behind.

    Args:
        obj: what to save (normally a state_dict).
        path: destination; parent directories are created.

    Returns:
        The destination path.
    """
    with atomic_write(path) as tmp, open(tmp, "wb") as handle:  # a handle: the archive's records stay 'archive/'
        torch.save(obj, handle)
    return Path(path)
