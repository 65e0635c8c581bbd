"""Kinect v2 source against a fake pylibfreenect2 (tests/support/pylibfreenect2.py)."""
from __future__ import annotations

import builtins
import sys
import time

import numpy as np
import pytest

from sensors import ConfigError, SensorError, SourceLostError, open_source


def _rot_y(deg):
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def test_frames_are_rgb_copies_with_device_cameras(fake_freenect):
    with open_source("kinect:") as src:
        f0 = src.read(timeout_s=2.0)
        later = [src.read(timeout_s=2.0) for _ in range(4)]
        d = src.describe()
    assert f0.color.shape == (1080, 1920, 3) and f0.depth_mm.shape == (424, 512)
    assert f0.depth_mm.dtype == np.uint16
    seq = int(f0.color[5, 5, 2])  # fake colour: B = sequence; RGB puts it last
    assert f0.color[5, 5].tolist() == [200, 100, seq]
    assert f0.depth_mm[0, 0] == 0 and f0.depth_mm[10, 10] == 1000 + seq % 100
    # frames read later did not change the first one: arrays were copied before release
    assert f0.color[7, 9].tolist() == [200, 100, seq] and f0.depth_mm[200, 300] == 1000 + seq % 100
    assert [f.index for f in later] == sorted({f.index for f in later})
    assert f0.color_camera.fx == pytest.approx(1081.37) and f0.depth_camera.cx == pytest.approx(254.878)
    assert f0.depth_camera.distortion == ()  # undistorted by default
    assert d["serial"] == "012345678912" and d["firmware"] == "4.0.3911.0"
    assert d["pipeline"] == "cuda"


def test_depth_to_color_is_fitted_to_the_registration_mapping(fake_freenect):
    fake_freenect.WORLD.rotation = _rot_y(0.8)
    fake_freenect.WORLD.translation_mm = np.array([52.0, -0.6, 1.2])
    with open_source("kinect:") as src:
        fit = src.fit
        f = src.read(timeout_s=2.0)
    assert fit.samples > 10000
    assert fit.rms_px < 0.45  # the mapping rounds to whole colour pixels: ~0.41 px RMS
    assert fit.max_px < 0.75
    np.testing.assert_allclose(fit.extrinsics.translation_mm, [52.0, -0.6, 1.2], atol=0.5)
    np.testing.assert_allclose(fit.extrinsics.rotation, _rot_y(0.8), atol=1e-3)
    assert f.depth_to_color is fit.extrinsics
    assert src.describe()["depth_to_color_fit"]["rms_px"] == round(fit.rms_px, 4)


def test_pipeline_choice_falls_back_and_can_be_forced(fake_freenect):
    fake_freenect.WORLD.broken_pipelines = {"cuda"}
    del_cls = fake_freenect.OpenCLPacketPipeline
    try:
        del fake_freenect.OpenCLPacketPipeline  # not compiled in
        with open_source("kinect:") as src:
            d = src.describe()
        assert d["pipeline"] == "opengl"
        assert d["pipelines_unavailable"] == {"cuda": "cuda pipeline: no such device",
                                              "opencl": "not compiled into libfreenect2"}
    finally:
        fake_freenect.OpenCLPacketPipeline = del_cls
    with open_source("kinect:pipeline=cpu") as src:
        assert src.describe()["pipeline"] == "cpu"
    with pytest.raises(SensorError, match="no libfreenect2 packet pipeline could start .cuda: cuda pipeline"):
        open_source("kinect:pipeline=cuda")
    with pytest.raises(ConfigError, match="pipeline='vulkan'"):
        open_source("kinect:pipeline=vulkan")


def test_unplugging_ends_the_stream_within_2_s(fake_freenect):
    with open_source("kinect:") as src:
        src.read(timeout_s=2.0)
        fake_freenect.WORLD.unplugged.set()
        t0 = time.monotonic()
        with pytest.raises(SourceLostError, match="no frames for 1.5 s") as info:
            for _ in src:  # the iterator waits 2.5 s per read: the reader must cut that short
                pass
        elapsed = time.monotonic() - t0
        t1 = time.monotonic()
    assert elapsed < 2.0, elapsed
    assert time.monotonic() - t1 < 2.5  # closing does not hang either
    assert "kinect:012345678912" in str(info.value)


def test_unplugging_with_a_binding_without_wait_timeouts_never_hangs(fake_freenect):
    fake_freenect.WORLD.timeout_supported = False
    src = open_source("kinect:")
    try:
        src.read(timeout_s=2.0)
        fake_freenect.WORLD.unplugged.set()
        t0 = time.monotonic()
        with pytest.raises(SourceLostError):
            while True:
                try:
                    src.read(timeout_s=0.5)
                except TimeoutError:
                    pass
        assert time.monotonic() - t0 < 2.5
    finally:
        t1 = time.monotonic()
        src.close()
        assert time.monotonic() - t1 < 3.5


def test_align_color_delivers_libfreenect2_bigdepth_in_the_colour_camera(fake_freenect):
    with open_source("kinect:align=color") as src:
        f = src.read(timeout_s=2.0)
    assert f.depth_mm.shape == (1080, 1920)
    assert f.depth_camera == f.color_camera
    np.testing.assert_array_equal(f.depth_to_color.rotation, np.eye(3))
    seq = int(f.color[5, 5, 2])
    values = np.unique(f.depth_mm)
    assert set(values.tolist()) <= {0, 1000 + seq % 100}  # no-depth (inf) became 0
    assert (f.depth_mm > 0).sum() > 150_000


def test_serial_selection_and_missing_device(fake_freenect):
    fake_freenect.WORLD.serials = ["111", "222"]
    with open_source("kinect:222") as src:
        assert src.describe()["serial"] == "222"
    with pytest.raises(SensorError, match="no Kinect v2 with serial 333; connected: 111, 222"):
        open_source("kinect:333")
    fake_freenect.WORLD.serials = []
    with pytest.raises(SensorError, match="no Kinect v2 found: plug it into a USB 3 port") as info:
        open_source("kinect:")
    assert "\n" not in str(info.value)


def test_missing_module_is_one_clear_sentence(monkeypatch):
    monkeypatch.delitem(sys.modules, "pylibfreenect2", raising=False)
    real_import = builtins.__import__

    def no_driver(name, *args, **kw):
        if name == "pylibfreenect2":
            raise ModuleNotFoundError("No module named 'pylibfreenect2'")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_driver)
    with pytest.raises(SensorError, match="pylibfreenect2 is not installed: build libfreenect2") as info:
        open_source("kinect:")
    assert "Kinect v2 driver" in str(info.value) and "\n" not in str(info.value)
