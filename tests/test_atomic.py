"""One atomic writer: a destination holds the old content or the new one, never part of one."""

from __future__ import annotations

import json

import pytest
import torch

from medcam_lab.atomic import atomic_write
from medcam_lab.models.checkpoints import save_state_dict_atomic
from medcam_lab.runinfo import write_json_atomic


def test_the_new_content_replaces_the_old_and_no_temporary_file_is_left(tmp_path):
    path = tmp_path / "sub" / "a.json"
    write_json_atomic(path, {"v": 1})
    write_json_atomic(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 2}
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]


def test_an_error_while_writing_keeps_the_old_file_and_removes_the_temporary_one(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(path) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("disk full")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_a_leftover_temporary_file_of_a_killed_write_is_replaced(tmp_path):
    path = tmp_path / "w.pt"
    (tmp_path / "w.pt.tmp").write_bytes(b"PK\x03\x04 a killed write")
    save_state_dict_atomic({"w": torch.arange(3.0)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(3.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pt"]


def test_the_suffix_names_the_temporary_file(tmp_path):
    with atomic_write(tmp_path / "x.npy", suffix=".tmp.npy") as tmp:
        assert tmp.name == "x.npy.tmp.npy"
        tmp.write_bytes(b"1")
    assert (tmp_path / "x.npy").read_bytes() == b"1"
