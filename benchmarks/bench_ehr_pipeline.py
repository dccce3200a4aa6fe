"""EHR extraction and discretization at MIMIC-IV scale, measured side by side in one run.

1. Extraction: a generated MIMIC-shaped ``chartevents.csv.gz`` (default 20 million rows, the v2.2 column
   layout, ~40 % of rows on the item ids of the 17 variables) is read (a) by
   :func:`medcam_lab.datasets.mimic_iv.stream_events` and (b) by the reference's method: Python's ``csv``
   module row by row, keeping the rows whose item id is mapped. Each runs in its own child process, which
   reports its wall time and peak RSS (``ru_maxrss``); both keep the rows of every stay. Each method runs
   ``--rounds`` times (alternating which goes first); medians are compared.
2. Discretization: ``Discretizer.transform_batch`` (``medfuse`` mode) on >= 5,000 episodes against a per-episode,
   pure-Python discretizer that follows spec ``ehr.md`` §2 literally (row loop, dict of columns).
   Outputs are compared for equality before timing is reported; each side's fastest of several runs.

Run: ``PYTHONPATH=$PWD python benchmarks/bench_ehr_pipeline.py [--rows 20000000] [--episodes 5000]``.
The generated file is cached under ``--workdir`` (default ``/tmp/medcam_bench_ehr``).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

CHART_COLUMNS = ["subject_id", "hadm_id", "stay_id", "caregiver_id", "charttime", "storetime", "itemid",
                 "value", "valuenum", "valueuom", "warning"]


def generate_chartevents(path: Path, n_rows: int, seed: int = 0, chunk: int = 2_000_000) -> None:
    """Write a MIMIC-shaped chartevents.csv.gz of ``n_rows`` rows (stays of ~1,000 rows each)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    from medcam_lab.ehr.itemids import CHART_ITEMIDS

    rng = np.random.default_rng(seed)
    mapped = np.array(sorted(CHART_ITEMIDS))
    other = np.arange(224000, 224400)  # item ids of other charted things (drips, assessments, ...)
    tmp = path.with_suffix(".tmp")
    with pa.CompressedOutputStream(str(tmp), "gzip") as sink:
        header = True
        for start in range(0, n_rows, chunk):
            n = min(chunk, n_rows - start)
            row = np.arange(start, start + n)
            stay = 30_000_000 + row // 1000
            is_mapped = rng.random(n) < 0.4
            item = np.where(is_mapped, rng.choice(mapped, n), rng.choice(other, n))
            num = np.round(rng.normal(80, 15, n), 1)
            t = np.datetime64("2150-01-01T00:00:00") + (row % 1000 * 180).astype("timedelta64[s]")
            t = pc.strftime(pa.array(t), format="%Y-%m-%d %H:%M:%S")  # MIMIC's "YYYY-MM-DD HH:MM:SS"
            table = pa.table({
                "subject_id": stay - 20_000_000, "hadm_id": stay - 10_000_000, "stay_id": stay,
                "caregiver_id": rng.integers(1, 99999, n),
                "charttime": t, "storetime": t,
                "itemid": item, "value": pa.array(num.astype(str)), "valuenum": num,
                "valueuom": pa.array(np.where(is_mapped, "bpm", "mL")), "warning": rng.integers(0, 2, n),
            })
            pacsv.write_csv(table, sink, write_options=pacsv.WriteOptions(include_header=header, quoting_style="none"))
            header = False
    tmp.rename(path)


def child_extract(path: str, method: str) -> None:
    """Child-process body: run one extraction method, print JSON with rows, seconds and peak RSS."""
    from medcam_lab.datasets.mimic_iv import stream_events
    from medcam_lab.ehr.itemids import CHART_ITEMIDS

    start = time.perf_counter()
    if method == "medcam_lab":
        events, counts = stream_events(Path(path), CHART_ITEMIDS, None, key="stay_id", source="chartevents",
                                       progress_seconds=1e9)
        rows_read, kept = counts.rows_read, len(events)
    else:  # the reference's method: csv module, row by row, keep mapped item ids
        keep_items = {str(i) for i in CHART_ITEMIDS}
        rows_read, kept_rows = 0, []
        with gzip.open(path, "rt", newline="") as fh:
            reader = csv.DictReader(fh)
            for row in reader:
                rows_read += 1
                if row["itemid"] in keep_items:
                    kept_rows.append(row)
        kept = len(kept_rows)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"method": method, "rows_read": rows_read, "rows_kept": kept, "seconds": seconds,
                      "peak_rss_mib": peak_kib / 1024}))


def run_child(path: Path, method: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, __file__, "--child", method, str(path)], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- discretization ------------------------------------------------------------------------------------


def python_discretize(rows: list[list[str]], header: list[str], timestep: float, end: float) -> np.ndarray:
    """Per-episode pure-Python discretizer (spec §2, impute ``previous``, start ``zero``, masks)."""
    from medcam_lab.ehr.channels import CHANNEL_BEGIN, CHANNELS, IS_CATEGORICAL, NORMAL_VALUES, POSSIBLE_VALUES

    eps = 1e-6
    n_ch = len(CHANNELS)
    n_bins = int(end / timestep + 1.0 - eps)
    width = CHANNEL_BEGIN[-1] + 1
    data = np.zeros((n_bins, width + n_ch), dtype=np.float32)
    mask = [[0] * n_ch for _ in range(n_bins)]
    original = [[""] * n_ch for _ in range(n_bins)]
    col_of = {name: header.index(name) for name in CHANNELS if name in header}

    def write(b: int, c: int, s: str) -> None:
        name = CHANNELS[c]
        if IS_CATEGORICAL[name]:
            values = POSSIBLE_VALUES[name]
            k = values.index(s)
            for j in range(len(values)):
                data[b, CHANNEL_BEGIN[c] + j] = 1.0 if j == k else 0.0
        else:
            data[b, CHANNEL_BEGIN[c]] = float(s)

    for row in rows:
        t = float(row[0])
        if t > end + eps:
            continue
        b = int(t / timestep - eps)
        for c, name in enumerate(CHANNELS):
            j = col_of.get(name)
            if j is None or row[j] == "":
                continue
            mask[b][c] = 1
            original[b][c] = row[j]
            write(b, c, row[j])
    for c, name in enumerate(CHANNELS):
        prev = None
        for b in range(n_bins):
            if mask[b][c]:
                prev = original[b][c]
                continue
            write(b, c, prev if prev is not None else NORMAL_VALUES[name])
    for b in range(n_bins):
        for c in range(n_ch):
            data[b, width + c] = mask[b][c]
    return data


def make_episodes(n_episodes: int, seed: int = 0) -> pd.DataFrame:
    """A long table of ``n_episodes`` 48 h episodes, ~1 row per hour, values as strings."""
    from medcam_lab.ehr.channels import CHANNELS, IS_CATEGORICAL, POSSIBLE_VALUES

    rng = np.random.default_rng(seed)
    per = rng.integers(20, 80, n_episodes)
    ep = np.repeat(np.arange(n_episodes), per)
    hours = np.concatenate([np.sort(rng.uniform(0, 48, k)) for k in per]).round(3)
    table = pd.DataFrame({"stay_id": ep, "Hours": hours})
    n = len(table)
    for name in CHANNELS:
        present = rng.random(n) < 0.35
        if IS_CATEGORICAL[name]:
            cells = np.array(POSSIBLE_VALUES[name], dtype=object)[rng.integers(0, len(POSSIBLE_VALUES[name]), n)]
        else:
            cells = np.round(rng.normal(80, 10, n), 1).astype(str).astype(object)
        table[name] = np.where(present, cells, "")
    return table


def bench_discretizer(n_episodes: int) -> dict:
    from medcam_lab.ehr import Discretizer
    from medcam_lab.ehr.channels import CHANNELS

    table = make_episodes(n_episodes)
    disc = Discretizer(timestep=2.0, impute_strategy="previous", start_time="zero", store_masks=True, mode="medfuse")
    vec_s = np.inf
    disc.transform_batch(table.head(100), by="stay_id", end=48.0)  # load the compiled kernels once
    for _ in range(10):  # best of 10 (the loop below: best of 3; each side's fastest run, as timeit does)
        start = time.perf_counter()
        batch = disc.transform_batch(table, by="stay_id", end=48.0)
        vec_s = min(vec_s, time.perf_counter() - start)

    import medcam_lab.ehr.discretizer as discretizer_module

    threads, one_thread_s = discretizer_module.ENCODE_THREADS, np.inf
    discretizer_module.ENCODE_THREADS = 1  # the same call reading the channels on one thread, for comparison
    try:
        for _ in range(10):
            start = time.perf_counter()
            one_thread = disc.transform_batch(table, by="stay_id", end=48.0)
            one_thread_s = min(one_thread_s, time.perf_counter() - start)
    finally:
        discretizer_module.ENCODE_THREADS = threads

    header = ["Hours", *CHANNELS]
    episodes = [(k, g[header].astype(str).values.tolist()) for k, g in table.groupby("stay_id", sort=False)]
    loop_s = np.inf
    for _ in range(3):
        start = time.perf_counter()
        loop = {k: python_discretize(rows, header, 2.0, 48.0) for k, rows in episodes}
        loop_s = min(loop_s, time.perf_counter() - start)
    for k, values in loop.items():
        np.testing.assert_array_equal(batch[k], values)
        np.testing.assert_array_equal(one_thread[k], values)
    return {"episodes": n_episodes, "rows": len(table), "transform_batch_s": vec_s, "python_loop_s": loop_s,
            "transform_batch_episodes_per_s": n_episodes / vec_s, "python_loop_episodes_per_s": n_episodes / loop_s,
            "speedup": loop_s / vec_s, "encode_threads": min(threads, os.cpu_count() or 1),
            "transform_batch_one_thread_s": one_thread_s, "speedup_one_thread": loop_s / one_thread_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--episodes", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3, help="extraction runs of each method (medians reported)")
    parser.add_argument("--settle-seconds", type=float, default=10.0, help="pause before each extraction run")
    parser.add_argument("--workdir", default="/tmp/medcam_bench_ehr")
    parser.add_argument("--part", choices=["all", "extraction", "discretization"], default="all")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_extract(args.child[1], args.child[0])
        return
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    result: dict = {"machine": f"{platform.node()}: {platform.processor() or platform.machine()}, "
                               f"{os.cpu_count()} CPUs, python {platform.python_version()}"}
    if args.part in ("all", "extraction"):
        path = work / f"chartevents_{args.rows}.csv.gz"
        if not path.exists():
            start = time.perf_counter()
            generate_chartevents(path, args.rows)
            print(f"generated {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - start:.0f} s")
        runs: dict[str, list[dict]] = {"medcam_lab": [], "csv_module": []}
        for round_ in range(args.rounds):  # alternate which side goes first
            for method in (("medcam_lab", "csv_module") if round_ % 2 == 0 else ("csv_module", "medcam_lab")):
                time.sleep(args.settle_seconds)  # let the machine settle after the previous child (9 GB freed)
                runs[method].append(run_child(path, method))
        for r in (*runs["medcam_lab"], *runs["csv_module"]):
            assert r["rows_read"] == args.rows and r["rows_kept"] == runs["csv_module"][0]["rows_kept"], r
        seconds = {m: float(np.median([r["seconds"] for r in rs])) for m, rs in runs.items()}
        result["extraction"] = {
            "file_mib": path.stat().st_size / 2**20, "rounds": args.rounds, "runs": runs,
            "median_seconds": seconds,
            "peak_rss_mib": {m: max(r["peak_rss_mib"] for r in rs) for m, rs in runs.items()},
            "rows_per_s": {m: args.rows / sec for m, sec in seconds.items()},
            "speedup": seconds["csv_module"] / seconds["medcam_lab"],
            "speedup_per_round": [b["seconds"] / a["seconds"] for a, b in zip(runs["medcam_lab"], runs["csv_module"])],
        }
    if args.part in ("all", "discretization"):
        result["discretization"] = bench_discretizer(args.episodes)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
