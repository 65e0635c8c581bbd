"""images: one photo, a folder in name order, a video; intrinsics from FOV or a calibration file."""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from sensors import ConfigError, FormatError, open_source
from sensors.devices.calibration import fov_intrinsics, load_calibration, save_calibration
from sensors.geometry import CameraIntrinsics
from tests.support.formats import write_photos, write_video


def test_folder_plays_in_natural_name_order_colour_only(tmp_path):
    info = write_photos(tmp_path / "photos")
    with open_source(f"images:{info.root},fov=90") as src:
        frames = list(src)
        d = src.describe()
    assert [f.source for f in frames] == ["images:img1.jpg", "images:img2.png", "images:img10.png"]
    np.testing.assert_array_equal(frames[2].color, info.frames["img10.png"].color_rgb)  # PNG: exact
    assert frames[0].depth_mm is None and frames[0].depth_camera is None
    cam = frames[1].color_camera
    assert cam.fx == pytest.approx(20.0)  # (40 / 2) / tan(45 degrees)
    assert (cam.cx, cam.cy) == (19.5, 14.5)
    assert "assumed horizontal field of view 90" in d["intrinsics"]


def test_single_photo_with_a_calibration_file_scaled_to_its_size(tmp_path):
    info = write_photos(tmp_path / "p", names=("face.png",), width=40, height=30)
    calib = tmp_path / "cam.json"
    calib.write_text(json.dumps({"image_width": 80, "image_height": 60,
                                 "camera_matrix": [[100, 0, 39.5], [0, 100, 29.5], [0, 0, 1]],
                                 "distortion_coefficients": [0.1, 0, 0, 0, 0]}))
    with open_source(f"images:{info.root / 'face.png'},calibration={calib}") as src:
        assert len(src) == 1
        f = src.read()
        assert src.describe()["intrinsics"] == "calibration file"
        with pytest.raises(EOFError):
            src.read()
    assert (f.color_camera.fx, f.color_camera.cx, f.color_camera.cy) == (50.0, 19.5, 14.5)


def test_video_frames_in_order_with_seek_and_fps_timestamps(tmp_path):
    info = write_video(tmp_path / "clip.avi", n=6, fps=10.0)
    with open_source(f"images:{info.root},pace=off") as src:
        assert len(src) == 6 and src.describe()["fps"] == pytest.approx(10.0)
        levels = [int(np.median(f.color)) for f in src]
        src.seek(4)
        f4 = src.read()
        src.seek(1)
        f1 = src.read()
    assert levels == pytest.approx([20, 50, 80, 110, 140, 170], abs=3)
    assert int(np.median(f4.color)) == pytest.approx(140, abs=3) and f4.timestamp_ns == 400_000_000
    assert int(np.median(f1.color)) == pytest.approx(50, abs=3)


def test_video_is_paced_at_its_frame_rate_by_default(tmp_path):
    info = write_video(tmp_path / "clip.avi", n=4, fps=20.0)
    with open_source(f"images:{info.root}") as src:
        t0 = time.monotonic()
        n = sum(1 for _ in src)
        elapsed = time.monotonic() - t0
    assert n == 4 and elapsed >= 0.14  # three 50 ms gaps


def test_bad_inputs_fail_clearly(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="no images in this folder"):
        open_source(f"images:{tmp_path / 'empty'}")
    (tmp_path / "x.mp4").write_bytes(b"not a video at all")
    with pytest.raises(FormatError, match="x.mp4"):
        open_source(f"images:{tmp_path / 'x.mp4'}")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with open_source(f"images:{tmp_path / 'broken.png'}") as src:
        with pytest.raises(FormatError, match="broken.png"):
            src.read()
    with pytest.raises(ConfigError, match="field of view"):
        open_source(f"images:{tmp_path / 'broken.png'},fov=200")


def test_calibration_yaml_and_json_round_trip(tmp_path):
    cam = CameraIntrinsics(612.5, 610.25, 321.0, 238.5, 640, 480, (0.11, -0.25, 0.001, -0.002, 0.05))
    for name in ("cam.yaml", "cam.json"):
        save_calibration(tmp_path / name, cam, rms_px=0.31)
        back = load_calibration(tmp_path / name)
        assert back.camera == cam
    text = (tmp_path / "cam.yaml").read_text()
    assert "camera_matrix" in text and "opencv-matrix" in text
    (tmp_path / "bad.json").write_text('{"camera_matrix": [[1, 2], [3, 4]], "image_width": 4, "image_height": 3}')
    with pytest.raises(FormatError, match="9 numbers"):
        load_calibration(tmp_path / "bad.json")


def test_fov_intrinsics_formula():
    cam = fov_intrinsics(1280, 720, 60.0)
    assert cam.fx == pytest.approx(640 / math.tan(math.radians(30)))
    assert cam.fx == cam.fy and (cam.cx, cam.cy) == (639.5, 359.5)
