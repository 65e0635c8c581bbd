"""Depth metrics (models/metrics.py): every metric checked on hand-worked 2x2 examples.

Expected values are worked out here pixel by pixel from the formulas in docs/design.md
("Metrics"), never taken from the code under test.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from models.metrics import (
    ALL_KEYS, FACE_DEPTH_MM, FACE_KEYS, MIN_FACE_PIXELS, MIN_VALID_PIXELS, MM_KEYS, METRIC_KEYS, DepthMetrics,
    MetricsAggregator, SUMMARY_KEYS, TABLE_KEYS, depth_metrics, depth_metrics_batch, face_region,
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


# --- face-region metrics -----------------------------------------------------------------------
MM = 300.0 / 254.0  # mm per level at H = 150 mm


def _block(size=40, y0=10, x0=10, n=20):
    """A mask of an n x n block of a size x size crop."""
    m = np.zeros((size, size), bool)
    m[y0:y0 + n, x0:x0 + n] = True
    return m


def test_face_keys_are_reported_through_the_shared_constants():
    assert FACE_KEYS == ("face_l1_mm", "face_shape_l1_mm", "face_rmse_mm", "face_relief_mm", "face_coverage")
    assert ALL_KEYS == METRIC_KEYS + MM_KEYS + FACE_KEYS
    assert set(FACE_KEYS) <= set(TABLE_KEYS) and set(FACE_KEYS) <= set(SUMMARY_KEYS)


def test_a_constant_offset_has_no_shape_error_and_an_l1_of_the_offset():
    mask = _block()
    gt = np.where(mask, 100 + np.arange(40)[None, :] % 7, 60).astype(np.uint8)  # some relief, valid everywhere
    pred = (gt.astype(int) + 4).astype(np.uint8)  # 4 levels nearer everywhere
    m = depth_metrics(pred, gt, 900.0, 150.0, face_mask=mask)
    assert m.face_region == "mask" and m.face_pixels == 400
    assert m["face_l1_mm"] == pytest.approx(4 * MM)
    assert m["face_rmse_mm"] == pytest.approx(4 * MM)
    assert m["face_shape_l1_mm"] == pytest.approx(0.0, abs=1e-12)
    assert m["face_relief_mm"] == pytest.approx(0.0, abs=1e-12)  # the same gradients
    assert m["face_coverage"] == 1.0
    # the whole-crop metrics do not depend on the face region
    other = depth_metrics(pred, gt, 900.0, 150.0)  # the fallback region
    assert {k: m[k] for k in METRIC_KEYS + MM_KEYS} == {k: other[k] for k in METRIC_KEYS + MM_KEYS}
    assert m["l1_mm"] == pytest.approx(4 * MM, rel=1e-5)


def test_a_tilted_plane_against_a_flat_one_has_a_known_relief_and_shape_error():
    mask = _block()
    x = np.arange(40)[None, :].repeat(40, 0)
    gt = np.where(mask, 80 + x, 0).astype(np.uint8)  # one level (MM mm) per crop pixel along x
    pred = np.where(mask, 100, 0).astype(np.uint8)  # flat
    m = depth_metrics(pred, gt, 1000.0, 150.0, face_mask=mask)
    # every pixel whose neighbours FACE_RELIEF_STEP_PX right and down are in the block has a gradient
    # error of (1, 0) level per pixel
    assert m["face_relief_mm"] == pytest.approx(MM)
    # the true columns are 90..109: median 99.5, mean |x - 99.5| = 2 (0.5 + 1.5 + ... + 9.5) / 20 = 5 levels
    assert m["face_shape_l1_mm"] == pytest.approx(5 * MM)
    # |100 - x| over x = 90..109: (10 + 9 + ... + 1 + 0 + 1 + ... + 9) / 20 = 100 / 20 = 5 levels
    assert m["face_l1_mm"] == pytest.approx(5 * MM)


def test_invalid_predicted_pixels_are_left_out_and_counted_as_coverage():
    mask = _block()
    gt = np.where(mask, 120, 0).astype(np.uint8)
    pred = np.where(mask, 123, 0).astype(np.uint8)
    pred[10:20, 10:30] = 0  # the block's upper half predicted invalid
    m = depth_metrics(pred, gt, 1000.0, 150.0, face_mask=mask)
    assert m["face_coverage"] == pytest.approx(0.5)
    assert m["face_l1_mm"] == pytest.approx(3 * MM)  # over the valid half only
    assert m["l1"] == pytest.approx((200 * 119 + 200 * 3) / 400)  # the whole-crop metrics clamp to 1, as before


def test_too_small_a_face_region_has_no_face_metrics():
    gt = np.full((40, 40), 120, np.uint8)
    pred = np.full((40, 40), 121, np.uint8)
    assert MIN_FACE_PIXELS == 100
    mask = _block(n=10)
    mask[19, 19] = False  # 99 pixels
    m = depth_metrics(pred, gt, 1000.0, 150.0, face_mask=mask)
    assert m is not None and not set(FACE_KEYS) & set(m) and m.face_pixels == MIN_FACE_PIXELS - 1
    mask[19, 19] = True
    m = depth_metrics(pred, gt, 1000.0, 150.0, face_mask=mask)
    assert set(FACE_KEYS) <= set(m)
    # a region with no pixel whose neighbours FACE_RELIEF_STEP_PX away are in it has no relief term
    line = np.zeros((40, 40), bool)
    line[[0, 20, 39], :] = True  # 120 pixels on three rows: none has a neighbour 4 rows down
    m = depth_metrics(pred, gt, 1000.0, 150.0, face_mask=line)
    assert set(m) & set(FACE_KEYS) == set(FACE_KEYS) - {"face_relief_mm"}
    # a big enough region but too few valid predictions there: the coverage alone
    pred[mask] = 0
    pred[10, 10] = 121
    m = depth_metrics(pred, gt, 1000.0, 150.0, face_mask=mask)
    assert set(m) & set(FACE_KEYS) == {"face_coverage"} and m["face_coverage"] == pytest.approx(1 / 100)
    # the mask counts only where the true depth is valid
    gt[mask] = 0
    gt[20:, :] = 120
    assert not face_region(gt, 150.0, mask).any()
    # without millimetres there are no face metrics either
    assert not set(FACE_KEYS) & set(depth_metrics(pred, gt))


def _sphere_face(size=100):
    """A sphere-ish face (front 90 mm nearer than its rim) centred a little below the crop's centre,
    in front of a far, valid background, at D = 900 mm, H = 150 mm."""
    v, u = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    r2 = ((u - 0.5 * size) / (0.3 * size)) ** 2 + ((v - 0.68 * size) / (0.3 * size)) ** 2
    face = r2 < 1
    z = np.where(face, 900.0 - 90.0 * np.sqrt(np.clip(1 - r2, 0, 1)), 1040.0)  # background 140 mm behind D
    from sensors.encoding import encode_depth

    return encode_depth(z.astype(np.float32), 900.0, 150.0), face, z


def test_the_fallback_region_selects_the_face_not_the_background():
    gt, face, z = _sphere_face()
    region = face_region(gt, 150.0)
    assert region.sum() >= 1000
    assert not (region & ~face).any()  # no background pixel, though the background is valid
    # exactly the face pixels within FACE_DEPTH_MM of its front (up to a level's rounding)
    front = z[face].min()
    near = face & (z <= front + FACE_DEPTH_MM - 1.5)
    assert (region | ~near).all()
    assert not (region & (z > front + FACE_DEPTH_MM + 1.5)).any()
    # the batch form gives the same
    np.testing.assert_array_equal(face_region(np.stack([gt, gt]), 150.0)[1], region)
    m = depth_metrics(gt, gt, 900.0, 150.0)
    assert m.face_region == "fallback" and m.face_pixels == region.sum()
    assert all(m[k] == (1.0 if k == "face_coverage" else 0.0) for k in FACE_KEYS)


def test_the_face_region_needs_a_face_to_work_on():
    empty = np.zeros((50, 50), np.uint8)
    assert not face_region(empty, 150.0).any()
    with pytest.raises(FormatError, match="shape"):
        face_region(empty, 150.0, np.ones((40, 40), bool))
    with pytest.raises(FormatError, match="8-bit"):
        face_region(empty.astype(np.float32), 150.0)


def test_batch_face_metrics_match_the_single_form():
    gt, face, _ = _sphere_face(60)
    rng = np.random.default_rng(3)
    gts = np.stack([gt] * 3)
    preds = np.clip(gts.astype(int) + rng.integers(-6, 7, gts.shape), 0, 255).astype(np.uint8)
    masks = np.stack([face] * 3)
    batch = depth_metrics_batch(preds, gts, [900.0] * 3, 150.0, face_masks=masks)
    for i in range(3):
        single = depth_metrics(preds[i], gts[i], 900.0, 150.0, face_mask=masks[i])
        assert dict(batch[i]) == pytest.approx(dict(single), rel=1e-12) and set(FACE_KEYS) <= set(single)
