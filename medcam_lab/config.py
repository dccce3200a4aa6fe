"""Run configurations: frozen dataclasses whose field names equal the CLI flags and notebook parameters.

Every stage of the pipeline takes one of these. ``config_from_dict`` rejects unknown keys and values of
the wrong type (a mistyped notebook parameter fails fast), and every run writes the resolved config next
to its outputs (see :mod:`medcam_lab.runinfo`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

from medcam_lab.presets import DEMO

T = TypeVar("T")

#: Config fields that hold a file or directory path. A run's ``config.json`` stores each relative one
#: relative to the run's own directory (see :func:`medcam_lab.runinfo.read_run_config`), so a run folder
#: opens from any working directory and after being moved together with its inputs.
PATH_FIELDS: frozenset[str] = frozenset({
    "mimic_cxr", "mimic_iv", "out", "cohort", "weights", "data", "predictions", "align_dir", "root", "data_root",
    "split_lists",
})

LABELS_CHEXPERT14: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
)


@dataclass(frozen=True)
class RuntimeConfig:
    """The run-time fields every training stage shares (:class:`PretrainConfig`, :class:`MedModConfig`, and
    through :class:`AcceleratedConfig` :class:`AlignConfig` and :class:`FinetuneConfig`): where the run computes
    and how it is seeded. They change how fast a run goes, never what it is for.

    Attributes:
        seed: seed of everything random in the run: initialisation, augmentations and crops, batch order (and,
            in fine-tuning, the training subset of a label fraction).
        num_workers: data-loader worker processes (0 = load in the main process).
        device: ``auto`` (CUDA when available, else CPU) or a torch device such as ``cpu``, ``cuda:1``.
    """

    seed: int = 0
    num_workers: int = 0
    device: str = "auto"


@dataclass(frozen=True)
class AcceleratedConfig(RuntimeConfig):
    """:class:`RuntimeConfig` and the GPU switches of the stages that train the image encoder on batches of the
    image cache (:class:`AlignConfig`, :class:`FinetuneConfig`); on a CPU ``auto`` turns each of them off.

    Attributes:
        precision: ``auto`` (bf16 autocast on CUDA, fp32 elsewhere), ``bf16`` or ``fp32``.
        channels_last: NHWC memory format of the model and batches; ``auto`` (on for CUDA, off elsewhere), ``on``
            or ``off``.
        compile: ``torch.compile`` of the image encoder; ``auto`` (on for CUDA, off elsewhere), ``on`` or ``off``.
    """

    precision: str = "auto"
    channels_last: str = "auto"
    compile: str = "auto"


def own_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of config ``cls``: its own first, then those of its bases (:class:`RuntimeConfig`), so that
    help texts and listings start with what the stage is about."""
    inherited = {f.name for base in cls.__mro__[1:] if dataclasses.is_dataclass(base) for f in dataclasses.fields(base)}
    fields = dataclasses.fields(cls)
    return [f for f in fields if f.name not in inherited] + [f for f in fields if f.name in inherited]


@dataclass(frozen=True)
class PrepareConfig:
    """``medcam-lab prepare``: MIMIC-CXR-JPG + MIMIC-IV → a cohort directory.

    Attributes:
        mimic_cxr: root of MIMIC-CXR-JPG (holds ``mimic-cxr-2.0.0-*.csv.gz`` and ``files/``).
        mimic_iv: root of MIMIC-IV (holds ``hosp/`` and ``icu/``).
        out: the cohort directory to write.
        compat: EHR mode; ``clean`` (default) applies the cleaning fixes of ``docs/decisions.md`` (60 features),
            ``medfuse`` reproduces the MedFuse/MedMod pipeline exactly (76 features).
        mimic_iv_version: MIMIC-IV release (e.g. ``2.2``); ``auto`` reads it from the path, else the layout.
        timestep: discretizer bin width in hours (Δt).
        window_hours: EHR window length before each image, clipped at the ICU admission.
        impute_strategy: discretizer imputation (``previous`` as MedFuse).
        views: frontal views kept (ViewPosition values).
        split_fractions: train/val/test fractions of the patient-level split.
        seed: split seed.
        uncertain_policy: CheXpert −1 → ``zeros`` (MedFuse/MedMod), ``ones`` or ``ignore`` (NaN).
        blank_policy: blank → ``zeros`` (MedFuse/MedMod) or ``ignore`` (NaN).
        image_cache_size: side of the square uint8 image cache (resize shorter side, center crop).
        partition_events: most event rows cleaned and discretized at once; the kept events are spilled to disk
            by a hash of ``stay_id`` and processed a partition at a time, so peak memory is set by this, not by
            the size of MIMIC-IV (about 0.85 GB at 500,000; 1.2 GB at 1,000,000). The outputs do not depend on it.
        spill_dir: where the spilled events go while ``prepare`` runs (about 5 bytes per kept row; removed
            at the end); empty = inside ``out``.
    """

    mimic_cxr: str = ""
    mimic_iv: str = ""
    out: str = ""
    compat: str = "clean"
    mimic_iv_version: str = "auto"
    timestep: float = 2.0
    window_hours: float = 48.0
    impute_strategy: str = "previous"
    views: tuple[str, ...] = ("AP", "PA")
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    seed: int = 0
    uncertain_policy: str = "zeros"
    blank_policy: str = "zeros"
    image_cache_size: int = 256
    partition_events: int = 500_000
    spill_dir: str = ""


@dataclass(frozen=True)
class PretrainConfig(RuntimeConfig):
    """Image-only self-supervised pretraining (Barlow Twins), the stand-in for BarlowTwins-CXR.

    Only needed where no BarlowTwins-CXR checkpoint is at hand (the demo); on real data pass the
    published checkpoint to ``align``/``finetune`` with ``--weights``.

    Attributes:
        cohort: prepared cohort directory (``medcam-lab prepare``); its training-split images are used.
        out: output directory (``encoder.pt``, ``checkpoint.pt``, ``history.json``).
        encoder: image encoder (registry name).
        image_size: model input size in pixels (square crops of the image cache).
        epochs: training epochs.
        batch_size: batch size (two augmented views per image).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        projector_dim: width of the Barlow Twins projector.
        lambda_offdiag: weight of the off-diagonal (redundancy-reduction) term of the Barlow Twins loss.
    """

    cohort: str = ""
    out: str = ""
    encoder: str = "resnet50"
    image_size: int = 224
    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-6
    projector_dim: int = 512
    lambda_offdiag: float = 5e-3


@dataclass(frozen=True)
class AlignConfig(AcceleratedConfig):
    """MedCAM alignment (``spec/method.md`` §3–4).

    Attributes:
        cohort: prepared cohort directory (``medcam-lab prepare`` or notebook 01).
        out: output directory of this alignment run (``adapted_backbone.pt``, ``checkpoint.pt``,
            ``history.json``, ``selected.json``).
        encoder: image encoder (registry name); must match the architecture of ``weights``.
        weights: image-only checkpoint the image encoder starts from; ``""`` = the encoder's registered default
            file, random initialisation where it has none (nothing is downloaded).
        image_size: model input size in pixels.
        proj_dim: width d of the shared image–EHR space.
        ehr_hidden: LSTM width of the EHR encoder.
        ehr_layers: LSTM layers of the EHR encoder.
        ehr_dropout: dropout on the EHR sequence features.
        k: number of EHR timesteps per image in the local loss.
        temperature: τ; with ``learnable_temperature`` it is the initial value.
        learnable_temperature: learn τ during training (CLIP-style).
        lambda_global: weight of the global (image–stay) loss.
        lambda_local: weight of the local (image–timestep) loss.
        backbone_mode: ``adapt`` (backbone at ``lr × backbone_lr_mult``), ``frozen``, ``last_block`` (only the
            last block trains, at ``lr × backbone_lr_mult``) or ``full`` (backbone at ``lr``).
        backbone_lr_mult: backbone learning-rate multiplier (``adapt``, ``last_block``).
        epochs: training epochs.
        lr: AdamW learning rate of the EHR encoder and projection heads.
        weight_decay: AdamW weight decay.
        checkpoint_every: epochs between training checkpoints (``checkpoint.pt``, for resuming).
        keep_best: save the backbone of the epoch with the lowest validation alignment loss.
        sync_batchnorm: under ``torchrun`` on CUDA, trainable BatchNorms use statistics of the global batch.
        batch_size: batch size per process; under ``torchrun`` the global batch is ``batch_size × nproc``.
    """

    cohort: str = ""
    out: str = ""
    encoder: str = "resnet50"
    weights: str = ""
    image_size: int = 224
    proj_dim: int = 256
    ehr_hidden: int = 256
    ehr_layers: int = 2
    ehr_dropout: float = 0.3
    k: int = 10
    temperature: float = 0.1
    learnable_temperature: bool = False
    lambda_global: float = 1.0
    lambda_local: float = 1.0
    backbone_mode: str = "adapt"
    backbone_lr_mult: float = 0.1
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 1e-4
    checkpoint_every: int = 1
    keep_best: bool = True
    sync_batchnorm: bool = True


@dataclass(frozen=True)
class FinetuneConfig(AcceleratedConfig):
    """Image-only fine-tuning with a linear head and BCE (``spec/method.md`` §5).

    ``dataset`` is ``cohort`` (a prepared MIMIC cohort directory) or ``images`` (a ``medcam-lab
    prepare-images`` directory: NIH, CheXpert or VinDr-CXR).
    Validation starts at epoch ``eval_start`` and repeats every ``eval_every`` epochs (BenchX: 10 and 5);
    ``patience`` counts evaluations without improvement.
    The learning-rate grid's winner is chosen on validation macro-AUROC; test is touched once.
    ``label_fraction``: share of the training patients kept (nested across fractions, seeded by ``seed``, every
    label keeping a positive where it can; VinDr-CXR 1 % / 10 %: the BenchX lists; see
    :mod:`medcam_lab.data.label_fraction`); validation and test stay whole.
    ``seeds``: repeats of the whole run, one per seed, under ``out/seed_<s>`` (empty = one run with ``seed``).
    A linear probe computes the frozen encoder's features once (centre crop, no augmentation) and trains the
    head on them.

    Attributes:
        data: prepared cohort (``dataset`` cohort) or prepared image-label directory (``nih``, ``images``).
        dataset: ``cohort`` (a prepared MIMIC cohort directory) or ``images`` (a ``medcam-lab prepare-images``
            directory: NIH, CheXpert or VinDr-CXR).
        out: output directory (``predictions_test.parquet``, ``finetune_summary.json``, one ``lr_<i>`` per
            learning rate).
        encoder: image encoder (registry name); must match the architecture of ``weights``.
        weights: encoder checkpoint to fine-tune; ``""`` = the encoder's registered default file, random
            initialisation where it has none (nothing is downloaded).
        image_size: model input size in pixels.
        lr_grid: learning rates tried; the winner is chosen on validation macro-AUROC.
        backbone_lr_mult: backbone learning-rate multiplier.
        linear_probe: freeze the encoder and train the linear head only.
        epochs: maximum epochs per learning rate.
        batch_size: batch size.
        eval_start: first validation epoch.
        eval_every: epochs between validations.
        patience: validations without improvement before stopping.
        label_fraction: share of the training patients kept (nested across fractions, seeded by ``seed``);
            validation and test stay whole.
        seeds: repeat the whole run once per seed, under ``out/seed_<s>``; empty = one run with ``seed``.
        select_lr_once: with ``seeds``, search ``lr_grid`` on the first seed only; the other seeds train at the
            learning rate it selected on validation.
    """

    data: str = ""
    dataset: str = "cohort"
    out: str = ""
    encoder: str = "resnet50"
    weights: str = ""
    image_size: int = 224
    lr_grid: tuple[float, ...] = (1e-2, 1e-3, 1e-5)
    backbone_lr_mult: float = 1.0
    linear_probe: bool = False
    epochs: int = 200
    batch_size: int = 64
    eval_start: int = 10
    eval_every: int = 5
    patience: int = 10
    label_fraction: float = 1.0
    seeds: tuple[int, ...] = ()
    select_lr_once: bool = False


@dataclass(frozen=True)
class EvaluateConfig:
    """Macro/per-label AUROC and AUPRC with seeded bootstrap CIs from a predictions file.

    Attributes:
        predictions: a ``predictions_test.parquet`` written by ``finetune`` (``true:<label>`` and
            ``score:<label>`` columns).
        out: where ``metrics.json`` goes; ``""`` = only print the result.
        n_resamples: bootstrap resamples.
        confidence: level of the confidence intervals (0.95 = 95 %).
        seed: bootstrap seed.
    """

    predictions: str = ""
    out: str = ""
    n_resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0


@dataclass(frozen=True)
class DemoConfig:
    """``medcam-lab demo``: the whole pipeline on the generated cohort, CPU-sized.

    Attributes:
        out: output directory (``cohort/``, ``pretrain/``, ``align/``, ``finetune/``, ``report.md``).
        patients: patients of the generated cohort.
        seed: seed of the generated cohort and of every stage.
        visual_gain: strength of the findings drawn in the generated images (``SynthConfig.visual_gain``).
        align_backbone_mode, align_lr: how alignment trains the backbone on the demo (see
            ``docs/decisions.md`` for the ablation behind these values).
        label_fractions: shares of the MIMIC-shaped training patients of the label-efficiency comparison:
            both arms fine-tuned on each, scored on the whole test split (empty: the comparison is skipped).
        seeds: fine-tuning repeats of that comparison; the first seed searches the lr grid, the others reuse
            its choice; the run at 100 % with ``seed`` is the main table's.
        encoder: image encoder (registry name) of every stage.
        image_size: model input size in pixels.
        pretrain_epochs: epochs of the image-only Barlow Twins pretraining.
        align_epochs: epochs of the alignment.
        finetune_epochs: maximum fine-tuning epochs per learning rate.
        lr_grid: fine-tuning learning rates tried.
        n_resamples: bootstrap resamples of the evaluation.

    The defaults, and every setting not listed here, are those of the ``demo`` preset
    (:data:`medcam_lab.presets.DEMO`).
    """

    out: str = "demo_out"
    patients: int = 800
    seed: int = 0
    visual_gain: float = 3.0
    align_backbone_mode: str = DEMO.align["backbone_mode"]
    align_lr: float = DEMO.align["lr"]
    encoder: str = DEMO.align["encoder"]
    image_size: int = DEMO.align["image_size"]
    pretrain_epochs: int = DEMO.pretrain["epochs"]
    align_epochs: int = DEMO.align["epochs"]
    finetune_epochs: int = DEMO.finetune["epochs"]
    lr_grid: tuple[float, ...] = DEMO.finetune["lr_grid"]
    n_resamples: int = 1000
    label_fractions: tuple[float, ...] = (0.1, 1.0)
    seeds: tuple[int, ...] = (0, 1)


@dataclass(frozen=True)
class EmbeddingsConfig:
    """Notebook ``04_embeddings_umap``: UMAP of image embeddings before vs after alignment, and image–EHR
    retrieval top-1/top-5 before vs after.

    Attributes:
        align_dir: output directory of an alignment run (``config.json`` + ``checkpoint.pt``).
        cohort: the prepared cohort; ``""`` = the one the alignment run used.
        out: output directory (``retrieval.json``, ``umap.html``, ``umap_points.parquet``).
        split: the split embedded (``test``: never seen by alignment).
        n_neighbors: UMAP neighbours.
        min_dist: UMAP minimum distance.
        color_labels, color_variables: the labels and continuous EHR variables (window mean of observed
            values) the UMAP points are coloured by.
        batch_size: inference batch size.
        seed: UMAP seed.
        device: ``auto`` (CUDA when available, else CPU) or a torch device such as ``cpu``, ``cuda:1``.
        weights: the image-only checkpoint alignment started from (the "before" encoder); ``""`` = the run's.
    """

    align_dir: str = ""
    cohort: str = ""
    out: str = ""
    split: str = "test"
    n_neighbors: int = 15
    min_dist: float = 0.1
    color_labels: tuple[str, ...] = ("Edema", "Pleural Effusion", "Atelectasis")
    color_variables: tuple[str, ...] = ("Heart Rate", "Oxygen saturation", "Respiratory rate")
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    weights: str = ""


@dataclass(frozen=True)
class InspectConfig:
    """Notebook ``05_inspect_alignment``: the alignment inspector widget and its static snapshots.

    Attributes:
        align_dir: output directory of an alignment run (``config.json`` + ``checkpoint.pt``).
        cohort: the prepared cohort; ``""`` = the one the alignment run used.
        out: output directory of the static snapshots.
        splits: the splits the widget offers (first shown first).
        k: top-k of the attention view; ``0`` = the alignment run's ``k``.
        n_neighbours: nearest neighbours (in the aligned space) listed for the selected image.
        n_snapshots: images of the first split written as static HTML/PNG views into ``out``.
        ig_steps: Integrated Gradients interpolation steps.
        batch_size: inference batch size.
        device: ``auto`` (CUDA when available, else CPU) or a torch device such as ``cpu``, ``cuda:1``.
    """

    align_dir: str = ""
    cohort: str = ""
    out: str = ""
    splits: tuple[str, ...] = ("test", "val")
    k: int = 0
    n_neighbours: int = 5
    n_snapshots: int = 3
    ig_steps: int = 32
    batch_size: int = 64
    device: str = "auto"


@dataclass(frozen=True)
class BatchConfig:
    """``medcam-lab batch``: the numbered notebooks run by papermill for one dataset (see
    :mod:`medcam_lab.batch`).

    Attributes:
        dataset: the params file ``params/<dataset>.yaml``.
        stages: notebooks to run (``01``…``05`` or names); empty = the dataset file's ``stages``.
        parameters: ``key=value`` or ``notebook.key=value`` overrides (``-p``).
        run_id: the run directory's name; ``""`` = the UTC time.
        kernel: the Jupyter kernel every notebook runs on.
        params_dir: the folder of the params files.
        notebooks_dir: the folder of the numbered notebooks.
        runs_dir: where runs go (``<runs_dir>/<dataset>/<run_id>/``).
        execution_timeout: seconds per cell (0 = none).
        log_output: stream cell output to the log.
    """

    dataset: str = ""
    stages: tuple[str, ...] = ()
    parameters: tuple[str, ...] = ()
    run_id: str = ""
    kernel: str = "python3"
    params_dir: str = "params"
    notebooks_dir: str = "notebooks"
    runs_dir: str = "runs"
    execution_timeout: int = 0
    log_output: bool = True


def _check_type(name: str, value: Any, annotation: Any) -> Any:
    """Coerce lists to tuples and ints to floats where the annotation asks; reject the rest."""
    origin = typing.get_origin(annotation)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float, str, bool):
        if type(value) is not annotation:
            raise TypeError(f"parameter {name!r} must be {annotation.__name__}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"parameter {name!r} must be a list/tuple, got {value!r}")
        args = typing.get_args(annotation)
        item_type = args[0] if args else Any
        return tuple(_check_type(f"{name}[{i}]", v, item_type) for i, v in enumerate(value))
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise TypeError(f"parameter {name!r} must be a dict, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        return value
    return value


def config_from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """Build config ``cls`` from ``values``: unknown keys and wrong types raise with the key named."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise KeyError(f"unknown {cls.__name__} parameter(s): {unknown}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    checked = {k: _check_type(k, v, hints[k]) for k, v in values.items()}
    return cls(**checked)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a config dataclass (tuples become lists)."""
    out = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


@dataclass(frozen=True)
class MedModConfig(RuntimeConfig):
    """MedMod-style *concurrent* image–EHR pretraining, the baselines of the paper's Table 2
    (``spec/baselines.md`` §4): both encoders trained together from ``weights`` (random init by default).

    Attributes:
        objective: ``infonce`` (cross-modal InfoNCE, MedMod's "simclr"), ``vicreg`` or ``align`` (InfoNCE with
            a learnable temperature on batches with 16–20 % deliberately mismatched pairs).
        proj_dim: projection width (MedMod: 128 for infonce/vicreg, 512 for align).
        temperature: τ of ``infonce`` (MedMod scripts: 0.01) and the initial τ of ``align`` (0.07).
    """

    cohort: str = ""
    out: str = ""
    objective: str = "infonce"
    encoder: str = "resnet50"
    weights: str = ""
    image_size: int = 224
    proj_dim: int = 128
    ehr_hidden: int = 128
    temperature: float = 0.1
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 1e-4


@dataclass(frozen=True)
class ReproduceConfig:
    """``medcam-lab reproduce``: every model × dataset of the paper's Tables 2–4 that the data allow.

    Attributes:
        suite: ``paper`` (Tables 2–4 and the ablations).
        data_root: a ``medcam-lab demo`` output directory (``cohort/``, ``nih/``, ``pretrain/``), or a folder
            with a prepared MIMIC cohort in ``cohort/`` and the raw OOD datasets in ``nih/``, ``vindr/``,
            ``chexpert/`` (whatever is absent is reported as skipped).
        models: model names to run (empty = all of the suite); see ``medcam_lab.reproduce.MODELS``.
        datasets: dataset names to run (empty = all present): ``mimic``, ``nih``, ``vindr``, ``chexpert``.
        weights: ``name=path`` entries for encoders that need a local file (``barlowtwins_cxr``,
            ``eva_x_tiny``, ``eva_x_small``, ``convirt``, ``gloria``, ``medclip``, ``mgca``) and optionally
            ``image_only=...`` (the image-pretrained encoder MedCAM starts from).
        label_fractions, seeds: label efficiency: every row fine-tuned on each share of the training patients
            (nested, seeded; VinDr-CXR 1 % / 10 %: the BenchX lists), once per seed, with the tables per
            fraction (mean over seeds; intervals over seeds and test rows) and the figure
            ``label_efficiency.{png,html}``. The default (``1.0`` and no seeds) is one run per row with ``seed``.
        select_lr_once: with several seeds, the first seed searches ``lr_grid`` and the others reuse its choice.
        out: output directory (``report.md`` and the runs behind its rows).
        preset: the settings of every stage (``medcam_lab.presets``): ``paper`` (ResNet-50 at 224 px, the
            paper's alignment and fine-tuning) or ``demo`` (the demo cohort on a CPU); the options below that are
            left unset (0, empty) take the preset's value.
        encoder: the ResNet used for the supervised, MedMod and MedCAM rows (empty = the preset's).
        image_size: model input size in pixels of those rows (0 = the preset's).
        align_epochs: epochs of the MedCAM alignment and the MedMod pretraining (0 = the preset's).
        pretrain_epochs: epochs of the image-only pretraining, run when no ``image_only=`` weights are given
            (0 = the preset's).
        finetune_epochs: maximum fine-tuning epochs per learning rate (0 = the preset's).
        lr_grid: fine-tuning learning rates tried (empty = the preset's).
        batch_size: batch size of every stage (0 = each stage's preset value).
        linear_probe: fine-tune the head only (frozen encoders).
        k_sweep: the ``k`` values of the local-loss ablation.
        n_resamples: bootstrap resamples of the evaluation.
        seed: seed of every stage.
        device: ``auto`` (CUDA when available, else CPU) or a torch device such as ``cpu``, ``cuda:1``.
    """

    suite: str = "paper"
    data_root: str = ""
    out: str = "reproduce_out"
    models: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    weights: tuple[str, ...] = ()
    preset: str = "paper"
    encoder: str = ""
    image_size: int = 0
    align_epochs: int = 0
    pretrain_epochs: int = 0
    finetune_epochs: int = 0
    lr_grid: tuple[float, ...] = ()
    batch_size: int = 0
    linear_probe: bool = False
    k_sweep: tuple[int, ...] = (1, 5, 10, 20)
    label_fractions: tuple[float, ...] = (1.0,)
    seeds: tuple[int, ...] = ()
    select_lr_once: bool = False
    n_resamples: int = 1000
    seed: int = 0
    device: str = "auto"


@dataclass(frozen=True)
class PrepareImagesConfig:
    """``medcam-lab prepare-images``: a dataset class's train/val/test → image cache + label table.

    Attributes:
        dataset: ``nih``, ``vindr`` or ``chexpert`` (the dataset classes of ``medcam_lab.datasets``).
        root: the dataset's raw root.
        out: the directory to write (read by ``finetune --dataset images``).
        image_size: side of the cached square images.
        uncertain: CheXpert −1 (uncertain) label → ``zeros``, ``ones`` or ``ignore`` (NaN).
        blank: CheXpert blank label → ``zeros`` or ``ignore`` (NaN).
        frontal_only: CheXpert: keep frontal (AP/PA) images only.
        merge: VinDr-CXR rule over the radiologists' labels: ``union``, ``majority`` or ``all``.
        split_lists: NIH: a folder with one's own ``train.txt``, ``val.txt``, ``test.txt`` (one Image Index per
            line) used instead of ``split_source``; empty = ``split_source``.
        split_source: NIH: ``benchx`` (the shipped BenchX lists, the paper's) or ``official`` (the official test
            list; the official train/val list split by patient, 1/8 to val, seeded by ``seed``).
        seed: NIH: seed of the official split's val carve-out.
        num_threads: threads decoding and resizing images for the cache; 0 = every core this process may use.
    """

    dataset: str = "nih"
    root: str = ""
    out: str = ""
    image_size: int = 256
    uncertain: str = "zeros"
    blank: str = "zeros"
    frontal_only: bool = True
    merge: str = "union"
    split_lists: str = ""
    split_source: str = "benchx"
    seed: int = 0
    num_threads: int = 0
