"""Crop point clouds (sensors.crop.crop_points) and their PLY files (app.ply), free of Qt."""
from __future__ import annotations

import numpy as np
import pytest

from app.pipeline import ModelResult
from app.ply import model_clouds, read_ply, write_ply
from sensors.crop import CropConfig, FaceCrop, crop_points, window_px_for
from sensors.encoding import decode_depth, encode_depth
from sensors.errors import FormatError, SensorError
from sensors.geometry import CameraIntrinsics

CAM = CameraIntrinsics(1081.4, 1081.4, 959.5, 539.5, 1920, 1080)


def _crop(depth_mm: np.ndarray | None, centre=(30.0, -20.0, 1000.0), size: int = 64) -> FaceCrop:
    cfg = CropConfig(size_px=size)
    centre_px, window = window_px_for(np.array(centre), CAM, cfg)
    rng = np.random.default_rng(1)
    colour = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    return FaceCrop(colour, depth_mm, None, centre[2], centre_px, window, cfg, CAM)


def test_a_flat_crop_at_the_head_distance_spans_the_window_in_mm():
    s = 64
    depth = np.full((s, s), 1000.0, np.float32)
    depth[:3] = 0.0                                    # no reading: no point
    crop = _crop(depth, size=s)
    points, colours = crop_points(crop, depth)
    assert points.shape == ((s - 3) * s, 3) and colours.shape == points.shape
    np.testing.assert_allclose(points[:, 2], 1000.0)
    # pixel centres of a 240 mm window at the window's own distance: 240 (S - 1) / S apart
    span = points[:, 0].max() - points[:, 0].min()
    assert span == pytest.approx(crop.config.window_x_mm * (s - 1) / s, rel=1e-5)
    assert points[:, 0].mean() == pytest.approx(30.0, abs=1e-3)      # centred on the head centre's x
    # each point projects back onto its own crop pixel, and carries that pixel's colour
    rows, cols = np.nonzero(depth > 0)
    np.testing.assert_allclose(crop.to_crop_px(points), np.stack([cols, rows], 1), atol=1e-4)
    np.testing.assert_array_equal(colours, crop.color[rows, cols])


def test_crop_points_refuses_a_crop_without_camera_or_of_another_size():
    crop = _crop(None)
    with pytest.raises(SensorError, match="expected"):
        crop_points(crop, np.ones((10, 10)))
    no_cam = FaceCrop(crop.color, None, None, 1000.0, crop.center_px, crop.window_px, crop.config, None)
    with pytest.raises(SensorError, match="colour camera"):
        crop_points(no_cam, np.ones((64, 64)))


def test_model_clouds_decode_the_prediction_and_keep_the_true_depth_as_measured():
    s = 64
    true = np.where(np.arange(s)[None, :] < 40, 1010.0, 0.0).astype(np.float32).repeat(s, 0)
    crop = _crop(true, size=s)
    pred8 = encode_depth(np.full((s, s), 990.0), crop.distance_mm, crop.config.half_range_mm)
    pred8[:, :10] = 0                                  # background: no point
    clouds = model_clouds(ModelResult("m", crop, pred8, None, None))
    assert set(clouds) == {"true", "pred"}
    np.testing.assert_allclose(clouds["true"][0][:, 2], 1010.0)
    assert len(clouds["true"][0]) == 40 * s and len(clouds["pred"][0]) == (s - 10) * s
    z = decode_depth(pred8[0, 10], crop.distance_mm, crop.config.half_range_mm)
    np.testing.assert_allclose(clouds["pred"][0][:, 2], z)
    colour_only = model_clouds(ModelResult("m", _crop(None, size=s), pred8, None, None))
    assert set(colour_only) == {"pred"}


def test_ply_round_trip_and_header(tmp_path):
    rng = np.random.default_rng(0)
    points = (rng.normal(0, 100, (500, 3)) + [0, 0, 900]).astype(np.float32)
    colours = rng.integers(0, 255, (500, 3), dtype=np.uint8)
    path = write_ply(tmp_path / "c.ply", points, colours, comment="frame 7: predicted by m")
    header = path.read_bytes().split(b"end_header\n")[0].decode()
    assert "element vertex 500" in header and "property uchar red" in header and "comment units: mm" in header
    assert "comment frame 7: predicted by m" in header
    p, c = read_ply(path)
    np.testing.assert_array_equal(p, points)
    np.testing.assert_array_equal(c, colours)
    assert not list(tmp_path.glob("*.partial"))
    empty = write_ply(tmp_path / "e.ply", np.zeros((0, 3)), np.zeros((0, 3)))
    assert read_ply(empty)[0].shape == (0, 3)
    with pytest.raises(ValueError, match="colours"):
        write_ply(tmp_path / "bad.ply", points, colours[:3])
    (tmp_path / "cut.ply").write_bytes(path.read_bytes()[:-5])
    with pytest.raises(FormatError, match="does not match"):
        read_ply(tmp_path / "cut.ply")
