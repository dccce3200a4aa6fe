"""The streaming, resumable image cache: the same bytes as decoding everything in memory, a SIGKILL resumed
to an identical file, a stale partial state discarded, corrupt files skipped and counted, a full disk."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medcam_lab.prepare import image_cache
from medcam_lab.prepare.image_cache import build_image_cache, load_and_resize

REPO = Path(__file__).resolve().parents[1]
REAL_PNGS = sorted((REPO / "tests" / "data" / "real" / "cxr").glob("000*.png"))  # real NIH radiographs
SIZE = 24
STATE = ("images_uint8.partial.npy", "images_uint8.status.npy", "images_uint8.failures.jsonl",
         "images_uint8.partial.json")


def write_images(directory: Path, n: int, seed: int = 0) -> list[Path]:
    """Small grayscale JPEGs and PNGs of varied shapes (portrait and landscape), one RGB JPEG in ten."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        h, w = (int(x) for x in rng.integers(30, 70, size=2))
        pixels = rng.integers(0, 256, size=(h, w, 3) if i % 10 == 3 else (h, w), dtype=np.uint8)
        path = directory / f"img_{i:03d}.{'png' if i % 3 == 1 else 'jpg'}"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def truncated_jpeg(directory: Path) -> Path:
    """A real full JPEG cut in the middle of its scan data, as a copy interrupted mid-file leaves it."""
    source = directory / "whole.jpg"
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (90, 70), dtype=np.uint8)).save(source, quality=95)
    path = directory / "truncated.jpg"
    path.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    return path


def reference_cache(paths: list[Path], size: int, out: Path) -> tuple[list[bool], bytes]:
    """The former in-memory algorithm written out: decode each, stack the readable ones, save the array."""
    decoded = []
    for path in paths:
        try:
            decoded.append(load_and_resize(path, size))
        except (OSError, ValueError, SyntaxError):  # missing, truncated or not an image
            decoded.append(None)
    np.save(out, np.stack([d for d in decoded if d is not None]).astype(np.uint8))
    return [d is not None for d in decoded], out.read_bytes()


def cache_bytes(directory: Path) -> bytes:
    return (directory / "images_uint8.npy").read_bytes()


def test_truncated_jpeg_really_fails_to_decode(tmp_path):
    with pytest.raises(OSError), Image.open(truncated_jpeg(tmp_path)) as img:
        img.load()


@pytest.mark.parametrize("parallel", ["threads", "processes"])
def test_same_bytes_as_the_in_memory_reference(tmp_path, parallel):
    paths = write_images(tmp_path / "img", 23) + REAL_PNGS
    want_ok, want = reference_cache(paths, SIZE, tmp_path / "reference.npy")
    ok, failures = build_image_cache(paths, tmp_path / "cache", SIZE, num_threads=2, parallel=parallel)
    assert ok.tolist() == want_ok and failures == []
    assert cache_bytes(tmp_path / "cache") == want
    assert sorted(os.listdir(tmp_path / "cache")) == ["images_uint8.npy"]  # the partial state is removed


def test_corrupt_files_in_the_middle_are_counted_skips(tmp_path):
    paths = write_images(tmp_path / "img", 12)
    garbage = tmp_path / "img" / "not_an_image.png"
    garbage.write_bytes(b"this is no PNG")
    missing = tmp_path / "img" / "missing.jpg"
    paths = paths[:4] + [truncated_jpeg(tmp_path / "img")] + paths[4:8] + [garbage, missing] + paths[8:]
    want_ok, want = reference_cache(paths, SIZE, tmp_path / "reference.npy")
    ok, failures = build_image_cache(paths, tmp_path / "cache", SIZE, num_threads=2)
    assert ok.tolist() == want_ok and int((~ok).sum()) == 3
    assert [f["path"] for f in failures] == [str(paths[4]), str(garbage), str(missing)]
    assert failures[0]["reason"].startswith("unreadable image: OSError")
    assert failures[1]["reason"].startswith("unreadable image: UnidentifiedImageError")
    assert failures[2]["reason"] == "file missing"
    assert cache_bytes(tmp_path / "cache") == want


KILLED_RUN = """
import json, os, signal, sys
from pathlib import Path
from medcam_lab.prepare.image_cache import build_image_cache

paths, out, size, kill_at = json.loads(sys.argv[1])

def on_row(done):
    if done == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

build_image_cache([Path(p) for p in paths], out, size, num_threads=2, on_row=on_row)
"""


def test_sigkill_resumes_to_an_identical_cache(tmp_path):
    paths = write_images(tmp_path / "img", 40)
    paths[5] = truncated_jpeg(tmp_path / "img")  # one failure before the kill, one after
    paths[30] = tmp_path / "img" / "missing.png"
    out = tmp_path / "resumed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    args = json.dumps([[str(p) for p in paths], str(out), SIZE, 17])
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, args], env=env, capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert not (out / "images_uint8.npy").exists()
    status = np.load(out / "images_uint8.status.npy")
    assert int((status != 0).sum()) == 17 and status[:17].all()  # rows done in order up to the kill

    rows_seen: list[int] = []
    ok, failures = build_image_cache(paths, out, SIZE, num_threads=2, on_row=rows_seen.append)
    assert rows_seen == list(range(18, 41))  # continued after the 17 rows done, none decoded twice
    fresh_ok, fresh_failures = build_image_cache(paths, tmp_path / "fresh", SIZE, num_threads=2)
    assert cache_bytes(out) == cache_bytes(tmp_path / "fresh")
    assert ok.tolist() == fresh_ok.tolist() and failures == fresh_failures
    assert [f["path"] for f in failures] == [str(paths[5]), str(paths[30])]
    assert sorted(os.listdir(out)) == ["images_uint8.npy"]


class Interrupted(Exception):
    pass


def interrupt_after(rows: int):
    def on_row(done: int) -> None:
        if done == rows:
            raise Interrupted
    return on_row


@pytest.mark.parametrize("change", ["size", "paths", "decoder"])
def test_partial_state_of_other_inputs_is_discarded(tmp_path, caplog, change):
    paths = write_images(tmp_path / "img", 10)
    out = tmp_path / "cache"
    with pytest.raises(Interrupted):
        build_image_cache(paths, out, SIZE, num_threads=1, on_row=interrupt_after(6))
    assert all((out / name).exists() for name in STATE)
    size, new_paths, decode = SIZE, paths, None
    if change == "size":
        size = SIZE + 8
    elif change == "paths":
        new_paths = paths[::-1]
    else:
        def decode(path: Path) -> np.ndarray:
            with Image.open(path) as img:
                return np.asarray(img.convert("L"))

    rows_seen: list[int] = []
    with caplog.at_level(logging.WARNING, logger="medcam_lab"):
        ok, failures = build_image_cache(new_paths, out, size, num_threads=1, decode=decode,
                                         on_row=rows_seen.append)
    assert "discarding the partial image cache" in caplog.text and str(out) in caplog.text
    assert rows_seen == list(range(1, 11))  # every row decoded again
    assert ok.all() and failures == []
    build_image_cache(new_paths, tmp_path / "fresh", size, num_threads=1, decode=decode)
    assert cache_bytes(out) == cache_bytes(tmp_path / "fresh")


def test_unpicklable_decoder_with_processes_runs_on_threads(tmp_path):
    paths = write_images(tmp_path / "img", 6)
    calls = []

    def decode(path: Path) -> np.ndarray:  # a closure: cannot be pickled to a worker process
        calls.append(path)
        with Image.open(path) as img:
            return np.asarray(img.convert("L"))

    ok, failures = build_image_cache(paths, tmp_path / "cache", SIZE, num_threads=2, decode=decode,
                                     parallel="processes")
    assert ok.all() and failures == [] and sorted(calls) == sorted(paths)
    cache = np.load(tmp_path / "cache" / "images_uint8.npy")
    np.testing.assert_array_equal(cache[2], image_cache.resize_array(decode(paths[2]), SIZE))


@pytest.mark.parametrize("full_at", ["partial", "final"])
def test_full_disk_is_a_clear_error_and_leaves_no_cache_file(tmp_path, monkeypatch, full_at):
    paths = write_images(tmp_path / "img", 8)
    paths[3] = tmp_path / "img" / "missing.jpg"  # a skipped row: the cached rows are copied to a new file
    out = tmp_path / "cache"
    real_fallocate = os.posix_fallocate

    def fallocate(fd: int, offset: int, length: int) -> None:
        name = os.readlink(f"/proc/self/fd/{fd}")
        if name.endswith("images_uint8.npy.tmp.npy" if full_at == "final" else "images_uint8.partial.npy"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fallocate(fd, offset, length)

    monkeypatch.setattr(image_cache.os, "posix_fallocate", fallocate)
    with pytest.raises(OSError, match="no space left") as caught:
        build_image_cache(paths, out, SIZE, num_threads=2)
    assert caught.value.errno == errno.ENOSPC
    assert str(out) in str(caught.value) and "resume" in str(caught.value)
    assert not (out / "images_uint8.npy").exists() and not (out / "images_uint8.npy.tmp.npy").exists()
    monkeypatch.undo()

    rows_seen: list[int] = []
    ok, failures = build_image_cache(paths, out, SIZE, num_threads=2, on_row=rows_seen.append)
    if full_at == "final":  # every row was decoded before the disk filled up: nothing is decoded again
        assert rows_seen == []
    assert [f["path"] for f in failures] == [str(paths[3])]
    want_ok, want = reference_cache(paths, SIZE, tmp_path / "reference.npy")
    assert ok.tolist() == want_ok and cache_bytes(out) == want


def test_full_disk_while_writing_rows_keeps_the_rows_done(tmp_path, monkeypatch):
    """A file system that cannot preallocate fills up at a row write: the rows before it resume."""
    paths = write_images(tmp_path / "img", 12)
    out = tmp_path / "cache"
    real_pwrite, writes = os.pwrite, []

    def pwrite(fd: int, data, offset: int) -> int:
        writes.append(offset)
        if len(writes) > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)

    def cannot_preallocate(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(image_cache.os, "posix_fallocate", cannot_preallocate)
    monkeypatch.setattr(image_cache.os, "pwrite", pwrite)
    with pytest.raises(OSError, match="no space left") as caught:
        build_image_cache(paths, out, SIZE, num_threads=1)
    assert str(out) in str(caught.value) and not (out / "images_uint8.npy").exists()
    monkeypatch.undo()

    rows_seen: list[int] = []
    ok, failures = build_image_cache(paths, out, SIZE, num_threads=1, on_row=rows_seen.append)
    assert rows_seen == list(range(6, 13))  # the 5 rows written before the disk filled up are kept
    assert ok.all() and failures == []
    assert cache_bytes(out) == reference_cache(paths, SIZE, tmp_path / "reference.npy")[1]
