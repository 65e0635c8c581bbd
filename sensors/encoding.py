"""The 8-bit depth encoding: one definition for training targets, model output, metrics and GUI.

A crop is centred on the head centre at distance D (mm). A depth z inside [D - H, D + H] maps
linearly to 255 (nearest, z = D - H) .. 1 (farthest, z = D + H); 0 means invalid (no reading,
or outside the window). H is the half-range, stored with each model.

    level = 1 + 254 * (D + H - z) / (2 H)          z = D + H - (level - 1) * 2 H / 254

One level is 2H/254 mm (1.18 mm for H = 150 mm); the round trip is exact to half a level.
"""
from __future__ import annotations

import numpy as np

from sensors.errors import ConfigError

LEVELS = 254  # valid levels 1..255


def _check(distance_mm: float, half_range_mm: float) -> None:
    if not (half_range_mm > 0 and np.isfinite(half_range_mm)):
        raise ConfigError(f"half-range must be a positive number of mm, got {half_range_mm!r}")
    if not np.all(np.isfinite(distance_mm)):
        raise ConfigError(f"distance must be finite, got {distance_mm!r}")


def mm_per_level(half_range_mm: float) -> float:
    return 2.0 * half_range_mm / LEVELS


def encode_depth(depth_mm: np.ndarray, distance_mm: float, half_range_mm: float) -> np.ndarray:
    """Depth in mm (any float or integer dtype, 0 = no reading) to 8-bit levels (0 = invalid)."""
    _check(distance_mm, half_range_mm)
    z = np.asarray(depth_mm, dtype=np.float32)
    level = 1.0 + (LEVELS / (2.0 * half_range_mm)) * ((distance_mm + half_range_mm) - z)
    valid = (z > 0) & (level >= 0.5) & (level < 255.5)
    out = np.zeros(z.shape, dtype=np.uint8)
    np.rint(level, out=level)
    out[valid] = np.clip(level[valid], 1, 255).astype(np.uint8)
    return out


def decode_depth(depth8: np.ndarray, distance_mm: float, half_range_mm: float) -> np.ndarray:
    """8-bit levels to depth in mm (float32); invalid (0) pixels decode to 0."""
    _check(distance_mm, half_range_mm)
    level = np.asarray(depth8)
    z = (distance_mm + half_range_mm) - (level.astype(np.float32) - 1.0) * np.float32(mm_per_level(half_range_mm))
    return np.where(level > 0, z, np.float32(0.0)).astype(np.float32)


def tanh_to_levels(t: np.ndarray) -> np.ndarray:
    """A network's tanh output in [-1, 1] to 8-bit levels 0..255 (rounded)."""
    return np.clip(np.rint((np.asarray(t, dtype=np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def levels_to_tanh(depth8: np.ndarray) -> np.ndarray:
    """8-bit levels to the [-1, 1] range a tanh output predicts."""
    return np.asarray(depth8, dtype=np.float32) / 127.5 - 1.0
