"""The sensor model: what a Kinect v2 does to a perfect image.

Depth (time of flight): the returned IR signal of a pixel is about ``ir * cos(incidence) /
z^2`` (``ir`` is the surface's reflectance at 850 nm). Weak signal means noisy readings and,
below a threshold, none at all; so holes come with grazing angles, dark materials (black hair,
dark plastic) and distance. Hair scatters and adds holes of its own. At depth edges a pixel sees
both surfaces: it reads nothing or a "flying pixel" somewhere in between. Readings are whole
millimetres; outside 0.5-4.5 m the camera reports 0.

Colour: exposure and white balance (in the lighting), optical blur, sensor noise, and the JPEG
compression the Kinect v2 applies to its colour stream.

Random fields come from tables computed once per process (from fixed seeds) and sampled at
random offsets, so the cost per frame stays small and frames stay reproducible.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from sensors.virtual._util import rng
from sensors.virtual.cameras import MAX_RANGE_MM, MIN_RANGE_MM

_PAD = 96


class NoiseTables:
    """Per-process random tables (deterministic: built from fixed seeds)."""

    _instance: "NoiseTables | None" = None

    def __init__(self) -> None:
        h, w = 424 + _PAD, 512 + _PAD
        g = rng("noise-tables")
        self.gauss = g.standard_normal((h, w)).astype(np.float32)
        # holes come in small clumps: blurred noise mapped back to uniform
        b = cv2.GaussianBlur(g.standard_normal((h, w)).astype(np.float32), (0, 0), 0.8)
        b /= b.std()
        erf = np.vectorize(math.erf)
        self.clumpy = (0.5 * (1.0 + erf(b / math.sqrt(2.0)))).astype(np.float32)
        self.uniform = g.random((h, w), dtype=np.float32)
        # colour sensor noise for a patch up to 1100 x 1100 px, three strengths (std in DN)
        base = g.standard_normal((1100, 1100, 3)).astype(np.float32)
        base = cv2.GaussianBlur(base, (0, 0), 0.6)
        base /= base.std()
        self.colour = [np.clip(np.rint(base * s), -127, 127).astype(np.int16) for s in (1.5, 2.5, 4.0)]

    @classmethod
    def get(cls) -> "NoiseTables":
        if cls._instance is None:
            cls._instance = NoiseTables()
        return cls._instance


def ir_signal(ir: np.ndarray, cos_inc: np.ndarray, z_mm: np.ndarray) -> np.ndarray:
    """Relative strength of the returned IR signal (1 ~ white paper seen square-on at 1 m)."""
    zm = np.maximum(z_mm, 1.0) * 1e-3
    return ir * np.maximum(cos_inc, 0.0) / (zm * zm)


def hole_probability(signal: np.ndarray, cos_inc: np.ndarray | float = 1.0,
                     hair: np.ndarray | float = 0.0) -> np.ndarray:
    """Probability that a pixel has no reading: a weak IR return (dark, far), a grazing view
    (beyond about 70 degrees the phase estimate breaks down) and hair (scattering)."""
    weak = 1.0 / (1.0 + np.exp(np.clip((signal - 0.015) / 0.006, -50.0, 50.0)))
    grazing = 0.85 / (1.0 + np.exp(np.clip((np.asarray(cos_inc) - 0.26) / 0.05, -50.0, 50.0)))
    p = 1.0 - (1.0 - weak) * (1.0 - grazing) * (1.0 - 0.15 * np.asarray(hair))
    return np.clip(0.002 + p, 0.0, 1.0).astype(np.float32)


def noise_sigma_mm(signal: np.ndarray, z_mm: np.ndarray) -> np.ndarray:
    """Standard deviation of the depth reading (mm): grows as the signal weakens and with range."""
    return (0.45 * np.sqrt(0.5 / np.maximum(signal, 0.004)) + 0.35e-3 * z_mm).astype(np.float32)


def apply_depth_sensor(clean_mm: np.ndarray, sigma_mm: np.ndarray, p_hole: np.ndarray,
                       g: np.random.Generator) -> np.ndarray:
    """A noisy uint16 depth image from a clean float depth image (0 = nothing)."""
    t = NoiseTables.get()
    h, w = clean_mm.shape
    oy, ox = (int(v) for v in g.integers(0, _PAD, 2))
    oy2, ox2 = (int(v) for v in g.integers(0, _PAD, 2))
    oy3, ox3 = (int(v) for v in g.integers(0, _PAD, 2))
    z = clean_mm
    valid = z > 0
    # depth edges: the 3x3 spread of the clean depth, with "nothing" as very far
    far = np.where(valid, z, np.float32(8000.0)).astype(np.float32)
    kernel = np.ones((3, 3), np.uint8)
    zmax = cv2.dilate(far, kernel)
    zmin = cv2.erode(far, kernel)
    edge = (zmax - zmin) > 30.0
    u = t.uniform[oy3:oy3 + h, ox3:ox3 + w]
    noisy = z + sigma_mm * t.gauss[oy:oy + h, ox:ox + w]
    # flying pixels: a mixture of the two surfaces; others at edges read nothing
    fly = edge & (u < 0.25) & (zmax < 7999.0)
    mix = t.uniform[oy2:oy2 + h, ox2:ox2 + w]
    noisy = np.where(fly, zmin + (zmax - zmin) * (0.15 + 0.7 * mix), noisy)
    holes = (t.clumpy[oy2:oy2 + h, ox2:ox2 + w] < p_hole) | (edge & (u > 0.25) & (u < 0.6))
    noisy = np.rint(noisy)
    ok = (valid | fly) & ~holes & (noisy >= MIN_RANGE_MM) & (noisy <= MAX_RANGE_MM)
    out = np.zeros((h, w), np.uint16)
    out[ok] = noisy[ok].astype(np.uint16)
    return out


def colour_effects(region: np.ndarray, blur_sigma_px: float, noise_level: int, jpeg_quality: int,
                   g: np.random.Generator, noise: bool = True) -> np.ndarray:
    """Optical blur, sensor noise and JPEG compression of a uint8 RGB region (returns a new array)."""
    out = cv2.GaussianBlur(region, (0, 0), blur_sigma_px) if blur_sigma_px > 0.05 else region.copy()
    if not noise:
        return out
    t = NoiseTables.get()
    h, w = out.shape[:2]
    table = t.colour[int(noise_level)]
    th, tw = table.shape[:2]
    if h <= th and w <= tw:
        oy = int(g.integers(0, th - h + 1))
        ox = int(g.integers(0, tw - w + 1))
        out = cv2.add(out, table[oy:oy + h, ox:ox + w], dtype=cv2.CV_8U)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    if ok:
        dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if dec is not None and dec.shape == out.shape:
            out = dec
    return out
