"""Toy depth "faces" for the verifier's tests: each identity is a fixed smooth relief on an
ellipsoidal head, each sample that relief seen with a small pose change, shift, sensor noise,
holes and a random head-centre offset. Small and fast, so training tests take seconds."""
from __future__ import annotations

import numpy as np

from models.data.dataset import CropDataset


def _identity_relief(rng: np.random.Generator, s: int) -> dict:
    return {
        "axes": rng.uniform([0.30, 0.38], [0.40, 0.48]) * s,          # head half-width, half-height (px)
        "bumps": [(rng.uniform(-0.25, 0.25) * s, rng.uniform(-0.3, 0.3) * s,   # centre (px from middle)
                   rng.uniform(0.05, 0.14) * s, rng.uniform(-14, 14))      # radius (px), height (levels)
                  for _ in range(7)],
    }


def _render(ident: dict, rng: np.random.Generator, s: int, noise: float) -> np.ndarray:
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    c = (s - 1) / 2
    dx, dy = rng.uniform(-3, 3, size=2)
    x, y = xx - c - dx, yy - c - dy
    ax, ay = ident["axes"]
    r2 = (x / ax) ** 2 + (y / ay) ** 2
    head = r2 < 1.0
    z = 60.0 * np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))                    # dome, levels toward the camera
    for bx, by, br, bh in ident["bumps"]:
        z += bh * np.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2 * br * br))
    yaw, pitch = rng.uniform(-0.25, 0.25, size=2)                      # a pose change tilts the relief
    z += yaw * x + pitch * y
    level = 128.0 + rng.uniform(-20, 20) + z - 30.0 + rng.normal(0, noise, size=z.shape)
    out = np.clip(np.rint(level), 1, 255).astype(np.uint8)
    out[~head] = 0
    if noise > 0:
        out[rng.random(z.shape) < 0.02] = 0                            # sensor holes
    return out


def toy_depth_dataset(n_subjects: int = 24, per_subject: int = 30, seed: int = 0, s: int = 100,
                      val: int = 4, test: int = 4) -> CropDataset:
    """A CropDataset of toy depth crops: the first identities train, then ``val``, then ``test``."""
    rng = np.random.default_rng(seed)
    idents = [_identity_relief(rng, s) for _ in range(n_subjects)]
    depth, clean, subject, frame, split = [], [], [], [], []
    n_train = n_subjects - val - test
    for k, ident in enumerate(idents):
        for f in range(per_subject):
            state = rng.integers(1 << 31)
            depth.append(_render(ident, np.random.default_rng(state), s, noise=1.5))
            clean.append(_render(ident, np.random.default_rng(state), s, noise=0.0))
            subject.append(100 + k)
            frame.append(f)
            split.append(0 if k < n_train else (1 if k < n_train + val else 2))
    n = len(depth)
    depth_a = np.stack(depth)
    color = np.repeat(depth_a[..., None], 3, axis=-1)   # a stand-in "colour" image for a stand-in generator
    return CropDataset(
        color=color, depth=depth_a, depth_clean=np.stack(clean), distance_mm=np.full(n, 900.0, np.float32),
        subject=np.asarray(subject, np.int32), frame=np.asarray(frame, np.int64),
        pose_deg=np.zeros((n, 3), np.float32), split=np.asarray(split, np.uint8),
        meta={"crop": {"size_px": s, "window_x_mm": 240.0, "window_y_mm": 240.0, "half_range_mm": 150.0},
              "sources": ["toy"]},
    )
