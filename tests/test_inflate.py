"""The threaded gzip reader: exact content, errors raised by the consumer's read, no hang on early close."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import pytest

from medcam_lab.datasets.inflate import open_gzip_threaded


def _payload(n_bytes: int) -> bytes:
    rng = np.random.default_rng(0)
    digits = rng.integers(0, 10, n_bytes, dtype=np.uint8) + ord("0")
    digits[rng.random(n_bytes) < 0.1] = ord("\n")
    return digits.tobytes()


def test_content_equals_gzip_module_across_members_and_odd_reads(tmp_path: Path) -> None:
    first, second = _payload(3_000_001), _payload(777)
    path = tmp_path / "x.csv.gz"
    path.write_bytes(gzip.compress(first) + gzip.compress(second))  # two gzip members, like concatenated files
    with open_gzip_threaded(path, block_size=4096, queue_blocks=3) as stream:
        parts = [stream.read(10_007)]
        while chunk := stream.read(65_537):
            parts.append(chunk)
    assert b"".join(parts) == first + second
    assert all(len(p) in (10_007, 65_537) for p in parts[:-1])  # full reads until the last


def test_truncated_file_raises_on_read(tmp_path: Path) -> None:
    whole = gzip.compress(_payload(2_000_000))
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(EOFError), open_gzip_threaded(path, block_size=8192) as stream:
        while stream.read(1 << 16):
            pass


def test_corrupt_data_raises_on_read(tmp_path: Path) -> None:
    whole = bytearray(gzip.compress(_payload(500_000)))
    whole[len(whole) // 2 : len(whole) // 2 + 64] = bytes(64)  # zeroed bytes inside the deflate stream
    path = tmp_path / "bad.csv.gz"
    path.write_bytes(bytes(whole))
    with pytest.raises((OSError, EOFError, zlib.error)), open_gzip_threaded(path, block_size=8192) as stream:
        while stream.read(1 << 16):
            pass


def test_closing_before_the_end_stops_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "big.csv.gz"
    path.write_bytes(gzip.compress(_payload(4_000_000)))
    stream = open_gzip_threaded(path, block_size=1024, queue_blocks=2)
    assert len(stream.read(100)) == 100
    raw = stream.raw
    stream.close()
    assert raw.closed and not raw._thread.is_alive()
