"""Batch transforms from the uint8 image cache to normalized model inputs.

They work on whole batches of cached images (B, S, S) uint8, on the device the batch already sits on,
so the data loader only copies bytes. Train: random ``size`` crop + horizontal flip (the MedFuse/MedCAM
recipe "resize 256 → random crop 224"); eval: center crop. ``ssl_views`` adds the stronger augmentation
of image-only self-supervised pretraining.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _to_unit(images: torch.Tensor) -> torch.Tensor:
    return images.float().div_(255.0).unsqueeze(1)  # (B, 1, S, S)


def _normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Grayscale (B,1,H,W) in [0,1] → (B,3,H,W) normalized with per-channel ``mean``/``std``."""
    # built on the host and copied without blocking (a blocking copy would wait for the GPU's queue)
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1).to(x.device, non_blocking=True)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1).to(x.device, non_blocking=True)
    return (x.expand(-1, 3, -1, -1) - m) / s


def eval_transform(images: torch.Tensor, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Center crop to ``size`` and normalize.

    Shape:
        images: (B, S, S) uint8 with S ≥ size; returns (B, 3, size, size) float32.
    """
    s = images.shape[-1]
    if s < size:
        raise ValueError(f"cached images are {s} px, smaller than the model input {size} px")
    top = (s - size) // 2
    return _normalize(_to_unit(images[:, top : top + size, top : top + size]), mean, std)


def random_crop_params(
    batch_size: int, cached_size: int, size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw the random crop offsets and horizontal flips of a batch (on the CPU generator).

    Drawing them separately from applying them lets a data-parallel rank draw the parameters of the whole
    global batch and apply only its own slice, so that its images get exactly the crops one process would.

    Shape:
        returns offsets (B, 2) long (top, left) and flips (B,) bool.
    """
    if cached_size < size:
        raise ValueError(f"cached images are {cached_size} px, smaller than the model input {size} px")
    offsets = torch.randint(0, cached_size - size + 1, (batch_size, 2), generator=generator)
    flips = torch.rand(batch_size, generator=generator) < 0.5
    return offsets, flips


def crop_and_flip(images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, size: int) -> torch.Tensor:
    """Crop ``size × size`` at ``offsets`` and mirror where ``flips``, for the whole batch in one gather.

    Runs on the device ``images`` sits on (the parameters are moved there without blocking).

    Shape:
        images: (B, S, S); offsets: (B, 2); flips: (B,); returns (B, size, size) of the images' dtype.
    """
    b, s = images.shape[0], images.shape[-1]
    if s < size:
        raise ValueError(f"cached images are {s} px, smaller than the model input {size} px")
    if offsets.shape != (b, 2) or flips.shape != (b,):
        raise ValueError(
            f"expected offsets ({b}, 2) and flips ({b},), got {tuple(offsets.shape)} and {tuple(flips.shape)}"
        )
    device = images.device
    offsets = offsets.to(device, non_blocking=True)
    flips = flips.to(device, non_blocking=True)
    steps = torch.arange(size, device=device)
    rows = offsets[:, 0, None] + steps  # (B, size)
    cols = offsets[:, 1, None] + steps
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=device)[:, None, None]
    return images[batch, rows[:, :, None], cols[:, None, :]]


def train_transform(
    images: torch.Tensor,
    size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    generator: torch.Generator | None = None,
    params: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Random ``size`` crop and random horizontal flip per image, then normalize, on the images' device.

    Args:
        images: cached uint8 images (on the CPU or already on the GPU).
        size: model input side.
        mean: per-channel normalization mean of the encoder.
        std: per-channel normalization standard deviation of the encoder.
        generator: draws the crop parameters (see :func:`random_crop_params`) when ``params`` is None.
        params: ``(offsets, flips)`` drawn beforehand (e.g. this rank's slice of the global batch's).

    Shape:
        images: (B, S, S) uint8; returns (B, 3, size, size) float32.
    """
    b, s = images.shape[0], images.shape[-1]
    if params is None:
        if generator is None:
            raise ValueError("train_transform needs a generator or precomputed params")
        params = random_crop_params(b, s, size, generator)
    return _normalize(_to_unit(crop_and_flip(images, params[0], params[1], size)), mean, std)


def ssl_view(
    images: torch.Tensor, size: int, mean: tuple[float, ...], std: tuple[float, ...], generator: torch.Generator
) -> torch.Tensor:
    """One augmented view for self-supervised pretraining: random resized crop (scale 0.4–1), flip,
    brightness/contrast jitter, Gaussian blur (half the time) and a little Gaussian noise.

    Shape:
        images: (B, S, S) uint8; returns (B, 3, size, size) float32.
    """
    b, s = images.shape[0], images.shape[-1]
    x = _to_unit(images)
    scales = torch.empty(b).uniform_(0.4, 1.0, generator=generator)
    out = []
    for i in range(b):
        side = max(8, int(round(s * float(scales[i].sqrt()))))
        top = int(torch.randint(0, s - side + 1, (1,), generator=generator))
        left = int(torch.randint(0, s - side + 1, (1,), generator=generator))
        crop = x[i : i + 1, :, top : top + side, left : left + side]
        out.append(F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False))
    x = torch.cat(out)
    flip = torch.rand(b, generator=generator) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    brightness = torch.empty(b, 1, 1, 1).uniform_(-0.2, 0.2, generator=generator)
    contrast = torch.empty(b, 1, 1, 1).uniform_(0.7, 1.3, generator=generator)
    mu = x.mean(dim=(2, 3), keepdim=True)
    x = (x - mu) * contrast + mu + brightness
    blur = torch.rand(b, generator=generator) < 0.5
    kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    kernel = (kernel[:, None] * kernel[None, :]) / 256.0
    blurred = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel.view(1, 1, 5, 5))
    x = torch.where(blur.view(-1, 1, 1, 1), blurred, x)
    x = x + 0.02 * torch.randn(x.shape, generator=generator)
    return _normalize(x.clamp_(0.0, 1.0), mean, std)
