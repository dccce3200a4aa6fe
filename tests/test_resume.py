"""Fault tolerance: a run SIGKILLed after a checkpoint resumes to bitwise the same weights as an uninterrupted
run, and a checkpoint write that dies half-way leaves the previous checkpoint intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from medcam_lab.cli import main
from medcam_lab.training import checkpoint as checkpoint_module
from medcam_lab.training.checkpoint import load_checkpoint, save_checkpoint

ALIGN = ["align", "--encoder", "resnet_small", "--image-size", "32", "--proj-dim", "16", "--ehr-hidden", "16",
         "--k", "3", "--epochs", "2", "--batch-size", "8", "--lr", "1e-3", "--seed", "5", "--device", "cpu"]
FINETUNE = ["finetune", "--encoder", "resnet_small", "--image-size", "32", "--lr-grid", "1e-3", "--epochs", "2",
            "--batch-size", "16", "--eval-start", "1", "--eval-every", "1", "--patience", "5", "--device", "cpu"]


def _kill_after_checkpoint(argv: list[str], checkpoint: Path, timeout: float = 120.0) -> None:
    """Start the command in a subprocess and SIGKILL it as soon as ``checkpoint`` exists."""
    # Same intra-op thread count as this process: float reductions, hence bits, depend on it.
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.Popen([sys.executable, "-m", "medcam_lab.cli", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while not checkpoint.exists():
            if proc.poll() is not None:
                pytest.fail(f"the run ended (code {proc.returncode}) before writing {checkpoint}")
            if time.monotonic() > deadline:
                pytest.fail(f"no checkpoint at {checkpoint} after {timeout} s")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed: kill earlier"


def _assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key  # bitwise: same dtype, shape and every value


def test_alignment_killed_after_a_checkpoint_resumes_to_the_same_weights(tiny_cohort, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert main([*ALIGN, "--cohort", str(tiny_cohort), "--out", str(straight)]) == 0
    argv = [*ALIGN, "--cohort", str(tiny_cohort), "--out", str(killed)]
    _kill_after_checkpoint(argv, killed / "checkpoint.pt")
    assert load_checkpoint(killed / "checkpoint.pt")["epoch"] < 2
    assert not (killed / "adapted_backbone.pt").exists()
    assert main(argv) == 0  # the same command again resumes
    _assert_same_tensors(torch.load(straight / "adapted_backbone.pt", weights_only=True),
                         torch.load(killed / "adapted_backbone.pt", weights_only=True))
    _assert_same_tensors(load_checkpoint(straight / "checkpoint.pt")["model"],
                         load_checkpoint(killed / "checkpoint.pt")["model"])


def test_finetuning_killed_after_a_checkpoint_resumes_to_the_same_weights(tiny_cohort, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert main([*FINETUNE, "--data", str(tiny_cohort), "--out", str(straight)]) == 0
    argv = [*FINETUNE, "--data", str(tiny_cohort), "--out", str(killed)]
    _kill_after_checkpoint(argv, killed / "lr_0" / "checkpoint.pt")
    assert not (killed / "predictions_test.parquet").exists()
    assert main(argv) == 0
    for name in ("checkpoint.pt",):
        _assert_same_tensors(load_checkpoint(straight / "lr_0" / name)["model"],
                             load_checkpoint(killed / "lr_0" / name)["model"])
    _assert_same_tensors(torch.load(straight / "lr_0" / "best_model.pt", weights_only=True),
                         torch.load(killed / "lr_0" / "best_model.pt", weights_only=True))
    pd.testing.assert_frame_equal(pd.read_parquet(straight / "predictions_test.parquet"),
                                  pd.read_parquet(killed / "predictions_test.parquet"), check_exact=True)


def test_finetuning_checkpoints_by_time_and_resumes_from_an_older_checkpoint_to_the_same_result(
        tiny_cohort, tmp_path, monkeypatch):
    """Checkpoints come after the first epoch, then every CHECKPOINT_SECONDS, and at the end; a run killed
    between two of them replays the epochs since the older one and ends identical."""
    import shutil

    from medcam_lab.training import finetune as finetune_module

    monkeypatch.setattr(finetune_module, "CHECKPOINT_SECONDS", 1e9)
    saved, real_save = [], finetune_module.save_checkpoint

    def spy(state, path):
        real_save(state, path)
        saved.append(state["epoch"])
        if state["epoch"] == 1:  # what a run killed during epochs 2–4 leaves behind
            shutil.copytree(Path(path).parent, tmp_path / "after_epoch_1")

    monkeypatch.setattr(finetune_module, "save_checkpoint", spy)
    argv = [*FINETUNE, "--data", str(tiny_cohort), "--epochs", "4"]
    assert main([*argv, "--out", str(tmp_path / "straight")]) == 0
    assert saved == [1, 4]
    shutil.copytree(tmp_path / "after_epoch_1", tmp_path / "killed" / "lr_0")
    assert main([*argv, "--out", str(tmp_path / "killed")]) == 0
    assert saved == [1, 4, 2, 4]  # the resumed run: after its first epoch (2) and at its end
    for run in ("straight", "killed"):
        assert len(json.loads((tmp_path / run / "lr_0" / "history.json").read_text())) == 4
    _assert_same_tensors(load_checkpoint(tmp_path / "straight" / "lr_0" / "checkpoint.pt")["model"],
                         load_checkpoint(tmp_path / "killed" / "lr_0" / "checkpoint.pt")["model"])
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "straight" / "predictions_test.parquet"),
                                  pd.read_parquet(tmp_path / "killed" / "predictions_test.parquet"), check_exact=True)


def test_a_checkpoint_write_that_dies_half_way_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"epoch": 1, "w": torch.arange(4.0)}, path)

    def dies_half_way(obj, handle):
        handle.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(checkpoint_module.torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"epoch": 2, "w": torch.zeros(4)}, path)
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.arange(4.0))
    save_checkpoint({"epoch": 2, "w": torch.zeros(4)}, path)  # the leftover temporary file is overwritten
    assert load_checkpoint(path)["epoch"] == 2 and not (tmp_path / "checkpoint.pt.tmp").exists()
