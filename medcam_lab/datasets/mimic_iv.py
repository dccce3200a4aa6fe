"""Reading MIMIC-IV from its official layouts (PhysioNet, credentialed access).

MIMIC-IV is distributed by PhysioNet under a credentialed-access data use agreement: users need a
PhysioNet account, CITI training and the signed DUA, and keep the files on their own disk. Nothing here
downloads anything. Citation: Johnson, A. et al. "MIMIC-IV, a freely accessible electronic health record
dataset." Scientific Data 10, 1 (2023).

Layouts (:func:`locate_mimic_iv`):

* v1.0: ``core/{patients,admissions}``, ``hosp/labevents``, ``icu/...``; admissions column ``ethnicity``.
* v2.x and v3.x: ``core/`` merged into ``hosp/``; admissions column ``race``.
* every table as ``.csv.gz`` (as shipped) or ``.csv`` (uncompressed by the user).

The version is taken from, in order: an explicit ``version`` argument, a version number in the path
(PhysioNet's ``mimiciv/<version>/`` download folder), else the layout (``1.0`` for ``core/``,
``2.x/3.x`` for ``hosp/`` only). Both the version and how it was found are recorded in the cohort report.

Small tables are read with pandas. ``chartevents`` and ``labevents`` (313 and 118 million rows in v2.2)
are streamed in record batches by :func:`stream_events` (pyarrow's multi-threaded CSV reader, gzip
decoded on the fly): only the rows of the requested item ids and ids are kept, so memory is that of one
batch plus the kept events, whatever the file size. Every row read is counted, a truncated gzip or a
malformed row is an error naming the file (never a smaller cohort), and progress is logged.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from medcam_lab.datasets.inflate import open_gzip_threaded

log = logging.getLogger("medcam_lab")


class MimicLayoutError(FileNotFoundError):
    """A MIMIC-IV table is missing, truncated, or has unexpected columns."""


@dataclass(frozen=True)
class MimicIVLayout:
    """Where each table of one MIMIC-IV copy lives, and which release it is."""

    root: Path
    version: str  # "1.0", "2.2", "3.1", ... or "2.x/3.x" when only the layout tells
    version_source: str  # "argument", "path", or "layout"
    layout: str  # "v1.0 (core/, ethnicity)" or "v2.x/v3.x (hosp/, race)"
    patients: Path
    admissions: Path
    icustays: Path
    chartevents: Path
    labevents: Path
    d_items: Path
    d_labitems: Path
    demographic_column: str = "race"
    files: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, object]:
        """JSON-ready record of the release and the files read (for ``report.json``)."""
        return {
            "root": str(self.root),
            "version": self.version,
            "version_source": self.version_source,
            "layout": self.layout,
            "demographic_column": self.demographic_column,
            "files": {k: str(getattr(self, k)) for k in _TABLES},
        }


_TABLES = ("patients", "admissions", "icustays", "chartevents", "labevents", "d_items", "d_labitems")
_VERSION_IN_PATH = re.compile(r"^(?:mimic-?iv[-_]?)?v?(\d+\.\d+(?:\.\d+)?)$", re.IGNORECASE)


def _find_table(root: Path, module_dirs: tuple[str, ...], name: str) -> Path:
    tried = []
    for module in module_dirs:
        for suffix in (".csv.gz", ".csv"):
            path = root / module / f"{name}{suffix}"
            tried.append(str(path))
            if path.exists():
                return path
    raise MimicLayoutError(f"MIMIC-IV table {name!r} not found under {root}; looked for: {', '.join(tried)}")


def _version_from_path(root: Path) -> str | None:
    """A release number naming the root folder or its parent (``mimiciv/2.2``, ``mimic-iv-3.1``)."""
    for part in reversed(root.resolve().parts[-2:]):
        match = _VERSION_IN_PATH.match(part)
        if match:
            return match.group(1)
    return None


def read_header(path: Path) -> list[str]:
    """Column names of a CSV / gzip CSV (reads the first line only)."""
    try:
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16))
    except (pa.ArrowInvalid, OSError, EOFError, ValueError) as exc:
        raise MimicLayoutError(f"could not read the header of {path} (truncated or corrupt file?): {exc}") from exc
    return list(reader.schema.names)


def locate_mimic_iv(root: str | Path, version: str = "auto") -> MimicIVLayout:
    """Find the MIMIC-IV tables under ``root`` and tell the release.

    Args:
        root: The MIMIC-IV folder (holding ``hosp/`` and ``icu/``, and ``core/`` for v1.0).
        version: ``"auto"`` (path, then layout) or an explicit release such as ``"2.2"``.

    Raises:
        MimicLayoutError: ``root`` is not a folder, a table is missing (the error names every path
            tried), or the admissions table has neither ``race`` nor ``ethnicity``.
    """
    root = Path(root)
    if not root.is_dir():
        raise MimicLayoutError(f"MIMIC-IV root {root} is not a directory")
    has_core = (root / "core").is_dir()
    base_modules = ("core", "hosp") if has_core else ("hosp",)
    tables = {
        "patients": _find_table(root, base_modules, "patients"),
        "admissions": _find_table(root, base_modules, "admissions"),
        "icustays": _find_table(root, ("icu",), "icustays"),
        "chartevents": _find_table(root, ("icu",), "chartevents"),
        "labevents": _find_table(root, ("hosp",), "labevents"),
        "d_items": _find_table(root, ("icu",), "d_items"),
        "d_labitems": _find_table(root, ("hosp",), "d_labitems"),
    }
    columns = read_header(tables["admissions"])
    demographic = "race" if "race" in columns else "ethnicity" if "ethnicity" in columns else ""
    if not demographic:
        raise MimicLayoutError(f"{tables['admissions']} has neither 'race' (v2.x+) nor 'ethnicity' (v1.0) column")
    layout = "v1.0 (core/, ethnicity)" if has_core else "v2.x/v3.x (hosp/, race)"
    if version != "auto":
        found, source = str(version), "argument"
    elif (from_path := _version_from_path(root)) is not None:
        found, source = from_path, "path"
    else:
        found, source = ("1.0" if has_core else "2.x/3.x"), "layout"
    if has_core != found.startswith("1.") and found != "2.x/3.x":
        log.warning("MIMIC-IV version %s (from %s) does not match the %s layout of %s", found, source, layout, root)
    return MimicIVLayout(
        root=root, version=found, version_source=source, layout=layout, demographic_column=demographic,
        patients=tables["patients"], admissions=tables["admissions"], icustays=tables["icustays"],
        chartevents=tables["chartevents"], labevents=tables["labevents"], d_items=tables["d_items"],
        d_labitems=tables["d_labitems"],
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
    """itemid → label for chart and lab items (the medfuse cleaning rules read the label)."""
    chart = read_table(layout.d_items, ["itemid", "label"])
    lab = read_table(layout.d_labitems, ["itemid", "label"])
    labels = pd.concat([chart, lab], ignore_index=True).drop_duplicates("itemid")
    labels["itemid"] = labels["itemid"].astype("int64")
    return labels


_ID_COLUMNS = ("subject_id", "hadm_id", "stay_id", "itemid")
_TEXT_COLUMNS = ("charttime", "value", "comments")  # comments: labevents only (a result may sit there alone)
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M")
PARSER_THREADS = 2
"""Threads that parse and filter blocks of an events file at once (besides the gzip reader thread)."""
_REQUIRED = ("subject_id", "hadm_id", "charttime", "itemid", "value", "valuenum")


@dataclass
class StreamCounts:
    """What one pass over an events file read, kept and dropped."""

    source: str
    rows_read: int = 0
    rows_other_items: int = 0
    rows_other_ids: int = 0
    rows_matched: int = 0
    rows_unparseable_charttime: int = 0
    seconds: float = 0.0

    def check(self, path: Path) -> None:
        """Every row read is accounted for (kept, other item, other id); else an error naming the file."""
        accounted = self.rows_other_items + self.rows_other_ids + self.rows_matched
        if accounted != self.rows_read:
            raise MimicLayoutError(f"{path}: read {self.rows_read} rows but accounted for {accounted}")


def _progress(source: str, counts: StreamCounts, start: float, final: bool = False) -> None:
    elapsed = max(time.perf_counter() - start, 1e-9)
    message = (
        f"{source}: {counts.rows_read:,} rows read, {counts.rows_matched:,} kept, "
        f"{counts.rows_read / elapsed:,.0f} rows/s{' (done)' if final else ''}"
    )
    log.info(message)


def stream_events(
    path: Path,
    itemids: set[int] | frozenset[int],
    keep_ids: pd.Series | None,
    key: str,
    source: str,
    block_size: int = 16 << 20,
    progress_seconds: float = 10.0,
) -> tuple[pd.DataFrame, StreamCounts]:
    """Stream one events table, keeping rows of ``itemids`` whose ``key`` is in ``keep_ids``, into one frame.

    The kept rows of :func:`iter_event_tables`, converted by :func:`events_frame` (see both for the
    reading, the counts and the columns). Memory is a few blocks plus the kept rows; ``prepare`` spills
    the kept rows to disk instead (:mod:`medcam_lab.prepare.event_spill`).

    Returns:
        ``(events, counts)``: the frame of :func:`events_frame` and the :class:`StreamCounts`.

    Raises:
        MimicLayoutError: missing column, truncated/corrupt gzip, malformed row, id or valuenum (naming
            the file).
    """
    counts = StreamCounts(source)
    stream = EventStream(path, itemids, keep_ids, key, counts, block_size, progress_seconds)
    parts = list(stream)
    table = pa.concat_tables(parts) if parts else stream.schema.empty_table()
    return events_frame(table, source, counts), counts


class EventStream:
    """The kept rows of one events table, block by block, as Arrow tables (charttime parsed).

    The file is read in blocks of about ``block_size`` bytes of whole lines, parsed and filtered with
    vectorized set membership by :data:`PARSER_THREADS` threads while the gzip is inflated in another; at
    most ``2 * PARSER_THREADS + 1`` blocks are in flight, so memory is a few blocks plus what the consumer
    keeps. Blocks come in file order. Values in quotes may hold commas but not line breaks (as in
    MIMIC-IV; a line break there is an error). Every row read is counted in ``counts`` (rows read = other
    items + other ids + matched, checked once the file is read).

    Args:
        path: ``chartevents`` or ``labevents`` (``.csv`` or ``.csv.gz``).
        itemids: The item ids to keep.
        keep_ids: The ``key`` values to keep (e.g. the cohort's stay ids), or None for all.
        key: Id column that ``keep_ids`` refers to (``stay_id`` or ``hadm_id``).
        counts: Where the counts go (its ``source`` names the file in counts and messages).
        block_size: Bytes of text per block.
        progress_seconds: Minimum seconds between two progress lines.

    Attributes:
        schema: Columns of the yielded tables: those of subject_id, hadm_id, stay_id, charttime
            (timestamp; null where unparseable), itemid, value, comments, valuenum that the file has.

    Raises:
        MimicLayoutError: missing column (when built), truncated/corrupt gzip, malformed row, id or
            valuenum (while iterating; naming the file).
    """

    def __init__(
        self, path: Path, itemids: set[int] | frozenset[int], keep_ids: pd.Series | None, key: str,
        counts: StreamCounts, block_size: int = 16 << 20, progress_seconds: float = 10.0,
    ) -> None:
        self.path = Path(path)
        self.columns = read_header(self.path)
        missing = [c for c in (*_REQUIRED, key) if c not in self.columns]
        if missing:
            raise MimicLayoutError(f"{self.path} lacks column(s) {sorted(set(missing))}; found {self.columns}")
        wanted = [c for c in (*_ID_COLUMNS, *_TEXT_COLUMNS, "valuenum") if c in self.columns]
        types = {c: pa.int64() for c in _ID_COLUMNS if c in self.columns}
        types.update({c: pa.string() for c in _TEXT_COLUMNS if c in self.columns})
        types["valuenum"] = pa.float64()
        self.convert = pacsv.ConvertOptions(
            column_types=types, include_columns=wanted, strings_can_be_null=True, null_values=[""],
            quoted_strings_can_be_null=False,
        )
        self.schema = pa.schema([(c, pa.timestamp("ns") if c == "charttime" else types[c]) for c in wanted])
        self.item_set = pa.array(sorted(int(i) for i in itemids), type=pa.int64())
        self.id_set = None if keep_ids is None else pa.array(
            np.unique(keep_ids.dropna().astype("int64")), type=pa.int64()
        )
        self.key, self.counts = key, counts
        self.block_size, self.progress_seconds = block_size, progress_seconds

    def _collect(self, result: tuple[int, int, int, pa.Table | None]) -> pa.Table | None:
        n_rows, n_item, n_keep, kept = result
        counts = self.counts
        counts.rows_read += n_rows
        counts.rows_other_items += n_rows - n_item
        counts.rows_other_ids += n_item - n_keep
        counts.rows_matched += n_keep
        return kept

    def __iter__(self) -> Iterator[pa.Table]:
        path, counts, source = self.path, self.counts, self.counts.source
        pool = _streaming_pool()
        start = last = time.perf_counter()
        read_options = pacsv.ReadOptions(column_names=self.columns, use_threads=False)
        args = (read_options, self.convert, self.item_set, self.id_set, self.key, pool)
        try:
            # the gzip is inflated by ISA-L in a reader thread; this thread cuts the text into blocks of whole
            # lines, and parser threads parse, filter and convert the blocks in parallel (Arrow releases the GIL)
            opener = open_gzip_threaded(path) if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115
            with opener as raw, ThreadPoolExecutor(max_workers=PARSER_THREADS, thread_name_prefix="events") as pool_:
                pending: deque[Future] = deque()
                for text in _line_blocks(raw, self.block_size):
                    pending.append(pool_.submit(_parse_block, text, *args))
                    while len(pending) > 2 * PARSER_THREADS or (pending and pending[0].done()):  # bounded memory
                        if (kept := self._collect(pending.popleft().result())) is not None:
                            yield kept
                    now = time.perf_counter()
                    if now - last >= self.progress_seconds:
                        _progress(source, counts, start)
                        last = now
                while pending:
                    if (kept := self._collect(pending.popleft().result())) is not None:
                        yield kept
        except (pa.ArrowInvalid, OSError, EOFError, ValueError) as exc:
            raise MimicLayoutError(
                f"could not read {path} (truncated or corrupt file? {counts.rows_read:,} rows read before the "
                f"error): {exc}"
            ) from exc
        counts.seconds = time.perf_counter() - start
        _progress(source, counts, start, final=True)
        counts.check(path)


def drop_unparseable_times(table: pa.Table, counts: StreamCounts | None = None) -> pa.Table:
    """``table`` without the rows whose charttime did not parse (null), added to ``counts`` when given."""
    good = pc.is_valid(table["charttime"])
    unparseable = table.num_rows - int(pc.sum(good).as_py() or 0)
    if counts is not None:
        counts.rows_unparseable_charttime += unparseable
    return table.filter(good) if unparseable else table


def events_frame(table: pa.Table, source: str, counts: StreamCounts | None = None) -> pd.DataFrame:
    """Kept rows of :class:`EventStream` as a pandas frame; rows whose charttime did not parse are dropped.

    Args:
        table: Tables yielded by :class:`EventStream` (one, or several concatenated).
        source: Text of the ``source`` column (``chartevents`` / ``labevents``).
        counts: Where the dropped unparseable charttimes are added (``rows_unparseable_charttime``).

    Returns:
        Columns subject_id, hadm_id, stay_id (Int64; NA where the table lacks the column, as labevents),
        charttime (datetime64), itemid (int64), value (str or None; only an empty cell is missing, ``NA``
        stays text), valuenum (float; NaN where empty), comments (str or None; only where the table has
        the column: labevents), source.

    A charttime that is not ``YYYY-MM-DD HH:MM:SS`` (or with ``T``, or without seconds) is such a drop.
    """
    table = drop_unparseable_times(table, counts)
    columns = {
        col: _nullable_ints(table[col]) if col in table.column_names else pd.array([pd.NA] * table.num_rows, "Int64")
        for col in ("subject_id", "hadm_id", "stay_id")
    }
    columns["charttime"] = _writable(table["charttime"].to_numpy())
    columns["itemid"] = _writable(table["itemid"].to_numpy())  # never null (the filter needs it)
    columns["value"] = table["value"].to_pandas()
    columns["valuenum"] = _writable(table["valuenum"].to_numpy(zero_copy_only=False))
    if "comments" in table.column_names:
        columns["comments"] = table["comments"].to_pandas()
    columns["source"] = _constant_text(source, table.num_rows)
    return pd.DataFrame(columns, copy=False)  # the arrays above are the frame's own: no second copy


def _line_blocks(raw: BinaryIO, block_size: int) -> Iterator[bytes]:
    """The text after the header line, in blocks of about ``block_size`` bytes that end at a line end.

    A line is never split across blocks; the last block may lack a final newline.
    """
    raw.readline()  # the header (parsed by read_header)
    carry = b""
    while block := raw.read(block_size):
        cut = block.rfind(b"\n") + 1
        if not cut:  # a line longer than the block: keep reading
            carry += block
            continue
        yield b"".join((carry, memoryview(block)[:cut]))  # one copy
        carry = block[cut:]
    if carry:
        yield carry


def _parse_block(
    text: bytes, read_options: pacsv.ReadOptions, convert: pacsv.ConvertOptions, item_set: pa.Array,
    id_set: pa.Array | None, key: str, pool: pa.MemoryPool,
) -> tuple[int, int, int, pa.Table | None]:
    """``(rows, rows of the item ids, rows kept, kept rows with charttime parsed)`` of one block of lines."""
    batch = pacsv.read_csv(pa.py_buffer(text), read_options=read_options, convert_options=convert, memory_pool=pool)
    item_ok = pc.fill_null(pc.is_in(batch.column("itemid"), value_set=item_set, memory_pool=pool), False)
    keep = item_ok
    n_item = int(pc.sum(item_ok).as_py() or 0)
    if id_set is not None:
        id_ok = pc.fill_null(pc.is_in(batch.column(key), value_set=id_set, memory_pool=pool), False)
        keep = pc.and_(item_ok, id_ok)
    n_keep = int(pc.sum(keep).as_py() or 0)
    if not n_keep:
        return batch.num_rows, n_item, 0, None
    kept = pc.filter(batch, keep, memory_pool=pool)
    times = _parse_times(kept["charttime"])  # unparseable -> null, counted after the stream
    return batch.num_rows, n_item, n_keep, kept.set_column(kept.schema.get_field_index("charttime"), "charttime", times)


def _streaming_pool() -> pa.MemoryPool:
    """The Arrow memory pool for the per-block buffers of a stream: jemalloc where pyarrow has it, else the
    system allocator.

    Both reuse the memory of freed blocks; Arrow's default pool (mimalloc) hands it back to the OS and
    faults it in again for every block, which costs a 20-million-row read about 1.5 s of system time
    (median 7.2 s vs 5.8 s wall, ``benchmarks/RESULTS.md``). The choice affects speed only, never the values.
    """
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # pyarrow built without jemalloc (e.g. Windows wheels)
        return pa.system_memory_pool()


def _constant_text(text: str, n: int) -> pd.Series:
    """``n`` times ``text`` as a pandas string column, built from Arrow buffers (no per-row Python object)."""
    data = text.encode()
    offsets = np.arange(n + 1, dtype=np.int64) * len(data)
    array = pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data * n)])
    return array.to_pandas()


def _writable(values: np.ndarray) -> np.ndarray:
    """``values`` itself when it owns writable memory, else a copy (Arrow's zero-copy views are read-only)."""
    return values if values.flags.writeable else values.copy()


def _nullable_ints(column: pa.ChunkedArray) -> pd.arrays.IntegerArray:
    """An Arrow int64 column as a pandas ``Int64`` array (nulls -> NA) without a Python-level pass."""
    if not column.null_count:
        return pd.arrays.IntegerArray(_writable(column.to_numpy()), np.zeros(len(column), dtype=bool))
    values = pc.fill_null(column, 0).to_numpy()
    return pd.arrays.IntegerArray(values, column.is_null().to_numpy(zero_copy_only=False))


def _parse_times(raw: pa.ChunkedArray) -> pa.ChunkedArray:
    """Text times -> timestamp[ns]; null where no format of :data:`_TIME_FORMATS` parses the text.

    Shape:
        raw: (n,) strings; returns (n,) timestamps.
    """
    try:  # Arrow's ISO 8601 cast reads MIMIC's "YYYY-MM-DD HH:MM:SS" (3x faster than strptime)
        return pc.cast(raw, pa.timestamp("ns"))
    except pa.ArrowInvalid:
        pass
    parsed = pc.strptime(raw, format=_TIME_FORMATS[0], unit="s", error_is_null=True)
    if parsed.null_count > raw.null_count:  # other spellings: tried only where the first failed
        for fmt in _TIME_FORMATS[1:]:
            parsed = pc.coalesce(parsed, pc.strptime(raw, format=fmt, unit="s", error_is_null=True))
    return parsed.cast(pa.timestamp("ns"))
