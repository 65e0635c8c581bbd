"""Display mapping of depth crops, free of Qt: 8-bit crops -> colour-table indices.

Every depth panel shows depth relative to the head centre, z - D in mm, on ONE fixed scale
[-shown_half_range_mm, +shown_half_range_mm], whatever each model's own half-range H: a
crop's level l means z - D = H - (l - 1) 2H / 254 (sensors.encoding), which is mapped to a
colour-table index 1..255 (1 = nearest end of the scale); index 0 is reserved for invalid
pixels. The error map shows |predicted - true| in mm on [0, error_max_mm] the same way.
The panels push these uint8 index images with a fixed lookup table, so drawing costs one
table look-up per pixel and the scale never changes from frame to frame.
"""
from __future__ import annotations

import functools

import numpy as np

from sensors.encoding import decode_depth, mm_per_level

#: the depth panels' default scale (± mm around the head centre) and its limits (display only)
DEFAULT_SHOWN_HALF_RANGE_MM = 150.0
SHOWN_RANGE_LIMITS_MM = (10, 1000)
#: colour maps offered for the depth panels: shown name -> pyqtgraph's bundled map (no download)
DEPTH_COLORMAPS = {"viridis": "viridis", "plasma": "plasma", "inferno": "inferno", "magma": "magma",
                   "cividis": "cividis", "turbo": "turbo", "grey": "CET-L1"}
DEFAULT_COLORMAP = "viridis"

INVALID = 0           # colour-table index of invalid pixels
FIRST, LAST = 1, 255  # colour-table indices of the two ends of a scale


@functools.lru_cache(maxsize=16)
def _level_table(half_range_mm: float, shown_half_range_mm: float) -> np.ndarray:
    """level (0..255) -> colour-table index for a crop encoded with ``half_range_mm``."""
    levels = np.arange(256, dtype=np.uint8)
    rel = decode_depth(levels, 0.0, half_range_mm)  # z - D for D = 0
    pos = (rel + shown_half_range_mm) / (2.0 * shown_half_range_mm)
    idx = np.clip(np.rint(FIRST + pos * (LAST - FIRST)), FIRST, LAST).astype(np.uint8)
    idx[0] = INVALID
    idx.setflags(write=False)
    return idx


def depth_indices(depth8: np.ndarray, half_range_mm: float, shown_half_range_mm: float) -> np.ndarray:
    """An 8-bit depth crop (0 = invalid) -> colour-table indices on the shared z - D scale.
    Depth beyond the shown range saturates at the scale's ends."""
    return _level_table(float(half_range_mm), float(shown_half_range_mm))[depth8]


def error_mm(pred8: np.ndarray, true8: np.ndarray, half_range_mm: float) -> np.ndarray:
    """|predicted - true| in mm where the true depth is valid, NaN elsewhere. Predictions are
    clamped to level >= 1 first, as the metrics do (a predicted background pixel counts as
    the farthest level, not as a hole)."""
    p = np.maximum(pred8, 1).astype(np.int16)
    t = true8.astype(np.int16)
    err = np.abs(p - t).astype(np.float32) * np.float32(mm_per_level(half_range_mm))
    err[true8 == 0] = np.nan
    return err


def error_indices(err_mm: np.ndarray, error_max_mm: float) -> np.ndarray:
    """Errors in mm (NaN = no ground truth) -> colour-table indices on [0, error_max_mm]."""
    valid = ~np.isnan(err_mm)
    idx = np.zeros(err_mm.shape, dtype=np.uint8)
    pos = np.clip(err_mm[valid] / error_max_mm, 0.0, 1.0)
    idx[valid] = np.rint(FIRST + pos * (LAST - FIRST)).astype(np.uint8)
    return idx


def reduce_color(color: np.ndarray, max_width_px: int) -> tuple[np.ndarray, int]:
    """The colour frame at reduced resolution for display: every k-th pixel, k the smallest
    integer that brings the width to at most ``max_width_px``. Returns (image, k)."""
    w = color.shape[1]
    k = max(1, -(-w // max_width_px))
    if k == 1:
        return color, 1
    return np.ascontiguousarray(color[::k, ::k]), k


def readout_text(value: float, distance_mm: float, half_range_mm: float, error: bool = False) -> str:
    """The hover readout of one crop pixel: an 8-bit depth level decoded to mm (z and z - D),
    or with ``error`` an error in mm (NaN: no true depth there)."""
    if error:
        return "no true depth" if not np.isfinite(value) else f"{float(value):.1f} mm"
    if int(value) == 0:
        return "no depth"
    z = float(decode_depth(np.asarray(value, dtype=np.uint8), distance_mm, half_range_mm))
    return f"z = {z:.0f} mm (z - D = {z - distance_mm:+.0f} mm)"
