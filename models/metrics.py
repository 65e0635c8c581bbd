"""Depth metrics: one implementation for training, evaluation and the live view (numpy only).

Inputs are 8-bit crops (``sensors.encoding``: 255 nearest .. 1 farthest, 0 invalid) of the
same shape: a prediction ``p`` and a ground truth ``g``. Pixels are scored where ``g > 0``
(face, hair and neck inside the window alike); predictions are clamped to ``>= 1`` first so
that ratios and logarithms are defined. Over the n valid pixels, with ``d = ln p - ln g``:

    delta<t     share of pixels with max(p / g, g / p) < t, for t = 1.25, 1.25^2, 1.25^3 and the
                harder 1.25^(1/2), 1.25^(1/3), 1.25^(1/4)
    l1          mean |p - g|                       (8-bit levels)
    rmse        sqrt(mean (p - g)^2)               (8-bit levels)
    abs_rel     mean |p - g| / g
    sq_rel      mean (p - g)^2 / g
    rmse_log    sqrt(mean d^2)
    log10       mean |log10 p - log10 g|
    silog       sqrt(mean d^2 - (mean d)^2)        scale-invariant log error, Eigen et al. 2014
                (their equation with lambda = 1: the standard deviation of d; natural log, not
                scaled by 100, so 0.01 means about 1 % relative spread)

and, when the crop's distance D and the encoding's half-range H are given, in millimetres after
decoding both crops with ``sensors.encoding.decode_depth`` at the same D (so D cancels: a
difference of levels times one level's 2H/254 mm, :func:`abs_error_mm`):

    l1_mm       mean |z_p - z_g|
    rmse_mm     sqrt(mean (z_p - z_g)^2)

A frame with fewer than ``min_valid`` valid pixels (default :data:`MIN_VALID_PIXELS`) has no
metrics (``None``): callers skip and count it, never average it in as zero.

Face-region metrics (:data:`FACE_KEYS`, also in mm, so also only with D and H) score the face
alone, in the region :func:`face_region` gives: the renderer's face mask where the frame has one
(virtual frames), else the documented fallback for any data (valid true depth inside a fixed
ellipse of the crop, within :data:`FACE_DEPTH_MM` of the face's nearest point). Over the region
pixels where the prediction is valid too (``S``; the others are left out and counted by
``face_coverage``), with z in mm:

    face_l1_mm        mean |z_p - z_g|
    face_shape_l1_mm  mean |(z_p - median z_p) - (z_g - median z_g)|   (medians over S)
    face_rmse_mm      sqrt(mean (z_p - z_g)^2)
    face_relief_mm    mean |grad z_p - grad z_g|: the Euclidean norm of the gradient error, the
                      gradients as forward differences over :data:`FACE_RELIEF_STEP_PX` pixels
                      divided by that step (mm per crop pixel), over the pixels of S whose
                      neighbours that far right and down are in S too
    face_coverage     |S| / |region|

A frame whose region has fewer than :data:`MIN_FACE_PIXELS` pixels has no face metrics (the keys
are absent, like the mm keys without D and H); ``face_coverage`` alone when S is that small;
no ``face_relief_mm`` when no pixel of S has its gradient neighbours in S.
"""
from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from sensors.encoding import mm_per_level
from sensors.errors import ConfigError, FormatError

#: delta thresholds, by key
DELTA_THRESHOLDS: dict[str, float] = {
    "delta<1.25": 1.25,
    "delta<1.25^2": 1.25 ** 2,
    "delta<1.25^3": 1.25 ** 3,
    "delta<1.25^1/2": 1.25 ** (1 / 2),
    "delta<1.25^1/3": 1.25 ** (1 / 3),
    "delta<1.25^1/4": 1.25 ** (1 / 4),
}
#: the metrics in the 8-bit domain, in report order
METRIC_KEYS: tuple[str, ...] = (
    *DELTA_THRESHOLDS, "l1", "rmse", "abs_rel", "sq_rel", "rmse_log", "log10", "silog",
)
#: the metrics in millimetres (present when distance and half-range are known)
MM_KEYS: tuple[str, ...] = ("l1_mm", "rmse_mm")
#: the face-region metrics (mm, and the share of the region the prediction covers)
FACE_KEYS: tuple[str, ...] = ("face_l1_mm", "face_shape_l1_mm", "face_rmse_mm", "face_relief_mm", "face_coverage")
#: every key, in report order
ALL_KEYS: tuple[str, ...] = METRIC_KEYS + MM_KEYS + FACE_KEYS
#: keys where larger is better (the deltas, the face coverage); smaller is better for all others
HIGHER_IS_BETTER: frozenset[str] = frozenset((*DELTA_THRESHOLDS, "face_coverage"))
#: the delta accuracies, hardest first (the order of tables, plots and logs)
DELTA_KEYS: tuple[str, ...] = ("delta<1.25^1/4", "delta<1.25^1/3", "delta<1.25^1/2",
                               "delta<1.25", "delta<1.25^2", "delta<1.25^3")
#: the columns of a table comparing methods: the four hardest deltas, then the errors
TABLE_KEYS: tuple[str, ...] = (*DELTA_KEYS[:4], "l1", "rmse", "abs_rel", "rmse_log", "silog", *MM_KEYS, *FACE_KEYS)
#: the few metrics of a one-run summary
SUMMARY_KEYS: tuple[str, ...] = ("delta<1.25^1/4", "delta<1.25", "l1", *MM_KEYS, *FACE_KEYS)
#: the millimetre rows of the live view's numbers table (below the deltas), with their labels
LIVE_TABLE_KEYS: tuple[tuple[str, str], ...] = (("l1_mm", "L1 (mm)"), ("face_shape_l1_mm", "face shape L1 (mm)"))
#: the percentiles of a latency summary (``percentile_summary``)
PERCENTILES: tuple[int, ...] = (50, 95, 99)
#: a frame with fewer valid ground-truth pixels than this is skipped (1 % of a 100x100 crop)
MIN_VALID_PIXELS = 100
#: a face region with fewer pixels than this has no face metrics
MIN_FACE_PIXELS = 100
#: the fallback face region (no face mask): the central ellipse's centre and semi-axes as
#: fractions of the crop (x, y; y down), measured against virtual frames' face masks (docs/design.md)
FACE_ELLIPSE: tuple[float, float, float, float] = (0.5, 0.70, 0.35, 0.35)
#: ... and how far behind the face's nearest point (mm) its pixels may lie
FACE_DEPTH_MM = 60.0
#: the nearest point is this percentile of the valid true levels inside the ellipse (robust to a
#: few flying pixels)
FACE_NEAREST_PERCENTILE = 99.0
#: the relief term's gradients are differences over this many crop pixels (about 10 mm at the
#: shipped 2.4 mm per pixel): at 1 pixel, pixel noise outweighs the face's relief (docs/design.md)
FACE_RELIEF_STEP_PX = 4
#: what each kind of face region is, for reports ("mask" / "fallback", ``DepthMetrics.face_region``)
FACE_REGION_RULES: dict[str, str] = {
    "mask": "the renderer's face mask (virtual frames) where the true depth is valid",
    "fallback": (f"valid true depth inside the ellipse centred at ({FACE_ELLIPSE[0]:.2f}, {FACE_ELLIPSE[1]:.2f}) of the "
                 f"crop with semi-axes {FACE_ELLIPSE[2]:.2f} x {FACE_ELLIPSE[3]:.2f} of its size, within "
                 f"{FACE_DEPTH_MM:g} mm of the face's nearest point (the {FACE_NEAREST_PERCENTILE:g}th percentile "
                 "level inside the ellipse)"),
}


class DepthMetrics(Mapping[str, float]):
    """The metrics of one frame: a read-only mapping with the keys of :data:`METRIC_KEYS`
    (and :data:`MM_KEYS` when computed in mm). ``valid_pixels`` is how many pixels were scored."""

    __slots__ = ("_values", "valid_pixels", "face_pixels", "face_region")

    def __init__(self, values: Mapping[str, float], valid_pixels: int, face_pixels: int | None = None,
                 face_region: str | None = None) -> None:
        self._values = {k: float(values[k]) for k in ALL_KEYS if k in values}
        self.valid_pixels = int(valid_pixels)
        #: the face region's size and kind ("mask" or "fallback"); None when not computed
        self.face_pixels = face_pixels
        self.face_region = face_region

    def __getitem__(self, key: str) -> float:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v:.4g}" for k, v in self._values.items())
        return f"DepthMetrics({inner}; {self.valid_pixels} px)"


def percentile_summary(values: Sequence[float]) -> dict[str, float | None]:
    """``p50``, ``p95``, ``p99`` (:data:`PERCENTILES`) and ``max`` of ``values``; all None for none."""
    keys = [f"p{q}" for q in PERCENTILES]
    if len(values) == 0:
        return {**dict.fromkeys(keys), "max": None}
    a = np.asarray(values, dtype=np.float64)
    return {**{k: float(v) for k, v in zip(keys, np.percentile(a, PERCENTILES))}, "max": float(a.max())}


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> None:
    for name, a in (("prediction", pred), ("ground truth", gt)):
        if not isinstance(a, np.ndarray) or a.dtype != np.uint8:
            got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
            raise FormatError(f"metrics need 8-bit depth crops: the {name} is {got}, not uint8")
    if pred.shape != gt.shape:
        raise FormatError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")


def depth_metrics_batch(
    preds: np.ndarray,
    gts: np.ndarray,
    distances_mm: Sequence[float] | np.ndarray | None = None,
    half_range_mm: float | None = None,
    min_valid: int = MIN_VALID_PIXELS,
    face_masks: np.ndarray | None = None,
) -> list[DepthMetrics | None]:
    """Per-sample metrics of N crops (N, ...) at once; ``None`` for samples with too few valid pixels.

    ``distances_mm`` (N,) and ``half_range_mm`` add the millimetre metrics and the face-region
    metrics; give both or neither. ``face_masks`` (N, ...) bool: the renderer's face masks
    (virtual frames); without them the face region is :func:`face_region`'s fallback.
    """
    preds = np.asarray(preds) if not isinstance(preds, np.ndarray) else preds
    gts = np.asarray(gts) if not isinstance(gts, np.ndarray) else gts
    _check_pair(preds, gts)
    if preds.ndim < 2:
        raise FormatError(f"metrics need a batch of crops (N, H, W), got shape {preds.shape}")
    n = preds.shape[0]
    if (distances_mm is None) != (half_range_mm is None):
        raise ConfigError("millimetre metrics need both the distance and the half-range")
    if distances_mm is not None:
        distances = np.asarray(distances_mm, dtype=np.float64).reshape(-1)
        if distances.shape != (n,):
            raise ConfigError(f"{distances.size} distances for {n} crops")
    if n == 0:
        return []
    p8 = preds.reshape(n, -1)
    g8 = gts.reshape(n, -1)
    mask = g8 > 0
    count = mask.sum(axis=1)
    ok = count >= max(1, int(min_valid))
    out: list[DepthMetrics | None] = [None] * n
    if not ok.any():
        return out
    idx = np.flatnonzero(ok)
    mask, cnt = mask[idx], count[idx].astype(np.float64)
    g = np.where(mask, g8[idx], 1).astype(np.float64)
    p = np.maximum(p8[idx], 1).astype(np.float64)

    def mean(a: np.ndarray) -> np.ndarray:
        return np.where(mask, a, 0.0).sum(axis=1) / cnt

    values: dict[str, np.ndarray] = {}
    ratio = np.maximum(p / g, g / p)
    for key, t in DELTA_THRESHOLDS.items():
        values[key] = mean((ratio < t).astype(np.float64))
    diff = p - g
    values["l1"] = mean(np.abs(diff))
    values["rmse"] = np.sqrt(mean(diff ** 2))
    values["abs_rel"] = mean(np.abs(diff) / g)
    values["sq_rel"] = mean(diff ** 2 / g)
    d = np.log(p) - np.log(g)
    mean_d2, mean_d = mean(d ** 2), mean(d)
    values["rmse_log"] = np.sqrt(mean_d2)
    values["log10"] = mean(np.abs(np.log10(p) - np.log10(g)))
    values["silog"] = np.sqrt(np.maximum(mean_d2 - mean_d ** 2, 0.0))
    if distances_mm is not None:
        assert half_range_mm is not None
        dz = abs_error_mm(p8[idx], g8[idx], half_range_mm)
        values["l1_mm"] = mean(dz)
        values["rmse_mm"] = np.sqrt(mean(dz ** 2))
        regions = face_region(gts[idx], half_range_mm, None if face_masks is None else np.asarray(face_masks)[idx])
        kind = "fallback" if face_masks is None else "mask"
        for row, i in enumerate(idx):
            face = _face_values(preds[i], gts[i], regions[row], half_range_mm)
            out[i] = DepthMetrics({**{k: v[row] for k, v in values.items()}, **face}, int(count[i]),
                                  int(regions[row].sum()), kind)
        return out
    for row, i in enumerate(idx):
        out[i] = DepthMetrics({k: v[row] for k, v in values.items()}, int(count[i]))
    return out


def abs_error_mm(pred8: np.ndarray, true8: np.ndarray, half_range_mm: float) -> np.ndarray:
    """|z_p - z_g| in mm, pixel by pixel, of 8-bit crops decoded at the same D (which cancels); a
    pixel the prediction marks invalid counts as level 1, the window's far edge. Where the truth
    is invalid the value means nothing: callers mask it."""
    p = np.maximum(pred8, 1).astype(np.int16)
    return np.abs(p - true8.astype(np.int16)) * mm_per_level(half_range_mm)


@functools.lru_cache(maxsize=16)
def _ellipse(h: int, w: int) -> np.ndarray:
    cx, cy, ax, ay = FACE_ELLIPSE
    y, x = np.mgrid[0:h, 0:w]
    e = (((x + 0.5) / w - cx) / ax) ** 2 + (((y + 0.5) / h - cy) / ay) ** 2 <= 1.0
    e.setflags(write=False)
    return e


def face_region(true8: np.ndarray, half_range_mm: float, mask: np.ndarray | None = None) -> np.ndarray:
    """The face region of 8-bit true crop(s) (S, S) or (N, S, S): a bool array of the same shape.

    With ``mask`` (the renderer's face mask, virtual frames): the mask where the true depth is
    valid. Without: the fallback any data has: valid true pixels inside the ellipse
    :data:`FACE_ELLIPSE` (fractions of the crop) whose depth lies within :data:`FACE_DEPTH_MM` of
    the face's nearest point, the :data:`FACE_NEAREST_PERCENTILE` th percentile of the valid
    levels inside the ellipse (levels count towards the camera, so nearest = highest).
    """
    g = np.asarray(true8)
    if g.dtype != np.uint8 or g.ndim not in (2, 3):
        raise FormatError(f"a face region needs 8-bit depth crops (S, S) or (N, S, S), got {g.dtype} {g.shape}")
    valid = g > 0
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != g.shape:
            raise FormatError(f"face mask {m.shape} and depth crop {g.shape} differ in shape")
        return valid & m.astype(bool, copy=False)
    one = g.ndim == 2
    g3 = g[None] if one else g
    n = g3.shape[0]
    inside = valid[None] if one else valid
    inside = inside & _ellipse(*g3.shape[1:])
    # per-crop level histograms of the ellipse's valid pixels -> the percentile level of each
    rows = np.repeat(np.arange(n), inside.reshape(n, -1).sum(axis=1))
    hist = np.bincount(rows * 256 + g3[inside].astype(np.int64), minlength=n * 256).reshape(n, 256)
    total = hist.sum(axis=1)
    cdf = np.cumsum(hist, axis=1)
    need = np.ceil(total * (FACE_NEAREST_PERCENTILE / 100.0))
    nearest = (cdf < need[:, None]).sum(axis=1)  # the first level whose cdf reaches the share
    lowest = nearest - FACE_DEPTH_MM / mm_per_level(half_range_mm)
    region = inside & (g3 >= lowest[:, None, None]) & (total > 0)[:, None, None]
    return region[0] if one else region


def _face_values(p8: np.ndarray, g8: np.ndarray, region: np.ndarray, half_range_mm: float) -> dict[str, float]:
    """The face-region metrics of one crop pair (module docstring); {} when the region is too small."""
    n_region = int(region.sum())
    if n_region < MIN_FACE_PIXELS:
        return {}
    scored = region & (p8 > 0)
    n = int(scored.sum())
    out = {"face_coverage": n / n_region}
    if n < MIN_FACE_PIXELS:
        return out
    mm = mm_per_level(half_range_mm)  # same D on both sides: mm differences are level differences x mm
    p = p8[scored].astype(np.float64)
    g = g8[scored].astype(np.float64)
    d = p - g
    out["face_l1_mm"] = float(np.abs(d).mean() * mm)
    out["face_rmse_mm"] = float(np.sqrt((d ** 2).mean()) * mm)
    out["face_shape_l1_mm"] = float(np.abs((p - np.median(p)) - (g - np.median(g))).mean() * mm)
    k = FACE_RELIEF_STEP_PX
    e = p8.astype(np.float64) - g8.astype(np.float64)
    both = scored[:-k, :-k] & scored[:-k, k:] & scored[k:, :-k]
    if both.any():
        ex = (e[:-k, k:] - e[:-k, :-k])[both]
        ey = (e[k:, :-k] - e[:-k, :-k])[both]
        out["face_relief_mm"] = float(np.sqrt(ex ** 2 + ey ** 2).mean() * mm / k)
    return out


def depth_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    distance_mm: float | None = None,
    half_range_mm: float | None = None,
    min_valid: int = MIN_VALID_PIXELS,
    face_mask: np.ndarray | None = None,
) -> DepthMetrics | None:
    """Metrics of one 8-bit (prediction, ground truth) crop pair; ``None`` if too few valid pixels.
    ``face_mask``: the renderer's face mask of this crop (virtual frames), else the fallback region."""
    _check_pair(pred, gt)
    return depth_metrics_batch(
        pred[None], gt[None], None if distance_mm is None else [distance_mm], half_range_mm, min_valid,
        None if face_mask is None else np.asarray(face_mask)[None],
    )[0]


class MetricsAggregator:
    """Running means for the live view: over the whole session and over the last ``window``
    scored frames. ``add(None)`` counts a skipped frame (no face, too few valid pixels)."""

    def __init__(self, window: int = 30) -> None:
        if not isinstance(window, int) or window < 1:
            raise ConfigError(f"metrics window must be a positive number of frames, got {window!r}")
        self.window = window
        self._recent: deque[Mapping[str, float]] = deque(maxlen=window)
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self.scored = 0
        self.skipped = 0

    def add(self, metrics: Mapping[str, float] | None) -> None:
        if metrics is None:
            self.skipped += 1
            return
        self.scored += 1
        self._recent.append(metrics)
        for k, v in metrics.items():
            if math.isfinite(v):
                self._sums[k] = self._sums.get(k, 0.0) + v
                self._counts[k] = self._counts.get(k, 0) + 1

    def session_mean(self) -> dict[str, float]:
        """Mean of each metric over every scored frame so far (empty before the first)."""
        return {k: self._sums[k] / self._counts[k] for k in ALL_KEYS if self._counts.get(k)}

    def window_mean(self) -> dict[str, float]:
        """Mean of each metric over the last ``window`` scored frames (empty before the first)."""
        out: dict[str, float] = {}
        for k in ALL_KEYS:
            vals = [m[k] for m in self._recent if k in m and math.isfinite(m[k])]
            if vals:
                out[k] = sum(vals) / len(vals)
        return out

    @property
    def frames(self) -> int:
        return self.scored + self.skipped

    def reset(self) -> None:
        self._recent.clear()
        self._sums.clear()
        self._counts.clear()
        self.scored = self.skipped = 0
