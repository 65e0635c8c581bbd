"""Depth metrics (models/metrics.py): every metric checked on hand-worked 2x2 examples.

Expected values are worked out here pixel by pixel from the formulas in docs/design.md
("Metrics"), never taken from the code under test.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from models.metrics import (
    MIN_VALID_PIXELS, MM_KEYS, METRIC_KEYS, DepthMetrics, MetricsAggregator, depth_metrics,
    depth_metrics_batch,
)
from sensors.errors import ConfigError, FormatError

# ground truth: three valid pixels of 100 and one invalid (0); prediction 105, 90, 130 there
PRED = np.array([[105, 90], [130, 7]], np.uint8)
GT = np.array([[100, 100], [100, 0]], np.uint8)


def test_keys_are_exactly_the_documented_ones():
    assert METRIC_KEYS == (
        "delta<1.25", "delta<1.25^2", "delta<1.25^3", "delta<1.25^1/2", "delta<1.25^1/3",
        "delta<1.25^1/4", "l1", "rmse", "abs_rel", "sq_rel", "rmse_log", "log10", "silog",
    )
    assert MM_KEYS == ("l1_mm", "rmse_mm")
    m = depth_metrics(PRED, GT, min_valid=1)
    assert tuple(m) == METRIC_KEYS
    m = depth_metrics(PRED, GT, 1000.0, 150.0, min_valid=1)
    assert tuple(m) == METRIC_KEYS + MM_KEYS
    assert isinstance(m, DepthMetrics) and m.valid_pixels == 3
    with pytest.raises(TypeError):
        m["l1"] = 0.0  # read-only


def test_delta_accuracies_on_a_2x2_example():
    # ratios max(p/g, g/p) on the valid pixels: 1.05, 100/90 = 1.111, 1.30
    m = depth_metrics(PRED, GT, min_valid=1)
    # 1.25^(1/4) = 1.0574 and 1.25^(1/3) = 1.0772: only 1.05 is below
    assert m["delta<1.25^1/4"] == pytest.approx(1 / 3)
    assert m["delta<1.25^1/3"] == pytest.approx(1 / 3)
    # 1.25^(1/2) = 1.1180: 1.05 and 1.111 are below
    assert m["delta<1.25^1/2"] == pytest.approx(2 / 3)
    assert m["delta<1.25"] == pytest.approx(2 / 3)
    # 1.25^2 = 1.5625 and 1.25^3 = 1.953: all three
    assert m["delta<1.25^2"] == pytest.approx(1.0)
    assert m["delta<1.25^3"] == pytest.approx(1.0)


def test_error_metrics_on_a_2x2_example():
    m = depth_metrics(PRED, GT, min_valid=1)
    # differences p - g: +5, -10, +30 (the invalid pixel, where p = 7, is ignored)
    assert m["l1"] == pytest.approx((5 + 10 + 30) / 3)
    assert m["rmse"] == pytest.approx(math.sqrt((25 + 100 + 900) / 3))
    assert m["abs_rel"] == pytest.approx((5 / 100 + 10 / 100 + 30 / 100) / 3)
    assert m["sq_rel"] == pytest.approx((25 / 100 + 100 / 100 + 900 / 100) / 3)
    d = [math.log(1.05), math.log(0.9), math.log(1.3)]
    assert m["rmse_log"] == pytest.approx(math.sqrt(sum(x * x for x in d) / 3))
    assert m["log10"] == pytest.approx(
        (abs(math.log10(1.05)) + abs(math.log10(0.9)) + abs(math.log10(1.3))) / 3
    )
    mean_d = sum(d) / 3
    assert m["silog"] == pytest.approx(math.sqrt(sum(x * x for x in d) / 3 - mean_d ** 2))


def test_millimetre_metrics_on_a_2x2_example():
    # one level is 2H / 254 mm; levels count towards the camera, so mm errors are level errors * 300/254
    m = depth_metrics(PRED, GT, distance_mm=1000.0, half_range_mm=150.0, min_valid=1)
    mm = 300.0 / 254.0
    assert m["l1_mm"] == pytest.approx((5 + 10 + 30) / 3 * mm, rel=1e-5)
    assert m["rmse_mm"] == pytest.approx(math.sqrt((25 + 100 + 900) / 3) * mm, rel=1e-5)


def test_predictions_are_clamped_to_one_and_perfect_prediction_scores_perfectly():
    # prediction 0 (invalid) where the ground truth is 2: clamped to 1, ratio 2, log ratio -ln 2
    pred = np.array([[0, 10], [20, 0]], np.uint8)
    gt = np.array([[2, 10], [20, 0]], np.uint8)
    m = depth_metrics(pred, gt, min_valid=1)
    assert m["l1"] == pytest.approx(1 / 3)
    assert m["delta<1.25"] == pytest.approx(2 / 3)
    assert m["rmse_log"] == pytest.approx(math.sqrt(math.log(2) ** 2 / 3))
    assert m["silog"] == pytest.approx(math.sqrt(math.log(2) ** 2 / 3 - (math.log(2) / 3) ** 2))
    assert all(math.isfinite(v) for v in m.values())
    same = depth_metrics(gt, gt, 900.0, 150.0, min_valid=1)
    for k in METRIC_KEYS + MM_KEYS:
        assert same[k] == (1.0 if k.startswith("delta") else 0.0), k


def test_silog_ignores_a_global_scale():
    gt = np.array([[50, 100], [120, 80]], np.uint8)
    pred = (gt * 2).astype(np.uint8)  # every pixel twice the ground truth
    m = depth_metrics(pred, gt, min_valid=1)
    assert m["silog"] == pytest.approx(0.0, abs=1e-12)
    assert m["rmse_log"] == pytest.approx(math.log(2))


def test_near_empty_frames_are_skipped_not_scored_as_zero():
    gt = np.zeros((100, 100), np.uint8)
    pred = np.full((100, 100), 120, np.uint8)
    assert depth_metrics(pred, gt) is None
    gt.flat[:MIN_VALID_PIXELS - 1] = 120
    assert depth_metrics(pred, gt) is None
    gt.flat[MIN_VALID_PIXELS - 1] = 120
    m = depth_metrics(pred, gt)
    assert m is not None and m.valid_pixels == MIN_VALID_PIXELS and m["l1"] == 0.0
    assert depth_metrics(pred, gt, min_valid=MIN_VALID_PIXELS + 1) is None


def test_batch_form_matches_the_single_form_and_marks_skipped_samples():
    rng = np.random.default_rng(1)
    preds = rng.integers(0, 256, (5, 20, 20)).astype(np.uint8)
    gts = rng.integers(0, 256, (5, 20, 20)).astype(np.uint8)
    gts[2] = 0  # an empty frame
    dist = np.array([800.0, 1000.0, 1200.0, 1400.0, 1600.0])
    batch = depth_metrics_batch(preds, gts, dist, 150.0, min_valid=10)
    assert batch[2] is None
    for i in (0, 1, 3, 4):
        single = depth_metrics(preds[i], gts[i], dist[i], 150.0, min_valid=10)
        assert dict(batch[i]) == pytest.approx(dict(single), rel=1e-12)
    assert depth_metrics_batch(preds[:0], gts[:0]) == []


def test_bad_inputs_are_clear_errors():
    with pytest.raises(FormatError, match="uint8"):
        depth_metrics(PRED.astype(np.float32), GT)
    with pytest.raises(FormatError, match="shape"):
        depth_metrics(PRED, GT[:1])
    with pytest.raises(ConfigError, match="both"):
        depth_metrics(PRED, GT, distance_mm=1000.0)


def test_aggregator_session_and_window_means_and_counts():
    agg = MetricsAggregator(window=2)
    assert agg.session_mean() == {} and agg.window_mean() == {}
    a = DepthMetrics({k: 1.0 for k in METRIC_KEYS}, 100)
    b = DepthMetrics({**{k: 3.0 for k in METRIC_KEYS}, "l1_mm": 6.0, "rmse_mm": 8.0}, 100)
    c = DepthMetrics({k: 5.0 for k in METRIC_KEYS}, 100)
    for m in (a, None, b, None, c):
        agg.add(m)
    assert (agg.scored, agg.skipped, agg.frames) == (3, 2, 5)
    assert agg.session_mean()["l1"] == pytest.approx(3.0)  # (1 + 3 + 5) / 3: skipped frames not zeros
    assert agg.window_mean()["l1"] == pytest.approx(4.0)  # the last two scored: b and c
    assert agg.session_mean()["l1_mm"] == pytest.approx(6.0)  # only frames that have it
    assert set(agg.session_mean()) == set(METRIC_KEYS + MM_KEYS)
    agg.reset()
    assert agg.frames == 0 and agg.session_mean() == {}
    with pytest.raises(ConfigError):
        MetricsAggregator(window=0)
