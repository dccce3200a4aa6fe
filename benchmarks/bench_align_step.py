"""Alignment step of medcam_lab vs the plain-PyTorch reference (``benchmarks/gpu_anchor_reference.py``).

Both sides use the same sizes: torchvision ResNet-50 → 2048-2048-256 MLP, 2-layer LSTM(76→256) over T steps
→ linear 256, global + local top-k loss (k = 10), AdamW, random inputs already on the device. medcam_lab runs
its real training step (:func:`medcam_lab.training.align.alignment_step`: the ``MedCAMAligner`` with masked,
packed EHR sequences, ``MedCAMLoss`` and the runtime switches). The two steps are timed in alternating rounds
in one process and the ratio of medians is printed (the machines are shared: only ratios measured side by
side mean something). Usage:

    python benchmarks/bench_align_step.py                       # CPU: ResNet-50, 32 px, B = 8
    python benchmarks/bench_align_step.py --device cuda --batch 256 --image-size 224   # bf16, channels_last
    python benchmarks/bench_align_step.py --device cuda --batch 256 --image-size 224 --compile on
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import gpu_anchor_reference as reference
import torch

from medcam_lab.losses import MedCAMLoss
from medcam_lab.models import EHREncoder, MedCAMAligner, build_image_encoder
from medcam_lab.training.align import AlignmentModule, alignment_step
from medcam_lab.training.runtime import compile_image_encoder, prepare_model, resolve_runtime, to_device_images


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def build_medcam(runtime):
    model = MedCAMAligner(build_image_encoder("resnet50"), EHREncoder(76, 256, 2, 0.3), proj_dim=256,
                          image_proj_hidden=2048)
    module = prepare_model(AlignmentModule(model, MedCAMLoss(k=10, temperature=0.07)), runtime)
    compile_image_encoder(module.model.image_encoder, runtime)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4, fused=runtime.device.type == "cuda")
    return module, optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per model")
    parser.add_argument("--rounds", type=int, default=30, help="alternating rounds the steps are split into")
    parser.add_argument("--timesteps", type=int, default=24)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--channels-last", default="auto")
    parser.add_argument("--compile", default="off")
    args = parser.parse_args()
    torch.manual_seed(0)
    runtime = resolve_runtime(args.device, args.precision, args.channels_last, args.compile)
    dev = runtime.device
    dtype = torch.bfloat16 if runtime.bf16 else torch.float32
    B, T = args.batch, args.timesteps
    x = torch.randn(B, 3, args.image_size, args.image_size, device=dev)
    e = torch.randn(B, T, 76, device=dev)
    lengths = torch.full((B,), T)

    ref = reference.Aligner().to(dev)
    if runtime.channels_last:
        ref = ref.to(memory_format=torch.channels_last)
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-4, fused=dev.type == "cuda")
    ref_x = x.contiguous(memory_format=torch.channels_last) if runtime.channels_last else x
    ref_f = torch.compile(ref) if runtime.compile else ref

    def ref_step():
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = ref_f(ref_x, e)
        loss.backward()
        ref_opt.step()
        ref_opt.zero_grad(set_to_none=True)

    module, optimizer = build_medcam(runtime)
    our_x = to_device_images(x, runtime)

    def our_step():
        alignment_step(module, module.loss, optimizer, our_x, e, lengths, runtime)

    times: dict[str, list[float]] = {"reference": [], "medcam_lab": []}
    steps = {"reference": ref_step, "medcam_lab": our_step}
    for fn in steps.values():  # warm-up (and compilation)
        for _ in range(3):
            fn()
    _sync(dev)
    per_round = max(1, args.steps // args.rounds)
    order = list(steps)
    for _ in range(args.rounds):
        for name in order:  # alternate which side goes first: load changes hit both sides alike
            _sync(dev)
            t0 = time.perf_counter()
            for _ in range(per_round):
                steps[name]()
            _sync(dev)
            times[name].append((time.perf_counter() - t0) / per_round)
        order.reverse()
    pair_ratios = [o / r for o, r in zip(times["medcam_lab"], times["reference"])]
    host_syncs = None
    if dev.type == "cuda":  # count the synchronising CUDA calls of one medcam_lab step
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            our_step()
            torch.cuda.set_sync_debug_mode("default")
        host_syncs = [str(w.message).splitlines()[0][:120] for w in caught if "synchroniz" in str(w.message)]
    ref_s, our_s = statistics.median(times["reference"]), statistics.median(times["medcam_lab"])
    print(json.dumps({
        "figure": "align_step", "device": torch.cuda.get_device_name() if dev.type == "cuda" else platform.processor()
        or platform.machine(), "threads": torch.get_num_threads(), "torch": torch.__version__, "batch": B,
        "image_size": args.image_size, "timesteps": T, "bf16": runtime.bf16, "channels_last": runtime.channels_last,
        "compile": runtime.compile, "reference_img_per_s": round(B / ref_s, 2),
        "medcam_lab_img_per_s": round(B / our_s, 2),
        "medcam_lab_vs_reference_speed": round(ref_s / our_s, 3), "overhead_pct": round(100 * (our_s / ref_s - 1), 1),
        "overhead_pct_median_of_paired_rounds": round(100 * (statistics.median(pair_ratios) - 1), 1),
        "medcam_lab_host_syncs_per_step": None if host_syncs is None else len(host_syncs),
        "host_sync_calls": host_syncs,
        "rounds_s_per_step": {k: [round(v, 4) for v in vs] for k, vs in times.items()},
    }))


if __name__ == "__main__":
    main()
