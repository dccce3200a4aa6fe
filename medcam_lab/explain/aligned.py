"""An alignment run's full aligner (image encoder + EHR encoder + heads), before and after training.

``medcam-lab align`` keeps only the adapted backbone as its product (``adapted_backbone.pt``); the
inspection views also need the EHR encoder and the projection heads, which live in the run's training
checkpoint ``checkpoint.pt`` (the last completed epoch) next to its ``config.json``.

- ``state="final"``: the aligner of the last completed epoch (strict key check, ``weights_only``).
- ``state="initial"``: the aligner as alignment started: the image-only backbone (``weights``) with the
  EHR encoder and heads initialised under the run's seed, exactly as ``align`` builds them. Its
  image–EHR retrieval is the "before alignment" reference (chance level, by construction).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from medcam_lab.config import AlignConfig
from medcam_lab.data.cohort import PAIRS_FILE, Cohort, is_cohort, load_cohort, read_ehr_columns
from medcam_lab.data.loading import PairedDataset, make_loader
from medcam_lab.data.transforms import eval_transform
from medcam_lab.models import MedCAMAligner, encoder_spec, step_attention
from medcam_lab.runinfo import read_run_config

__all__ = ["SplitEmbeddings", "AlignmentRun", "open_alignment_run", "aligner_config", "run_cohort", "load_aligner",
           "embed_split", "last_block"]

STATES = ("initial", "final")


def aligner_config(align_dir: str | Path) -> AlignConfig:
    """The resolved :class:`AlignConfig` an alignment run wrote (``config.json``), its paths valid from the
    current working directory (:func:`~medcam_lab.runinfo.read_run_config`)."""
    path = Path(align_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: is {align_dir} the output directory of `medcam-lab align` "
                                f"(or notebook 02)? Relative paths are taken from {Path.cwd()}")
    return read_run_config(align_dir, AlignConfig)


def run_cohort(cfg: AlignConfig, cohort: str | Path = "") -> Path:
    """The cohort to read: ``cohort`` when given (the user's parameter wins), else the run's own.

    Raises:
        FileNotFoundError: the directory holds no finished cohort; the message names the parameter to set.
    """
    path = Path(cohort or cfg.cohort)
    if not is_cohort(path):
        whose = "the cohort given" if cohort else "the alignment run's cohort"
        raise FileNotFoundError(f"{whose}, {path}, holds no prepared cohort (no {PAIRS_FILE}): set the "
                                f"parameter cohort to the directory `medcam-lab prepare` (notebook 01) wrote")
    return path


@dataclass
class AlignmentRun:
    """An alignment run opened for inspection: its config, the cohort it is read on, its aligners.

    Attributes:
        directory: the run's output directory (``config.json``, ``checkpoint.pt``).
        config: the resolved :class:`AlignConfig` the run wrote.
        cohort: the cohort (the ``cohort`` given to :func:`open_alignment_run`, else the run's own).
        device: where :meth:`aligner` puts the models.
    """

    directory: Path
    config: AlignConfig
    cohort: Cohort
    device: str | torch.device = "cpu"

    def aligner(self, state: str = "final", weights: str | None = None) -> MedCAMAligner:
        """The run's aligner in ``state`` (:func:`load_aligner`), sized to the cohort's EHR features."""
        model, _ = load_aligner(self.directory, state, n_features=len(self.cohort.ehr_columns), weights=weights,
                                device=self.device)
        return model


def open_alignment_run(align_dir: str | Path, cohort: str | Path = "",
                       device: str | torch.device = "cpu") -> AlignmentRun:
    """Open an alignment run and the cohort to read it on (``cohort`` when given, else the run's own): what
    notebooks 04 and 05 (:func:`medcam_lab.viz.inspector.build_inspector`) start from.

    Raises:
        FileNotFoundError: no ``config.json`` in ``align_dir``, or no finished cohort; the message names the
            parameter to set.
    """
    config = aligner_config(align_dir)
    return AlignmentRun(Path(align_dir), config, load_cohort(run_cohort(config, cohort)), device)


def load_aligner(
    align_dir: str | Path, state: str = "final", n_features: int | None = None, weights: str | None = None,
    device: str | torch.device = "cpu",
) -> tuple[MedCAMAligner, AlignConfig]:
    """Rebuild an alignment run's aligner, in eval mode.

    Args:
        align_dir: output directory of ``medcam-lab align``.
        state: ``"final"`` (last checkpointed epoch) or ``"initial"`` (as training started).
        n_features: EHR features per timestep; ``None`` = the length of the run's cohort
            ``ehr_columns.json`` (76 in ``medfuse`` mode, 60 in ``clean`` mode).
        weights: image-only backbone for ``"initial"``; ``None`` or ``""`` = the run's ``weights``.
        device: where to put the model.

    Returns:
        ``(aligner, config)``.

    Raises:
        FileNotFoundError: no ``config.json`` / ``checkpoint.pt``, or (``"initial"``) the run's image-only
            weights are gone; the message names the parameter to set.
        KeyError: the checkpoint's aligner keys do not match the configured model.
    """
    from medcam_lab.training.align import build_aligner
    from medcam_lab.training.runtime import seed_everything

    if state not in STATES:
        raise ValueError(f"state must be one of {STATES}, got {state!r}")
    cfg = aligner_config(align_dir)
    if n_features is None:
        n_features = len(read_ehr_columns(run_cohort(cfg)))
    if state == "initial":
        start = weights or cfg.weights
        if start and not Path(start).is_file():
            raise FileNotFoundError(f"the image-only weights the alignment run started from, {start}, are missing: "
                                    f"set the parameter weights to that checkpoint")
        seed_everything(cfg.seed)  # the order of `align`: seed, then build
        model, _ = build_aligner(_with_weights(cfg, start), n_features)
    else:
        path = Path(align_dir) / "checkpoint.pt"
        if not path.exists():
            raise FileNotFoundError(f"{path} missing: the alignment run has not completed an epoch")
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        saved = {k[len("model."):]: v for k, v in checkpoint["model"].items() if k.startswith("model.")}
        model, _ = build_aligner(_with_weights(cfg, ""), n_features)
        expected = set(model.state_dict())
        missing, unexpected = sorted(expected - set(saved)), sorted(set(saved) - expected)
        if missing or unexpected:
            raise KeyError(f"{path}: aligner keys differ from the configured model: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")
        model.load_state_dict(saved, strict=True)
    return model.to(device).eval(), cfg


def _with_weights(cfg: AlignConfig, weights: str) -> AlignConfig:
    return dataclasses.replace(cfg, weights=weights)


def last_block(encoder: nn.Module) -> nn.Module:
    """The backbone's last residual block (``layer4[-1]``), the Grad-CAM layer."""
    layer4 = getattr(encoder, "layer4", None)
    if not isinstance(layer4, nn.Sequential):
        raise ValueError(f"{type(encoder).__name__} has no `layer4`: Grad-CAM needs a ResNet-style backbone")
    return layer4[-1]


@dataclass
class SplitEmbeddings:
    """Everything the views need about one split, row-aligned.

    Shape:
        - rows: (N,) cohort row numbers.
        - features: (N, F) pooled backbone features.
        - z_cxr, z_ehr: (N, d) L2-normalised projections.
        - attention: (N, T) image → own-timestep attention (0 at padded steps).
        - lengths: (N,).
        - labels: (N, L) with NaN = unknown.
    """

    rows: np.ndarray
    features: np.ndarray
    z_cxr: np.ndarray
    z_ehr: np.ndarray
    attention: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    meta: pd.DataFrame
    pathologies: tuple[str, ...]


@torch.no_grad()
def embed_split(aligner: MedCAMAligner, cohort: Cohort, split: str, image_size: int, batch_size: int = 64,
                device: str | torch.device = "cpu") -> SplitEmbeddings:
    """Run the aligner (eval mode, center crop) over one split of a cohort."""
    aligner.eval()
    dataset = PairedDataset(cohort, split)
    spec = encoder_spec(aligner.image_encoder)
    parts: dict[str, list[Tensor]] = {k: [] for k in ("rows", "features", "z_cxr", "z_ehr", "attention")}
    for batch in make_loader(dataset, batch_size, shuffle=False, seed=0):
        images = eval_transform(batch["image"], image_size, spec.mean, spec.std).to(device)
        features = aligner.image_encoder(images)
        z_cxr = aligner.image_proj(features)
        steps, last = aligner.ehr_encoder(batch["ehr"].to(device), batch["lengths"])
        step_mask = torch.arange(steps.shape[1], device=device)[None, :] < batch["lengths"].to(device)[:, None]
        z_steps = aligner.ehr_proj(steps).masked_fill(~step_mask[..., None], 0.0)
        parts["attention"].append(step_attention(z_cxr, z_steps, step_mask).cpu())
        parts["rows"].append(batch["index"])
        parts["features"].append(features.float().cpu())
        parts["z_cxr"].append(torch.nn.functional.normalize(z_cxr.float(), dim=-1).cpu())
        parts["z_ehr"].append(torch.nn.functional.normalize(aligner.ehr_proj(last).float(), dim=-1).cpu())
    out = {k: torch.cat(v).numpy() for k, v in parts.items()}
    return SplitEmbeddings(
        rows=out["rows"], features=out["features"], z_cxr=out["z_cxr"], z_ehr=out["z_ehr"],
        attention=out["attention"], lengths=cohort.lengths[out["rows"]], labels=dataset.labels,
        meta=dataset.meta, pathologies=tuple(dataset.pathologies),
    )
