"""Data loader images/s: medcam_lab's image cache vs a naive Dataset that opens and resizes the JPEG per item.

Writes generated full-size chest-X-ray-shaped JPEGs (2544 × 3056 px, ~3 MB, like MIMIC-CXR-JPG) to a
temporary directory, then measures in one run, with the same number of DataLoader workers:

- **naive**: a ``Dataset`` whose ``__getitem__`` opens the JPEG, converts to grayscale and resizes to 256 px,
  batched by the default collate;
- **cache build** (one time, in ``prepare``): :func:`medcam_lab.prepare.image_cache.build_image_cache`;
- **medcam_lab**: ``make_loader`` over the memory-mapped uint8 cache (``__getitems__``: one fancy-index copy
  per batch) plus the training crop/flip to 224 px (``train_transform``), i.e. what a training step consumes.

Prints one JSON line with images/s of each and the ratio. Usage:

    python benchmarks/bench_loader.py                     # 2 workers, 24 JPEGs
    python benchmarks/bench_loader.py --workers 14 --cache-rows 32768 --batch 256 --device cuda   # GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from medcam_lab.data.image_cache import open_image_cache
from medcam_lab.data.loading import ImageLabelDataset, make_loader
from medcam_lab.data.transforms import train_transform
from medcam_lab.prepare.image_cache import build_image_cache

FULL_SIZE = (2544, 3056)  # (height, width) of a typical MIMIC-CXR-JPG file


def write_jpegs(directory: Path, n: int, seed: int = 0) -> list[Path]:
    """Smooth blocks plus noise (the reference's recipe), quality 95: ~3 MB like a real CXR JPEG."""
    rng = np.random.default_rng(seed)
    h, w = FULL_SIZE
    paths = []
    for i in range(n):
        base = rng.normal(size=(h // 16 + 1, w // 16 + 1)).astype(np.float32)
        img = np.kron(base, np.ones((16, 16), dtype=np.float32))[:h, :w]
        img = (img - img.min()) / (np.ptp(img) + 1e-6) * 200 + rng.normal(0, 6, size=img.shape)
        path = directory / f"cxr_{i:03d}.jpg"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, format="JPEG", quality=95)
        paths.append(path)
    return paths


class NaiveJpegDataset(torch.utils.data.Dataset):
    """The baseline: decode and resize the original JPEG on every access."""

    def __init__(self, paths: list[Path], size: int = 256) -> None:
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.paths[i]) as img:
            img = img.convert("L").resize((self.size, self.size), Image.Resampling.BILINEAR)
            return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())


def images_per_s(loader, consume, device: torch.device | None = None) -> float:
    n, t0 = 0, time.perf_counter()
    for batch in loader:
        n += consume(batch)
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)  # the last crops have run on the GPU
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jpegs", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--cache-size", type=int, default=256)
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--cache-rows", type=int, default=4096, help="rows of the cache read by the loader")
    parser.add_argument("--device", default="cpu",
                        help="where the crops run: cuda copies each batch from pinned memory first, as training does")
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(args.workers, os.cpu_count() or 1)))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = write_jpegs(tmp, args.jpegs)
        mb = np.mean([p.stat().st_size for p in paths]) / 2**20

        naive = torch.utils.data.DataLoader(NaiveJpegDataset(paths), batch_size=8, num_workers=args.workers)
        naive_rate = images_per_s(naive, len)

        t0 = time.perf_counter()
        ok, failures = build_image_cache(paths, tmp / "small", args.cache_size, num_threads=args.workers)
        build_rate = len(paths) / (time.perf_counter() - t0)
        assert ok.all() and not failures
        small = open_image_cache(tmp / "small")
        # A cache as big as a real split: the decoded rows repeated (reading cost does not depend on content).
        big = np.lib.format.open_memmap(tmp / "images_uint8.npy", mode="w+", dtype=np.uint8,
                                        shape=(args.cache_rows, args.cache_size, args.cache_size))
        for start in range(0, args.cache_rows, len(small)):
            stop = min(args.cache_rows, start + len(small))
            big[start:stop] = small[: stop - start]
        big.flush()
        del big
        images = open_image_cache(tmp)
        labels = np.zeros((len(images), 14), dtype=np.float32)
        dataset = ImageLabelDataset(images, labels, pd.DataFrame(index=range(len(images))), tuple("abcdefghijklmn"),
                                    np.arange(len(images)))
        gen = torch.Generator().manual_seed(0)
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

        device = torch.device(args.device)

        def consume(batch) -> int:
            raw = batch["image"].to(device, non_blocking=True)
            return len(train_transform(raw, args.crop, mean, std, gen))

        loader = make_loader(dataset, args.batch, shuffle=True, seed=0, num_workers=args.workers, drop_last=True,
                             pin_memory=device.type == "cuda")
        ours_rate = images_per_s(loader, consume, device)
    print(json.dumps({
        "figure": "loader", "machine": platform.machine(), "cpu_count": os.cpu_count(), "workers": args.workers,
        "crop_device": str(device), "jpeg_px": list(FULL_SIZE), "jpeg_mean_mb": round(mb, 2), "n_jpegs": args.jpegs,
        "naive_jpeg_img_per_s": round(naive_rate, 1), "cache_build_img_per_s": round(build_rate, 1),
        "medcam_lab_cache_img_per_s": round(ours_rate, 1), "cache_rows_read": args.cache_rows,
        "speedup_vs_naive": round(ours_rate / naive_rate, 1),
    }))


if __name__ == "__main__":
    main()
