"""The on-disk state of an image cache build in progress, by which a killed build resumes.

In the cache's directory, next to where ``images_uint8.npy`` will be:

- ``images_uint8.partial.npy``: (len(paths), size, size) uint8, row i holds paths[i] once it is done;
- ``images_uint8.status.npy``: (len(paths),) uint8, per row ``NOT_DONE``, ``CACHED`` or ``FAILED``;
- ``images_uint8.failures.jsonl``: one ``{"row", "path", "reason"}`` line per failed row, written before the
  row's status;
- ``images_uint8.partial.json``: the fingerprint of the inputs (paths, size, decoder name) and an id of the
  state, written last: a state is valid once it exists.

Used by :func:`medcam_lab.prepare.image_cache.build_image_cache`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from medcam_lab.atomic import atomic_write

log = logging.getLogger("medcam_lab")

PARTIAL_FILE = "images_uint8.partial.npy"  # (len(paths), size, size) uint8, row i = paths[i] once done
STATUS_FILE = "images_uint8.status.npy"  # (len(paths),) uint8: NOT_DONE / CACHED / FAILED
FAILURES_FILE = "images_uint8.failures.jsonl"  # one {"row", "path", "reason"} line per failed row
FINGERPRINT_FILE = "images_uint8.partial.json"  # the inputs the partial state belongs to
STATE_FILES = (PARTIAL_FILE, STATUS_FILE, FAILURES_FILE, FINGERPRINT_FILE)
NOT_DONE, CACHED, FAILED = 0, 1, 2
STATE_VERSION = 1
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write all of ``data`` at ``offset`` of ``fd`` (``os.pwrite`` may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def decoder_name(decode: Callable[[Path], np.ndarray] | None) -> str:
    """The name by which the fingerprint tells decoders apart."""
    if decode is None:
        return "medcam_lab.data.image_cache.load_and_resize"  # its name before the move: old states still resume
    return f"{getattr(decode, '__module__', '?')}.{getattr(decode, '__qualname__', type(decode).__qualname__)}"


def cache_fingerprint(paths: list[Path], size: int, decode: Callable[[Path], np.ndarray] | None) -> str:
    """SHA-256 over the ordered path list, the image size and the decoder name."""
    digest = hashlib.sha256(f"image cache v{STATE_VERSION}\0{size}\0{decoder_name(decode)}\0".encode())
    for path in paths:
        digest.update(os.fsencode(str(path)) + b"\0")
    return digest.hexdigest()


def new_npy(path: Path, shape: tuple[int, ...]) -> int:
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


def npy_layout(path: Path) -> tuple[tuple[int, ...], int]:
    """Shape and data offset of a uint8 ``.npy`` file (maps nothing into memory)."""
    array = np.load(path, mmap_mode="r")
    if array.dtype != np.uint8:
        raise ValueError(f"{path.name} is not uint8")
    layout = array.shape, int(array.offset)
    del array
    return layout


def read_failures(path: Path) -> dict[int, dict[str, str]]:
    """Row → {path, reason}; a line cut short by a kill is ignored (its row is not marked done)."""
    failures: dict[int, dict[str, str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        failures[int(entry["row"])] = {"path": entry["path"], "reason": entry["reason"]}
    return failures


class PartialState:
    """One build's partial file (open for reading and writing), its per-row status and its id."""

    def __init__(self, out_dir: Path, state_id: str, n: int, size: int) -> None:
        self.out_dir, self.state_id, self.size = out_dir, state_id, size
        shape, self.offset = npy_layout(out_dir / PARTIAL_FILE)
        status_shape, _ = npy_layout(out_dir / STATUS_FILE)
        if shape != (n, size, size) or status_shape != (n,):
            raise ValueError("its arrays do not have the shape of these images")
        self.status = np.load(out_dir / STATUS_FILE, mmap_mode="r+")  # n bytes
        self.fd = os.open(out_dir / PARTIAL_FILE, os.O_RDWR)

    def flush(self) -> None:
        """Make the written rows durable, then their status (a row is marked done only once it is on disk)."""
        os.fsync(self.fd)  # the rows reach the disk before the status that marks them done
        self.status.flush()

    def close(self) -> None:
        """Flush the status and close the partial file; a second call does nothing."""
        if self.fd >= 0:
            self.status.flush()
            del self.status
            os.close(self.fd)
            self.fd = -1


def load_state(out_dir: Path, fingerprint: str, n: int, size: int) -> PartialState | None:
    """The partial state of an earlier run of the same inputs, or None (a stale state is discarded)."""
    if not any((out_dir / name).exists() for name in STATE_FILES):
        return None
    try:
        stored = json.loads((out_dir / FINGERPRINT_FILE).read_text(encoding="utf-8"))
        if stored.get("fingerprint") != fingerprint:
            raise ValueError("it was written for other images, another size or another decoder")
        if not (out_dir / FAILURES_FILE).exists():
            raise ValueError(f"{FAILURES_FILE} is missing")
        state = PartialState(out_dir, str(stored["state_id"]), n, size)
    except (OSError, ValueError, KeyError) as exc:
        log.warning("discarding the partial image cache in %s: %s", out_dir, exc)
        remove_state(out_dir)
        return None
    done = int((state.status != NOT_DONE).sum())
    log.info("resuming the image cache in %s: %d of %d images already done", out_dir, done, n)
    return state


def new_state(out_dir: Path, fingerprint: str, n: int, size: int) -> PartialState:
    """Start a fresh state for ``n`` images of ``size``: any earlier state is removed, the files are created with
    their disk reserved, and the fingerprint is written last.
    """
    remove_state(out_dir)
    new_npy(out_dir / PARTIAL_FILE, (n, size, size))
    new_npy(out_dir / STATUS_FILE, (n,))
    (out_dir / FAILURES_FILE).write_bytes(b"")
    state_id = uuid.uuid4().hex
    with atomic_write(out_dir / FINGERPRINT_FILE) as tmp:  # written last: the state is valid once it exists
        tmp.write_text(json.dumps({"fingerprint": fingerprint, "state_id": state_id, "images": n, "size": size}),
                       encoding="utf-8")
    return PartialState(out_dir, state_id, n, size)


def remove_state(out_dir: Path) -> None:
    """Remove the state files (the fingerprint first, so a half-removed state is invalid)."""
    for name in (FINGERPRINT_FILE, *STATE_FILES):  # the fingerprint first: a half-removed state is invalid
        (out_dir / name).unlink(missing_ok=True)
