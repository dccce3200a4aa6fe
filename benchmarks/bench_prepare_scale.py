"""``prepare`` at three cohort sizes: peak memory and wall time of the partitioned pipeline, side by side
with the same pipeline holding every event in one partition (the former in-memory behaviour), and the
extraction with and without the spill to disk.

Generates MIMIC-shaped cohorts (``medcam_lab.synth``) at ``--patients`` sizes (default 100, 400, 1600: 4×
apart) with the bedside vitals charted ``--vitals-per-hour`` times an hour (13: about 6,000 chart rows per ICU
stay, MIMIC-IV's density), small 64-px images (the images are not what is measured here: see
``bench_image_cache.py``), cached under ``--workdir``. Then, each run in its own child process that reports
its wall time and peak RSS (``VmHWM`` of ``/proc/self/status``):

1. **partitioned**: ``prepare`` as shipped (``partition_events`` = ``--partition-events``);
2. **one partition**: ``prepare`` with every event in one partition (``partition_events`` larger than the
   cohort), which holds all kept events in memory at once as the former pipeline did; the two cohorts are
   checked identical (``ehr_values.npy``, ``normalizer.json``, ``pairs.parquet`` bytes);
3. on the largest size, **extraction**: streaming ``chartevents`` + ``labevents`` into memory
   (``stream_events``) against streaming them into the spill (``spill_events``), alternating, ``--rounds``
   times.

Prints one JSON line per child, then a summary table and an extrapolation, stated as such, to the whole of
MIMIC-IV v2.2 (313 M chart rows, 118 M lab rows). Usage:

    PYTHONPATH=$PWD python benchmarks/bench_prepare_scale.py            # about 10 minutes on 2 cores
    PYTHONPATH=$PWD python benchmarks/bench_prepare_scale.py --patients 50 200 800 --rounds 1   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

MIMIC_IV_CHART_ROWS = 313_645_063  # icu/chartevents of MIMIC-IV v2.2
MIMIC_IV_LAB_ROWS = 118_171_367  # hosp/labevents of MIMIC-IV v2.2


def peak_rss_mib() -> float:
    """This process's peak resident set size (``VmHWM``), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def generate(workdir: Path, patients: int, vitals_per_hour: float) -> Path:
    """The generated cohort of ``patients`` patients (reused if present)."""
    from medcam_lab.synth import SynthConfig, generate_cohort

    root = workdir / f"raw_{patients}_{vitals_per_hour:g}"
    if not (root / "synth_manifest.json").exists():
        t0 = time.perf_counter()
        generate_cohort(root, SynthConfig(n_patients=patients, vitals_per_hour=vitals_per_hour, image_size=(64, 64),
                                          n_ood_patients=0, write_truth=False))
        print(f"# generated {root} in {time.perf_counter() - t0:.0f} s", flush=True)
    return root


def child_prepare(raw: str, out: str, partition_events: int) -> dict:
    """Run ``prepare`` once; wall time, peak RSS and the cohort's row counts."""
    import shutil

    from medcam_lab.config import PrepareConfig
    from medcam_lab.prepare.cohort import prepare_cohort

    shutil.rmtree(out, ignore_errors=True)
    cfg = PrepareConfig(mimic_cxr=f"{raw}/mimic-cxr-jpg", mimic_iv=f"{raw}/mimic-iv", out=out, image_cache_size=64,
                        partition_events=partition_events)
    t0 = time.perf_counter()
    report = prepare_cohort(cfg)
    wall = time.perf_counter() - t0
    steps = {s["step"]: s["count"] for s in report["steps"]}
    files = report["event_files"]
    return {
        "wall_s": round(wall, 2), "peak_rss_mib": round(peak_rss_mib(), 1),
        "chart_rows": files["chartevents"]["rows_read"], "lab_rows": files["labevents"]["rows_read"],
        "events_kept": files["chartevents"]["rows_kept"] + files["labevents"]["rows_kept"],
        "stays": steps["paired stays with events"], "pairs": steps["pairs with a readable image"],
        "partitions": report["event_spill"]["partitions"],
        "largest_partition_rows": report["event_spill"]["largest_partition_rows"],
        "spill_bytes": report["event_spill"]["bytes_on_disk"],
        "extraction_s": round(files["chartevents"]["seconds"] + files["labevents"]["seconds"], 2),
    }


def child_extract(raw: str, method: str, spill_dir: str) -> dict:
    """Stream both events files of the paired stays into memory (``memory``) or into the spill (``spill``)."""
    import shutil

    from medcam_lab.config import PrepareConfig
    from medcam_lab.datasets import mimic_cxr, mimic_iv
    from medcam_lab.ehr import EHRMode
    from medcam_lab.ehr.itemids import itemids_of_table
    from medcam_lab.prepare.cohort import pair_images_with_stays, select_stays, spill_events
    from medcam_lab.prepare.event_spill import EventSpill
    from medcam_lab.prepare.report import CohortReport

    cfg = PrepareConfig(mimic_cxr=f"{raw}/mimic-cxr-jpg", mimic_iv=f"{raw}/mimic-iv", out=spill_dir)
    mode = EHRMode.of(cfg.compat)
    layout = mimic_iv.locate_mimic_iv(cfg.mimic_iv)
    report = CohortReport()
    stays = select_stays(mimic_iv.read_stays(layout), report)
    pairs = pair_images_with_stays(mimic_cxr.read_metadata(cfg.mimic_cxr),
                                   mimic_cxr.read_chexpert_labels(cfg.mimic_cxr), stays, cfg, report)
    stays = stays.loc[stays["stay_id"].isin(pairs["stay_id"])]
    t0 = time.perf_counter()
    if method == "memory":
        mapping = mode.itemid_map()
        rows = 0
        for source, path, keep, key in (("chartevents", layout.chartevents, stays["stay_id"], "stay_id"),
                                        ("labevents", layout.labevents, stays["hadm_id"], "hadm_id")):
            events, _ = mimic_iv.stream_events(path, itemids_of_table(mapping, source), keep, key, source)
            rows += len(events)
    else:
        shutil.rmtree(Path(spill_dir) / "spill", ignore_errors=True)
        with EventSpill(Path(spill_dir) / "spill") as spill:
            spill_events(layout, stays, mode, report, spill)
            rows = int(sum(r.sum() for r in spill.rows.values()))
    return {"wall_s": round(time.perf_counter() - t0, 2), "peak_rss_mib": round(peak_rss_mib(), 1), "rows": rows}


def run_child(kind: str, **kwargs: object) -> dict:
    """One measurement in a fresh interpreter (its own peak RSS), printed as a JSON line."""
    command = [sys.executable, __file__, "--child", json.dumps({"kind": kind, **kwargs})]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    result = {"kind": kind, **kwargs, **json.loads(done.stdout.strip().splitlines()[-1])}
    print(json.dumps(result), flush=True)
    return result


def same_cohort(a: Path, b: Path) -> bool:
    """Whether two cohort directories hold the same EHR arrays, normalizer and pairs table."""
    import pandas as pd

    files = ("ehr_values.npy", "normalizer.json", "ehr_columns.json", "images_uint8.npy")
    same_files = all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    return same_files and pd.read_parquet(a / "pairs.parquet").equals(pd.read_parquet(b / "pairs.parquet"))


def summarize(sizes: list[dict], extraction: list[dict], args: argparse.Namespace) -> None:
    """The table of the three sizes, the ratios and the extrapolation (printed as Markdown)."""
    import numpy as np

    print("\n| patients | chart rows | lab rows | kept events | stays | pairs | partitions "
          "| partitioned: wall, peak RSS | one partition: wall, peak RSS | same cohort |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for s in sizes:
        p, o = s["partitioned"], s["one_partition"]
        print(f"| {s['patients']:,} | {p['chart_rows']:,} | {p['lab_rows']:,} | {p['events_kept']:,} | "
              f"{p['stays']:,} | {p['pairs']:,} | {p['partitions']} | "
              f"{p['wall_s']:.1f} s, {p['peak_rss_mib']:,.0f} MiB | {o['wall_s']:.1f} s, {o['peak_rss_mib']:,.0f} MiB "
              f"| {'yes' if s['same'] else 'NO'} |")
    first, last = sizes[0]["partitioned"], sizes[-1]["partitioned"]
    print(f"\nPeak RSS, partitioned, largest / smallest size: {last['peak_rss_mib'] / first['peak_rss_mib']:.2f}× "
          f"for {last['chart_rows'] / first['chart_rows']:.1f}× the chart rows (target ≤ 1.5×, < 4 GB).")
    one_first, one_last = sizes[0]["one_partition"], sizes[-1]["one_partition"]
    print(f"One partition: {one_last['peak_rss_mib'] / one_first['peak_rss_mib']:.2f}× "
          f"({one_first['peak_rss_mib']:,.0f} → {one_last['peak_rss_mib']:,.0f} MiB).")
    if extraction:
        memory = [e["wall_s"] for e in extraction if e["method"] == "memory"]
        spill = [e["wall_s"] for e in extraction if e["method"] == "spill"]
        print(f"Extraction of the largest size (median of {len(memory)}): into memory {np.median(memory):.2f} s "
              f"(runs {memory}), into the spill {np.median(spill):.2f} s (runs {spill}): spill / memory = "
              f"{np.median(spill) / np.median(memory):.2f}.")
    # extrapolation: wall time linear in rows read (least squares through the three sizes)
    rows = np.array([s["partitioned"]["chart_rows"] + s["partitioned"]["lab_rows"] for s in sizes], dtype=float)
    wall = np.array([s["partitioned"]["wall_s"] for s in sizes])
    slope, intercept = np.polyfit(rows, wall, 1)
    full = MIMIC_IV_CHART_ROWS + MIMIC_IV_LAB_ROWS
    kept_share = np.array([s["partitioned"]["events_kept"] for s in sizes]) / rows
    print(f"\nWall time fit: {intercept:.1f} s + {slope * 1e6:.2f} s per million rows read "
          f"(residuals {np.round(wall - (intercept + slope * rows), 1).tolist()} s). In these cohorts "
          f"{kept_share.mean():.0%} of the rows read are kept (every row is a paired stay's).")
    print(f"EXTRAPOLATION (not measured): {full / 1e6:.0f} M rows of MIMIC-IV v2.2 with every row kept "
          f"(an upper bound: only the stays with an image are kept) → {(intercept + slope * full) / 60:.0f} min on "
          f"these 2 cores, at a peak RSS of about {last['peak_rss_mib']:,.0f} MiB (the partition size, not the input, "
          f"sets it).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, nargs=3, default=[100, 400, 1600])
    parser.add_argument("--vitals-per-hour", type=float, default=13.0)
    parser.add_argument("--partition-events", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=3, help="extraction rounds on the largest size")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/medcam_bench_prepare"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        kind = spec.pop("kind")
        result = child_prepare(**spec) if kind == "prepare" else child_extract(**spec)
        print(json.dumps(result))
        return

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}", flush=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    sizes = []
    for patients in args.patients:
        raw = generate(args.workdir, patients, args.vitals_per_hour)
        out_p, out_o = args.workdir / f"cohort_{patients}_partitioned", args.workdir / f"cohort_{patients}_one"
        partitioned = run_child("prepare", raw=str(raw), out=str(out_p), partition_events=args.partition_events)
        one = run_child("prepare", raw=str(raw), out=str(out_o), partition_events=1 << 62)
        sizes.append({"patients": patients, "partitioned": partitioned, "one_partition": one,
                      "same": same_cohort(out_p, out_o)})
    extraction = []
    raw = generate(args.workdir, args.patients[-1], args.vitals_per_hour)
    for i in range(args.rounds):
        for method in (("memory", "spill") if i % 2 == 0 else ("spill", "memory")):
            extraction.append(run_child("extract", raw=str(raw), method=method, spill_dir=str(args.workdir)))
    summarize(sizes, extraction, args)


if __name__ == "__main__":
    main()
