"""Webcam source with a fake camera: always the newest frame, clear errors, lost camera."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import sensors.devices.webcam as webcam
from sensors import SensorError, SourceLostError, open_source


class FakeCamera:
    """Mimics cv2.VideoCapture: read() blocks for one frame period and returns a numbered image."""

    def __init__(self, period_s=0.005, width=32, height=24, opened=True):
        self.period_s = period_s
        self.size = (height, width)
        self.opened = opened
        self.produced = 0
        self.unplugged = threading.Event()
        self.released = False
        self.props = {}

    def isOpened(self):
        return self.opened

    def set(self, prop, value):
        self.props[prop] = value
        return True

    def get(self, prop):
        return float(self.props.get(prop, 0.0))

    def read(self):
        time.sleep(self.period_s)
        if self.unplugged.is_set():
            return False, None
        self.produced += 1
        img = np.zeros((*self.size, 3), np.uint8)
        img[..., 0] = self.produced % 256  # blue channel in OpenCV's BGR order
        img[0, 0, 2] = 200  # red
        img[1, 0, 1] = self.produced // 256
        return True, img

    def release(self):
        self.released = True


@pytest.fixture
def camera(monkeypatch):
    cam = FakeCamera()
    monkeypatch.setattr(webcam, "_open_capture", lambda target: cam)
    return cam


def _number(frame):
    return int(frame.color[0, 1, 2]) + 256 * int(frame.color[1, 0, 1])


def test_read_returns_the_newest_frame_not_a_buffered_one(camera):
    with open_source("webcam:0,fov=60") as src:
        first = src.read(timeout_s=1.0)
        time.sleep(0.3)  # ~60 frames arrive meanwhile
        latest = src.read(timeout_s=1.0)
        produced = camera.produced
        assert _number(latest) >= produced - 2
        assert _number(latest) > _number(first) + 20
        assert latest.color[0, 0].tolist()[0] == 200  # BGR -> RGB
        assert latest.depth_mm is None
        assert latest.color_camera.width == 32
        nxt = src.read(timeout_s=1.0)
        assert _number(nxt) > _number(latest)  # never the same frame twice
        assert "assumed horizontal field of view 60" in src.describe()["intrinsics"]
    assert camera.released


def test_unplugged_camera_ends_the_stream_with_a_clear_error(camera):
    with open_source("webcam:0") as src:
        src.read(timeout_s=1.0)
        camera.unplugged.set()
        t0 = time.monotonic()
        with pytest.raises(SourceLostError, match=r"webcam:0: .*for 1.5 s"):
            for _ in range(20):
                try:
                    src.read(timeout_s=0.5)
                except TimeoutError:
                    pass
        assert time.monotonic() - t0 < 3.0


def test_missing_camera_is_one_clear_sentence(monkeypatch):
    monkeypatch.setattr(webcam, "_open_capture", lambda target: FakeCamera(opened=False))
    with pytest.raises(SensorError, match="no webcam at 3: plug one in") as info:
        open_source("webcam:3")
    assert "\n" not in str(info.value)


# -- chessboard calibration (launch.py calibrate) on rendered boards ------------------------
TRUE_CAM = (520.0, 515.0, 330.0, 235.0)  # fx, fy, cx, cy at 640x480, no distortion


def render_board_views(n=12, cols=9, rows=6, square_mm=30.0, seed=3):
    """Chessboard photos rendered with OpenCV: a board texture warped by K [r1 r2 t]."""
    import cv2

    fx, fy, cx, cy = TRUE_CAM
    k = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
    px_per_mm = 4
    sq = int(square_mm * px_per_mm)
    border = sq
    tex = np.full(((rows + 1) * sq + 2 * border, (cols + 1) * sq + 2 * border), 255, np.uint8)
    for r in range(rows + 1):
        for c in range(cols + 1):
            if (r + c) % 2 == 0:
                tex[border + r * sq:border + (r + 1) * sq, border + c * sq:border + (c + 1) * sq] = 0
    # texture pixel -> board plane (mm), origin at the first inner corner
    a = np.array([[1 / px_per_mm, 0, -(border + sq) / px_per_mm], [0, 1 / px_per_mm, -(border + sq) / px_per_mm],
                  [0, 0, 1]])
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        rvec = rng.uniform(-0.45, 0.45, 3) * np.array([1, 1, 0.3])
        r = cv2.Rodrigues(rvec)[0]
        t = np.array([-cols * square_mm / 2 + rng.uniform(-40, 40), -rows * square_mm / 2 + rng.uniform(-30, 30),
                      rng.uniform(650, 900)])
        h = k @ np.column_stack([r[:, 0], r[:, 1], t]) @ a
        img = cv2.warpPerspective(tex, h, (640, 480), flags=cv2.INTER_AREA, borderValue=128)
        images.append(np.repeat(img[:, :, None], 3, axis=2))
    return images


def test_chessboard_calibration_recovers_the_rendering_camera():
    from sensors.devices.calibration import calibrate_chessboard, find_chessboard

    views = render_board_views()
    corners = [c for c in (find_chessboard(img, (9, 6)) for img in views) if c is not None]
    assert len(corners) >= 10
    result = calibrate_chessboard(corners, (640, 480), (9, 6), 30.0)
    cam = result.camera
    fx, fy, cx, cy = TRUE_CAM
    assert cam.fx == pytest.approx(fx, rel=0.01) and cam.fy == pytest.approx(fy, rel=0.01)
    assert abs(cam.cx - cx) < 4 and abs(cam.cy - cy) < 4
    assert result.rms_px < 0.5 and result.views == len(corners)
    assert find_chessboard(np.full((480, 640, 3), 128, np.uint8), (9, 6)) is None


def test_calibrate_command_on_a_folder_of_board_photos(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import cv2

    from sensors.devices.calibration import load_calibration

    folder = tmp_path / "boards"
    folder.mkdir()
    for i, img in enumerate(render_board_views(n=8)):
        cv2.imwrite(str(folder / f"board{i}.png"), img)
    out = tmp_path / "cam.yaml"
    root = Path(__file__).resolve().parents[2]
    res = subprocess.run([sys.executable, "launch.py", "calibrate", "--source", f"images:{folder}", "--out", str(out),
                          "--board", "9x6", "--square-mm", "30", "--views", "8"],
                         cwd=root, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "RMS reprojection error" in res.stdout
    cam = load_calibration(out).camera
    assert cam.fx == pytest.approx(TRUE_CAM[0], rel=0.02) and (cam.width, cam.height) == (640, 480)
    bad = subprocess.run([sys.executable, "launch.py", "calibrate", "--source", f"images:{folder}", "--out",
                          str(tmp_path / "other.yaml"), "--board", "7x5"], cwd=root, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "found in 0 of 8 frames" in bad.stderr and "Traceback" not in bad.stderr
