"""Files written in one step: every file that a reader must never see half-written goes through
:func:`atomic_write` (JSON, checkpoints and weights, the image cache, the cohort's ``pairs.parquet``).

The content is written to ``<name><suffix>`` in the destination's directory, flushed to disk (``fsync``),
renamed over the destination (``os.replace``, atomic on POSIX) and the directory entry is flushed too, so a
run killed at any moment leaves the old file or the new one, never part of one, and no temporary file is
left behind by an error. The temporary name is fixed, so a run killed mid-write leaves at most one, which
the next write replaces.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write", "fsync_path"]


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a file's data, or a directory's entries, to disk (a directory only where the platform allows)."""
    is_dir = os.path.isdir(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if is_dir:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not is_dir:  # some file systems refuse to fsync a directory; a file must reach the disk
            raise
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """Yield the temporary path to write; on leaving the block, it replaces ``path`` in one step.

    Args:
        path: the destination; parent directories are created.
        suffix: appended to the destination's name for the temporary file (e.g. ``.tmp.npy`` where the
            writer needs the extension).

    Raises:
        Whatever the block raises; the temporary file is removed first and ``path`` is left as it was.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + suffix)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(dest.parent)
