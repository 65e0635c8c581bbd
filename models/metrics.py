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
decoding both crops with ``sensors.encoding.decode_depth``:

    l1_mm       mean |z_p - z_g|
    rmse_mm     sqrt(mean (z_p - z_g)^2)

A frame with fewer than ``min_valid`` valid pixels (default :data:`MIN_VALID_PIXELS`) has no
metrics (``None``): callers skip and count it, never average it in as zero.
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from sensors.encoding import decode_depth
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
#: every key, in report order
ALL_KEYS: tuple[str, ...] = METRIC_KEYS + MM_KEYS
#: keys where larger is better (the deltas); smaller is better for all others
HIGHER_IS_BETTER: frozenset[str] = frozenset(DELTA_THRESHOLDS)
#: the delta accuracies, hardest first (the order of tables, plots and logs)
DELTA_KEYS: tuple[str, ...] = ("delta<1.25^1/4", "delta<1.25^1/3", "delta<1.25^1/2",
                               "delta<1.25", "delta<1.25^2", "delta<1.25^3")
#: the columns of a table comparing methods: the four hardest deltas, then the errors
TABLE_KEYS: tuple[str, ...] = (*DELTA_KEYS[:4], "l1", "rmse", "abs_rel", "rmse_log", "silog", *MM_KEYS)
#: the few metrics of a one-run summary
SUMMARY_KEYS: tuple[str, ...] = ("delta<1.25^1/4", "delta<1.25", "l1", *MM_KEYS)
#: the percentiles of a latency summary (``percentile_summary``)
PERCENTILES: tuple[int, ...] = (50, 95, 99)
#: a frame with fewer valid ground-truth pixels than this is skipped (1 % of a 100x100 crop)
MIN_VALID_PIXELS = 100


class DepthMetrics(Mapping[str, float]):
    """The metrics of one frame: a read-only mapping with the keys of :data:`METRIC_KEYS`
    (and :data:`MM_KEYS` when computed in mm). ``valid_pixels`` is how many pixels were scored."""

    __slots__ = ("_values", "valid_pixels")

    def __init__(self, values: Mapping[str, float], valid_pixels: int) -> None:
        self._values = {k: float(values[k]) for k in ALL_KEYS if k in values}
        self.valid_pixels = int(valid_pixels)

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
) -> list[DepthMetrics | None]:
    """Per-sample metrics of N crops (N, ...) at once; ``None`` for samples with too few valid pixels.

    ``distances_mm`` (N,) and ``half_range_mm`` add the millimetre metrics; give both or neither.
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
        zd = np.empty_like(p)
        zg = np.empty_like(g)
        for row, i in enumerate(idx):  # one decode per sample: D differs per crop
            zd[row] = decode_depth(p[row].astype(np.uint8), float(distances[i]), half_range_mm)
            zg[row] = decode_depth(g8[i], float(distances[i]), half_range_mm)
        dz = zd - zg
        values["l1_mm"] = mean(np.abs(dz))
        values["rmse_mm"] = np.sqrt(mean(dz ** 2))
    for row, i in enumerate(idx):
        out[i] = DepthMetrics({k: v[row] for k, v in values.items()}, int(count[i]))
    return out


def depth_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    distance_mm: float | None = None,
    half_range_mm: float | None = None,
    min_valid: int = MIN_VALID_PIXELS,
) -> DepthMetrics | None:
    """Metrics of one 8-bit (prediction, ground truth) crop pair; ``None`` if too few valid pixels."""
    _check_pair(pred, gt)
    return depth_metrics_batch(
        pred[None], gt[None], None if distance_mm is None else [distance_mm], half_range_mm, min_valid
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
