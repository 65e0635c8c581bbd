"""A webcam through OpenCV: ``webcam[:INDEX][,calibration=FILE][,fov=DEG][,width=W,height=H,fps=F]``.

``INDEX`` is the OpenCV camera index (default 0) or a device path (``/dev/video2``). Frames
are colour only.

Always the newest frame: a grabber thread reads the camera continuously and keeps only the
latest image, so ``read()`` never returns a frame that waited in a driver buffer. Each frame is
stamped with the monotonic clock when the grabber received it. A camera that delivers nothing
for ``lost_after_s`` (1.5 s) ends the stream with :class:`~sensors.errors.SourceLostError`.

Intrinsics: ``calibration=FILE`` (an OpenCV camera matrix in YAML or JSON, as written by
``launch.py calibrate``; scaled if the camera delivers another size), else an assumed
horizontal field of view, ``fov=DEGREES`` (default 60). ``describe()`` states which.
``width``, ``height`` and ``fps`` are requests to the driver; ``describe()`` reports what it
granted.
"""
from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from sensors.devices.calibration import ColorCameraModel
from sensors.errors import ConfigError, SensorError, SourceLostError
from sensors.frame import Frame
from sensors.source import Options, Source, SourceURI


def _open_capture(target: int | str) -> Any:
    """The OpenCV capture for ``target`` (tests replace this with a fake camera)."""
    import cv2

    return cv2.VideoCapture(target)


class WebcamSource(Source):
    """A live webcam; see the module docstring."""

    is_live = True
    lost_after_s = 1.5  # declared lost within 2 s of the last frame

    def __init__(self, uri: SourceURI) -> None:
        super().__init__(uri)
        target = uri.target if uri.target is not None else "0"
        self.device: int | str = int(target) if target.isdigit() else target
        opts = Options(uri)
        self.camera_model = ColorCameraModel(opts.str("calibration", None), opts.float("fov", None))
        self.request = {k: opts.int(k, None) for k in ("width", "height")}
        self.request_fps = opts.float("fps", None)
        opts.finish()
        for k, v in self.request.items():
            if v is not None and v <= 0:
                raise ConfigError(f"{k}={v} in {uri} must be positive")
        self._cap: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._latest: tuple[np.ndarray, int, int] | None = None  # (bgr, timestamp_ns, sequence)
        self._delivered_seq = 0
        self._lost_reason: str | None = None
        self._frames_grabbed = 0
        self._granted: dict[str, float] = {}

    def _open(self) -> None:
        import cv2

        cap = _open_capture(self.device)
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            raise SensorError(f"no webcam at {self.device!r}: plug one in, or pick another index (webcam:1)",
                              path=f"webcam:{self.device}")
        if self.request["width"]:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.request["width"])
        if self.request["height"]:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.request["height"])
        if self.request_fps:
            cap.set(cv2.CAP_PROP_FPS, self.request_fps)
        try:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # fewer stale frames in the driver; not all backends obey
        except cv2.error:
            pass
        self._granted = {"width": cap.get(cv2.CAP_PROP_FRAME_WIDTH), "height": cap.get(cv2.CAP_PROP_FRAME_HEIGHT),
                         "fps": cap.get(cv2.CAP_PROP_FPS)}
        self._cap = cap
        self._stop.clear()
        self._thread = threading.Thread(target=self._grab_loop, name=f"webcam-{self.device}", daemon=True)
        self._thread.start()

    def _grab_loop(self) -> None:
        cap = self._cap
        last_ok = time.monotonic()
        seq = 0
        malformed: str | None = None  # what the last image the camera sent but we refused looked like
        try:
            while not self._stop.is_set():
                ok, bgr = cap.read()
                now = time.monotonic()
                good = isinstance(bgr, np.ndarray) and bgr.ndim == 3 and bgr.shape[2] == 3 and bgr.dtype == np.uint8
                if ok and good:
                    seq += 1
                    with self._cond:
                        self._latest = (bgr, time.monotonic_ns(), seq)
                        self._frames_grabbed = seq
                        self._cond.notify_all()
                    last_ok = now
                    malformed = None
                    continue
                if ok and isinstance(bgr, np.ndarray):
                    malformed = f"{bgr.dtype.name} {'x'.join(map(str, bgr.shape))}"
                if now - last_ok > self.lost_after_s:
                    with self._cond:
                        self._lost_reason = (
                            f"the webcam delivered only malformed images ({malformed}; expected HxWx3 uint8) "
                            f"for {self.lost_after_s:g} s" if malformed else
                            f"the webcam delivered no image for {self.lost_after_s:g} s "
                            "(unplugged or in use by another program)")
                        self._cond.notify_all()
                    return
                time.sleep(0.01)
        finally:
            cap.release()

    def _read(self, timeout_s: float) -> Frame:
        import cv2

        deadline = time.monotonic() + max(timeout_s, 0.0)
        with self._cond:
            while True:
                if self._latest is not None and self._latest[2] > self._delivered_seq:
                    bgr, ts, seq = self._latest
                    self._delivered_seq = seq
                    break
                if self._lost_reason is not None:
                    raise SourceLostError(self._lost_reason, path=f"webcam:{self.device}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no webcam frame within {timeout_s:g} s")
                self._cond.wait(left)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        return Frame(index=seq - 1, timestamp_ns=ts, color=rgb, color_camera=self.camera_model.for_size(w, h),
                     source=f"webcam:{self.device}")

    def _close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)  # the grabber releases the camera as it leaves
            self._thread = None
        elif self._cap is not None:
            self._cap.release()
        self._cap = None

    @property
    def frames_grabbed(self) -> int:
        """Frames the camera delivered so far (delivered or replaced by a newer one)."""
        return self._frames_grabbed

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"device": self.device, "granted": dict(self._granted), **self.camera_model.describe()})
        return d
