"""Image cache build (``prepare``, ``prepare-images``) at full image size: the streaming, resumable build
against the former in-memory one, and threads against processes, measured side by side in one run.

Generates ``--n`` chest-X-ray-shaped grayscale images of 2544 × 3056 px (the size of a MIMIC-CXR-JPG file),
half JPEG (quality 95, ~3 MB) and half PNG (zlib level 1 to keep the generation fast; decoding a PNG costs
about the same at any level), cached under ``--workdir``. Then, each in its own child process that reports
its wall time and peak RSS (``VmHWM`` of ``/proc/self/status``, plus, with worker processes, the
largest worker's ``ru_maxrss`` times the number of workers), on ``--workers`` workers (default: every
core):

1. **streaming**: :func:`medcam_lab.prepare.image_cache.build_image_cache` (threads), at ``--n`` images and at a
   quarter of them, so that the growth of peak RSS with the number of images is measured, not assumed;
2. **in-memory**: a verbatim copy of the former build (every decoded image kept in a Python list, then
   written), at the same two sizes; the two caches are checked byte-identical;
3. **threads vs processes**: the streaming build with ``parallel="threads"`` and ``"processes"``, on one
   worker and on ``--workers``.

Prints one JSON line per child and a summary line with the per-image cost and an extrapolation (stated as
such) to 10⁴ and to 377,110 images (MIMIC-CXR-JPG). Usage:

    PYTHONPATH=$PWD python benchmarks/bench_image_cache.py              # 200 images, about 2 minutes on 2 cores
    PYTHONPATH=$PWD python benchmarks/bench_image_cache.py --n 10000    # the size of the scale target (~41 GB)
    # 10⁴ paths over 400 distinct files (hard links, 1.6 GB): every path read and decoded, the files mostly
    # from the page cache; streaming build only
    PYTHONPATH=$PWD python benchmarks/bench_image_cache.py --n 10000 --distinct 400 --streaming-only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

FULL_SIZE = (2544, 3056)  # (height, width) of a typical MIMIC-CXR-JPG file
MIMIC_CXR_JPG = 377_110


def linked_paths(distinct: list[Path], n: int, directory: Path) -> list[Path]:
    """``n`` paths, hard links to the ``distinct`` files in turn (JPEG/PNG alternation kept: even count)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        source = distinct[i % len(distinct)]
        path = directory / f"cxr_{i:05d}{source.suffix}"
        if not path.exists():
            os.link(source, path)
        paths.append(path)
    return paths


def generate_images(directory: Path, n: int, seed: int = 0) -> list[Path]:
    """Smooth 16-px blocks plus pixel noise (as ``bench_loader.py``), alternating JPEG and PNG; reused if present."""
    directory.mkdir(parents=True, exist_ok=True)
    h, w = FULL_SIZE
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 6, size=(h + 64, w + 64)).astype(np.float32)  # one field, a shifted window per image
    paths = []
    for i in range(n):
        path = directory / (f"cxr_{i:05d}.jpg" if i % 2 == 0 else f"cxr_{i:05d}.png")
        if not path.exists():
            base = np.random.default_rng((seed, i)).normal(size=(h // 16 + 1, w // 16 + 1)).astype(np.float32)
            img = np.repeat(np.repeat(base, 16, axis=0), 16, axis=1)[:h, :w]
            dy, dx = i % 64, (7 * i) % 64
            img = (img - img.min()) / (np.ptp(img) + 1e-6) * 200 + noise[dy:dy + h, dx:dx + w]
            pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
            tmp = path.with_name("tmp_" + path.name)
            if path.suffix == ".jpg":
                pil.save(tmp, format="JPEG", quality=95)
            else:
                pil.save(tmp, format="PNG", compress_level=1)
            os.replace(tmp, path)
        paths.append(path)
    return paths


def build_in_memory(paths: list[Path], out_dir: Path, size: int, num_threads: int = 2) -> tuple[np.ndarray, list]:
    """The former ``build_image_cache``, verbatim: every decoded image kept in a list, then written."""
    from tqdm.auto import tqdm

    from medcam_lab.data.image_cache import CACHE_FILE
    from medcam_lab.prepare.image_cache import _try_load

    decode, desc = None, "image cache"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images: list[np.ndarray | None] = [None] * len(paths)
    failures: list[dict[str, str]] = []
    with ThreadPoolExecutor(max_workers=max(1, num_threads)) as pool:
        results = pool.map(lambda p: _try_load(p, size, decode), paths)
        for i, (img, reason) in enumerate(tqdm(results, total=len(paths), desc=desc, mininterval=1.0)):
            if reason is not None:
                failures.append({"path": str(paths[i]), "reason": reason})
            images[i] = img
    ok = np.array([img is not None for img in images], dtype=bool)
    tmp = out_dir / (CACHE_FILE + ".tmp.npy")
    cache = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(int(ok.sum()), size, size))
    row = 0
    for img in images:
        if img is not None:
            cache[row] = img
            row += 1
    cache.flush()
    del cache
    os.replace(tmp, out_dir / CACHE_FILE)
    return ok, failures


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(spec: dict) -> None:
    """One build in this (fresh) process; prints its measurements as JSON."""
    from medcam_lab.prepare.image_cache import build_image_cache

    paths = [Path(p) for p in json.loads(Path(spec["paths_file"]).read_text())]
    out = Path(spec["out"])
    start_rss = peak_rss_mib()
    t0 = time.perf_counter()
    if spec["method"] == "in-memory":
        ok, failures = build_in_memory(paths, out, spec["size"], spec["workers"])
    else:
        ok, failures = build_image_cache(paths, out, spec["size"], spec["workers"], parallel=spec["parallel"])
    wall = time.perf_counter() - t0
    assert ok.all() and not failures, failures[:3]
    own_peak = peak_rss_mib()  # before the hash below reads the cache
    digest = hashlib.sha256()
    with open(out / "images_uint8.npy", "rb") as cache:
        for block in iter(lambda: cache.read(2**20), b""):
            digest.update(block)
    # worker processes (parallel="processes"): the largest one's peak, ru_maxrss in KiB on Linux; every worker
    # is counted at that peak (an upper bound on the build's total)
    worker_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    workers_counted = spec["workers"] if worker_peak > 0 else 0
    print(json.dumps({"method": spec["method"], "parallel": spec["parallel"], "workers": spec["workers"],
                      "images": len(paths), "wall_s": round(wall, 2), "images_per_s": round(len(paths) / wall, 1),
                      "peak_rss_mib": round(own_peak + workers_counted * worker_peak, 1),
                      "main_process_peak_rss_mib": round(own_peak, 1),
                      "worker_process_peak_rss_mib": round(worker_peak, 1),
                      "rss_after_imports_mib": round(start_rss, 1), "sha256": digest.hexdigest()}))


def run_child(spec: dict) -> dict:
    """One build in a fresh interpreter; the paths go through a file (10⁴ of them exceed one argument's limit)."""
    spec = dict(spec)
    paths_file = Path(spec["out"] + ".paths.json")
    paths_file.parent.mkdir(parents=True, exist_ok=True)
    paths_file.write_text(json.dumps(spec.pop("paths")))
    spec["paths_file"] = str(paths_file)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=env, check=True,
                          capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    paths_file.unlink()
    print(json.dumps(result), flush=True)
    return result


def extrapolate(big: dict, little: dict, workers: int) -> dict:
    """Peak RSS and time at 10⁴ and 377,110 images, linear in the images from two measured sizes."""
    per_image_mib = (big["peak_rss_mib"] - little["peak_rss_mib"]) / (big["images"] - little["images"])
    per_image_s = big["wall_s"] / big["images"]
    out: dict = {"peak_rss_growth_kib_per_image": round(per_image_mib * 1024, 1)}
    for n in (10_000, MIMIC_CXR_JPG):
        rss_mib = big["peak_rss_mib"] + per_image_mib * (n - big["images"])
        out[f"{n}_images"] = {"peak_rss_gib": round(rss_mib / 1024, 2), "hours": round(per_image_s * n / 3600, 2),
                              "hours_on_16_cores_if_linear": round(per_image_s * workers / 16 * n / 3600, 2)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="generated full-size images (half JPEG, half PNG)")
    parser.add_argument("--size", type=int, default=256, help="side of the cached images")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--workdir", default="/tmp/medcam_bench_images", help="where the generated images are kept")
    parser.add_argument("--distinct", type=int, default=0,
                        help="generate this many distinct images (even) and reach --n with hard links to them "
                             "(0: --n distinct images); each path is still read and decoded")
    parser.add_argument("--streaming-only", action="store_true",
                        help="only the streaming build at --n and --n/4 (no in-memory build, no processes)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    t0 = time.perf_counter()
    distinct = args.distinct or args.n
    if distinct % 2 or distinct > args.n:
        raise SystemExit("--distinct must be even and at most --n")
    files = generate_images(Path(args.workdir) / f"{FULL_SIZE[0]}x{FULL_SIZE[1]}", distinct)
    if distinct < args.n:
        files = linked_paths(files, args.n, Path(args.workdir) / f"links_{args.n}_of_{distinct}")
    paths = [str(p) for p in files]
    generation_s = time.perf_counter() - t0
    mean_mb = {ext: round(float(np.mean([os.path.getsize(p) for p in paths if p.endswith(ext)])) / 2**20, 2)
               for ext in (".jpg", ".png")}
    quarter = paths[: max(2, args.n // 4)]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        def build(method: str, parallel: str, workers: int, subset: list[str]) -> dict:
            out = Path(tmp) / f"{method}-{parallel}-{workers}-{len(subset)}"
            spec = {"method": method, "parallel": parallel, "workers": workers, "paths": subset, "out": str(out),
                    "size": args.size}
            result = run_child(spec)
            (out / "images_uint8.npy").unlink()
            results.append(result)
            return result

        for subset in (quarter, paths):  # which method goes first alternates
            order = ("streaming", "in-memory") if subset is quarter else ("in-memory", "streaming")
            for method in order:
                if method == "streaming" or not args.streaming_only:
                    build(method, "threads", args.workers, subset)
        for workers in sorted({1, args.workers}) if not args.streaming_only else ():
            for parallel in ("threads", "processes"):
                build("streaming", parallel, workers, paths)
    full = {r["method"]: r for r in results if r["images"] == len(paths) and r["parallel"] == "threads"
            and r["workers"] == args.workers}
    small = {r["method"]: r for r in results if r["images"] == len(quarter)}
    methods = ("streaming",) if args.streaming_only else ("streaming", "in-memory")
    if not args.streaming_only:
        assert full["streaming"]["sha256"] == full["in-memory"]["sha256"], "the two builds wrote different caches"
        assert small["streaming"]["sha256"] == small["in-memory"]["sha256"], "the two builds wrote different caches"
    summary = {"figure": "image cache", "machine": platform.machine(), "cpu_count": os.cpu_count(),
               "load_average_1min": round(os.getloadavg()[0], 2), "image_px": list(FULL_SIZE), "mean_mb": mean_mb,
               "generation_s": round(generation_s, 1), "workers": args.workers, "cache_size": args.size,
               "distinct_files": distinct, "paths": args.n,
               "byte_identical": not args.streaming_only or "not checked (streaming only)",
               "extrapolation (linear in images, measured per-image numbers)": {}}
    for method in methods:
        summary["extrapolation (linear in images, measured per-image numbers)"][method] = extrapolate(
            full[method], small[method], args.workers)
    summary["in-memory list by arithmetic, GiB at 377,110 images"] = round(MIMIC_CXR_JPG * args.size ** 2 / 2**30, 1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
