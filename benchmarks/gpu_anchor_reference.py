# Copied verbatim (below the provenance line) from the project design notes, shared/guides/gpu_anchor_reference.py:
# the plain-PyTorch reference that produced the H100 anchor figures of the performance goal. Kept here so the
# benchmarks never import from outside the repository. Do not edit: bench_align_step.py measures against it.
# ruff: noqa
"""Anchor figures for the performance goal, measured on one GPU.

Plain-PyTorch reference of the MedCAM alignment step (ResNet-50 image encoder,
LSTM EHR encoder, global + local top-k contrastive loss), a fine-tuning step,
JPEG decoding (CPU PIL vs GPU nvjpeg) and bootstrap AUROC (sklearn loop vs a
batched rank formula on the GPU). Prints one JSON line per figure.
"""
import io, json, math, os, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F
import torchvision

SMOKE = os.environ.get("SMOKE") == "1"
dev = "cpu" if SMOKE else "cuda"
torch.backends.cudnn.benchmark = True
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True

def out(**kw):
    print(json.dumps(kw), flush=True)

def sync():
    if dev == "cuda":
        torch.cuda.synchronize()

def timeit(fn, warm=3, iters=10):
    if SMOKE:
        warm, iters = 1, 1
    for _ in range(warm):
        fn()
    sync()
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return (time.perf_counter() - t) / iters

class Aligner(nn.Module):
    def __init__(self, d=256, feat=76, hid=256, layers=2):
        super().__init__()
        r = torchvision.models.resnet50()
        r.fc = nn.Identity()
        self.img = r
        self.img_proj = nn.Sequential(nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, d))
        self.lstm = nn.LSTM(feat, hid, num_layers=layers, batch_first=True, dropout=0.3)
        self.ehr_proj = nn.Linear(hid, d)
        self.q = nn.Linear(d, d, bias=False)

    def forward(self, x, e, k=10, tau=0.07):
        zc = F.normalize(self.img_proj(self.img(x)).float(), dim=-1)            # B,d
        h, _ = self.lstm(e)                                                      # B,t,hid
        zt = F.normalize(self.ehr_proj(h).float(), dim=-1)                       # B,t,d
        zg = zt[:, -1]                                                           # B,d
        B, t, d = zt.shape
        lg = zc @ zg.T / tau
        lab = torch.arange(B, device=x.device)
        l_glob = 0.5 * (F.cross_entropy(lg, lab) + F.cross_entropy(lg.T, lab))
        att = torch.softmax((self.q(zc).unsqueeze(1) * zt).sum(-1) / math.sqrt(d), dim=-1)  # B,t
        top = att.topk(k, dim=-1).indices                                        # B,k
        s_own = torch.einsum("bd,btd->bt", zc, zt) / tau                         # B,t
        l_c2e = -(s_own.log_softmax(-1).gather(1, top)).mean()
        zsel = zt.gather(1, top.unsqueeze(-1).expand(B, k, d))                   # B,k,d
        s_all = torch.einsum("bkd,cd->bkc", zsel, zc) / tau                      # B,k,B
        l_e2c = -(s_all.log_softmax(-1).gather(2, lab.view(B, 1, 1).expand(B, k, 1))).mean()
        return l_glob + 0.5 * (l_c2e + l_e2c)

def bench_align(B, dtype, cl, compile_=False, t=24):
    m = Aligner().to(dev)
    if cl:
        m = m.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, fused=dev == "cuda")
    x = torch.randn(B, 3, 224, 224, device=dev)
    if cl:
        x = x.to(memory_format=torch.channels_last)
    e = torch.randn(B, t, 76, device=dev)
    f = torch.compile(m) if compile_ else m
    def step():
        with torch.autocast(dev, dtype=dtype, enabled=dtype != torch.float32):
            loss = f(x, e)
        loss.backward()
        opt.step(); opt.zero_grad(set_to_none=True)
    s = timeit(step)
    out(fig="align_step", B=B, dtype=str(dtype), channels_last=cl, compile=compile_, s_per_step=round(s, 5), img_per_s=round(B / s, 1),
        peak_mem_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2) if dev == "cuda" else None)
    del m, opt
    if dev == "cuda":
        torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()

def bench_resnet_only(B, dtype, cl):
    m = torchvision.models.resnet50(num_classes=14).to(dev)
    if cl:
        m = m.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, fused=dev == "cuda")
    x = torch.randn(B, 3, 224, 224, device=dev)
    if cl:
        x = x.to(memory_format=torch.channels_last)
    y = (torch.rand(B, 14, device=dev) > 0.8).float()
    def step():
        with torch.autocast(dev, dtype=dtype, enabled=dtype != torch.float32):
            loss = F.binary_cross_entropy_with_logits(m(x).float(), y)
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    s = timeit(step)
    out(fig="finetune_step_resnet50_bce", B=B, dtype=str(dtype), channels_last=cl, img_per_s=round(B / s, 1))
    def inf():
        with torch.no_grad(), torch.autocast(dev, dtype=dtype, enabled=dtype != torch.float32):
            m(x)
    s = timeit(inf)
    out(fig="inference_resnet50", B=B, dtype=str(dtype), channels_last=cl, img_per_s=round(B / s, 1))
    del m, opt

def bench_jpeg():
    from PIL import Image
    rng = np.random.default_rng(0)
    for (h, w) in [(256, 256), (2544, 3056)]:
        base = rng.normal(size=(h // 16 + 1, w // 16 + 1)).astype(np.float32)
        img = np.kron(base, np.ones((16, 16)))[:h, :w]
        img = (img - img.min()) / (np.ptp(img) + 1e-6) * 200 + rng.normal(0, 6, size=img.shape)
        img = np.clip(img, 0, 255).astype(np.uint8)
        buf = io.BytesIO(); Image.fromarray(img).save(buf, format="JPEG", quality=95); data = buf.getvalue()
        n = 64 if h == 256 else 16
        t0 = time.perf_counter()
        for _ in range(n):
            Image.open(io.BytesIO(data)).convert("L").resize((256, 256)) if h > 256 else Image.open(io.BytesIO(data)).convert("L").load()
        cpu = n / (time.perf_counter() - t0)
        tens = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for _ in range(n)]
        def gpu():
            imgs = torchvision.io.decode_jpeg(tens, device=dev)
            if h > 256:
                [F.interpolate(i[None].float(), size=(256, 256), mode="bilinear", antialias=True) for i in imgs]
        s = timeit(gpu, warm=2, iters=5)
        out(fig="jpeg_decode", size=f"{h}x{w}", bytes=len(data), cpu_pil_img_per_s_one_core=round(cpu, 1), gpu_nvjpeg_img_per_s=round(n / s, 1))

def bench_bootstrap(N=40000, L=14, R=1000):
    rng = np.random.default_rng(0)
    y = (rng.random((N, L)) < 0.1).astype(np.int8)
    p = rng.random((N, L)) + y * 0.5
    from sklearn.metrics import roc_auc_score
    t0 = time.perf_counter(); r_sk = 20
    for r in range(r_sk):
        idx = rng.integers(0, N, N)
        roc_auc_score(y[idx], p[idx], average="macro")
    sk = (time.perf_counter() - t0) / r_sk
    yt = torch.tensor(y, device=dev, dtype=torch.float32); pt = torch.tensor(p, device=dev, dtype=torch.float32)
    def gpu_boot():
        g = torch.Generator(device=dev); g.manual_seed(0)
        res = []
        for c in range(0, R, 50):
            idx = torch.randint(0, N, (50, N), device=dev, generator=g)
            ys = yt[idx]; ps = pt[idx]                                  # 50,N,L
            ranks = ps.argsort(1).argsort(1).float() + 1               # ties ignored (continuous scores)
            npos = ys.sum(1); nneg = N - npos
            auc = ((ranks * ys).sum(1) - npos * (npos + 1) / 2) / (npos * nneg)
            res.append(auc.mean(-1))
        return torch.cat(res)
    s = timeit(gpu_boot, warm=1, iters=3)
    out(fig="bootstrap_auroc", N=N, labels=L, resamples=R, sklearn_s_per_resample=round(sk, 4), sklearn_est_total_s=round(sk * R, 1), gpu_total_s=round(s, 3), speedup=round(sk * R / s, 1))

if __name__ == "__main__":
    out(fig="device", name=torch.cuda.get_device_name() if dev == "cuda" else "cpu", torch=torch.__version__, torchvision=torchvision.__version__)
    if SMOKE:
        bench_align(8, torch.float32, False)
        bench_resnet_only(8, torch.float32, False)
        bench_bootstrap(N=2000, R=100)
        raise SystemExit
    for B in (64, 256):
        bench_resnet_only(B, torch.bfloat16, True)
    bench_resnet_only(256, torch.float32, False)
    for (B, dt, cl) in [(256, torch.float32, False), (256, torch.bfloat16, False), (256, torch.bfloat16, True), (512, torch.bfloat16, True)]:
        bench_align(B, dt, cl)
    try:
        bench_align(256, torch.bfloat16, True, compile_=True)
    except Exception as ex:
        out(fig="align_step_compile_failed", err=str(ex)[:300])
    bench_jpeg()
    bench_bootstrap()
