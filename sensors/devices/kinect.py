"""Kinect One v2 through libfreenect2 / pylibfreenect2: ``kinect[:SERIAL][,pipeline=..][,align=..]``.

pylibfreenect2 is an optional install (see the README, "Kinect v2 driver"); without it, or
without a connected device, opening fails with one sentence saying what to install or plug in.

- Packet pipeline: the fastest one compiled into libfreenect2 that starts, in the order CUDA,
  OpenCL, OpenGL, CPU (the CPU pipeline cannot hold 30 Hz). ``pipeline=cuda|opencl|opengl|cpu``
  forces one.
- Frames: colour 1920x1080 (libfreenect2's BGRX turned into RGB), depth 512x424 in mm (0 = no
  reading), both cameras' parameters as the device reports them. By default the depth is
  undistorted with libfreenect2's own ``Registration.undistortDepth`` so that the depth camera is
  a plain pinhole (``undistort=off`` delivers the raw depth with the device's k1, k2, p1, p2, k3).
  Images are passed on as libfreenect2 delivers them (no flipping).
- Every array is copied out of the driver's buffers before the frames go back to the listener
  (pylibfreenect2's ``asarray`` is a view of a buffer the driver reuses).
- Depth-to-colour transform: libfreenect2 describes its depth-to-colour mapping with its own
  polynomial parameters, not a rotation and translation. When the device opens, the source
  sets planes of known depth (0.5 to 4.5 m) into a depth frame, maps them with libfreenect2's
  ``Registration.apply`` (``color_depth_map``), and fits R, t to that mapping by least squares on
  the colour-image reprojection error (``cv2.solvePnP``). The fit and its error (RMS and max, in
  colour pixels, including the mapping's whole-pixel rounding of about 0.4 px RMS) are in
  ``describe()["depth_to_color_fit"]`` and ``KinectSource.fit``.
- ``align=color`` uses libfreenect2's Registration instead where that is better: the depth
  delivered is libfreenect2's "bigdepth", the depth mapped into the colour image (1920x1080),
  with the colour camera as its camera and an identity transform; its values are depth-camera z
  (they differ from colour-camera z by the fitted t_z, a few mm). ``KinectSource.registration``
  is the pylibfreenect2 Registration object itself.
- A reader thread waits for frames with a timeout and hands over only the newest set; if the
  device stops delivering (unplugged) for ``lost_after_s`` (1.5 s), ``read`` raises
  :class:`~sensors.errors.SourceLostError` at once instead of waiting out its timeout.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from sensors.errors import ConfigError, SensorError, SourceLostError
from sensors.frame import Frame
from sensors.geometry import CameraIntrinsics, Extrinsics
from sensors.source import Options, Source, SourceURI

PIPELINE_ORDER = ("cuda", "opencl", "opengl", "cpu")
_PIPELINE_CLASS = {"cuda": "CudaPacketPipeline", "opencl": "OpenCLPacketPipeline",
                   "opengl": "OpenGLPacketPipeline", "cpu": "CpuPacketPipeline"}
#: depths (mm) of the planes used to fit depth_to_color to libfreenect2's mapping
FIT_DEPTHS_MM = (500.0, 700.0, 1000.0, 1500.0, 2200.0, 3200.0, 4500.0)
COLOR_SIZE = (1920, 1080)
DEPTH_SIZE = (512, 424)
_INSTALL_HINT = "see the README section 'Kinect v2 driver'"


@dataclass(frozen=True)
class RegistrationFit:
    """depth_to_color fitted to libfreenect2's depth-to-colour mapping."""

    extrinsics: Extrinsics
    rms_px: float
    max_px: float
    samples: int

    def to_dict(self) -> dict:
        return {"rms_px": round(self.rms_px, 4), "max_px": round(self.max_px, 4), "samples": self.samples,
                **self.extrinsics.to_dict(),
                "method": "least-squares reprojection fit (cv2.solvePnP) to libfreenect2 Registration.apply "
                          f"color_depth_map at planes {', '.join(f'{z:g}' for z in FIT_DEPTHS_MM)} mm"}


def _text(s: Any) -> str:
    return s.decode("utf-8", "replace") if isinstance(s, (bytes, bytearray)) else str(s)


def depth_to_uint16(depth_mm: np.ndarray) -> np.ndarray:
    """float depth in mm (NaN/inf/negative = no reading) to uint16 mm, 0 = no reading (a new array)."""
    d = np.nan_to_num(np.asarray(depth_mm, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    np.clip(d, 0.0, 65535.0, out=d)
    np.rint(d, out=d)
    return d.astype(np.uint16)


def fit_depth_to_color(fn2: Any, registration: Any, frames: Any, depth_cam: CameraIntrinsics,
                       color_cam: CameraIntrinsics, depths_mm: tuple[float, ...] = FIT_DEPTHS_MM,
                       step: int = 6) -> RegistrationFit:
    """Fit R, t (depth point p -> R p + t in the colour camera) to libfreenect2's mapping.

    ``frames`` is a frame set from the listener (``Registration.apply`` accepts only those); its
    depth buffer is overwritten with planes of known depth and restored afterwards.
    ``depth_cam`` is the undistorted depth camera (the mapping's pixels are undistorted).
    """
    import cv2

    color_f = frames[fn2.FrameType.Color]
    depth_f = frames[fn2.FrameType.Depth]
    view = depth_f.asarray(np.float32)
    saved = view.copy()
    undistorted = fn2.Frame(DEPTH_SIZE[0], DEPTH_SIZE[1], 4)
    registered = fn2.Frame(DEPTH_SIZE[0], DEPTH_SIZE[1], 4)
    cmap = np.zeros(DEPTH_SIZE[0] * DEPTH_SIZE[1], np.int32)
    v, u = np.mgrid[0:DEPTH_SIZE[1]:step, 0:DEPTH_SIZE[0]:step]
    grid = (v * DEPTH_SIZE[0] + u).ravel()
    obj, img = [], []
    try:
        for z in depths_mm:
            view[:] = z
            registration.apply(color_f, depth_f, undistorted, registered, enable_filter=False,
                               color_depth_map=cmap)
            idx = grid[cmap[grid] >= 0]
            c = cmap[idx]
            obj.append(depth_cam.unproject(idx % DEPTH_SIZE[0], idx // DEPTH_SIZE[0], np.full(idx.size, z)))
            img.append(np.stack([c % COLOR_SIZE[0], c // COLOR_SIZE[0]], axis=1).astype(np.float64))
    finally:
        view[:] = saved
    p = np.concatenate(obj) if obj else np.zeros((0, 3))
    q = np.concatenate(img) if img else np.zeros((0, 2))
    if len(p) < 50:
        raise SensorError(f"libfreenect2's registration mapped only {len(p)} test points into the colour image; "
                          "the device's camera parameters look wrong", path="kinect")
    k = color_cam.matrix()
    rvec, tvec = np.zeros((3, 1)), np.array([[52.0], [0.0], [0.0]])
    ok, rvec, tvec = cv2.solvePnP(p, q, k, None, rvec, tvec, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        raise SensorError("could not fit depth_to_color to libfreenect2's registration", path="kinect")
    r = cv2.Rodrigues(rvec)[0]
    ext = Extrinsics(r, tvec.ravel())
    err = np.linalg.norm(color_cam.project(ext.apply(p)) - q, axis=1)
    return RegistrationFit(ext, float(np.sqrt(np.mean(err ** 2))), float(err.max()), int(len(p)))


class KinectSource(Source):
    """A live Kinect One v2 (see the module docstring)."""

    is_live = True
    lost_after_s = 1.5

    def __init__(self, uri: SourceURI) -> None:
        super().__init__(uri)
        opts = Options(uri)
        self.pipeline_request = (opts.str("pipeline", "auto") or "auto").lower()
        self.align = (opts.str("align", "depth") or "depth").lower()
        self.undistort = opts.bool("undistort", True)
        opts.finish()
        if self.pipeline_request not in ("auto", *PIPELINE_ORDER):
            raise ConfigError(f"pipeline={self.pipeline_request!r} in {uri} must be auto, {', '.join(PIPELINE_ORDER)}")
        if self.align not in ("depth", "color"):
            raise ConfigError(f"align={self.align!r} in {uri} must be depth or color")
        self.serial: str | None = uri.target
        self.pipeline_name: str | None = None
        self.registration: Any = None
        self.fit: RegistrationFit | None = None
        self.color_camera: CameraIntrinsics | None = None
        self.depth_camera: CameraIntrinsics | None = None
        self.firmware = ""
        self._fn2: Any = None
        self._fn: Any = None
        self._device: Any = None
        self._listener: Any = None
        self._wait_timeout = True
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._delivered = -1
        self._received = 0
        self._lost: str | None = None
        self._pipeline_errors: dict[str, str] = {}

    # -- opening ------------------------------------------------------------------------------
    def _make_pipeline(self, fn2: Any) -> tuple[Any, str]:
        names = PIPELINE_ORDER if self.pipeline_request == "auto" else (self.pipeline_request,)
        for name in names:
            cls = getattr(fn2, _PIPELINE_CLASS[name], None)
            if cls is None:
                self._pipeline_errors[name] = "not compiled into libfreenect2"
                continue
            try:
                return cls(), name
            except Exception as exc:  # noqa: BLE001 - the binding raises whatever the C++ side threw
                self._pipeline_errors[name] = " ".join(str(exc).split()) or type(exc).__name__
        tried = "; ".join(f"{k}: {v}" for k, v in self._pipeline_errors.items())
        raise SensorError(f"no libfreenect2 packet pipeline could start ({tried})", path=f"kinect:{self.serial or ''}")

    def _open(self) -> None:
        where = f"kinect:{self.serial or ''}"
        try:
            import pylibfreenect2 as fn2
        except ImportError as exc:
            detail = f" ({exc})" if "pylibfreenect2" not in str(exc) else ""
            raise SensorError("pylibfreenect2 is not installed: build libfreenect2, then pylibfreenect2 from source "
                              f"({_INSTALL_HINT}){detail}", path=where) from None
        self._fn2 = fn2
        fn = fn2.Freenect2()
        self._fn = fn
        n = int(fn.enumerateDevices())
        if n == 0:
            raise SensorError("no Kinect v2 found: plug it into a USB 3 port and power it "
                              f"(and install the udev rules, {_INSTALL_HINT})", path=where)
        raw = [fn.getDeviceSerialNumber(i) for i in range(n)]  # bytes: openDevice wants them back as is
        serials = [_text(s) for s in raw]
        serial = self.serial or serials[0]
        if serial not in serials:
            raise SensorError(f"no Kinect v2 with serial {serial}; connected: {', '.join(serials)}", path=where)
        self.serial = serial
        pipeline, self.pipeline_name = self._make_pipeline(fn2)
        device = fn.openDevice(raw[serials.index(serial)], pipeline=pipeline)
        if device is None:
            raise SensorError(f"libfreenect2 could not open Kinect v2 {serial} (in use by another program?)",
                              path=where)
        self._device = device
        listener = fn2.SyncMultiFrameListener(fn2.FrameType.Color | fn2.FrameType.Depth)
        device.setColorFrameListener(listener)
        device.setIrAndDepthFrameListener(listener)
        self._listener = listener
        device.start()
        self.firmware = _text(device.getFirmwareVersion())
        ir, col = device.getIrCameraParams(), device.getColorCameraParams()
        self.registration = fn2.Registration(ir, col)
        dist = (float(ir.k1), float(ir.k2), float(ir.p1), float(ir.p2), float(ir.k3))
        pinhole = CameraIntrinsics(float(ir.fx), float(ir.fy), float(ir.cx), float(ir.cy), *DEPTH_SIZE)
        raw_depth_cam = CameraIntrinsics(float(ir.fx), float(ir.fy), float(ir.cx), float(ir.cy), *DEPTH_SIZE, dist)
        self.color_camera = CameraIntrinsics(float(col.fx), float(col.fy), float(col.cx), float(col.cy), *COLOR_SIZE)
        self.depth_camera = pinhole if self.undistort else raw_depth_cam
        if self.align == "color":
            self.depth_camera = self.color_camera
        self._undistorted = fn2.Frame(DEPTH_SIZE[0], DEPTH_SIZE[1], 4)
        self._registered = fn2.Frame(DEPTH_SIZE[0], DEPTH_SIZE[1], 4)
        self._bigdepth = fn2.Frame(COLOR_SIZE[0], COLOR_SIZE[1] + 2, 4)
        frames = self._wait_first_frames(10.0)
        try:
            self.fit = fit_depth_to_color(fn2, self.registration, frames, pinhole, self.color_camera)
        finally:
            listener.release(frames)
        self._stop.clear()
        self._thread = threading.Thread(target=self._reader, name=f"kinect-{serial}", daemon=True)
        self._thread.start()

    def _wait(self, timeout_s: float) -> Any:
        """One frame set, or None after ``timeout_s`` (only when the binding supports timeouts)."""
        if self._wait_timeout:
            try:
                return self._listener.waitForNewFrame(milliseconds=max(int(timeout_s * 1000), 1))
            except TypeError:  # pylibfreenect2 without the timeout argument: block in this thread
                self._wait_timeout = False
        return self._listener.waitForNewFrame()

    def _wait_first_frames(self, timeout_s: float) -> Any:
        if self._wait_timeout:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                frames = self._wait(0.25)
                if frames is not None:
                    return frames
        if self._wait_timeout:
            raise SensorError(f"the Kinect v2 sent no frames within {timeout_s:g} s (USB 3 port? enough power? "
                              f"pipeline {self.pipeline_name})", path=f"kinect:{self.serial}")
        box: list[Any] = []
        th = threading.Thread(target=lambda: box.append(self._listener.waitForNewFrame()), daemon=True)
        th.start()
        th.join(timeout_s)
        if not box:
            raise SensorError(f"the Kinect v2 sent no frames within {timeout_s:g} s (USB 3 port? enough power?)",
                              path=f"kinect:{self.serial}")
        return box[0]

    # -- streaming ----------------------------------------------------------------------------
    def _convert(self, frames: Any, timestamp_ns: int) -> Frame:
        """Copy one frame set out of the driver's buffers into a Frame (called before release)."""
        import cv2

        fn2 = self._fn2
        color_f = frames[fn2.FrameType.Color]
        depth_f = frames[fn2.FrameType.Depth]
        rgb = cv2.cvtColor(color_f.asarray(np.uint8), cv2.COLOR_BGRA2RGB)  # a new array
        if self.align == "color":
            self.registration.apply(color_f, depth_f, self._undistorted, self._registered, enable_filter=True,
                                    bigdepth=self._bigdepth)
            depth = depth_to_uint16(self._bigdepth.asarray(np.float32)[1:-1])
            ext = Extrinsics.identity()
        else:
            if self.undistort:
                self.registration.undistortDepth(depth_f, self._undistorted)
                depth = depth_to_uint16(self._undistorted.asarray(np.float32))
            else:
                depth = depth_to_uint16(depth_f.asarray(np.float32))
            ext = self.fit.extrinsics
        return Frame(index=self._received, timestamp_ns=timestamp_ns, color=rgb, color_camera=self.color_camera,
                     depth_mm=depth, depth_camera=self.depth_camera, depth_to_color=ext,
                     source=f"kinect:{self.serial}")

    def _reader(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            frames = self._wait(0.2)
            now = time.monotonic()
            if frames is None:
                if now - last > self.lost_after_s:
                    with self._cond:
                        self._lost = (f"the Kinect v2 sent no frames for {self.lost_after_s:g} s "
                                      "(unplugged, or the USB link failed)")
                        self._cond.notify_all()
                    return
                continue
            if self._stop.is_set():
                self._listener.release(frames)
                return
            try:
                frame = self._convert(frames, time.monotonic_ns())
            except Exception as exc:  # noqa: BLE001 - end the stream with the reason, never die silently
                with self._cond:
                    self._lost = f"reading a Kinect frame failed ({type(exc).__name__}: {exc})"
                    self._cond.notify_all()
                return
            finally:
                self._listener.release(frames)
            last = now
            with self._cond:
                self._received += 1
                self._latest = frame
                self._cond.notify_all()

    def _read(self, timeout_s: float) -> Frame:
        deadline = time.monotonic() + max(timeout_s, 0.0)
        with self._cond:
            while True:
                if self._latest is not None and self._latest.index > self._delivered:
                    self._delivered = self._latest.index
                    return self._latest
                if self._lost is not None:
                    raise SourceLostError(self._lost, path=f"kinect:{self.serial}")
                left = deadline - time.monotonic()
                if left <= 0:
                    if not self._wait_timeout and time.monotonic() - self._last_frame_monotonic > self.lost_after_s:
                        # a binding without timeouts cannot tell the reader; time tells us here
                        raise SourceLostError(f"the Kinect v2 sent no frames for {self.lost_after_s:g} s "
                                              "(unplugged, or the USB link failed)", path=f"kinect:{self.serial}")
                    raise TimeoutError(f"no Kinect frame within {timeout_s:g} s")
                self._cond.wait(min(left, 0.05))

    def _close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)  # a reader blocked in an untimed wait is left behind (daemon)
            self._thread = None
        device = self._device
        self._device = None
        if device is not None:
            def stop() -> None:
                try:
                    device.stop()
                    device.close()
                except Exception:  # noqa: BLE001 - an unplugged device may fail to stop; nothing to do
                    pass
            th = threading.Thread(target=stop, name="kinect-close", daemon=True)
            th.start()
            th.join(timeout=2.0)  # libfreenect2 can hang stopping an unplugged device: never wait longer

    @property
    def frames_replaced(self) -> int:
        """Frame sets the reader received that no read() took before a newer one arrived."""
        return max(self._received - 1 - self._delivered, 0) if self._received else 0

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({
            "device": "Kinect One v2 (libfreenect2)",
            "serial": self.serial, "firmware": self.firmware,
            "pipeline": self.pipeline_name, "pipelines_unavailable": dict(self._pipeline_errors),
            "align": self.align, "undistort": self.undistort,
            "color_camera": None if self.color_camera is None else self.color_camera.to_dict(),
            "depth_camera": None if self.depth_camera is None else self.depth_camera.to_dict(),
            "depth_to_color_fit": None if self.fit is None else self.fit.to_dict(),
        })
        return d
