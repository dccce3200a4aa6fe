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
import hashlib
import json
import logging
import os
import pickle
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from medcam_lab.data.grayscale import to_gray

log = logging.getLogger("medcam_lab")

CACHE_FILE = "images_uint8.npy"
PARTIAL_FILE = "images_uint8.partial.npy"  # (len(paths), size, size) uint8, row i = paths[i] once done
STATUS_FILE = "images_uint8.status.npy"  # (len(paths),) uint8: NOT_DONE / CACHED / FAILED
FAILURES_FILE = "images_uint8.failures.jsonl"  # one {"row", "path", "reason"} line per failed row
FINGERPRINT_FILE = "images_uint8.partial.json"  # the inputs the partial state belongs to
STATE_FILES = (PARTIAL_FILE, STATUS_FILE, FAILURES_FILE, FINGERPRINT_FILE)
NOT_DONE, CACHED, FAILED = 0, 1, 2
STATE_VERSION = 1
COMPACT_BYTES = 16 * 2**20  # rows copied per step of the final compaction: about this many bytes
FLUSH_EVERY = 512  # rows between flushes of the partial array and the status to disk
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def load_and_resize(path: str | os.PathLike[str], size: int) -> np.ndarray:
    """Decode one image as grayscale, resize its shorter side to ``size`` and center-crop a square.

    Shape:
        returns (size, size) uint8.
    """
    with Image.open(path) as img:
        if img.format == "JPEG":
            img.draft("L", (size, size))  # let libjpeg decode at a reduced scale (much faster on big files)
        img = to_gray(img)  # one rule for colour and 16-bit files (medcam_lab.data.grayscale)
        w, h = img.size
        scale = size / min(w, h)
        new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=2.0)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        img = img.crop((left, top, left + size, top + size))
        return np.asarray(img, dtype=np.uint8)


def resize_array(image: np.ndarray, size: int) -> np.ndarray:
    """The resize + center-crop of :func:`load_and_resize` on an image already decoded to (H, W) uint8.

    Shape:
        image: (H, W) uint8; returns (size, size) uint8.
    """
    with Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)) as img:
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

def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


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
        _pwrite_all(where, np.ascontiguousarray(img, dtype=np.uint8).data, offset + row * size * size)
    return reason


# --- the partial state on disk --------------------------------------------------------------------------

def decoder_name(decode: Callable[[Path], np.ndarray] | None) -> str:
    """The name by which the fingerprint tells decoders apart."""
    if decode is None:
        return f"{__name__}.load_and_resize"
    return f"{getattr(decode, '__module__', '?')}.{getattr(decode, '__qualname__', type(decode).__qualname__)}"


def cache_fingerprint(paths: list[Path], size: int, decode: Callable[[Path], np.ndarray] | None) -> str:
    """SHA-256 over the ordered path list, the image size and the decoder name."""
    digest = hashlib.sha256(f"image cache v{STATE_VERSION}\0{size}\0{decoder_name(decode)}\0".encode())
    for path in paths:
        digest.update(os.fsencode(str(path)) + b"\0")
    return digest.hexdigest()


def _new_npy(path: Path, shape: tuple[int, ...]) -> int:
    """Create ``path`` as a uint8 ``.npy`` of ``shape`` with its disk reserved now (so a full disk is an
    OSError here, not a SIGBUS or a short file later); the offset of its data."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    offset = int(array.offset)
    del array
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, offset + int(np.prod(shape)))
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise
        # the file system cannot preallocate (EOPNOTSUPP, EINVAL): blocks are allocated by each pwrite
    finally:
        os.close(fd)
    return offset


def _npy_layout(path: Path) -> tuple[tuple[int, ...], int]:
    """Shape and data offset of a uint8 ``.npy`` file (maps nothing into memory)."""
    array = np.load(path, mmap_mode="r")
    if array.dtype != np.uint8:
        raise ValueError(f"{path.name} is not uint8")
    layout = array.shape, int(array.offset)
    del array
    return layout


def _read_failures(path: Path) -> dict[int, dict[str, str]]:
    """Row → {path, reason}; a line cut short by a kill is ignored (its row is not marked done)."""
    failures: dict[int, dict[str, str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        failures[int(entry["row"])] = {"path": entry["path"], "reason": entry["reason"]}
    return failures


class _PartialState:
    """One build's partial file (open for reading and writing), its per-row status and its id."""

    def __init__(self, out_dir: Path, state_id: str, n: int, size: int) -> None:
        self.out_dir, self.state_id, self.size = out_dir, state_id, size
        shape, self.offset = _npy_layout(out_dir / PARTIAL_FILE)
        status_shape, _ = _npy_layout(out_dir / STATUS_FILE)
        if shape != (n, size, size) or status_shape != (n,):
            raise ValueError("its arrays do not have the shape of these images")
        self.status = np.load(out_dir / STATUS_FILE, mmap_mode="r+")  # n bytes
        self.fd = os.open(out_dir / PARTIAL_FILE, os.O_RDWR)

    def flush(self) -> None:
        os.fsync(self.fd)  # the rows reach the disk before the status that marks them done
        self.status.flush()

    def close(self) -> None:
        if self.fd >= 0:
            self.status.flush()
            del self.status
            os.close(self.fd)
            self.fd = -1


def _load_state(out_dir: Path, fingerprint: str, n: int, size: int) -> _PartialState | None:
    """The partial state of an earlier run of the same inputs, or None (a stale state is discarded)."""
    if not any((out_dir / name).exists() for name in STATE_FILES):
        return None
    try:
        stored = json.loads((out_dir / FINGERPRINT_FILE).read_text(encoding="utf-8"))
        if stored.get("fingerprint") != fingerprint:
            raise ValueError("it was written for other images, another size or another decoder")
        if not (out_dir / FAILURES_FILE).exists():
            raise ValueError(f"{FAILURES_FILE} is missing")
        state = _PartialState(out_dir, str(stored["state_id"]), n, size)
    except (OSError, ValueError, KeyError) as exc:
        log.warning("discarding the partial image cache in %s: %s", out_dir, exc)
        _remove_state(out_dir)
        return None
    done = int((state.status != NOT_DONE).sum())
    log.info("resuming the image cache in %s: %d of %d images already done", out_dir, done, n)
    return state


def _new_state(out_dir: Path, fingerprint: str, n: int, size: int) -> _PartialState:
    _remove_state(out_dir)
    _new_npy(out_dir / PARTIAL_FILE, (n, size, size))
    _new_npy(out_dir / STATUS_FILE, (n,))
    (out_dir / FAILURES_FILE).write_bytes(b"")
    state_id = uuid.uuid4().hex
    tmp = out_dir / (FINGERPRINT_FILE + ".tmp")
    tmp.write_text(json.dumps({"fingerprint": fingerprint, "state_id": state_id, "images": n, "size": size}),
                   encoding="utf-8")
    os.replace(tmp, out_dir / FINGERPRINT_FILE)  # written last: the state is valid once it exists
    return _PartialState(out_dir, state_id, n, size)


def _remove_state(out_dir: Path) -> None:
    for name in (FINGERPRINT_FILE, *STATE_FILES):  # the fingerprint first: a half-removed state is invalid
        (out_dir / name).unlink(missing_ok=True)


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


def _decode_missing_rows(state: _PartialState, paths: list[Path], decode: Callable[[Path], np.ndarray] | None,
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


def _compact(state: _PartialState) -> None:
    """Copy the cached rows, in order and at most ``COMPACT_BYTES`` at a time, to ``images_uint8.npy``,
    written under a temporary name and renamed into place."""
    out_dir, row_bytes = state.out_dir, state.size * state.size
    rows = np.flatnonzero(state.status == CACHED)
    if len(rows) == len(state.status):  # every image cached: the partial file is the cache, byte for byte
        state.close()
        os.replace(out_dir / PARTIAL_FILE, out_dir / CACHE_FILE)
        return
    tmp = out_dir / (CACHE_FILE + ".tmp.npy")
    try:
        position = _new_npy(tmp, (len(rows), state.size, state.size))
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
                    _pwrite_all(fd, data, position)
                    position += len(data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, out_dir / CACHE_FILE)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
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
        state = _load_state(out_dir, fingerprint, n, size) or _new_state(out_dir, fingerprint, n, size)
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
    failed = _read_failures(out_dir / FAILURES_FILE)
    _remove_state(out_dir)
    missing = [row for row in np.flatnonzero(~ok).tolist() if row not in failed]
    if missing:  # cannot happen: a reason is written before its row is marked failed
        raise RuntimeError(f"image cache in {out_dir}: no failure reason recorded for rows {missing[:5]}")
    return ok, [failed[row] for row in np.flatnonzero(~ok).tolist()]


def open_image_cache(directory: str | os.PathLike[str]) -> np.ndarray:
    """Memory-map the cache read-only. Shape: (N, size, size) uint8."""
    path = Path(directory) / CACHE_FILE
    if not path.exists():
        raise FileNotFoundError(f"no image cache at {path}; run `medcam-lab prepare` first")
    return np.load(path, mmap_mode="r")
