"""A one-time cache of pre-resized 8-bit images in one memory-mappable ``.npy`` array.

Decoding a full-size chest X-ray JPEG costs ~0.1 s per core, far too slow to feed training. ``prepare``
decodes every image once (resize the shorter side to ``size``, center-crop ``size × size``, grayscale
uint8) into ``images_uint8.npy`` of shape (N, size, size); a training batch then costs a fancy-index copy
and a crop. Unreadable or missing files are reported (path and reason) and left out, never silently.

The build streams: each decoded image is written (``pwrite``) straight into its row of an on-disk partial
file with one row per input path, and a one-byte status per row records whether it is done (cached or
failed, with the reason in a failures file). Memory therefore stays bounded whatever the number of images,
and the disk of the partial file is reserved up front, so a full disk is an error at the start, not a crash
half-way. At the end the cached rows are copied, 16 MB at a time, into ``images_uint8.npy`` (written under a
temporary name, then renamed; when every image was cached the partial file is renamed instead) and the
partial state is removed; while both exist the build needs up to twice the cache's size on disk. A run that
is killed leaves the partial state behind; the next run with the same paths, size and decoder continues
from the rows already done and writes the same bytes as an uninterrupted run. A partial state left by other
inputs is detected by its fingerprint (paths, size, decoder name; not the files' contents) and discarded.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import pickle
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from medcam_lab.atomic import atomic_write, fsync_path
from medcam_lab.data.image_cache import CACHE_FILE
from medcam_lab.datasets.grayscale import to_gray
from medcam_lab.prepare.image_cache_state import (
    CACHED,
    FAILED,
    FAILURES_FILE,
    NO_SPACE,
    NOT_DONE,
    PARTIAL_FILE,
    PartialState,
    cache_fingerprint,
    decoder_name,
    load_state,
    new_npy,
    new_state,
    pwrite_all,
    read_failures,
    remove_state,
)

log = logging.getLogger("medcam_lab")

COMPACT_BYTES = 16 * 2**20  # rows copied per step of the final compaction: about this many bytes
FLUSH_EVERY = 512  # rows between flushes of the partial array and the status to disk


def load_and_resize(path: str | os.PathLike[str], size: int) -> np.ndarray:
    """Decode one image as grayscale, resize its shorter side to ``size`` and center-crop a square.

    Shape:
        returns (size, size) uint8.
    """
    with Image.open(path) as img:
        if img.format == "JPEG":
            img.draft("L", (size, size))  # let libjpeg decode at a reduced scale (much faster on big files)
        return _shorter_side_and_center_crop(to_gray(img), size)  # to_gray: one rule for colour and 16-bit


def resize_array(image: np.ndarray, size: int) -> np.ndarray:
    """The resize + center-crop of :func:`load_and_resize` on an image already decoded to (H, W) uint8.

    Shape:
        image: (H, W) uint8; returns (size, size) uint8.
    """
    with Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)) as img:
        return _shorter_side_and_center_crop(img, size)


def _shorter_side_and_center_crop(img: Image.Image, size: int) -> np.ndarray:
    """Bilinear resize of the shorter side to ``size``, then the centred ``size × size`` square.

    Shape:
        returns (size, size) uint8.
    """
    w, h = img.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=2.0)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def _try_load(path: Path, size: int, decode: Callable[[Path], np.ndarray] | None = None
              ) -> tuple[np.ndarray | None, str | None]:
    if not path.exists():
        return None, "file missing"
    try:
        if decode is not None:
            return resize_array(decode(path), size), None
        return load_and_resize(path, size), None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        return None, f"unreadable image: {type(exc).__name__}: {exc}"


# --- writing rows to disk (also in a worker thread or process) ------------------------------------------

_worker_files: dict[tuple[str, str], int] = {}  # in a worker process: (partial file, state id) → open fd


def _decode_row(target: tuple[int | str, int, str], row: int, path: Path, size: int,
                decode: Callable[[Path], np.ndarray] | None) -> str | None:
    """Decode ``path`` into row ``row`` of the partial file; the failure reason, or None once written.

    ``target``: (open fd, offset of row 0, state id) on threads; (file path, offset, state id) in a worker
    process, which opens the file once. Rows are written with ``pwrite``, never memory-mapped, so the
    written pages are the kernel's page cache and not this process's resident memory.
    """
    img, reason = _try_load(path, size, decode)
    if img is not None:
        where, offset, state_id = target
        if isinstance(where, str):
            if (where, state_id) not in _worker_files:
                for fd in _worker_files.values():  # a file of an earlier build is never written again
                    os.close(fd)
                _worker_files.clear()
                _worker_files[(where, state_id)] = os.open(where, os.O_WRONLY)
            where = _worker_files[(where, state_id)]
        pwrite_all(where, np.ascontiguousarray(img, dtype=np.uint8).data, offset + row * size * size)
    return reason


# --- parallel decoding ----------------------------------------------------------------------------------

def default_workers() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports it, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _pool(decode: Callable[[Path], np.ndarray] | None, workers: int, parallel: str) -> tuple[Executor, bool]:
    """The executor, and whether it runs worker processes."""
    if parallel not in ("auto", "threads", "processes"):
        raise ValueError(f"parallel must be 'auto', 'threads' or 'processes', not {parallel!r}")
    use_processes = parallel == "processes"
    if use_processes and decode is not None:
        try:
            pickle.dumps(decode)
        except (pickle.PicklingError, AttributeError, TypeError):
            log.info("the image decoder %s cannot be sent to worker processes; decoding on threads",
                     decoder_name(decode))
            use_processes = False
    if use_processes:
        return ProcessPoolExecutor(max_workers=workers), True
    return ThreadPoolExecutor(max_workers=workers), False


def _decoded_in_order(pool: Executor, target: tuple[int | str, int, str], todo: np.ndarray, paths: list[Path],
                      size: int, decode: Callable[[Path], np.ndarray] | None, window: int
                      ) -> Iterator[tuple[int, str | None]]:
    """(row, failure reason or None) for each row of ``todo`` in order, at most ``window`` rows in flight."""
    pending: deque[tuple[int, Future]] = deque()
    for row in map(int, todo):  # not todo.tolist(): one Python int per image at a time
        pending.append((row, pool.submit(_decode_row, target, row, paths[row], size, decode)))
        if len(pending) >= window:
            done_row, future = pending.popleft()
            yield done_row, future.result()
    while pending:
        done_row, future = pending.popleft()
        yield done_row, future.result()


def _decode_missing_rows(state: PartialState, paths: list[Path], decode: Callable[[Path], np.ndarray] | None,
                         workers: int, parallel: str, desc: str, on_row: Callable[[int], None] | None) -> None:
    n = len(paths)
    todo = np.flatnonzero(state.status == NOT_DONE)
    done = n - len(todo)
    pool, in_processes = _pool(decode, workers, parallel)
    where = str(state.out_dir / PARTIAL_FILE) if in_processes else state.fd
    target = (where, state.offset, state.state_id)
    bar = tqdm(total=n, initial=done, desc=desc, mininterval=1.0, unit="img", smoothing=0.05)
    with bar, pool, open(state.out_dir / FAILURES_FILE, "a", encoding="utf-8") as failures_file:
        for row, reason in _decoded_in_order(pool, target, todo, paths, state.size, decode, 4 * workers):
            if reason is not None:  # the reason reaches the file before the row is marked done
                failures_file.write(json.dumps({"row": row, "path": str(paths[row]), "reason": reason}) + "\n")
                failures_file.flush()
            state.status[row] = CACHED if reason is None else FAILED
            done += 1
            bar.update(1)
            if done % FLUSH_EVERY == 0:
                state.flush()
            if on_row is not None:
                on_row(done)
    state.flush()


def _compact(state: PartialState) -> None:
    """Copy the cached rows, in order and at most ``COMPACT_BYTES`` at a time, to ``images_uint8.npy``,
    written under a temporary name and renamed into place."""
    out_dir, row_bytes = state.out_dir, state.size * state.size
    rows = np.flatnonzero(state.status == CACHED)
    if len(rows) == len(state.status):  # every image cached: the partial file is the cache, byte for byte
        state.close()
        os.replace(out_dir / PARTIAL_FILE, out_dir / CACHE_FILE)  # the rows were fsynced as they were written
        fsync_path(out_dir)
        return
    with atomic_write(out_dir / CACHE_FILE, suffix=".tmp.npy") as tmp:
        position = new_npy(tmp, (len(rows), state.size, state.size))
        fd = os.open(tmp, os.O_WRONLY)
        try:
            per_step = max(1, COMPACT_BYTES // max(1, row_bytes))
            runs = np.split(rows, np.flatnonzero(np.diff(rows) != 1) + 1)  # consecutive cached rows
            for run in runs:
                for start in range(0, len(run), per_step):
                    first, count = int(run[start]), len(run[start:start + per_step])
                    data = os.pread(state.fd, count * row_bytes, state.offset + first * row_bytes)
                    if len(data) != count * row_bytes:
                        raise OSError(errno.EIO, f"{PARTIAL_FILE} is shorter than its header says")
                    pwrite_all(fd, data, position)
                    position += len(data)
        finally:
            os.close(fd)
    state.close()


def build_image_cache(
    paths: list[Path], out_dir: str | os.PathLike[str], size: int, num_threads: int | None = None,
    desc: str = "image cache", decode: Callable[[Path], np.ndarray] | None = None, *, parallel: str = "auto",
    on_row: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, list[dict[str, str]]]:
    """Decode ``paths`` into ``out_dir/images_uint8.npy``, streaming and resumable (see the module docstring).

    ``decode`` (optional): a reader path → (H, W) uint8 used instead of PIL (e.g. the DICOM recipe of
    :mod:`medcam_lab.datasets.dicom`); a ``ValueError``/``OSError`` it raises is a reported failure.
    ``num_threads``: decoding workers, default every core this process may use (:func:`default_workers`).
    ``parallel``: ``threads``, ``processes`` or ``auto`` (= threads: Pillow releases the GIL while it decodes
    and resizes, see ``benchmarks/RESULTS.md``); with ``processes`` a ``decode`` that cannot be pickled (a
    lambda, a closure) runs on threads instead. ``on_row``: called with the number of rows done after each.

    Returns:
        ok: boolean mask over ``paths`` (True = cached); row i of the cache is the i-th True entry.
        failures: one dict per skipped file with ``path`` and ``reason``, in the order of ``paths``.

    Raises:
        OSError (errno ENOSPC): the disk of ``out_dir`` is full; no ``images_uint8.npy`` is written, the images
            decoded so far are kept in the partial state and a rerun with the same inputs resumes from them.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [p if isinstance(p, Path) else Path(p) for p in paths]
    n = len(paths)
    workers = max(1, num_threads) if num_threads else default_workers()
    fingerprint = cache_fingerprint(paths, size, decode)
    try:
        state = load_state(out_dir, fingerprint, n, size) or new_state(out_dir, fingerprint, n, size)
        try:
            _decode_missing_rows(state, paths, decode, workers, parallel, desc, on_row)
            ok = np.array(state.status == CACHED)
            _compact(state)
        finally:
            state.close()
    except OSError as exc:
        if exc.errno not in NO_SPACE:
            raise
        raise OSError(exc.errno, f"no space left on the disk of {out_dir} while building the image cache "
                      f"({exc.strerror or exc}); no {CACHE_FILE} was written. The images decoded so far are kept "
                      f"in {out_dir / PARTIAL_FILE}: free some space and rerun with the same images to resume"
                      ) from exc
    failed = read_failures(out_dir / FAILURES_FILE)
    remove_state(out_dir)
    missing = [row for row in np.flatnonzero(~ok).tolist() if row not in failed]
    if missing:  # cannot happen: a reason is written before its row is marked failed
        raise RuntimeError(f"image cache in {out_dir}: no failure reason recorded for rows {missing[:5]}")
    return ok, [failed[row] for row in np.flatnonzero(~ok).tolist()]
