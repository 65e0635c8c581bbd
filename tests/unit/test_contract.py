"""The frame contract, the source factory, the error hierarchy and the CLI's argument errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sensors
from models.common.errors import ModelError, VerificationError
from sensors import (
    CameraIntrinsics, ConfigError, Extrinsics, FacedepthError, FormatError, Frame,
    SensorError, SourceLostError, parse_uri,
)
from sensors.encoding import decode_depth, encode_depth
from sensors.source import Source

ROOT = Path(__file__).resolve().parents[2]
CAM = CameraIntrinsics(100.0, 100.0, 3.5, 2.5, 8, 6)
DCAM = CameraIntrinsics(50.0, 50.0, 1.5, 1.5, 4, 4)


def _frame(**kw):
    base = dict(index=0, timestamp_ns=1, color=np.zeros((6, 8, 3), np.uint8), color_camera=CAM)
    base.update(kw)
    return Frame(**base)


def test_frame_accepts_a_valid_rgbd_frame_and_maps_head_centre():
    ext = Extrinsics(np.eye(3), [-24.0, 5.9, -13.2])
    f = _frame(depth_mm=np.ones((4, 4), np.uint16), depth_camera=DCAM, depth_to_color=ext,
               head_center_mm=[10, 20, 1000])
    assert f.has_depth and f.face_mask is None
    np.testing.assert_allclose(f.head_center_color_mm(), [-14.0, 25.9, 986.8])
    assert _frame(depth_mm=np.ones((4, 4), np.uint16), depth_camera=DCAM,
                  face_mask=np.eye(4, dtype=bool)).face_mask.sum() == 4


@pytest.mark.parametrize("kw, words", [
    (dict(color=np.zeros((6, 8), np.uint8)), "HxWx3"),
    (dict(color=np.zeros((6, 8, 3), np.float32)), "uint8"),
    (dict(color=np.zeros((5, 8, 3), np.uint8)), "camera says"),
    (dict(depth_mm=np.zeros((4, 4), np.float32), depth_camera=DCAM), "uint16"),
    (dict(depth_mm=np.zeros((4, 4), np.uint16)), "no depth_camera"),
    (dict(depth_mm=np.zeros((3, 4), np.uint16), depth_camera=DCAM), "camera says"),
    (dict(head_center_mm=[1, 2]), "3 finite"),
    (dict(head_rotation=np.eye(2)), "3x3"),
    (dict(face_mask=np.zeros((4, 4), np.uint8), depth_camera=DCAM), "bool"),
    (dict(face_mask=np.zeros((4, 4), bool)), "no depth_camera"),
    (dict(face_mask=np.zeros((4, 3), bool), depth_camera=DCAM), "camera says"),
])
def test_frame_rejects_wrong_sizes_and_dtypes_with_a_clear_sensor_error(kw, words):
    with pytest.raises(SensorError, match=words):
        _frame(**kw)


def test_intrinsics_project_unproject_round_trip_and_scaling():
    pts = np.array([[10.0, -20.0, 800.0], [0.0, 0.0, 1000.0]])
    uv = CAM.project(pts)
    back = CAM.unproject(uv[:, 0], uv[:, 1], pts[:, 2])
    np.testing.assert_allclose(back, pts)
    half = CameraIntrinsics(1081.4, 1081.4, 959.5, 539.5, 1920, 1080).scaled(960, 540)
    assert (half.fx, half.cx, half.cy) == (540.7, 479.5, 269.5)
    assert CameraIntrinsics.from_dict(CAM.to_dict()) == CAM


def test_extrinsics_inverse_undoes_the_transform():
    a = np.deg2rad(10)
    r = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    e = Extrinsics(r, [52.0, 0.0, 3.0])
    p = np.array([[1.0, 2.0, 3.0], [100.0, -50.0, 900.0]])
    np.testing.assert_allclose(e.inverse().apply(e.apply(p)), p, atol=1e-9)
    np.testing.assert_allclose(Extrinsics.from_dict(e.to_dict()).rotation, r)


def test_error_hierarchy_has_one_base_and_one_line_messages():
    for cls in (ConfigError, SensorError, SourceLostError, FormatError, ModelError, VerificationError):
        assert issubclass(cls, FacedepthError)
    assert issubclass(SourceLostError, SensorError)
    err = FormatError("bad\nheader  here", path="/x/depth.bin")
    assert str(err) == "/x/depth.bin: bad header here"
    assert "\n" not in str(err)


@pytest.mark.parametrize("uri, scheme, target, options", [
    ("virtual:", "virtual", None, {}),
    ("virtual:seed=3,subjects=0-9,pace=off", "virtual", None, {"seed": "3", "subjects": "0-9", "pace": "off"}),
    ("kinect:0123", "kinect", "0123", {}),
    ("webcam:1,calibration=cam.yaml", "webcam", "1", {"calibration": "cam.yaml"}),
])
def test_parse_uri(uri, scheme, target, options):
    u = parse_uri(uri)
    assert (u.scheme, u.target, u.options) == (scheme, target, options)


def test_parse_uri_errors_name_what_was_expected(tmp_path):
    with pytest.raises(ConfigError, match="unknown source scheme 'foo'.*virtual"):
        parse_uri("foo:bar")
    with pytest.raises(ConfigError, match="does not exist"):
        parse_uri(f"biwi:{tmp_path / 'missing'}")
    with pytest.raises(ConfigError, match="needs a path"):
        parse_uri("replay:")
    with pytest.raises(ConfigError, match="empty source URI"):
        parse_uri("  ")


def test_open_source_rejects_unknown_scheme_before_importing_anything():
    with pytest.raises(ConfigError):
        sensors.open_source("nosuchthing:1")


class _ListSource(Source):
    """A tiny in-memory source for testing the base class behaviour."""

    def __init__(self, frames, live=False):
        super().__init__(parse_uri("virtual:"))
        self.frames = list(frames)
        self.is_live = live
        self.lost_after_s = 0.2
        self.closed_calls = 0

    def _open(self):
        pass

    def _read(self, timeout_s):
        if self.frames:
            return self.frames.pop(0)
        if self.is_live:
            import time
            time.sleep(timeout_s)
            raise TimeoutError
        raise EOFError

    def _close(self):
        self.closed_calls += 1


def test_iteration_ends_cleanly_at_end_of_stream_and_close_is_idempotent():
    src = _ListSource([_frame(index=i) for i in range(3)])
    with src:
        assert [f.index for f in src] == [0, 1, 2]
        with pytest.raises(EOFError):
            src.read(0.1)
    src.close()
    assert src.closed_calls == 1


def test_live_source_that_stops_delivering_is_declared_lost():
    src = _ListSource([_frame()], live=True)
    with src:
        src.read(0.1)
        with pytest.raises(SourceLostError, match="no frame for"):
            for _ in range(10):
                try:
                    src.read(0.1)
                except TimeoutError:
                    pass


def _cli(*args):
    return subprocess.run([sys.executable, "launch.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [["--no-such-flag"], ["no-such-command"], ["run", "--max-frames", "many"],
                                  ["--source", "nope:x", "--model", "no/such/model.onnx"]])
def test_cli_argument_errors_exit_2_with_one_line_and_no_traceback(args):
    out = _cli(*args)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "error" in out.stderr


def test_cli_failure_names_the_file_and_exits_1():
    out = _cli("run", "--headless", "--model", "no/such/model.onnx", "--max-frames", "1")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "no/such/model.onnx" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_encoding_round_trip_within_half_a_level():
    d, h = 1000.0, 150.0
    z = np.linspace(d - h, d + h, 1001)
    back = decode_depth(encode_depth(z, d, h), d, h)
    assert np.max(np.abs(back - z)) <= (2 * h / 254) / 2 + 1e-3
    assert encode_depth(np.array([0.0, d - h - 5, d + h + 5]), d, h).tolist() == [0, 0, 0]
