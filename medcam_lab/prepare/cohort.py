"""``medcam-lab prepare``: MIMIC-CXR-JPG + MIMIC-IV → a cohort directory of image–EHR pairs.

Steps (each count is written to ``report.json``):

1. ICU stays, filtered as MedFuse does (``compat="medfuse"``): same first/last care unit, admissions with
   exactly one ICU stay, age ≥ 18.
2. Frontal CXRs (``views``) whose study has a CheXpert label row, taken during a kept stay
   (intime ≤ StudyDateTime ≤ outtime). One pair per image.
3. The 17 variables streamed from ``chartevents``/``labevents`` (every row read is counted; a truncated
   file is an error) and spilled to disk by a hash of ``stay_id`` (:mod:`medcam_lab.prepare.event_spill`);
   then, a partition of at most ``partition_events`` rows at a time (memory bounded whatever the input
   size; the outputs do not depend on the partitioning): events outside their ICU stay and exact
   duplicates dropped and counted, cleaned in
   the ``compat`` mode (:class:`~medcam_lab.ehr.mode.EHRMode`, built once from ``cfg.compat`` and handed to
   every step; :mod:`medcam_lab.ehr.cleaning`: ``medfuse`` = the reference, ``clean`` = the switches of
   :class:`~medcam_lab.ehr.switches.CleanSwitches`), unknown category strings and
   out-of-range values dropped and counted, one value per (stay, charttime, variable).
4. **Decision (EHR window):** the EHR of an image is the events in [max(intime, t − window_hours), t];
   hours are counted from the window start (``start_time="zero"`` on the window) and the window length is
   the discretizer's ``end``, so a full 48 h window gives 24 bins at Δt = 2 h. Images with no event in
   their window are dropped and counted.
5. Image cache (unreadable/missing images dropped and counted), patient-level seeded split
   (no subject in two splits), normalizer fitted on the training split (``clean``: over observed bins
   only), arrays and tables written.

The cohort directory's files, and how they are written and opened: :mod:`medcam_lab.data.cohort`.
``pairs.parquet`` is written last, in one step: a run that fails (bad input, full disk) leaves no
directory that opens as a cohort; a rerun into the same directory replaces the cohort (the image cache
resumes where a killed run stopped).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from medcam_lab import __version__
from medcam_lab.config import LABELS_CHEXPERT14, PrepareConfig
from medcam_lab.data.cohort import finish_cohort, start_cohort, write_cohort_ehr
from medcam_lab.datasets import mimic_cxr, mimic_iv
from medcam_lab.datasets.chexpert import apply_label_policy
from medcam_lab.datasets.patient_split import SPLIT_NAMES, patient_split
from medcam_lab.ehr import Discretizer, EHRMode, Normalizer, clean_events, events_to_wide
from medcam_lab.ehr.channels import CHANNELS
from medcam_lab.ehr.itemids import itemids_of_table
from medcam_lab.prepare.event_spill import EventSpill, bucket_of, buckets_for, estimated_rows, stay_ids_of_labs
from medcam_lab.prepare.image_cache import build_image_cache
from medcam_lab.prepare.report import CohortReport
from medcam_lab.runinfo import write_run_info

log = logging.getLogger("medcam_lab")
HOUR = pd.Timedelta(hours=1)


def mimic_cxr_release(root: str | Path) -> str:
    """MIMIC-CXR-JPG release as its file names tell it (v2.0.0 and v2.1.0 both ship ``mimic-cxr-2.0.0-*``)."""
    names = sorted(p.name for p in Path(root).glob("mimic-cxr-*-metadata.csv*"))
    if not names:
        return "unknown (no mimic-cxr-*-metadata.csv file)"
    version = names[0].split("-")[2]
    return f"{version} (file names; v2.0.0 and v2.1.0 share them)" if version == "2.0.0" else version


def select_stays(stays: pd.DataFrame, report: CohortReport) -> pd.DataFrame:
    """MedFuse's ICU cohort: same first/last care unit, one ICU stay per admission, age ≥ 18."""
    report.step("ICU stays in icustays", len(stays))
    bad_time = stays["outtime"] < stays["intime"]
    report.drop("stay: outtime before intime", int(bad_time.sum()), stays.loc[bad_time, "stay_id"].tolist())
    stays = stays.loc[~bad_time]
    same_unit = stays["first_careunit"] == stays["last_careunit"]
    report.drop("stay: transferred between care units", int((~same_unit).sum()))
    stays = stays.loc[same_unit]
    report.step("stays with first_careunit == last_careunit", len(stays))
    per_adm = stays.groupby("hadm_id")["stay_id"].transform("count")
    report.drop("stay: admission has more than one ICU stay", int((per_adm > 1).sum()))
    stays = stays.loc[per_adm == 1]
    report.step("stays of admissions with exactly one ICU stay", len(stays))
    adult = stays["anchor_age"] >= 18
    report.drop("stay: patient younger than 18 or age unknown", int((~adult).sum()))
    stays = stays.loc[adult].reset_index(drop=True)
    report.step("stays of adults (anchor_age >= 18)", len(stays), patients=int(stays["subject_id"].nunique()))
    return stays


def pair_images_with_stays(
    meta: pd.DataFrame, labels: pd.DataFrame, stays: pd.DataFrame, cfg: PrepareConfig, report: CohortReport
) -> pd.DataFrame:
    """One row per frontal, labelled image taken during a kept ICU stay, with its EHR window."""
    report.step("CXR images in metadata", len(meta), patients=int(meta["subject_id"].nunique()))
    frontal = meta["ViewPosition"].isin(cfg.views)
    report.drop(f"image: view not in {list(cfg.views)}", int((~frontal).sum()))
    meta = meta.loc[frontal]
    report.step(f"frontal images ({'/'.join(cfg.views)})", len(meta))
    has_label = meta["study_id"].isin(labels["study_id"])
    report.drop("image: study has no CheXpert label row", int((~has_label).sum()))
    meta = meta.loc[has_label]
    report.step("frontal images with study labels", len(meta))
    no_stay = ~meta["subject_id"].isin(stays["subject_id"])
    report.drop(
        "image: subject has no kept ICU stay", int(no_stay.sum()),
        sorted(meta.loc[no_stay, "subject_id"].unique().tolist()),
    )
    joined = meta.loc[~no_stay].merge(
        stays[["subject_id", "hadm_id", "stay_id", "intime", "outtime"]], on="subject_id", how="inner"
    )
    during = (joined["study_datetime"] >= joined["intime"]) & (joined["study_datetime"] <= joined["outtime"])
    pairs = joined.loc[during].copy()
    outside = len(meta.loc[~no_stay]) - pairs["dicom_id"].nunique()
    report.drop("image: taken outside every kept ICU stay", int(outside))
    dup = pairs["dicom_id"].duplicated(keep="first")
    report.drop("image: falls in two overlapping stays (first kept)", int(dup.sum()))
    pairs = pairs.loc[~dup]
    report.step("images taken during a kept ICU stay", len(pairs), patients=int(pairs["subject_id"].nunique()))
    window_start = np.maximum(pairs["intime"], pairs["study_datetime"] - cfg.window_hours * HOUR)
    pairs["window_start"] = window_start
    pairs["window_hours"] = (pairs["study_datetime"] - window_start) / HOUR
    at_admit = pairs["window_hours"] <= 1e-6
    report.drop("image: taken at the ICU admission time (empty EHR window)", int(at_admit.sum()))
    pairs = pairs.loc[~at_admit]
    return pairs.sort_values(["subject_id", "study_datetime", "dicom_id"]).reset_index(drop=True)


def spill_events(
    layout: mimic_iv.MimicIVLayout, stays: pd.DataFrame, mode: EHRMode, report: CohortReport, spill: EventSpill
) -> dict[str, pa.Schema]:
    """Stream ``chartevents`` and ``labevents`` once, spilling the rows of the 17 variables for ``stays``.

    The item ids read are those of ``mode`` (:meth:`~medcam_lab.ehr.mode.EHRMode.itemid_map`). Rows whose
    charttime does not parse are dropped and counted here; lab rows are filed under the ICU stay of their
    admission. Returns the Arrow schema of each source (for groups without its rows).
    """
    mapping = mode.itemid_map()
    hadm_of_stay = stays["hadm_id"].to_numpy(dtype=np.int64)
    stay_ids = stays["stay_id"].to_numpy(dtype=np.int64)
    schemas: dict[str, pa.Schema] = {}
    all_counts = []
    for source, path, keep, key in (
        ("chartevents", layout.chartevents, stays["stay_id"], "stay_id"),
        ("labevents", layout.labevents, stays["hadm_id"], "hadm_id"),
    ):
        counts = mimic_iv.StreamCounts(source)
        stream = mimic_iv.EventStream(path, itemids_of_table(mapping, source), keep, key, counts)
        schemas[source] = stream.schema
        for table in stream:
            table = mimic_iv.drop_unparseable_times(table, counts)
            ids = table["stay_id"] if key == "stay_id" else stay_ids_of_labs(table["hadm_id"], hadm_of_stay, stay_ids)
            spill.add(source, table, ids)
        spill.finish(source)
        all_counts.append(counts)
    for c in all_counts:
        report.step(f"{c.source}: rows read", c.rows_read)
        report.step(f"{c.source}: rows of the 17 variables' item ids", c.rows_read - c.rows_other_items)
        report.step(f"{c.source}: rows of the 17 variables for kept stays", c.rows_matched)
        report.drop(f"event: {c.source}: unparseable charttime", c.rows_unparseable_charttime)
    report.info.setdefault("event_files", {})
    for c in all_counts:
        report.info["event_files"][c.source] = {
            "rows_read": c.rows_read, "rows_other_items": c.rows_other_items, "rows_other_ids": c.rows_other_ids,
            "rows_kept": c.rows_matched, "seconds": round(c.seconds, 2),
        }
    return schemas


@dataclass
class CleaningTally:
    """What cleaning the groups of events counted, summed over the groups (see :func:`clean_events`)."""

    kept: int = 0
    unknown_categories: Counter = field(default_factory=Counter)
    derived: dict[str, int] = field(default_factory=dict)
    masked: dict[str, dict[str, int]] = field(default_factory=dict)
    rows_per_variable: Counter = field(default_factory=Counter)
    stays_with_events: set[int] = field(default_factory=set)

    def add(self, counts: dict, unknown: dict[str, int], cleaned: pd.DataFrame) -> None:
        """Add one group's ``clean_events`` counts, discretizer-rejected categories and kept rows."""
        self.kept += len(cleaned)
        self.unknown_categories.update(counts["unknown_categories"])
        self.unknown_categories.update(unknown)
        for key, n in counts["derived"].items():
            self.derived[key] = self.derived.get(key, 0) + n
        for variable, entry in counts["valuenum_fallback"].items():
            total = self.masked.setdefault(variable, {})
            for key, n in entry.items():
                if key != "rows":
                    total[key] = total.get(key, 0) + n
        self.rows_per_variable.update(counts["rows_per_variable"])
        self.stays_with_events.update(int(i) for i in cleaned["stay_id"].unique())

    def valuenum_fallback(self) -> dict[str, dict[str, int]]:
        """``counts["valuenum_fallback"]`` of all groups at once: every row of a variable with masked values."""
        return {
            variable: {"rows": int(self.rows_per_variable[variable]), **self.masked[variable]}
            for variable in sorted(self.masked)
        }


def clean_group(
    chart: pd.DataFrame, lab: pd.DataFrame, stays: pd.DataFrame, item_labels: pd.DataFrame, mode: EHRMode,
    report: CohortReport, tally: CleaningTally,
) -> pd.DataFrame:
    """Clean the events of one group of stays: stay_id, charttime, variable, clean_value (and the raw columns).

    Events outside their ICU stay and exact duplicates are dropped and counted, then ``mode`` cleans them
    (:func:`~medcam_lab.ehr.clean_events`); counts go to ``report`` (drops) and ``tally``.
    """
    # Labs carry no stay_id: fill it from the admission (one ICU stay per kept admission).
    lab = lab.drop(columns="stay_id").merge(stays[["hadm_id", "stay_id"]], on="hadm_id", how="left")
    events = pd.concat([chart, lab], ignore_index=True)
    events = events.merge(stays[["stay_id", "intime", "outtime"]], on="stay_id", how="left")
    outside = (events["charttime"] < events["intime"]) | (events["charttime"] > events["outtime"])
    report.drop("event: charttime outside its ICU stay", int(outside.sum()))
    events = events.loc[~outside].drop(columns=["intime", "outtime"])
    dup = events.duplicated(["stay_id", "charttime", "itemid", "value", "valuenum"])
    report.drop("event: exact duplicate row", int(dup.sum()))
    events = events.loc[~dup]
    events = events.merge(item_labels, on="itemid", how="left")
    cleaned, counts = clean_events(events, mode=mode, by="stay_id")
    report.merge_drops("event: ", counts["dropped"])
    cleaned, unknown = drop_values_the_discretizer_rejects(cleaned, mode, report)
    tally.add(counts, unknown, cleaned)
    return cleaned


def report_cleaning(stays: pd.DataFrame, tally: CleaningTally, report: CohortReport) -> None:
    """The cleaning's counts of all groups into ``report`` (after the last group)."""
    report.info["unknown_categories"] = dict(sorted(tally.unknown_categories.items()))
    report.info["derived"] = dict(tally.derived)
    report.info["valuenum_fallback"] = tally.valuenum_fallback()
    report.step("events kept after cleaning", tally.kept)
    no_events = ~stays["stay_id"].isin(tally.stays_with_events)
    report.drop("stay: no event of the 17 variables during the stay", int(no_events.sum()),
                stays.loc[no_events, "stay_id"].tolist())
    report.step("paired stays with events", int((~no_events).sum()))


def drop_values_the_discretizer_rejects(
    events: pd.DataFrame, mode: EHRMode, report: CohortReport
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop (and count, per channel and string) values the discretizer of ``mode`` would reject or turn into NaN.

    In ``medfuse`` mode some channels are not cleaned (HR, RR, MBP, GCS), exactly as the reference: a raw
    ``ERROR`` there, or an unknown GCS spelling, would stop the reference mid-cohort. Here each such
    value is dropped with its reason: categorical strings outside the channel's column list, and
    continuous values that are not finite numbers. In ``clean`` mode cleaning has already removed them.

    Returns:
        ``(kept, unknown)``: the kept rows and the dropped category strings, ``{"<channel>: '<text>'": n}``.
    """
    categories = mode.layout.possible_values
    keep = pd.Series(True, index=events.index)
    unknown: dict[str, int] = {}
    for channel in CHANNELS:
        rows = events["variable"] == channel
        if not rows.any():
            continue
        values = events.loc[rows, "clean_value"]
        if channel in categories:
            bad = ~values.isin(categories[channel])
            reason = "unknown category"
        else:
            numbers = pd.to_numeric(values, errors="coerce")
            bad = pd.Series(~np.isfinite(numbers.to_numpy(dtype=float)), index=values.index)
            reason = "not a finite number"
        if bad.any():
            for value, n in values[bad].value_counts().items():
                report.drop(f"event: {channel}: {reason} {value!r}", int(n))
                if reason == "unknown category":
                    key = f"{channel}: {value!r}"
                    unknown[key] = unknown.get(key, 0) + int(n)
            keep.loc[bad[bad].index] = False
    return events.loc[keep], unknown


def make_discretizer(cfg: PrepareConfig, mode: EHRMode) -> Discretizer:
    """The discretizer of the image windows: bins from the window start, masks stored, in ``mode``."""
    return Discretizer(
        timestep=cfg.timestep, impute_strategy=cfg.impute_strategy, start_time="zero", store_masks=True, mode=mode,
    )


def discretize_group(pairs: pd.DataFrame, wide: pd.DataFrame, discretizer: Discretizer) -> dict[int, np.ndarray]:
    """Cut each image's EHR window out of its stay's time series and discretize the windows of ``pairs``.

    Returns ``{pair index: (n_bins, F) array}`` for the pairs with at least one event in their window.
    """
    rows = pairs[["stay_id", "window_start", "study_datetime"]].reset_index(names="pair")
    rows = rows.merge(wide, on="stay_id", how="inner")
    inside = (rows["charttime"] >= rows["window_start"]) & (rows["charttime"] <= rows["study_datetime"])
    rows = rows.loc[inside]
    if rows.empty:
        return {}
    rows["Hours"] = (rows["charttime"] - rows["window_start"]) / HOUR
    rows = rows.sort_values(["pair", "Hours"], kind="stable")
    ends = pairs["window_hours"].to_dict()
    table = rows[["pair", "Hours", *CHANNELS]]
    return discretizer.transform_batch(table, by="pair", end={p: ends[p] for p in table["pair"].unique()})


def collect_windows(
    pairs: pd.DataFrame, episodes: dict[int, np.ndarray], discretizer: Discretizer, report: CohortReport
) -> tuple[pd.DataFrame, list[np.ndarray], list[str]]:
    """The pairs with EHR in their window (others dropped and counted), their episodes and the columns."""
    has_events = pairs.index.isin(list(episodes))
    report.drop(
        "pair: no EHR event in the window before the image", int((~has_events).sum()),
        pairs.loc[~has_events, "dicom_id"].tolist(),
    )
    for (channel, text), n in sorted(discretizer.unknown_values.items()):
        report.drop(f"event: {channel}: not usable by the discretizer {text!r}", n)
    kept = pairs.loc[has_events].copy()
    values = [episodes[p] for p in kept.index]
    kept["n_bins"] = [len(v) for v in values]
    report.step("pairs with EHR in the window", len(kept), patients=int(kept["subject_id"].nunique()))
    return kept.reset_index(drop=True), values, discretizer.feature_names


def build_episodes(
    layout: mimic_iv.MimicIVLayout, stays: pd.DataFrame, pairs: pd.DataFrame, cfg: PrepareConfig, mode: EHRMode,
    report: CohortReport, spill_dir: Path,
) -> tuple[pd.DataFrame, list[np.ndarray], list[str]]:
    """Events → cleaned → wide → discretized windows in ``mode``, a group of stays at a time (bounded memory).

    The kept events are spilled to ``spill_dir`` (removed afterwards), partitioned by a hash of
    ``stay_id``; groups of partitions of at most ``cfg.partition_events`` rows are then cleaned, pivoted
    and discretized in turn. The result does not depend on the grouping.
    """
    item_labels = mimic_iv.read_item_labels(layout)
    discretizer = make_discretizer(cfg, mode)
    tally = CleaningTally()
    episodes: dict[int, np.ndarray] = {}
    n_buckets = buckets_for(estimated_rows(layout.chartevents) + estimated_rows(layout.labevents), cfg.partition_events)
    with EventSpill(spill_dir, n_buckets=n_buckets) as spill:
        schemas = spill_events(layout, stays, mode, report, spill)
        groups = spill.groups(cfg.partition_events)
        report.info["event_spill"] = {"buckets": spill.n_buckets, "partitions": len(groups),
                                      "bytes_on_disk": spill.disk_bytes(),
                                      "largest_partition_rows": max((spill.row_count(g) for g in groups), default=0)}
        bucket = pd.Series(bucket_of(stays["stay_id"].to_numpy(), spill.n_buckets), index=stays.index)
        pair_bucket = bucket_of(pairs["stay_id"].to_numpy(), spill.n_buckets)
        for i, group in enumerate(groups):
            if len(groups) > 1:
                log.info("events: partition %d of %d (%d rows)", i + 1, len(groups), spill.row_count(group))
            chart, lab = (mimic_iv.events_frame(spill.read(s, group, schemas[s]), s) for s in schemas)
            group_stays = stays.loc[bucket.isin(group)]
            cleaned = clean_group(chart, lab, group_stays, item_labels, mode, report, tally)
            del chart, lab
            if cleaned.empty:
                continue
            wide = events_to_wide(cleaned[["stay_id", "charttime", "variable", "clean_value"]], by="stay_id", mode=mode)
            del cleaned
            episodes.update(discretize_group(pairs.loc[np.isin(pair_bucket, group)], wide, discretizer))
    report_cleaning(stays, tally, report)
    return collect_windows(pairs, episodes, discretizer, report)


def label_prevalence(pairs: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Positives per label and split (fraction of known labels)."""
    out: dict[str, dict[str, float]] = {}
    for split, group in pairs.groupby("split"):
        out[str(split)] = {lab: round(float(group[lab].mean(skipna=True)), 4) for lab in LABELS_CHEXPERT14}
    return out


def prepare_cohort(cfg: PrepareConfig) -> dict:
    """Run the whole ``prepare`` pipeline and write the cohort directory; returns the report dict."""
    mode = EHRMode.of(cfg.compat)  # the one EHR mode of the run, handed to every step
    if cfg.partition_events < 1:
        raise ValueError(f"partition_events={cfg.partition_events}: must be at least 1 (rows cleaned at once)")
    cohort = Path(cfg.out)
    if start_cohort(cohort):  # a cohort is replaced: until this run ends, the directory is not an openable cohort
        log.info("replacing the cohort in %s", cohort)
    write_run_info(cohort, "prepare", cfg)
    report = CohortReport()
    layout = mimic_iv.locate_mimic_iv(cfg.mimic_iv, cfg.mimic_iv_version)
    report.info["versions"] = {
        "mimic_iv": layout.version, "mimic_iv_version_source": layout.version_source,
        "mimic_iv_layout": layout.layout, "mimic_cxr": mimic_cxr_release(cfg.mimic_cxr),
        "medcam_lab": __version__, "compat": mode.name,
    }
    report.info["mimic_iv_files"] = layout.describe()["files"]
    report.info["clean_switches"] = mode.switches.to_dict()

    stays = select_stays(mimic_iv.read_stays(layout), report)
    meta = mimic_cxr.read_metadata(cfg.mimic_cxr)
    raw_labels = mimic_cxr.read_chexpert_labels(cfg.mimic_cxr)
    pairs = pair_images_with_stays(meta, raw_labels, stays, cfg, report)
    if pairs.empty:
        raise ValueError("no CXR image was taken during a kept ICU stay; see report: " + json.dumps(report.steps))

    paired_stays = stays.loc[stays["stay_id"].isin(pairs["stay_id"])]
    spill_dir = Path(cfg.spill_dir or cohort) / ".event_spill"
    pairs, values, columns = build_episodes(layout, paired_stays, pairs, cfg, mode, report, spill_dir)

    image_paths = [Path(cfg.mimic_cxr) / p for p in pairs["image_path"]]
    ok, failures = build_image_cache(image_paths, cohort, cfg.image_cache_size)
    for failure in failures:
        report.drop(f"pair: {failure['reason'].split(':')[0]}", 1, [failure["path"]])
    report.info["image_failures"] = failures
    pairs = pairs.loc[ok].reset_index(drop=True)
    values = [v for v, keep in zip(values, ok) if keep]
    pairs["cache_index"] = np.arange(len(pairs))
    report.step("pairs with a readable image", len(pairs), patients=int(pairs["subject_id"].nunique()))

    pairs["split"] = patient_split(pairs["subject_id"], cfg.split_fractions, cfg.seed)
    for split in SPLIT_NAMES:
        part = pairs[pairs["split"] == split]
        report.step(f"pairs in {split}", len(part), patients=int(part["subject_id"].nunique()))

    study_labels = raw_labels.set_index("study_id").loc[pairs["study_id"], list(LABELS_CHEXPERT14)]
    study_labels.index = pairs.index
    applied = apply_label_policy(study_labels, cfg.uncertain_policy, cfg.blank_policy)
    pairs = pd.concat([pairs, applied], axis=1)

    train_values = [v for v, s in zip(values, pairs["split"]) if s == "train"]
    normalizer = Normalizer.fit(train_values, columns, mode=mode)
    write_cohort_ehr(cohort, normalizer, values, columns)

    report.info["label_prevalence"] = label_prevalence(pairs)
    report.info["label_policy"] = {"uncertain": cfg.uncertain_policy, "blank": cfg.blank_policy}
    report.info["ehr"] = {
        "compat": mode.name, "timestep": cfg.timestep, "window_hours": cfg.window_hours,
        "impute_strategy": cfg.impute_strategy, "n_features": len(columns),
        "max_bins": int(pairs["n_bins"].max()), "normalizer_observed_only": normalizer.observed_only,
        "normalizer_unfitted_columns": list(normalizer.unfitted),
    }
    result = report.to_dict()
    finish_cohort(cohort, pairs, study_labels, result, report.to_markdown())
    return result
