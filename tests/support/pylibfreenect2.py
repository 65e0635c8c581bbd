"""A fake ``pylibfreenect2`` for tests: the same names, call signatures and buffer semantics.

It mimics the parts of pylibfreenect2 (0.1.x) the Kinect source uses: ``Freenect2`` (device
list, serials, ``openDevice(name, pipeline=None)``), ``Freenect2Device`` (listeners, start,
stop, close, camera parameters), ``SyncMultiFrameListener`` (``waitForNewFrame(frame_map=None,
milliseconds=-1)`` returning None on timeout, ``release``), ``FrameType``, ``FrameMap``,
``Frame`` (``asarray`` returns a VIEW of the driver's buffer), ``Registration`` (``apply`` with
``bigdepth`` and ``color_depth_map``, ``undistortDepth``) and the packet pipelines.

Test controls live in :data:`WORLD`. The driver side is deliberately unfriendly, like the real
one: a released frame's buffer is overwritten (so a consumer that kept views instead of copies
sees garbage), a listener holding an unreleased frame set drops new ones, and an unplugged
device simply stops delivering (``waitForNewFrame`` without a timeout then blocks forever).

Frame content: colour is BGRX with B = sequence % 256, G = 100, R = 200; depth is a plane at
``1000 + sequence % 100`` mm with a 0 (no reading) top-left pixel. The registration maps an
undistorted depth pixel with depth z through the rigid transform ``WORLD.rotation``,
``WORLD.translation_mm`` into the colour camera, rounding to whole colour pixels as
libfreenect2's ``color_depth_map`` does.
"""
from __future__ import annotations

import threading
import time
from enum import IntEnum

import numpy as np


class FrameType(IntEnum):
    Color = 1
    Ir = 2
    Depth = 4


class LoggerLevel(IntEnum):
    NONE = 0
    Error = 1
    Warning = 2
    Info = 3
    Debug = 4


class Logger:
    def level(self):
        return LoggerLevel.Info


def createConsoleLogger(level):
    return Logger()


def setGlobalLogger(logger=None):
    WORLD.logger = logger


class _World:
    """What the fake hardware does; tests change it through :func:`reset`."""

    def __init__(self):
        self.serials: list[str] = ["012345678912"]
        self.fps = 30.0
        self.broken_pipelines: set[str] = set()  # constructors that raise (e.g. no GPU)
        self.timeout_supported = True
        self.unplugged = threading.Event()
        self.rotation = np.eye(3)
        self.translation_mm = np.array([52.0, 0.0, 0.0])
        self.logger = None
        self.opened: list["Freenect2Device"] = []


WORLD = _World()


def reset(**kw) -> _World:
    """Fresh fake hardware; keyword arguments set :class:`_World` attributes."""
    global WORLD
    for dev in WORLD.opened:
        dev._running.clear()
    WORLD = _World()
    for k, v in kw.items():
        setattr(WORLD, k, v)
    return WORLD


class ColorCameraParams:
    def __init__(self):
        self.fx, self.fy, self.cx, self.cy = 1081.37, 1081.37, 959.5, 539.5
        self.shift_d, self.shift_m = 863.0, 52.0


class IrCameraParams:
    def __init__(self):
        self.fx, self.fy, self.cx, self.cy = 365.456, 365.456, 254.878, 205.395
        self.k1 = self.k2 = self.k3 = self.p1 = self.p2 = 0.0


class Frame:
    """libfreenect2::Frame: owns its buffer when created with a size, else the driver does."""

    def __init__(self, width=None, height=None, bytes_per_pixel=None, frame_type=-1, numpy_array=None):
        sizes = (width, height, bytes_per_pixel)
        assert all(s is None for s in sizes) or all(s is not None for s in sizes)
        self.frame_type = frame_type
        self.take_ownership = width is not None
        self.timestamp = 0
        self.sequence = 0
        self.exposure = self.gain = self.gamma = 0.0
        if width is not None:
            self._alloc(width, height, bytes_per_pixel)
            if numpy_array is not None:
                self._buf[:] = np.ascontiguousarray(numpy_array, np.float32).view(np.uint8).ravel()

    def _alloc(self, width, height, bpp):
        self.width, self.height, self.bytes_per_pixel = width, height, bpp
        self._buf = np.zeros(width * height * bpp, np.uint8)

    def asarray(self, dtype=None):
        if dtype is None:
            if self.frame_type < 0:
                raise ValueError("Cannot determine type of data. Specify dtype explicitly.")
            dtype = np.uint8 if self.frame_type == FrameType.Color else np.float32
        if dtype == np.uint8:
            return self._buf.reshape(self.height, self.width, 4)  # a view, like the real binding
        if dtype == np.float32:
            return self._buf.view(np.float32).reshape(self.height, self.width)
        raise ValueError("np.uint8 or np.float32 is only supported")


class FrameMap:
    def __init__(self, take_ownership=False):
        self.take_ownership = take_ownership
        self._frames: dict[int, Frame] = {}

    def __getitem__(self, key):
        if isinstance(key, str):
            key = {"color": FrameType.Color, "ir": FrameType.Ir, "depth": FrameType.Depth}[key.lower()]
        return self._frames[int(key)]


class SyncMultiFrameListener:
    def __init__(self, frame_types=FrameType.Color | FrameType.Ir | FrameType.Depth):
        self.frame_types = int(frame_types)
        self._cond = threading.Condition()
        self._ready: FrameMap | None = None
        self._held = False
        self.delivered = 0
        self.dropped_by_driver = 0

    def _offer(self, frames: FrameMap) -> None:
        with self._cond:
            if self._held or self._ready is not None:
                self.dropped_by_driver += 1  # the consumer still holds the last set
                return
            self._ready = frames
            self._cond.notify_all()

    def hasNewFrame(self):
        with self._cond:
            return self._ready is not None

    def _wait(self, frame_map, milliseconds):
        with self._cond:
            deadline = None if milliseconds < 0 else time.monotonic() + milliseconds / 1000.0
            while self._ready is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(0.05 if left is None else min(left, 0.05))
            frames, self._ready = self._ready, None
            self._held = True
            self.delivered += 1
        if frame_map is None:
            return frames
        frame_map._frames = frames._frames
        return frame_map

    def waitForNewFrame(self, frame_map=None, milliseconds=-1):
        if not WORLD.timeout_supported and milliseconds != -1:
            raise TypeError("waitForNewFrame() got an unexpected keyword argument 'milliseconds'")
        return self._wait(frame_map, milliseconds)

    def release(self, frame_map):
        for frame in frame_map._frames.values():
            frame._buf[:] = 0xAB  # the driver reuses the buffer at once
        with self._cond:
            self._held = False


class PacketPipeline:
    name = "base"

    def __init__(self, *args):
        if self.name in WORLD.broken_pipelines:
            raise RuntimeError(f"{self.name} pipeline: no such device")


class CpuPacketPipeline(PacketPipeline):
    name = "cpu"


class OpenGLPacketPipeline(PacketPipeline):
    name = "opengl"


class OpenCLPacketPipeline(PacketPipeline):
    name = "opencl"


class CudaPacketPipeline(PacketPipeline):
    name = "cuda"


class Freenect2Device:
    def __init__(self, serial: str, pipeline):
        self.serial = serial
        self.pipeline = pipeline
        self._color_listener = None
        self._depth_listener = None
        self._running = threading.Event()
        self._thread = None
        self.closed = False
        self.stopped = False

    def getSerialNumber(self):
        return self.serial.encode()

    def getFirmwareVersion(self):
        return b"4.0.3911.0"

    def getColorCameraParams(self):
        return ColorCameraParams()

    def getIrCameraParams(self):
        return IrCameraParams()

    def setColorFrameListener(self, listener):
        self._color_listener = listener

    def setIrAndDepthFrameListener(self, listener):
        self._depth_listener = listener

    def start(self):
        return self.startStreams(True, True)

    def startStreams(self, rgb, depth):
        self._running.set()
        self._thread = threading.Thread(target=self._produce, daemon=True)
        self._thread.start()
        return True

    def _produce(self):
        seq = 0
        t0 = time.monotonic()
        listener = self._color_listener or self._depth_listener
        while self._running.is_set():
            due = t0 + seq / WORLD.fps
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if WORLD.unplugged.is_set():
                time.sleep(0.01)
                continue
            seq += 1
            fm = FrameMap()
            color = Frame(1920, 1080, 4)
            color.frame_type = FrameType.Color
            color.take_ownership = False
            c = color.asarray(np.uint8)
            c[..., 0] = seq % 256
            c[..., 1] = 100
            c[..., 2] = 200
            c[..., 3] = 255
            depth = Frame(512, 424, 4)
            depth.frame_type = FrameType.Depth
            depth.take_ownership = False
            d = depth.asarray(np.float32)
            d[:] = 1000.0 + seq % 100
            d[0, 0] = 0.0
            for f in (color, depth):
                f.sequence = seq
                f.timestamp = int(seq * 10000 / WORLD.fps)
            fm._frames = {int(FrameType.Color): color, int(FrameType.Depth): depth}
            if listener is not None:
                listener._offer(fm)

    def stop(self):
        self._running.clear()
        self.stopped = True
        return True

    def close(self):
        self._running.clear()
        self.closed = True
        return True


class Freenect2:
    def enumerateDevices(self):
        return len(WORLD.serials)

    def getDeviceSerialNumber(self, idx):
        return WORLD.serials[idx].encode()  # std::string comes back as bytes

    def getDefaultDeviceSerialNumber(self):
        return WORLD.serials[0].encode()

    def openDevice(self, name, pipeline=None):
        if isinstance(name, str):  # the binding's std::string parameter takes bytes only
            raise TypeError("expected bytes, str found")
        serial = name.decode() if isinstance(name, bytes) else WORLD.serials[name]
        if serial not in WORLD.serials:
            raise AssertionError("the real binding would return a device with a NULL pointer here")
        dev = Freenect2Device(serial, pipeline)
        WORLD.opened.append(dev)
        return dev

    def openDefaultDevice(self, pipeline=None):
        return self.openDevice(WORLD.serials[0], pipeline)


class Registration:
    """Maps depth pixels to colour pixels through WORLD's rigid transform (see the docstring)."""

    def __init__(self, irparams: IrCameraParams, cparams: ColorCameraParams):
        self.ir, self.c = irparams, cparams

    def _map(self, z):
        v, u = np.mgrid[0:424, 0:512].astype(np.float64)
        x = (u - self.ir.cx) / self.ir.fx * z
        y = (v - self.ir.cy) / self.ir.fy * z
        p = np.stack([x, y, z], axis=-1) @ WORLD.rotation.T + WORLD.translation_mm
        with np.errstate(divide="ignore", invalid="ignore"):
            cu = self.c.fx * p[..., 0] / p[..., 2] + self.c.cx
            cv = self.c.fy * p[..., 1] / p[..., 2] + self.c.cy
        iu, iv = np.rint(cu), np.rint(cv)
        ok = (z > 0) & np.isfinite(iu) & (iu >= 0) & (iu < 1920) & (iv >= 0) & (iv < 1080)
        return iu, iv, ok

    def apply(self, rgb, depth, undistorted, registered, enable_filter=True, bigdepth=None, color_depth_map=None):
        assert rgb.take_ownership is False and depth.take_ownership is False
        assert undistorted.take_ownership is True and registered.take_ownership is True
        assert bigdepth is None or bigdepth.take_ownership is True
        z = depth.asarray(np.float32).astype(np.float64)
        undistorted.asarray(np.float32)[:] = z
        iu, iv, ok = self._map(z)
        idx = np.where(ok, iv * 1920 + iu, -1).astype(np.int32)
        colour = rgb.asarray(np.uint8).reshape(-1, 4)
        reg = registered.asarray(np.uint8).reshape(-1, 4)
        reg[:] = 0
        flat = idx.ravel()
        reg[flat >= 0] = colour[flat[flat >= 0]]
        if color_depth_map is not None:
            color_depth_map[:] = flat
        if bigdepth is not None:
            big = bigdepth.asarray(np.float32)
            big[:] = np.inf
            rows, cols = iv[ok].astype(int) + 1, iu[ok].astype(int)
            np.minimum.at(big, (rows, cols), z[ok].astype(np.float32))

    def undistortDepth(self, depth, undistorted):
        undistorted.asarray(np.float32)[:] = depth.asarray(np.float32)

    def getPointXYZ(self, undistorted, r, c):
        z = float(undistorted.asarray(np.float32)[r, c])
        return ((c - self.ir.cx) / self.ir.fx * z / 1000.0, (r - self.ir.cy) / self.ir.fy * z / 1000.0, z / 1000.0)
