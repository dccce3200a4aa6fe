"""Reading MIMIC-IV from its official layout (PhysioNet, credentialed access).

MIMIC-IV is distributed by PhysioNet under a credentialed-access data use agreement: users need a
PhysioNet account, CITI training and the signed DUA, and keep the files on their own disk. Nothing here
downloads anything. Citation: Johnson, A. et al. "MIMIC-IV, a freely accessible electronic health record
dataset." Scientific Data 10, 1 (2023).

Small tables (patients, admissions, icustays, dictionaries) are read with pandas. ``chartevents`` and
``labevents`` (hundreds of millions of rows on the real data) are streamed by DuckDB straight from the
gzip CSV, keeping only the item ids of the 17 variables and the stays/admissions of the cohort, so the
memory needed is that of the kept events, not of the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd


class MimicLayoutError(FileNotFoundError):
    """A MIMIC-IV table is missing or has unexpected columns."""


@dataclass(frozen=True)
class MimicIVLayout:
    """Where each table of one MIMIC-IV copy lives, and which release layout it uses."""

    root: Path
    version: str  # "1.0" (core/, ethnicity) or "2.x+" (hosp/ only, race)
    patients: Path
    admissions: Path
    icustays: Path
    chartevents: Path
    labevents: Path
    d_items: Path
    d_labitems: Path


def _find_table(root: Path, module_dirs: tuple[str, ...], name: str) -> Path:
    tried = []
    for module in module_dirs:
        for suffix in (".csv.gz", ".csv"):
            path = root / module / f"{name}{suffix}"
            tried.append(str(path))
            if path.exists():
                return path
    raise MimicLayoutError(
        f"MIMIC-IV table {name!r} not found under {root}; looked for: {', '.join(tried)}"
    )


def locate_mimic_iv(root: str | Path) -> MimicIVLayout:
    """Find the MIMIC-IV tables under ``root`` (v1.0 ``core/`` or v2.x/v3.x ``hosp/``; .csv.gz or .csv)."""
    root = Path(root)
    if not root.is_dir():
        raise MimicLayoutError(f"MIMIC-IV root {root} is not a directory")
    version = "1.0" if (root / "core").is_dir() else "2.x+"
    base_modules = ("core", "hosp") if version == "1.0" else ("hosp",)
    return MimicIVLayout(
        root=root,
        version=version,
        patients=_find_table(root, base_modules, "patients"),
        admissions=_find_table(root, base_modules, "admissions"),
        icustays=_find_table(root, ("icu",), "icustays"),
        chartevents=_find_table(root, ("icu",), "chartevents"),
        labevents=_find_table(root, ("hosp",), "labevents"),
        d_items=_find_table(root, ("icu",), "d_items"),
        d_labitems=_find_table(root, ("hosp",), "d_labitems"),
    )


def read_table(path: Path, columns: list[str], parse_dates: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a small table with pandas, checking that ``columns`` are present (clear error otherwise)."""
    try:
        frame = pd.read_csv(path, usecols=lambda c: c in set(columns), low_memory=False)
    except (OSError, EOFError, ValueError, pd.errors.ParserError) as exc:
        raise MimicLayoutError(f"could not read {path}: {exc}") from exc
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MimicLayoutError(f"{path} lacks column(s) {missing}; found {list(frame.columns)}")
    for col in parse_dates:
        parsed = pd.to_datetime(frame[col], errors="coerce")
        bad = parsed.isna() & frame[col].notna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise MimicLayoutError(
                f"{path}: column {col!r} has {int(bad.sum())} unparseable time(s); first at data row {row + 1}: "
                f"{frame[col].iloc[row]!r}"
            )
        frame[col] = parsed
    return frame[columns]


def read_stays(layout: MimicIVLayout) -> pd.DataFrame:
    """ICU stays joined with the patient's age: subject_id, hadm_id, stay_id, careunits, intime, outtime, anchor_age."""
    stays = read_table(
        layout.icustays,
        ["subject_id", "hadm_id", "stay_id", "first_careunit", "last_careunit", "intime", "outtime"],
        parse_dates=("intime", "outtime"),
    )
    patients = read_table(layout.patients, ["subject_id", "anchor_age"])
    return stays.merge(patients, on="subject_id", how="left", validate="many_to_one")


def read_item_labels(layout: MimicIVLayout) -> pd.DataFrame:
    """itemid → label for chart and lab items (the cleaning rules read the label)."""
    chart = read_table(layout.d_items, ["itemid", "label"])
    lab = read_table(layout.d_labitems, ["itemid", "label"])
    labels = pd.concat([chart, lab], ignore_index=True).drop_duplicates("itemid")
    labels["itemid"] = labels["itemid"].astype("int64")
    return labels


_EVENT_COLUMNS = ("subject_id", "hadm_id", "stay_id", "charttime", "itemid", "value", "valuenum", "valueuom")


def stream_events(
    path: Path,
    itemids: set[int],
    keep_ids: pd.Series,
    key: str,
    source: str,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Stream one events table with DuckDB, keeping rows of ``itemids`` whose ``key`` is in ``keep_ids``.

    Every column is read as text and cast in SQL, so a malformed cell becomes a counted drop, not a crash
    mid-file. A truncated or corrupt gzip raises :class:`MimicLayoutError` naming the file.

    Returns:
        events: columns subject_id, hadm_id, stay_id (NaN for labevents), charttime (datetime64),
            itemid (int64), value (str or NaN), valuenum (float or NaN), valueuom, source.
        counts: rows matched on item id and key, rows dropped for an unparseable charttime or id.
    """
    con = duckdb.connect()
    try:
        con.execute("SET threads TO 2")
        con.execute("SET enable_progress_bar = true")  # shown for scans that take more than ~2 s
        con.register("keep_ids", pd.DataFrame({"id": keep_ids.astype("int64").unique()}))
        con.register("keep_items", pd.DataFrame({"itemid": sorted(int(i) for i in itemids)}))
        header = con.execute(f"SELECT * FROM read_csv('{path}', all_varchar=true) LIMIT 0").df()
        stay_expr = "TRY_CAST(stay_id AS BIGINT)" if "stay_id" in header.columns else "NULL::BIGINT"
        needed = [c for c in _EVENT_COLUMNS if c != "stay_id"] + ([key] if key not in _EVENT_COLUMNS else [])
        missing = [c for c in needed if c not in header.columns]
        if missing:
            raise MimicLayoutError(f"{path} lacks column(s) {missing}; found {list(header.columns)}")
        query = f"""
            SELECT TRY_CAST(subject_id AS BIGINT) AS subject_id,
                   TRY_CAST(hadm_id AS BIGINT) AS hadm_id,
                   {stay_expr} AS stay_id,
                   charttime AS charttime_raw,
                   TRY_CAST(charttime AS TIMESTAMP) AS charttime,
                   TRY_CAST(itemid AS BIGINT) AS itemid,
                   value,
                   TRY_CAST(valuenum AS DOUBLE) AS valuenum,
                   valueuom
            FROM read_csv('{path}', all_varchar=true, header=true)
            WHERE TRY_CAST(itemid AS BIGINT) IN (SELECT itemid FROM keep_items)
              AND TRY_CAST({key} AS BIGINT) IN (SELECT id FROM keep_ids)
        """
        events = con.execute(query).df()
    except duckdb.Error as exc:
        raise MimicLayoutError(f"could not stream {path}: {exc}") from exc
    finally:
        con.close()
    bad_time = events["charttime"].isna()
    counts = {f"{source}: rows matched": int(len(events)), f"{source}: unparseable charttime": int(bad_time.sum())}
    events = events.loc[~bad_time].drop(columns="charttime_raw")
    events["charttime"] = pd.to_datetime(events["charttime"])
    events["source"] = source
    return events.reset_index(drop=True), counts
