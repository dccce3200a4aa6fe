"""Session fixture shared by the explain/viz/widget/notebook tests: one tiny alignment run (1 epoch)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medcam_lab.config import AlignConfig

TINY_ALIGN = dict(encoder="resnet_small", image_size=32, proj_dim=16, ehr_hidden=16, k=3, epochs=1, batch_size=8,
                  lr=1e-3, seed=3, device="cpu")


@pytest.fixture(scope="session")
def tiny_align_run(tiny_cohort, tmp_path_factory) -> Path:
    """``align`` on the tiny cohort for one epoch (randomly initialised ``resnet_small``, 32 px)."""
    from medcam_lab.training.align import align

    out = tmp_path_factory.mktemp("align")
    align(AlignConfig(cohort=str(tiny_cohort), out=str(out), **TINY_ALIGN))
    return out
