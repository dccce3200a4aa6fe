"""A small numpy chest X-ray renderer: anatomy, weak disease patterns, strong nuisance.

Coordinates. Each pixel is mapped to *anatomy* coordinates (X, Y): Y runs from the top (-1) to the bottom
(+1) of a standard film, X from the image's left (patient's right, -) to its right (patient's left, +),
in the same units. The patient's pose (scale, rotation, shift) and body width map anatomy into the image.

Intensities are built in [0, 1] (1 = radiopaque): body soft tissue 0.55, aerated lung 0.55 - 0.36,
bone bands on top. Opacities (fluid, consolidation, edema, collapse, nodules) *replace air* in the lung,
so each raises lung intensity by at most 0.36 x its opacity. Every finding amplitude is multiplied by
``gain`` (the config's ``visual_gain``) and :data:`FINDING_SCALE`; with ``gain=0`` the image carries no
disease information.

The image-level nuisance (:class:`Nuisance`) then applies a scanner/site style, gamma, contrast,
brightness, blur and noise. The exact amplitudes are listed in ``data_cards/synthetic.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

import numpy as np

AIR_DENSITY = 0.36
TISSUE = 0.55
FINDING_SCALE = 0.35
"""Effective strength = min(1, FINDING_SCALE x gain x intensity): at the default ``visual_gain=1`` a
finding of intensity 1 is drawn at 35 % of its full pattern (support devices at 35 % of full contrast)."""


@dataclass(frozen=True)
class Anatomy:
    """Patient-level anatomy (constant across the patient's images)."""

    body_width: float  # thorax width factor
    heart_size: float  # normal variation of the heart width
    lung_height: float  # vertical lung extent factor
    rib_phase: float  # vertical offset of the rib cage
    diaphragm: float  # vertical offset of both hemidiaphragms


def draw_anatomy(rng: np.random.Generator, body_width: float, heart_size: float) -> Anatomy:
    """Patient anatomy from the body width and normal heart size of :class:`latent.Chronic`."""
    return Anatomy(
        body_width=body_width,
        heart_size=heart_size,
        lung_height=float(rng.normal(1.0, 0.04)),
        rib_phase=float(rng.uniform(-0.03, 0.03)),
        diaphragm=float(rng.normal(0.0, 0.03)),
    )


@dataclass(frozen=True)
class Layout:
    """Where the findings of one stay sit (sides, positions): constant across the stay's images."""

    effusion_sides: tuple[float, float]  # weight per side (patient right, patient left)
    cons_side: int  # -1 patient right (image left), +1 patient left
    cons_blobs: tuple[tuple[float, float, float], ...]  # (a, b, sigma) relative to the lung ellipse
    atel_side: int
    atel_tilt: float
    ptx_side: int
    fracture_side: int
    fracture_rib: int
    fracture_u: float
    nodule: tuple[float, float]  # (a, b) relative to the lung ellipse, side from sign of a
    mass: tuple[float, float]
    pleural_side: int
    pleural_phase: float
    central_line_side: int
    ett_depth: float
    infiltrate_blobs: tuple[tuple[float, float, float], ...]


def draw_layout(rng: np.random.Generator, lesion_rng: np.random.Generator | None = None) -> Layout:
    """Random finding positions; ``lesion_rng`` (patient-level) fixes the chronic lesion positions."""
    lrng = lesion_rng if lesion_rng is not None else rng
    side = lambda: int(rng.choice([-1, 1]))
    eff = rng.random()
    effusion_sides = (1.0, 1.0) if eff < 0.55 else ((1.0, 0.0) if eff < 0.8 else (0.0, 1.0))
    n_blobs = int(rng.integers(3, 7))
    zone = rng.uniform(-0.1, 0.55)
    blobs = tuple(
        (
            float(rng.uniform(-0.6, 0.6)),
            float(np.clip(zone + rng.normal(0, 0.18), -0.6, 0.75)),
            float(rng.uniform(0.05, 0.1)),
        )
        for _ in range(n_blobs)
    )
    infil = tuple(
        (
            float(rng.choice([-1, 1]) * rng.uniform(0.1, 0.7)),
            float(rng.uniform(-0.5, 0.7)),
            float(rng.uniform(0.04, 0.07)),
        )
        for _ in range(int(rng.integers(6, 11)))
    )
    return Layout(
        effusion_sides=effusion_sides,
        cons_side=side(),
        cons_blobs=blobs,
        atel_side=side(),
        atel_tilt=float(rng.uniform(-0.15, 0.25)),
        ptx_side=side(),
        fracture_side=side(),
        fracture_rib=int(rng.integers(3, 8)),
        fracture_u=float(rng.uniform(0.55, 0.9)),
        nodule=(float(lrng.choice([-1, 1]) * lrng.uniform(0.2, 0.7)), float(lrng.uniform(-0.55, 0.55))),
        mass=(float(lrng.choice([-1, 1]) * lrng.uniform(0.2, 0.6)), float(lrng.uniform(-0.45, 0.45))),
        pleural_side=int(lrng.choice([-1, 1])),
        pleural_phase=float(lrng.uniform(0, 2 * np.pi)),
        central_line_side=side(),
        ett_depth=float(rng.uniform(-0.04, 0.08)),
        infiltrate_blobs=infil,
    )


@dataclass(frozen=True)
class Nuisance:
    """Image-level acquisition variation (unrelated to disease)."""

    scale: float
    rotation: float  # radians
    shift: tuple[float, float]  # (dx, dy) in image units
    gamma: float
    contrast: float
    brightness: float
    noise: float
    blur: float  # Gaussian sigma in pixels
    style: int  # scanner / site style: MIMIC 0 plain, 1 edge-enhanced, 2 soft-bright, 3 dark-collimated; 4 NIH
    ecg_leads: bool
    portable_marker: bool
    seed: int  # for the texture and noise fields


def draw_nuisance(rng: np.random.Generator, style: int, portable: bool, domain: str = "mimic") -> Nuisance:
    """Image nuisance. ``domain='nih'`` gives the shifted NIH acquisition (see the data card)."""
    if domain == "nih":
        return Nuisance(
            scale=float(rng.uniform(0.74, 0.84)),
            rotation=float(np.deg2rad(rng.normal(0, 2.0))),
            shift=(float(rng.normal(0, 0.03)), float(rng.normal(0.04, 0.03))),
            gamma=float(np.exp(rng.uniform(np.log(1.25), np.log(1.6)))),
            contrast=float(rng.uniform(1.2, 1.45)),
            brightness=float(rng.uniform(-0.02, 0.06)),
            noise=float(rng.uniform(0.004, 0.012)),
            blur=float(rng.uniform(0.9, 1.5)),
            style=4,
            ecg_leads=False,
            portable_marker=False,
            seed=int(rng.integers(2**31)),
        )
    return Nuisance(
        scale=float(rng.uniform(0.88, 1.12)),
        rotation=float(np.deg2rad(rng.normal(0, 3.5))),
        shift=(float(rng.normal(0, 0.05)), float(rng.normal(0, 0.05))),
        gamma=float(np.exp(rng.uniform(np.log(0.75), np.log(1.35)))),
        contrast=float(rng.uniform(0.75, 1.25)),
        brightness=float(rng.uniform(-0.08, 0.08)),
        noise=float(rng.uniform(0.01, 0.04)),
        blur=float(rng.uniform(0.0, 1.0)),
        style=style,
        ecg_leads=bool(portable and rng.random() < 0.6),
        portable_marker=bool(portable and rng.random() < 0.7),
        seed=int(rng.integers(2**31)),
    )


# ----------------------------------------------------------------------------------------------------
# helpers


def _clip(x: np.ndarray, lo: float, hi: float | None) -> np.ndarray:
    """``np.clip`` without its Python-level overhead (this module calls it thousands of times)."""
    x = np.maximum(x, lo)
    return x if hi is None else np.minimum(x, hi, out=x)


def _expneg(z: np.ndarray) -> np.ndarray:
    """exp(-z) with z capped at 60, so float32 results never become (slow) denormal numbers."""
    return np.exp(-np.minimum(z, 60.0))


def _ramp(d: np.ndarray, width: float) -> np.ndarray:
    """Soft step: 0 for d << 0, 1 for d >> 0, linear over ``width``."""
    return _clip(0.5 + d / width, 0.0, 1.0)


@lru_cache(maxsize=16)
def _grid(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    y = ((np.arange(rows) + 0.5) / rows * 2.0 - 1.0).astype(np.float32)
    x = (((np.arange(cols) + 0.5) / cols * 2.0 - 1.0) * (cols / rows)).astype(np.float32)
    return x[None, :], y[:, None]


@lru_cache(maxsize=64)
def _interp_index(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """Left knot index and weight of the right knot for linear interpolation of ``n_in + 1`` knots."""
    pos = np.linspace(0, n_in, n_out, endpoint=False)
    i0 = pos.astype(np.intp)
    return i0, (pos - i0).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, rows: int, cols: int, cells: int) -> np.ndarray:
    """Bilinearly upsampled uniform noise in [0, 1] with about ``cells`` cells along the rows."""
    h0 = max(2, cells)
    w0 = max(2, round(cells * cols / rows))
    base = rng.random((h0 + 1, w0 + 1), dtype=np.float32)
    yi, yw = _interp_index(rows, h0)
    xi, xw = _interp_index(cols, w0)
    tmp = base[yi] * (1 - yw[:, None]) + base[yi + 1] * yw[:, None]  # (rows, w0 + 1)
    return tmp[:, xi] * (1 - xw) + tmp[:, xi + 1] * xw


@lru_cache(maxsize=64)
def _gauss_kernel(sigma_centi: int) -> np.ndarray:
    sigma = sigma_centi / 100.0
    radius = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (reflect padding), sigma rounded to 0.05 px. Shape: (H, W) -> (H, W).

    Shifted sums, not a BLAS product: small matrix products are slow under a busy multi-threaded BLAS.
    """
    if sigma < 0.3:
        return img
    k = _gauss_kernel(round(sigma * 20) * 5)
    r = len(k) // 2
    h, w = img.shape
    pad = np.pad(img, ((r, r), (0, 0)), mode="reflect")
    tmp = k[0] * pad[0:h]
    for i in range(1, len(k)):
        tmp += k[i] * pad[i : i + h]
    pad = np.pad(tmp, ((0, 0), (r, r)), mode="reflect")
    out = k[0] * pad[:, 0:w]
    for i in range(1, len(k)):
        out += k[i] * pad[:, i : i + w]
    return out


def _polyline_distance(x: np.ndarray, y: np.ndarray, pts: list[tuple[float, float]]) -> np.ndarray:
    """Distance of every point to a polyline."""
    best = np.full(np.broadcast_shapes(x.shape, y.shape), np.inf, np.float32)
    for (x0, y0), (x1, y1) in pairwise(pts):
        dx, dy = x1 - x0, y1 - y0
        t = _clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy + 1e-12), 0.0, 1.0)
        d = np.hypot(x - x0 - t * dx, y - y0 - t * dy)
        np.minimum(best, d, out=best)
    return best


def _pose(rows: int, cols: int, anatomy: Anatomy, nz: Nuisance) -> tuple[np.ndarray, np.ndarray, float]:
    """Anatomy coordinates of every pixel and the size of one pixel in anatomy units."""
    xi, yi = _grid(rows, cols)
    c, s = float(np.cos(-nz.rotation)), float(np.sin(-nz.rotation))
    px, py = (xi - nz.shift[0]) / nz.scale, (yi - nz.shift[1]) / nz.scale
    X = (c * px - s * py) / anatomy.body_width
    Y = s * px + c * py
    # float32 throughout: half the memory traffic (numpy scalars would silently promote to float64)
    return X.astype(np.float32, copy=False), Y.astype(np.float32, copy=False), 2.0 / rows / nz.scale


# ----------------------------------------------------------------------------------------------------
# frontal view


def render_frontal(
    size: tuple[int, int],
    anatomy: Anatomy,
    layout: Layout,
    f: dict[str, float],
    devices: dict[str, bool],
    nz: Nuisance,
    gain: float,
    ap: bool = True,
) -> np.ndarray:
    """Render one frontal (AP or PA) film. Returns uint8 of shape ``size`` (rows, cols).

    Args:
        size: (rows, cols) of the film.
        anatomy: the patient's anatomy (:func:`draw_anatomy`).
        layout: where the anatomy lies on this film (:func:`draw_layout`).
        f: finding intensities in [0, 1]; keys: cardiomegaly, mediastinum, edema, effusion, consolidation,
            infiltration, atelectasis, pneumothorax, fracture, nodule, mass, pleural, emphysema, fibrosis,
            hernia (missing keys = 0).
        devices: ett, ng, central_line, chest_tube.
        nz: the acquisition nuisance (:func:`draw_nuisance`): style, tone, blur, noise, markers.
        gain: visual gain multiplying every finding amplitude.
        ap: an AP film (heart and mediastinum magnified) rather than PA.
    """
    rows, cols = size
    rng = np.random.default_rng(nz.seed)
    X, Y, px = _pose(rows, cols, anatomy, nz)
    gain = gain * FINDING_SCALE
    g = lambda name: min(1.0, gain * f.get(name, 0.0))
    aX = np.abs(X)

    # body outline (shoulders slope towards the neck) and arms at the sides
    hw = 0.8 - _clip(-0.74 - Y, 0.0, None) * 1.8
    body = _ramp(hw - aX, 0.03) * _ramp(1.3 - Y, 0.05)
    arms = _ramp(0.12 - np.abs(aX - 1.0), 0.03) * _ramp(Y + 0.85, 0.1)
    img = TISSUE * np.maximum(body, 0.85 * arms)

    # lungs
    emph = g("emphysema")
    air = np.zeros_like(X)
    lung_e = {}
    for side in (-1, 1):
        cx, cy = side * 0.33, -0.12
        dx = X - cx
        rx = np.where(dx * side > 0, np.float32(0.29), np.float32(0.24 if side > 0 else 0.25))
        rx = rx * (0.55 + 0.45 * _clip((Y + 0.74) / 0.35, 0.0, 1.0))
        ry = 0.62 * anatomy.lung_height * (1 + 0.1 * emph)
        e = (dx / rx) ** 2 + ((Y - cy) / ry) ** 2
        elev = 0.06 * g("atelectasis") if layout.atel_side == side else 0.0
        dome = 0.17 * (1 - 0.7 * emph)
        yd = (
            0.31
            + anatomy.diaphragm
            + 0.06 * emph
            + dome * (dx / 0.29) ** 2
            + (0.02 if side > 0 else 0.0)
            - elev
        )
        lung_e[side] = (e, yd, cx, cy, rx, ry)
        air = np.maximum(air, _ramp(1.0 - e, 0.08) * _ramp(yd - Y, 0.02))
    air *= body

    # mediastinum, heart, aortic knob
    card = g("cardiomegaly")
    heart_rx = 0.25 * anatomy.heart_size * (1 + 0.4 * card) * (1.07 if ap else 1.0)
    heart_ry = 0.19 * (1 + 0.12 * card)
    heart = _ramp(1.0 - ((X - 0.07 - 0.1 * card * 0.25) / heart_rx) ** 2 - ((Y - 0.2) / heart_ry) ** 2, 0.12)
    mw = 0.085 * (1 + 0.8 * g("mediastinum")) * (1.04 if ap else 1.0)
    med = _ramp(mw - np.abs(X - 0.01), 0.02) * _ramp(Y + 0.9, 0.05) * _ramp(0.25 - Y, 0.05)
    knob = _ramp(1.0 - ((X - 0.1) ** 2 + (Y + 0.42) ** 2) / (0.05 * (1 + 0.5 * g("mediastinum"))) ** 2, 0.2)
    solid = np.maximum(np.maximum(heart, med), knob)
    air *= 1.0 - 0.95 * solid

    # opacities that replace air
    opac = np.zeros_like(X)
    opac += 0.12 * _expneg(((aX - 0.15) ** 2) / 0.03 + ((Y + 0.04) ** 2) / 0.05)  # normal hila
    if g("edema") > 0:  # perihilar (bat-wing) haze
        opac += 0.32 * g("edema") * _expneg(((aX - 0.18) ** 2) / 0.05 + (Y**2) / 0.1)
    eff = g("effusion")
    if eff > 0:
        for side, w in zip((-1, 1), layout.effusion_sides):
            if w == 0:
                continue
            e, yd, cx, cy, rx, ry = lung_e[side]
            h = (0.05 + 0.3 * eff) * w
            lateral = _clip((X * side - 0.1) / 0.5, 0.0, 1.0)
            surface = 0.47 + anatomy.diaphragm - h - 0.5 * h * lateral**2
            fluid = _ramp(Y - surface, 0.04) * _ramp(1.05 - e, 0.08)
            opac += 0.8 * (0.45 + 0.55 * eff) * fluid * (X * side > 0.02)
    patch = _smooth_noise(rng, rows, cols, 14)
    cons = g("consolidation")
    if cons > 0:
        e, yd, cx, cy, rx, ry = lung_e[layout.cons_side]
        blob = sum(
            _expneg(((X - cx - a * 0.27) ** 2 + (Y - cy - b * 0.6) ** 2) / (2 * sg**2))
            for a, b, sg in layout.cons_blobs
        )
        opac += 0.6 * cons * np.minimum(blob, 1.0) * (0.5 + patch)
    inf = g("infiltration")
    if inf > 0:
        blob = sum(
            _expneg(((X - a * 0.45) ** 2 + (Y - 0.3 * b) ** 2) / (2 * sg**2))
            for a, b, sg in layout.infiltrate_blobs
        )
        opac += 0.35 * inf * np.minimum(blob, 1.0) * (0.4 + patch)
    atel = g("atelectasis")
    if atel > 0:
        e, yd, cx, cy, rx, ry = lung_e[layout.atel_side]
        ya = 0.2 + anatomy.diaphragm
        d = _polyline_distance(
            X, Y, [(cx - 0.17, ya - layout.atel_tilt * 0.17), (cx + 0.17, ya + layout.atel_tilt * 0.17)]
        )
        opac += 0.7 * atel * _expneg((d / 0.03) ** 2)
    for name, pos, radius, amp in (
        ("nodule", layout.nodule, 0.025 + 0.02 * g("nodule"), 0.6),
        ("mass", layout.mass, 0.07 + 0.05 * g("mass"), 0.7),
    ):
        s = g(name)
        if s > 0:
            side = 1 if pos[0] > 0 else -1
            e, yd, cx, cy, rx, ry = lung_e[side]
            nx, ny = cx + abs(pos[0]) * side * 0.27 - side * 0.1, cy + pos[1] * 0.6
            r = np.hypot(X - nx, Y - ny)
            opac += amp * s * _ramp(radius - r, 1.5 * px)
    pl = g("pleural")
    if pl > 0:
        e = lung_e[layout.pleural_side][0]
        band = _ramp(e - 0.72, 0.1) * _ramp(0.3 - Y, 0.1) * _ramp(Y + 0.55, 0.1)
        bumps = 0.5 + 0.5 * np.sin(Y * 38 + layout.pleural_phase)
        opac += 0.7 * pl * band * bumps * (X * layout.pleural_side > 0)
    fib = g("fibrosis")
    if fib > 0:
        reticular = (_smooth_noise(rng, rows, cols, max(8, rows // 5)) > 0.62).astype(np.float32)
        periph = _clip(Y + 0.2, 0.0, 1.0) * _clip((aX - 0.12) / 0.4, 0.0, 1.0)
        opac += 0.6 * fib * reticular * periph
    air *= 1.0 - _clip(opac, 0.0, 0.95)

    # pneumothorax: the lung retracts; the rim holds air without markings and a thin pleural line
    ptx_region = np.zeros_like(X)
    ptx = g("pneumothorax")
    if ptx > 0:
        side = layout.ptx_side
        e, yd, cx, cy, rx, ry = lung_e[side]
        shrink = 1.0 - 0.38 * ptx  # the collapsed lung's size relative to the normal one
        ex = ((X - cx + side * 0.29 * (1 - shrink) * 0.5) / (rx * shrink)) ** 2 + (
            (Y - cy - ry * (1 - shrink) * 0.6) / (ry * shrink)
        ) ** 2
        inside = _ramp(1.0 - e, 0.08) * _ramp(yd - Y, 0.02)
        ptx_region = inside * _ramp(ex - 1.0, 0.08)
        line = inside * _expneg(((ex - 1.0) / 0.05) ** 2)
        air = np.maximum(air, ptx_region)
    img = img - AIR_DENSITY * air - 0.07 * ptx * ptx_region * (1 if ptx > 0 else 0)
    if ptx > 0:
        img += 0.06 * min(1.0, gain) * line * (1 - ptx_region)

    # lung markings (vessels), suppressed in a pneumothorax and in emphysema
    tex = _smooth_noise(rng, rows, cols, max(10, rows // 6)) - 0.5
    hil_w = 0.45 + 0.55 * _expneg(((aX - 0.15) ** 2 + (Y + 0.05) ** 2) / 0.12)
    img += 0.09 * tex * air * hil_w * (1 - ptx_region) * (1 - 0.6 * emph)
    img -= 0.05 * emph * air

    # bones: spine, posterior ribs (with an optional fracture), clavicles
    spine = _ramp(0.055 - np.abs(X), 0.015) * _ramp(1.1 - Y, 0.05) * (1 + 0.3 * np.cos(2 * np.pi * Y / 0.09))
    img += 0.07 * spine * body
    u = aX / 0.66
    frac = g("fracture")
    # rib coordinate: integer values on the rib centre lines (10 posterior ribs, curved laterally)
    v: np.ndarray = (Y + 0.72 - anatomy.rib_phase + 0.10 * u - 0.30 * u**2) / 0.105
    if frac > 0:  # the lateral part of one rib is displaced, with a gap at the fracture
        here = (np.sign(X) == layout.fracture_side) & (np.abs(v - layout.fracture_rib) < 0.5)
        v = v - (here & (u > layout.fracture_u)) * np.float32(0.04 * frac / 0.105)
    k = _clip(np.round(v), 0, 9)
    thick = (0.022 + 0.003 * k) / 0.105
    ribs = _clip(1.0 - np.abs(v - k) / thick, 0.0, 1.0) * _ramp(v + 0.5, 0.2) * _ramp(9.5 - v, 0.2)
    if frac > 0:
        here = (np.sign(X) == layout.fracture_side) & (k == layout.fracture_rib)
        ribs = ribs * np.where(here, _ramp(np.abs(u - layout.fracture_u) - (0.012 + 0.02 * frac), 0.01), 1.0)
    img += 0.075 * ribs * _ramp(1.03 - u, 0.03) * _ramp(u - 0.08, 0.03) * body
    cla = -0.75 - 0.2 * _clip(aX - 0.06, 0.0, None)
    img += (
        0.09
        * _clip(1.0 - np.abs(Y - cla) / 0.024, 0.0, 1.0)
        * _ramp(0.58 - aX, 0.04)
        * _ramp(aX - 0.05, 0.02)
    )

    # abdomen: gastric bubble under the left hemidiaphragm; hiatal hernia behind the heart
    yd_left = lung_e[1][1]
    bubble = _ramp(1.0 - ((X - 0.3) / 0.08) ** 2 - ((Y - yd_left - 0.09) / 0.045) ** 2, 0.3)
    img -= 0.12 * bubble
    her = g("hernia")
    if her > 0:
        disk = _ramp(0.1 - np.hypot(X - 0.03, Y - 0.2), 0.02)
        img += 0.1 * her * disk - 0.12 * her * disk * (Y < 0.19)

    # support devices and ICU nuisance objects
    dev_amp = 0.4 * min(1.0, gain)
    lines = []
    if devices.get("ett"):
        lines.append(([(0.0, -1.2), (0.0, -0.62 + layout.ett_depth)], 0.014))
    if devices.get("ng"):
        lines.append(([(0.03, -1.2), (0.03, -0.4), (0.05, 0.35), (0.25, 0.58)], 0.008))
    if devices.get("central_line"):
        c = layout.central_line_side
        lines.append(([(c * 0.55, -0.84), (c * 0.28, -0.72), (c * 0.06, -0.46), (0.03, -0.3)], 0.008))
    if devices.get("chest_tube"):
        s = layout.ptx_side
        lines.append(([(s * 0.78, 0.35), (s * 0.52, 0.12), (s * 0.36, -0.45)], 0.012))
    for pts, width in lines:
        img += dev_amp * _expneg((_polyline_distance(X, Y, pts) / width) ** 2)
    if nz.ecg_leads:  # ECG electrodes and wires: bright, but unrelated to any label
        for cxy in ((-0.5, -0.75), (0.5, -0.75), (0.45, 0.45)):
            img += 0.3 * _ramp(0.025 - np.hypot(X - cxy[0], Y - cxy[1]), 1.5 * px)
        img += 0.12 * _expneg((_polyline_distance(X, Y, [(-0.5, -0.75), (-0.8, -0.3)]) / 0.006) ** 2)
    return _finish(img, nz, rng, rows, cols)


# ----------------------------------------------------------------------------------------------------
# lateral view (studies only; the pipeline keeps frontal views)


def render_lateral(
    size: tuple[int, int],
    anatomy: Anatomy,
    f: dict[str, float],
    devices: dict[str, bool],
    nz: Nuisance,
    gain: float,
) -> np.ndarray:
    """Render a lateral film (anterior on the image left). Returns uint8 of shape ``size``."""
    rows, cols = size
    rng = np.random.default_rng(nz.seed)
    X, Y, _ = _pose(rows, cols, anatomy, nz)
    gain = gain * FINDING_SCALE
    g = lambda name: min(1.0, gain * f.get(name, 0.0))
    body = _ramp(1.0 - (X / 0.72) ** 2 - ((Y - 0.1) / 1.25) ** 2, 0.08)
    img = TISSUE * body
    yd = 0.3 + 0.25 * (X + 0.5) ** 2 * (X > -0.5)
    lung = _ramp(1.0 - ((X - 0.03) / 0.48) ** 2 - ((Y + 0.12) / 0.7) ** 2, 0.08) * _ramp(yd - Y, 0.02)
    card = g("cardiomegaly")
    heart = _ramp(
        1.0 - ((X + 0.18) / (0.22 * anatomy.heart_size * (1 + 0.35 * card))) ** 2 - ((Y - 0.18) / 0.2) ** 2,
        0.15,
    )
    air = lung * (1 - 0.9 * heart)
    eff = g("effusion")
    opac = 0.3 * g("edema") * _expneg((X**2) / 0.1 + (Y**2) / 0.1)
    if eff > 0:
        opac += 0.8 * (0.45 + 0.55 * eff) * _ramp(Y - (0.45 - 0.3 * eff - 0.3 * _clip(X, 0, None)), 0.04)
    opac += 0.5 * g("consolidation") * _expneg(((X - 0.1) ** 2 + (Y - 0.1) ** 2) / 0.03)
    air *= 1 - _clip(opac, 0, 0.95)
    img = img - AIR_DENSITY * air
    tex = _smooth_noise(rng, rows, cols, max(10, rows // 6)) - 0.5
    img += 0.08 * tex * air
    spine = _ramp(0.07 - np.abs(X - 0.5), 0.02) * (1 + 0.4 * np.cos(2 * np.pi * Y / 0.1))
    img += 0.12 * spine * body
    arms = _ramp(1.0 - ((X + 0.05) / 0.35) ** 2 - ((Y + 0.85) / 0.25) ** 2, 0.2)
    img += 0.15 * arms
    if devices.get("ett"):
        img += (
            0.4
            * min(1.0, gain)
            * _expneg((_polyline_distance(X, Y, [(-0.2, -1.2), (-0.1, -0.6)]) / 0.014) ** 2)
        )
    return _finish(img, nz, rng, rows, cols)


# ----------------------------------------------------------------------------------------------------
# acquisition: style, tone, blur, noise


def _finish(img: np.ndarray, nz: Nuisance, rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    img = _clip(img, 0.0, 1.0)
    if nz.style == 1:  # edge-enhanced (unsharp mask), a bit more contrast
        img = _clip(img + 0.7 * (img - gaussian_blur(img, 2.0)), 0, 1)
        img = (img - 0.5) * 1.1 + 0.5
    elif nz.style == 2:  # soft, bright, flat
        img = 0.15 + 0.8 * img
    elif nz.style == 3:  # darker, collimated borders and a burned-in side marker
        img = 0.9 * img - 0.03
        wl, wr = int(rng.integers(2, 8)), int(rng.integers(2, 8))
        img[:, :wl] = 0.85
        img[:, cols - wr :] = 0.85
        r0, c0 = int(rng.integers(4, 10)), int(rng.integers(wl + 3, wl + 12))
        img[r0 : r0 + 6, c0 : c0 + 2] = 1.0
        img[r0 + 5 : r0 + 6, c0 : c0 + 4] = 1.0
    elif nz.style == 4:  # NIH: steeper tone curve with a lifted toe
        img = 0.05 + 0.95 * _clip(img, 0, 1) ** 1.2
    img = _clip(img, 0.0, 1.0) ** nz.gamma
    img = (img - 0.5) * nz.contrast + 0.5 + nz.brightness
    if nz.portable_marker:  # "PORTABLE" text block in a top corner
        r0 = max(2, rows // 40)
        img[r0 : r0 + max(3, rows // 40), cols - max(20, cols // 4) - 3 : cols - 3] = 0.95
    img = gaussian_blur(img, nz.blur)
    img = img + nz.noise * rng.standard_normal(img.shape, dtype=np.float32) * (
        0.5 + np.sqrt(_clip(img, 0, 1))
    )
    return _clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
