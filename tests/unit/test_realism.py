"""The realism measurement's rasteriser and metric (models/evaluation/realism.py), without mediapipe.

MediaPipe is never a project dependency: the module imports it lazily, so these tests run in the
project's own environment.
"""
from __future__ import annotations

import numpy as np
import pytest

from models.evaluation import realism as R


def _grid_mesh(n: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """A regular (n x n)-vertex grid over [lo, hi]^2 in pixel coordinates, two triangles a cell."""
    t = np.linspace(lo, hi, n)
    xx, yy = np.meshgrid(t, t)
    xy = np.stack([xx.ravel(), yy.ravel()], axis=1)
    tris = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1
            tris += [(a, b, c), (b, d, c)]
    return xy, np.array(tris)


def test_the_module_imports_without_mediapipe():
    # mediapipe is imported inside _mediapipe() only, never at module level
    src = open(R.__file__).read()
    assert src.count("import mediapipe") == 1
    assert "import mediapipe" in src.split("def _mediapipe", 1)[1].split("\ndef ", 1)[0]


def test_rasterise_interpolates_a_ramp_exactly_and_covers_the_mesh():
    xy, tris = _grid_mesh(5, 10.0, 50.0)
    z = 2.0 * xy[:, 0] - 0.5 * xy[:, 1] + 7.0  # a plane: barycentric interpolation is exact
    zmap, covered = R.rasterise(xy, z, tris, 64)
    ii, jj = np.nonzero(covered)
    assert covered.sum() == 41 * 41  # pixel centres 10..50 inclusive on both axes
    assert ii.min() == 10 and ii.max() == 50 and jj.min() == 10 and jj.max() == 50
    np.testing.assert_allclose(zmap[covered], 2.0 * jj - 0.5 * ii + 7.0, atol=1e-9)
    assert np.isnan(zmap[~covered]).all()


def test_rasterise_keeps_the_nearest_of_overlapping_triangles():
    xy = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])
    tris = np.array([[0, 1, 2]])
    near, _ = R.rasterise(np.vstack([xy, xy]), np.r_[np.full(3, 5.0), np.full(3, -3.0)],
                          np.vstack([tris, tris + 3]), 32)
    np.testing.assert_allclose(near[np.isfinite(near)], -3.0, atol=1e-9)


def test_triangles_from_edges_finds_the_3_cliques():
    edges = [(0, 1), (1, 2), (2, 0), (1, 3), (3, 2), (1, 0)]  # two triangles sharing edge 1-2, a duplicate
    assert R.triangles_from_edges(edges).tolist() == [[0, 1, 2], [1, 2, 3]]


def test_prediction_equal_to_the_truth_gives_zero_and_a_flat_plane_its_own_l1():
    ramp = np.add.outer(np.arange(20.0), np.zeros(20)) * 3.0 + 800.0  # 3 mm per row
    mask = np.ones_like(ramp, bool)
    l1, plane, n = R.shape_l1(ramp + 123.0, ramp, mask)  # a constant offset is removed
    assert n == 400 and l1 == pytest.approx(0.0, abs=1e-9)
    # rows 0..19 at 3 mm: median at 28.5 mm, mean |t - median| = 3 * mean |k - 9.5| = 3 * 5 = 15 mm
    assert plane == pytest.approx(15.0)
    flat_l1, flat_plane, _ = R.shape_l1(np.zeros_like(ramp), ramp, mask)
    assert flat_l1 == pytest.approx(flat_plane)
    assert np.isnan(R.shape_l1(ramp, ramp, np.zeros_like(mask))[0])


def test_crop_metrics_of_landmarks_on_the_true_surface_is_zero_and_scales_z_by_the_window():
    size, window = 100, 240.0
    xy, tris = _grid_mesh(9, 20.0, 80.0)
    ii, jj = np.mgrid[0:size, 0:size]
    truth = 900.0 + 0.4 * jj + 0.2 * ii  # mm, a tilted plane
    truth[:5] = 0.0  # invalid pixels are ignored
    # landmarks as mediapipe gives them: x, y fractions of the image, z in image widths
    z_mm = 0.4 * xy[:, 0] + 0.2 * xy[:, 1]
    lm = np.c_[(xy + 0.5) / size, z_mm / window]
    m = R.crop_metrics(lm, tris, truth, window)
    assert m["pixels"] == 61 * 61 and m["l1_mm"] == pytest.approx(0.0, abs=1e-6)
    assert m["plane_l1_mm"] > 0 and m["ratio"] == pytest.approx(0.0, abs=1e-6)
    assert m["best_scale"] == pytest.approx(1.0)
    # the same points with z doubled: L1 equals the truth's own deviation from its median
    lm2 = lm.copy()
    lm2[:, 2] *= 2.0
    m2 = R.crop_metrics(lm2, tris, truth, window)
    assert m2["l1_mm"] == pytest.approx(m2["plane_l1_mm"], rel=1e-6)
    assert m2["best_scale"] == pytest.approx(0.5)


def test_the_crops_are_read_by_the_projects_dataset_reader(tmp_path):
    from sensors.encoding import decode_depth
    from tests.support.synthetic_data import make_crops

    data = make_crops(n=12, size=48, seed=3)
    data.save(tmp_path / "c.npz")
    got = R.load_crops(str(tmp_path / "c.npz"), "test")
    test = data.select_split("test")
    assert np.array_equal(got["truth8"], test.target) and np.array_equal(got["color"], test.color)
    assert got["half_range_mm"] == data.meta["crop"]["half_range_mm"]
    mm = decode_depth(got["truth8"][0], float(got["distance_mm"][0]), got["half_range_mm"])
    assert mm[got["truth8"][0] > 0].min() > 0


def test_mediapipes_relative_depth_is_stored_at_the_true_median_in_the_datasets_encoding():
    from sensors.encoding import decode_depth

    d, h = 800.0, 150.0
    truth8 = np.zeros((20, 20), np.uint8)
    truth8[4:16, 4:16] = np.arange(100, 244).reshape(12, 12)
    truth = decode_depth(truth8, d, h)
    zmap = np.full((20, 20), np.nan)
    zmap[2:14, 2:14] = truth[2:14, 2:14] - 500.0  # the right shape, no absolute distance
    zmap[2:4, 2:14] = -500.0  # covered where the truth has no depth: kept, far side of the range
    out = R.relative_depth8(zmap, truth8, d, h)
    both = (truth8 > 0) & np.isfinite(zmap)
    assert np.abs(out[both].astype(int) - truth8[both]).max() <= 1
    assert (out[~np.isfinite(zmap)] == 0).all() and (out[np.isfinite(zmap)] > 0).all()
    assert (R.relative_depth8(np.full((20, 20), np.nan), truth8, d, h) == 0).all()
