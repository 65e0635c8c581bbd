"""Webcam source with a fake camera: always the newest frame, clear errors, lost camera."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import sensors.webcam as webcam
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
        with pytest.raises(SourceLostError, match=r"webcam:0: .*for 2 s"):
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
