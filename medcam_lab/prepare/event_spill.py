"""Spilling the kept events of ``prepare`` to disk, partitioned by a hash of ``stay_id``.

MIMIC-IV's ``chartevents`` holds about 313 million rows; the rows of the paired stays alone are far more
than a 24 GB machine can clean in pandas at once. ``prepare`` therefore streams each events file once,
appends the kept rows of every block to one of :data:`N_BUCKETS` Parquet files chosen by a hash of the
row's ICU stay, and then cleans, pivots and discretizes the buckets a group at a time
(:meth:`EventSpill.groups`), so that memory is that of one group whatever the size of the input.

Every stay lies in exactly one bucket, and inside a bucket the rows of each file keep their file order,
so cleaning a group gives the same rows, values and counts as cleaning everything at once (the cleaning,
the duplicate rule and the pivot only ever compare rows of one stay).
"""

from __future__ import annotations

import errno
import logging
import re
import shutil
from pathlib import Path
from types import TracebackType

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

log = logging.getLogger("medcam_lab")
N_BUCKETS = 64
"""Fewest files per source; a group is one or more whole buckets, so buckets bound how finely memory is split."""
MAX_BUCKETS = 1024
"""Most files per source (all open while the source is read): 1,024 × 500,000 rows covers every row of
MIMIC-IV v2.2 (432 million) in partitions of at most about half a million rows."""
BUFFER_ROWS = 1_000_000
"""Rows held in memory before they are sorted into buckets and appended to the files."""
_BUCKET = "__bucket"
_SPILL_FILE = re.compile(r"[a-z]+-\d{3,}\.parquet")  # buckets 1000-1023 have four digits
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: consecutive ids spread over all buckets


class SpillError(OSError):
    """The spill directory could not be written (e.g. the disk is full)."""


def buckets_for(estimated_rows: int, partition_events: int) -> int:
    """Buckets enough for partitions of about ``partition_events`` rows out of ``estimated_rows``.

    A power of two from :data:`N_BUCKETS` to :data:`MAX_BUCKETS`; an overestimate only makes the files
    smaller (a group gathers consecutive buckets up to ``partition_events`` rows).
    """
    wanted = 2 * max(1, estimated_rows) / max(1, partition_events)  # twice: the hash spreads stays unevenly
    return int(min(MAX_BUCKETS, max(N_BUCKETS, 2 ** int(np.ceil(np.log2(wanted))))))


def estimated_rows(path: str | Path) -> int:
    """An upper estimate of the rows of an events file from its size (MIMIC-IV's gzip: about 10 bytes per row)."""
    size = Path(path).stat().st_size
    return size // 8 if str(path).endswith(".gz") else size // 60


def bucket_of(stay_ids: np.ndarray, n_buckets: int = N_BUCKETS) -> np.ndarray:
    """Bucket of every stay id: the top bits of a multiplicative hash, so nearby ids land far apart.

    Shape:
        stay_ids: (n,) integers; returns (n,) int64 in ``[0, n_buckets)``.
    """
    ids = np.asarray(stay_ids, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        mixed = ids * _GOLDEN
    return ((mixed >> np.uint64(32)) % np.uint64(n_buckets)).astype(np.int64)


class EventSpill:
    """Parquet files of event rows, one per (source, bucket), in a directory removed on exit.

    Use as a context manager: :meth:`add` the kept tables of each source in file order, :meth:`finish`,
    then :meth:`read` groups of buckets. The directory is deleted when the block exits, error or not.

    Args:
        directory: Where the files go (created; one left by a run that did not finish is replaced, a
            directory holding anything else is an error, so nothing else is ever deleted).
        n_buckets: Number of buckets.
        buffer_rows: Rows buffered per source before they are written.
    """

    def __init__(self, directory: str | Path, n_buckets: int = N_BUCKETS, buffer_rows: int = BUFFER_ROWS) -> None:
        self.directory = Path(directory)
        self.n_buckets, self.buffer_rows = n_buckets, buffer_rows
        self.rows: dict[str, np.ndarray] = {}
        self.schemas: dict[str, pa.Schema] = {}
        self._buffer: dict[str, list[pa.Table]] = {}
        self._buffered: dict[str, int] = {}
        self._writers: dict[tuple[str, int], pq.ParquetWriter] = {}

    def __enter__(self) -> EventSpill:
        _ensure_open_files(self.n_buckets + 256)
        if self.directory.exists():
            foreign = [p.name for p in self.directory.iterdir() if not _SPILL_FILE.fullmatch(p.name)]
            if foreign:
                raise FileExistsError(
                    f"{self.directory} exists and holds files that are not event spill files ({foreign[:3]}): "
                    "choose another spill directory"
                )
            log.warning("removing the event spill left by an earlier run that did not finish: %s", self.directory)
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        for writer in self._writers.values():
            try:
                writer.close()
            except OSError:
                pass
        self._writers.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    def add(self, source: str, table: pa.Table, stay_ids: pa.Array | np.ndarray) -> None:
        """Queue ``table`` (rows of ``source``) for the buckets of ``stay_ids`` (one id per row, no null).

        Shape:
            table: (n, c); stay_ids: (n,).
        """
        if source not in self.schemas:
            self.schemas[source] = table.schema
            self.rows[source] = np.zeros(self.n_buckets, dtype=np.int64)
            self._buffer[source], self._buffered[source] = [], 0
        ids = stay_ids.to_numpy(zero_copy_only=False) if isinstance(stay_ids, (pa.Array, pa.ChunkedArray)) else stay_ids
        if len(ids) != table.num_rows:
            raise ValueError(f"{len(ids)} stay ids for {table.num_rows} rows")
        self._buffer[source].append(table.append_column(_BUCKET, pa.array(bucket_of(ids, self.n_buckets))))
        self._buffered[source] += table.num_rows
        if self._buffered[source] >= self.buffer_rows:
            self._flush(source)

    def finish(self, source: str | None = None) -> None:
        """Write what is buffered and close the files, of ``source`` or of every source (after its last :meth:`add`).

        Finishing each source once its file is read keeps at most ``n_buckets`` files open at a time.
        """
        for name in [source] if source is not None else list(self._buffer):
            if name not in self._buffer:
                continue
            self._flush(name)
            for key in [k for k in self._writers if k[0] == name]:
                self._writers.pop(key).close()

    def _flush(self, source: str) -> None:
        parts = self._buffer[source]
        if not parts:
            return
        table = pa.concat_tables(parts)
        self._buffer[source], self._buffered[source] = [], 0
        buckets = table[_BUCKET].to_numpy()
        order = np.argsort(buckets, kind="stable")  # stable: each bucket keeps the file order of its rows
        table = table.take(pa.array(order)).drop_columns([_BUCKET])
        bounds = np.searchsorted(buckets[order], np.arange(self.n_buckets + 1))
        for bucket in range(self.n_buckets):
            lo, hi = int(bounds[bucket]), int(bounds[bucket + 1])
            if hi > lo:
                self._write(source, bucket, table.slice(lo, hi - lo))
                self.rows[source][bucket] += hi - lo

    def _write(self, source: str, bucket: int, table: pa.Table) -> None:
        try:
            writer = self._writers.get((source, bucket))
            if writer is None:
                writer = pq.ParquetWriter(self._path(source, bucket), table.schema)
                self._writers[(source, bucket)] = writer
            writer.write_table(table)
        except OSError as exc:
            free = shutil.disk_usage(self.directory).free if self.directory.exists() else 0
            full = getattr(exc, "errno", None) == errno.ENOSPC
            raise SpillError(
                getattr(exc, "errno", None) or errno.EIO,
                f"could not write the event spill under {self.directory}"
                f"{' (disk full)' if full else ''}: {exc}; {free / 1e9:.1f} GB free there. The spill holds the "
                "kept events of the paired stays (about 5 bytes per row); free space or set --spill-dir to "
                "another disk",
            ) from exc

    def _path(self, source: str, bucket: int) -> Path:
        return self.directory / f"{source}-{bucket:03d}.parquet"

    def groups(self, max_rows: int) -> list[list[int]]:
        """Consecutive buckets gathered into groups of at most ``max_rows`` rows (a larger bucket stays alone).

        Empty buckets are left out; every non-empty bucket is in exactly one group.
        """
        total = sum(self.rows.values(), np.zeros(self.n_buckets, dtype=np.int64))
        groups: list[list[int]] = []
        current: list[int] = []
        size = 0
        for bucket in range(self.n_buckets):
            n = int(total[bucket])
            if not n:
                continue
            if current and size + n > max_rows:
                groups.append(current)
                current, size = [], 0
            current.append(bucket)
            size += n
        if current:
            groups.append(current)
        return groups

    def read(self, source: str, buckets: list[int], schema: pa.Schema) -> pa.Table:
        """The rows of ``source`` in ``buckets``, bucket after bucket, each in file order.

        ``schema`` is used when ``source`` has no row in these buckets (or none at all).
        """
        schema = self.schemas.get(source, schema)
        tables = [
            pq.read_table(self._path(source, b), schema=schema)
            for b in buckets
            if source in self.rows and self.rows[source][b]
        ]
        return pa.concat_tables(tables) if tables else schema.empty_table()

    def row_count(self, buckets: list[int]) -> int:
        """Rows of every source in ``buckets``."""
        return int(sum(int(rows[buckets].sum()) for rows in self.rows.values()))

    def disk_bytes(self) -> int:
        """Bytes the spill files take on disk."""
        return sum(p.stat().st_size for p in self.directory.glob("*.parquet"))


def _ensure_open_files(needed: int) -> None:
    """Raise the soft limit of open files to ``needed`` if it is lower (up to the hard limit), else say why not."""
    try:
        import resource
    except ImportError:  # not on POSIX: nothing to check
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise OSError(errno.EMFILE, f"the event spill needs {needed} open files but the limit is {hard} "
                      "(ulimit -n): raise it, or set a larger partition_events (fewer buckets)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def stay_ids_of_labs(
    hadm_ids: pa.Array | pa.ChunkedArray, hadm_of_stay: np.ndarray, stay_ids: np.ndarray
) -> np.ndarray:
    """The ICU stay of every lab row from its admission (one ICU stay per kept admission).

    Shape:
        hadm_ids: (n,); hadm_of_stay, stay_ids: (s,) aligned; returns (n,) int64.

    Raises:
        ValueError: a row's admission is not among ``hadm_of_stay`` (the stream keeps only those).
    """
    index = pc.index_in(hadm_ids, value_set=pa.array(hadm_of_stay, type=pa.int64()))
    if index.null_count:
        raise ValueError(f"{index.null_count} lab rows of an admission without a kept ICU stay")
    return stay_ids[index.to_numpy(zero_copy_only=False)]
