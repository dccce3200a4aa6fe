"""The demo end to end through the real command line, at a tiny size (seconds, CPU)."""

from __future__ import annotations

import json

import pytest

from medcam_lab.cli import main

TINY = ["--patients", "60", "--image-size", "32", "--pretrain-epochs", "1", "--align-epochs", "1",
        "--finetune-epochs", "2", "--lr-grid", "0.001", "--n-resamples", "50"]


@pytest.fixture(scope="module")
def demo_two_lanes(tmp_path_factory: pytest.TempPathFactory):
    from medcam_lab import demo

    out = tmp_path_factory.mktemp("demo2") / "demo"
    demo_cores, demo.default_workers = demo.default_workers, lambda: 2
    try:
        assert main(["demo", "--out", str(out), *TINY]) == 0
    finally:
        demo.default_workers = demo_cores
    return out


def _tables(report: str) -> str:
    return "\n".join(line for line in report.splitlines() if not line.startswith("Stage timings"))


def test_demo_numbers_do_not_depend_on_the_number_of_lanes(demo_two_lanes, tmp_path, monkeypatch):
    from medcam_lab import demo

    monkeypatch.setattr(demo, "default_workers", lambda: 1)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *TINY]) == 0
    one = (out / "report.md").read_text().replace(str(out), "OUT")
    two = (demo_two_lanes / "report.md").read_text().replace(str(demo_two_lanes), "OUT")
    assert _tables(one) == _tables(two)
    assert "training runs (1 side by side)" in one and "training runs (2 side by side)" in two


def test_demo_end_to_end(demo_two_lanes):
    out = demo_two_lanes
    results = json.loads((out / "results.json").read_text())
    for protocol, ds in [(p, d) for p in ("finetune", "linear_probe") for d in ("mimic", "nih")]:
        for arm in ("image_only", "medcam"):
            for metric in ("auroc", "auprc"):
                r = results["metrics"][protocol][ds][arm][metric]
                # a percentile interval need not contain the point estimate on tiny sets
                assert 0.0 <= r["low"] <= r["high"] <= 1.0 and 0.0 <= r["point"] <= 1.0
        diff = results["differences"][protocol][ds]["auroc"]
        assert -1.0 <= diff["low"] <= diff["high"] <= 1.0
    report = (out / "report.md").read_text()
    assert "MedCAM-aligned" in report and "Image-only pretrained" in report
    assert "## Linear probe" in report and "## Fine-tuned" in report
    for stage in ("config.json", "run_info.json"):
        assert (out / stage).exists() and (out / "align" / stage).exists()
    run_info = json.loads((out / "run_info.json").read_text())
    assert run_info["versions"]["torch"]
    # label efficiency: both arms at 10 % and 100 % over seeds 0 and 1; seed 0 at 100 % is the main table's run
    le = results["label_efficiency"]
    assert le["curve"]["fractions"] == [0.1, 1.0] and le["seeds"] == [0, 1]
    main_run = results["metrics"]["finetune"]["mimic"]["medcam"]["predictions"]
    assert le["runs"]["1.0"]["medcam"]["0"] == main_run
    assert set(le["runs"]["0.1"]["image_only"]) == {"0", "1"}
    for key in ("0.1", "1.0"):
        d = le["curve"]["difference"][key]["auroc"]
        assert -1.0 <= d["low"] <= d["high"] <= 1.0
    assert (out / "label_efficiency.png").stat().st_size > 0 and (out / "label_efficiency.html").exists()
    assert "## Label efficiency" in report and le["summary"] in report


def test_help_of_every_command_prints() -> None:
    """argparse %-formats help strings: a stray percent sign breaks ``--help``."""
    from medcam_lab.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for argv in ([], *([name] for name in commands)):
        with pytest.raises(SystemExit) as stopped:
            parser.parse_args([*argv, "--help"])
        assert stopped.value.code == 0, argv
