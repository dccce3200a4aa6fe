"""Attributions and model loading for inspecting aligned and fine-tuned encoders (Captum).

- :mod:`medcam_lab.explain.aligned`: open an alignment run (:func:`open_alignment_run`: its config, its cohort,
  its full aligner before/after), embed a split.
- :mod:`medcam_lab.explain.images`: Integrated Gradients and Grad-CAM (last block) for images.
- :mod:`medcam_lab.explain.ehr`: EHR attributions per variable × timestep for the image–EHR similarity.
- :mod:`medcam_lab.explain.hooks`: counting the hooks left on a model (none may be, even after an error).

Attention weights (:func:`medcam_lab.models.step_attention`) are not attributions: the views show both and
say which is which.
"""

from medcam_lab.explain.aligned import (
    AlignmentRun,
    SplitEmbeddings,
    aligner_config,
    embed_split,
    last_block,
    load_aligner,
    open_alignment_run,
    run_cohort,
)
from medcam_lab.explain.ehr import attributions_by_variable, ehr_attributions, variable_groups, variable_matrix
from medcam_lab.explain.hooks import count_hooks
from medcam_lab.explain.images import (
    grad_cam,
    image_ehr_similarity,
    integrated_gradients,
)

__all__ = [
    "AlignmentRun",
    "SplitEmbeddings",
    "attributions_by_variable",
    "aligner_config",
    "count_hooks",
    "ehr_attributions",
    "embed_split",
    "grad_cam",
    "image_ehr_similarity",
    "integrated_gradients",
    "last_block",
    "load_aligner",
    "open_alignment_run",
    "run_cohort",
    "variable_groups",
    "variable_matrix",
]
