"""Recordings: MCAP files with ROS 2 messages, written crash-safely and replayed frame-accurately.

File layout (profile ``ros2``, messages CDR-encoded through ``mcap-ros2-support``, so files open
in Foxglove and play with ``ros2 bag play``). Per frame, all messages share one log time:

======================================  =======================================  ==================
topic                                   type                                     when
======================================  =======================================  ==================
``/camera/color/camera_info``           ``sensor_msgs/msg/CameraInfo``           every frame
``/camera/depth/camera_info``           ``sensor_msgs/msg/CameraInfo``           frames with depth
``/tf_static``                          ``tf2_msgs/msg/TFMessage``               first frame, and
                                                                                 when it changes
``/facedepth/head_pose``                ``geometry_msgs/msg/PoseStamped``        head annotated
``/facedepth/prediction/depth8``        ``sensor_msgs/msg/Image`` (mono8)        from the app
``/facedepth/metrics``                  ``std_msgs/msg/String`` (JSON)           from the app
``/camera/color/image/compressed``      ``sensor_msgs/msg/CompressedImage``      every frame (JPEG,
                                                                                 or PNG: lossless)
``/camera/depth/image_raw``             ``sensor_msgs/msg/Image`` (16UC1, mm)    frames with depth
``/camera/depth_clean/image_raw``       ``sensor_msgs/msg/Image`` (16UC1, mm)    noise-free depth
``/facedepth/frame``                    ``std_msgs/msg/String`` (JSON)           every frame, last
======================================  =======================================  ==================

``/facedepth/frame`` is the frame's record and its commit mark: JSON with the frame's
``timestamp_ns``, ``index``, ``source``, ``head_center_mm`` with ``head_center_definition`` (the
project's skull centre; records without it were written before and are converted as
``sensors.locate.stored`` says), ``head_center_raw_mm`` (a dataset's own head point), ``head_rotation``,
``subject_id``, both cameras and ``depth_to_color`` (floats written with full precision, so annotations replay
bit-exactly). The tf transform's parent is ``color_optical_frame`` and its child
``depth_optical_frame`` (translation in metres), so it maps depth-camera points into the colour
camera; the head pose is in ``depth_optical_frame``, its orientation the annotated rotation
(identity when only the centre is known). Log times are wall-clock nanoseconds: the recording's
start time plus each frame's offset from the first frame; the difference to ``timestamp_ns`` is
stored in the ``facedepth.clock`` metadata record.

Crash safety. Each frame is written as its own LZ4-compressed chunk and flushed to the
operating system before the next; the file is fsync'ed every ``fsync_interval_s``. A recording
cut short (process killed, disk full, power lost after the last sync) keeps every frame flushed
before; the reader scans the file from the start and needs neither the summary nor the last
chunk's index, so it recovers files without a summary and files that end inside a chunk.

Writing happens on a background thread fed by a bounded queue (``max_queue_frames``): when the
disk or the CPU cannot keep up, new frames are dropped and counted (``frames_dropped``), never
queued without bound. The recorder keeps references to the frame's arrays until they are
written: sources must not reuse a frame's arrays (no source in the project does).

Replay: ``replay:FILE.mcap[,pace=off][,loop=on]`` (:class:`ReplaySource`), real-time by default,
seekable by index and time. Depth and annotations replay bit-exactly; colour replays exactly
when recorded as PNG. The app's recorded prediction and metrics of a frame are available from
:meth:`ReplaySource.extras` (by index), :meth:`ReplaySource.recorded_prediction` (by frame) and
``ReplaySource.last_extras`` (the frame read last).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import queue
import struct
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from sensors.errors import ConfigError, FormatError, SensorError
from sensors.frame import CameraIntrinsics, Extrinsics, Frame
from sensors.geometry import HEAD_CENTRE_DEFINITION
from sensors.locate.stored import StoredCentres
from sensors.indexed import IndexedSource
from sensors.source import Options, SourceURI

FORMAT_VERSION = 1

TOPIC_COLOR = "/camera/color/image/compressed"
TOPIC_COLOR_INFO = "/camera/color/camera_info"
TOPIC_DEPTH = "/camera/depth/image_raw"
TOPIC_DEPTH_INFO = "/camera/depth/camera_info"
TOPIC_DEPTH_CLEAN = "/camera/depth_clean/image_raw"
TOPIC_TF = "/tf_static"
TOPIC_HEAD = "/facedepth/head_pose"
TOPIC_PREDICTION = "/facedepth/prediction/depth8"
TOPIC_METRICS = "/facedepth/metrics"
TOPIC_FRAME = "/facedepth/frame"
COLOR_FRAME_ID = "color_optical_frame"
DEPTH_FRAME_ID = "depth_optical_frame"


# -- where recordings live ----------------------------------------------------------------
def data_dir() -> Path:
    """The project's per-user data folder: ``$FACEDEPTH_DATA_DIR``, else
    ``$XDG_DATA_HOME/facedepth``, else ``~/.local/share/facedepth``."""
    if os.environ.get("FACEDEPTH_DATA_DIR"):
        return Path(os.environ["FACEDEPTH_DATA_DIR"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "facedepth"


def default_recording_path(folder: str | os.PathLike[str] | None = None) -> Path:
    """A new, timestamped recording file name in ``folder`` (default ``data_dir()/recordings``)."""
    folder = Path(folder) if folder else data_dir() / "recordings"
    return folder / time.strftime("facedepth_%Y%m%d_%H%M%S.mcap")


# -- ROS 2 message definitions (ros2msg text with dependencies, as rosbag2 stores them) ----
_SEP = "=" * 80


def _msgdef(main: str, *deps: tuple[str, str]) -> str:
    parts = [main.strip()]
    for name, text in deps:
        parts.append(f"{_SEP}\nMSG: {name}\n{text.strip()}")
    return "\n".join(parts) + "\n"


_TIME = ("builtin_interfaces/Time", "int32 sec\nuint32 nanosec")
_HEADER = ("std_msgs/Header", "builtin_interfaces/Time stamp\nstring frame_id")
_VECTOR3 = ("geometry_msgs/Vector3", "float64 x\nfloat64 y\nfloat64 z")
_POINT = ("geometry_msgs/Point", "float64 x\nfloat64 y\nfloat64 z")
_QUAT = ("geometry_msgs/Quaternion", "float64 x 0\nfloat64 y 0\nfloat64 z 0\nfloat64 w 1")
_ROI = ("sensor_msgs/RegionOfInterest",
        "uint32 x_offset\nuint32 y_offset\nuint32 height\nuint32 width\nbool do_rectify")

SCHEMAS: dict[str, str] = {
    "sensor_msgs/msg/CompressedImage": _msgdef("std_msgs/Header header\nstring format\nuint8[] data",
                                               _HEADER, _TIME),
    "sensor_msgs/msg/Image": _msgdef(
        "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\n"
        "uint32 step\nuint8[] data", _HEADER, _TIME),
    "sensor_msgs/msg/CameraInfo": _msgdef(
        "std_msgs/Header header\nuint32 height\nuint32 width\nstring distortion_model\nfloat64[] d\n"
        "float64[9] k\nfloat64[9] r\nfloat64[12] p\nuint32 binning_x\nuint32 binning_y\n"
        "sensor_msgs/RegionOfInterest roi", _HEADER, _TIME, _ROI),
    "tf2_msgs/msg/TFMessage": _msgdef(
        "geometry_msgs/TransformStamped[] transforms",
        ("geometry_msgs/TransformStamped",
         "std_msgs/Header header\nstring child_frame_id\ngeometry_msgs/Transform transform"),
        _HEADER, _TIME,
        ("geometry_msgs/Transform", "geometry_msgs/Vector3 translation\ngeometry_msgs/Quaternion rotation"),
        _VECTOR3, _QUAT),
    "geometry_msgs/msg/PoseStamped": _msgdef(
        "std_msgs/Header header\ngeometry_msgs/Pose pose", _HEADER, _TIME,
        ("geometry_msgs/Pose", "geometry_msgs/Point position\ngeometry_msgs/Quaternion orientation"),
        _POINT, _QUAT),
    "std_msgs/msg/String": _msgdef("string data"),
}


def rotation_to_quaternion(r: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation matrix (the nearest rotation if it is slightly off)."""
    u, _, vt = np.linalg.svd(np.asarray(r, dtype=np.float64).reshape(3, 3))
    m = u @ vt
    if np.linalg.det(m) < 0:
        m = u @ np.diag([1.0, 1.0, -1.0]) @ vt
    t = np.trace(m)
    if t > 0:
        s = 2.0 * math.sqrt(t + 1.0)
        w, x, y, z = 0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        w, x, y, z = (m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        w, x, y, z = (m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        w, x, y, z = (m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s
    return float(x), float(y), float(z), float(w)


def _stamp(t_ns: int) -> dict:
    return {"sec": int(t_ns // 1_000_000_000), "nanosec": int(t_ns % 1_000_000_000)}


def _camera_info(cam: CameraIntrinsics, frame_id: str, t_ns: int) -> dict:
    d = list(cam.distortion)
    return {
        "header": {"stamp": _stamp(t_ns), "frame_id": frame_id},
        "height": cam.height, "width": cam.width,
        "distortion_model": "rational_polynomial" if len(d) > 5 else "plumb_bob",
        "d": d,
        "k": [cam.fx, 0.0, cam.cx, 0.0, cam.fy, cam.cy, 0.0, 0.0, 1.0],
        "r": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        "p": [cam.fx, 0.0, cam.cx, 0.0, 0.0, cam.fy, cam.cy, 0.0, 0.0, 0.0, 1.0, 0.0],
        "binning_x": 0, "binning_y": 0,
        "roi": {"x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": False},
    }


def _image16(depth: np.ndarray, frame_id: str, t_ns: int) -> dict:
    h, w = depth.shape
    return {"header": {"stamp": _stamp(t_ns), "frame_id": frame_id}, "height": h, "width": w,
            "encoding": "16UC1", "is_bigendian": 0, "step": 2 * w,
            "data": np.ascontiguousarray(depth, dtype="<u2").tobytes()}


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if isinstance(o, Mapping):
        return dict(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def _subject(s: Any) -> Any:
    if isinstance(s, np.generic):
        return s.item()
    return s


@dataclass(frozen=True)
class RecordingStats:
    """What a finished recording holds (returned by :meth:`Recorder.close`)."""

    path: str
    frames_written: int
    frames_dropped: int
    bytes: int
    error: str | None


def _remove_frameless(path: str) -> None:
    """Delete a recording that holds no frame (a regular file only: never a device like /dev/full)."""
    try:
        if os.path.isfile(path):
            os.remove(path)
    except OSError:
        pass


class Recorder:
    """Writes frames to an MCAP file on a background thread (see the module docstring).

    ``write`` is non-blocking (returns False when the frame was dropped); ``close`` flushes
    every accepted frame, finalises the file and is idempotent. Usable as a context manager.
    A recording that ends without a single frame written (stopped at once, or the disk was full
    from the start) is deleted, so every file the recorder leaves replays.
    """

    def __init__(self, path: str | os.PathLike[str], jpeg_quality: int = 90, color_format: str = "jpeg", *,
                 max_queue_frames: int = 30, fsync_interval_s: float = 2.0,
                 source_info: Mapping[str, Any] | None = None) -> None:
        from mcap.writer import CompressionType
        from mcap_ros2.writer import Writer

        if color_format not in ("jpeg", "png"):
            raise ConfigError(f"colour format must be jpeg or png, got {color_format!r}")
        if not 1 <= int(jpeg_quality) <= 100:
            raise ConfigError(f"JPEG quality must be 1..100, got {jpeg_quality}")
        if max_queue_frames < 1:
            raise ConfigError("max_queue_frames must be at least 1")
        self.path = os.fspath(path)
        #: the file is written under this name until its first frame is on disk, then renamed to
        #: ``path``: a recording killed before its first frame leaves no file at ``path``
        self.partial_path = self.path + ".partial"
        if os.path.exists(self.path) and not os.path.isfile(self.path):  # a device (/dev/full, a pipe): as it is
            self.partial_path = self.path
        self.jpeg_quality = int(jpeg_quality)
        self.color_format = color_format
        self.fsync_interval_s = float(fsync_interval_s)
        try:
            self._file = open(self.partial_path, "wb")
        except OSError as exc:
            raise FormatError(f"cannot create the recording ({exc.strerror})", self.path) from None
        try:
            compression = CompressionType.LZ4
            import lz4.frame  # noqa: F401  (the mcap writer needs it for LZ4 chunks)
        except ImportError:
            compression = CompressionType.NONE
        try:
            # chunks are cut by flush() after every frame; the size limit only guards huge frames
            self._ros = Writer(self._file, chunk_size=64 * 1024 * 1024, compression=compression)
            self._mcap = self._ros._writer  # the underlying mcap Writer: flush() closes the chunk
            self._schemas = {name: self._ros.register_msgdef(name, text) for name, text in SCHEMAS.items()}
            info = {"format": "facedepth recording", "format_version": str(FORMAT_VERSION),
                    "color_format": color_format,
                    "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            if source_info:
                info["source"] = json.dumps(dict(source_info), default=_json_default)
            self._ros.add_metadata("facedepth", info)
            self._mcap.flush()
        except OSError as exc:
            try:
                self._file.close()
            except OSError:
                pass
            _remove_frameless(self.partial_path)
            raise FormatError(f"cannot write the recording ({exc.strerror or exc})", self.path) from None
        self._queue: queue.Queue = queue.Queue(maxsize=int(max_queue_frames))
        self._frames_written = 0
        self._frames_dropped = 0
        self._error: FormatError | None = None
        self._closed = False
        self._close_lock = threading.Lock()
        self._clock_offset_ns: int | None = None
        self._last_log_ns = -1
        self._last_tf: tuple | None = None
        self._last_sync = time.monotonic()
        self._stats: RecordingStats | None = None
        self.encode_ms: list[float] = []  # per-frame writer-thread time, for measurements
        self._thread = threading.Thread(target=self._run, name="facedepth-recorder", daemon=True)
        self._thread.start()

    # -- public API -------------------------------------------------------------------------
    @property
    def frames_written(self) -> int:
        """Frames written and flushed to the operating system."""
        return self._frames_written

    @property
    def frames_dropped(self) -> int:
        """Frames refused because the queue was full (or the recorder failed or was closed)."""
        return self._frames_dropped

    @property
    def error(self) -> FormatError | None:
        """Why writing stopped (e.g. the disk is full), or None."""
        return self._error

    def write(self, frame: Frame, prediction_depth8: np.ndarray | None = None,
              metrics: Mapping[str, Any] | None = None, *, wait_s: float = 0.0) -> bool:
        """Queue a frame (with the app's predicted 8-bit crop and metrics, if any).

        Returns at once (or after at most ``wait_s`` seconds waiting for room); False when the
        frame was dropped: queue full, recorder failed (see ``error``) or closed.
        """
        if self._closed or self._error is not None:
            self._frames_dropped += 1
            return False
        item = (frame, prediction_depth8, metrics)
        try:
            if wait_s > 0:
                self._queue.put(item, timeout=wait_s)
            else:
                self._queue.put_nowait(item)
        except queue.Full:
            self._frames_dropped += 1
            return False
        return True

    def close(self) -> RecordingStats:
        """Write every queued frame, finalise the file (summary, footer) and close it."""
        with self._close_lock:
            if self._stats is not None:
                return self._stats
            self._closed = True
            while self._thread.is_alive():
                try:
                    self._queue.put(None, timeout=0.2)
                    break
                except queue.Full:
                    continue
            self._thread.join()
            try:
                if self._error is None:
                    self._ros.finish()
                self._file.flush()
                os.fsync(self._file.fileno())
            except OSError as exc:
                if self._error is None:
                    self._error = FormatError(f"finishing the recording failed ({exc.strerror})", self.path)
            finally:
                try:
                    self._file.close()
                except OSError:
                    pass
            if self._frames_written == 0:
                _remove_frameless(self.partial_path)  # nothing to replay: leave no file the reader must refuse
            size = os.path.getsize(self.path) if os.path.exists(self.path) else 0
            self._stats = RecordingStats(self.path, self._frames_written, self._frames_dropped, size,
                                         None if self._error is None else str(self._error))
            return self._stats

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the writer thread ------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue  # close() always sends the end mark, after every queued frame
            if item is None:
                return
            if self._error is not None:
                self._frames_dropped += 1
                continue
            t0 = time.perf_counter()
            try:
                self._write_frame(*item)
                self._mcap.flush()  # closes this frame's chunk and hands it to the OS
                if self._frames_written == 0 and self.partial_path != self.path:  # the first frame is in
                    os.fsync(self._file.fileno())
                    os.replace(self.partial_path, self.path)
                if time.monotonic() - self._last_sync > self.fsync_interval_s:
                    os.fsync(self._file.fileno())
                    self._last_sync = time.monotonic()
            except OSError as exc:
                self._error = FormatError(f"recording stopped: {exc.strerror or exc}", self.path)
                self._frames_dropped += 1
                continue
            except (ValueError, TypeError) as exc:  # a malformed frame or metrics: skip it, say why
                self._error = FormatError(f"recording stopped: frame {item[0].index} cannot be written ({exc})",
                                          self.path)
                self._frames_dropped += 1
                continue
            self.encode_ms.append((time.perf_counter() - t0) * 1e3)
            self._frames_written += 1

    def _log_time(self, frame: Frame) -> int:
        if self._clock_offset_ns is None:
            self._clock_offset_ns = time.time_ns() - int(frame.timestamp_ns)
            self._ros.add_metadata("facedepth.clock", {"log_time_minus_timestamp_ns": str(self._clock_offset_ns)})
        t = int(frame.timestamp_ns) + self._clock_offset_ns
        if t <= self._last_log_ns:  # log times must increase: one frame per log time
            t = self._last_log_ns + 1
        self._last_log_ns = t
        return t

    def _write_frame(self, frame: Frame, pred8: np.ndarray | None, metrics: Mapping[str, Any] | None) -> None:
        import cv2

        t = self._log_time(frame)
        w = self._ros.write_message
        s = self._schemas
        stamp = _stamp(t)
        w(TOPIC_COLOR_INFO, s["sensor_msgs/msg/CameraInfo"], _camera_info(frame.color_camera, COLOR_FRAME_ID, t), t)
        if frame.depth_camera is not None:
            w(TOPIC_DEPTH_INFO, s["sensor_msgs/msg/CameraInfo"],
              _camera_info(frame.depth_camera, DEPTH_FRAME_ID, t), t)
            ext = frame.depth_to_color
            key = (tuple(ext.rotation.ravel()), tuple(ext.translation_mm))
            if key != self._last_tf:
                self._last_tf = key
                qx, qy, qz, qw = rotation_to_quaternion(ext.rotation)
                tx, ty, tz = (float(v) / 1000.0 for v in ext.translation_mm)
                w(TOPIC_TF, s["tf2_msgs/msg/TFMessage"], {"transforms": [{
                    "header": {"stamp": stamp, "frame_id": COLOR_FRAME_ID}, "child_frame_id": DEPTH_FRAME_ID,
                    "transform": {"translation": {"x": tx, "y": ty, "z": tz},
                                  "rotation": {"x": qx, "y": qy, "z": qz, "w": qw}}}]}, t)
        if frame.head_center_mm is not None:
            qx, qy, qz, qw = (0.0, 0.0, 0.0, 1.0) if frame.head_rotation is None else \
                rotation_to_quaternion(frame.head_rotation)
            hx, hy, hz = (float(v) / 1000.0 for v in frame.head_center_mm)
            w(TOPIC_HEAD, s["geometry_msgs/msg/PoseStamped"], {
                "header": {"stamp": stamp, "frame_id": DEPTH_FRAME_ID if frame.depth_camera else COLOR_FRAME_ID},
                "pose": {"position": {"x": hx, "y": hy, "z": hz},
                         "orientation": {"x": qx, "y": qy, "z": qz, "w": qw}}}, t)
        if pred8 is not None:
            p = np.ascontiguousarray(pred8, dtype=np.uint8)
            if p.ndim != 2:
                raise ValueError(f"prediction must be HxW uint8, got shape {p.shape}")
            w(TOPIC_PREDICTION, s["sensor_msgs/msg/Image"], {
                "header": {"stamp": stamp, "frame_id": COLOR_FRAME_ID}, "height": p.shape[0], "width": p.shape[1],
                "encoding": "mono8", "is_bigendian": 0, "step": p.shape[1], "data": p.tobytes()}, t)
        if metrics is not None:
            w(TOPIC_METRICS, s["std_msgs/msg/String"], {"data": json.dumps(dict(metrics), default=_json_default)}, t)
        bgr = cv2.cvtColor(frame.color, cv2.COLOR_RGB2BGR)
        if self.color_format == "jpeg":
            ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        else:
            ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise ValueError("the colour image could not be encoded")
        w(TOPIC_COLOR, s["sensor_msgs/msg/CompressedImage"],
          {"header": {"stamp": stamp, "frame_id": COLOR_FRAME_ID}, "format": self.color_format,
           "data": buf.tobytes()}, t)
        if frame.depth_mm is not None:
            w(TOPIC_DEPTH, s["sensor_msgs/msg/Image"], _image16(frame.depth_mm, DEPTH_FRAME_ID, t), t)
        if frame.depth_clean_mm is not None:
            w(TOPIC_DEPTH_CLEAN, s["sensor_msgs/msg/Image"], _image16(frame.depth_clean_mm, DEPTH_FRAME_ID, t), t)
        record = {
            "v": FORMAT_VERSION,
            "index": int(frame.index),
            "timestamp_ns": int(frame.timestamp_ns),
            "source": frame.source,
            "color_format": self.color_format,
            "color_camera": frame.color_camera.to_dict(),
            "depth_camera": None if frame.depth_camera is None else frame.depth_camera.to_dict(),
            "depth_to_color": frame.depth_to_color.to_dict(),
            "head_center_mm": None if frame.head_center_mm is None else frame.head_center_mm.tolist(),
            "head_center_definition": HEAD_CENTRE_DEFINITION,
            "head_center_raw_mm": None if frame.head_center_raw_mm is None else frame.head_center_raw_mm.tolist(),
            "head_rotation": None if frame.head_rotation is None else frame.head_rotation.tolist(),
            "subject_id": _subject(frame.subject_id),
            "prediction": pred8 is not None,
            "metrics": metrics is not None,
        }
        w(TOPIC_FRAME, s["std_msgs/msg/String"], {"data": json.dumps(record, default=_json_default)}, t)


# -- reading: an index built by scanning records, tolerant of a missing summary or a torn end ---
_MAGIC = b"\x89MCAP0\r\n"
_OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE, _OP_CHUNK, _OP_MESSAGE_INDEX = 0x03, 0x04, 0x05, 0x06, 0x07
_OP_METADATA, _OP_DATA_END, _OP_FOOTER = 0x0C, 0x0F, 0x02


class _Buf:
    """A little-endian reader over bytes for MCAP record fields."""

    def __init__(self, data: bytes | memoryview, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def u16(self) -> int:
        v = struct.unpack_from("<H", self.data, self.pos)[0]
        self.pos += 2
        return v

    def u32(self) -> int:
        v = struct.unpack_from("<I", self.data, self.pos)[0]
        self.pos += 4
        return v

    def u64(self) -> int:
        v = struct.unpack_from("<Q", self.data, self.pos)[0]
        self.pos += 8
        return v

    def string(self) -> str:
        n = self.u32()
        s = bytes(self.data[self.pos:self.pos + n]).decode("utf-8")
        self.pos += n
        return s

    def blob32(self) -> bytes:
        n = self.u32()
        b = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return b

    def str_map(self) -> dict[str, str]:
        end = self.pos + 4 + self.u32()
        out = {}
        while self.pos < end:
            k = self.string()
            out[k] = self.string()
        return out


@dataclass
class _Chunk:
    records_offset: int  # file offset of the (compressed) records
    records_length: int
    compression: str
    uncompressed_size: int
    uncompressed_crc: int
    indexed: list[tuple[int, int, int]]  # (channel id, log time, offset in the records)


@dataclass(frozen=True)
class _Loc:
    chunk: int  # -1: a message outside any chunk, ``offset`` is then a file offset
    offset: int


@dataclass
class McapScan:
    """What a scan of an MCAP file found: channels, messages by log time, whether it is complete."""

    schemas: dict[int, tuple[str, str, bytes]]  # id -> (name, encoding, data)
    channels: dict[int, tuple[str, int, str]]  # id -> (topic, schema id, message encoding)
    messages: dict[int, dict[int, _Loc]]  # log time -> channel id -> location
    metadata: dict[str, dict[str, str]]
    chunks: list[_Chunk]
    complete: bool  # the data section ended properly (DataEnd found)
    stopped_at: str | None  # why the scan stopped early, for the report


class _CorruptChunk(Exception):
    """A chunk whose records cannot be decompressed or fail their checksum."""


def _decompress(data: bytes, compression: str, size: int, path: str) -> bytes:
    """A chunk's records, uncompressed; _CorruptChunk when the compressed bytes are damaged."""
    if compression == "":
        return data
    if compression == "lz4":
        import lz4.frame

        try:
            return lz4.frame.decompress(data)
        except (RuntimeError, ValueError) as exc:  # lz4 reports damaged frames as RuntimeError
            raise _CorruptChunk(str(exc)) from None
    if compression == "zstd":
        try:
            import zstandard
        except ImportError:
            raise FormatError("recording uses zstd compression; install the zstandard package", path) from None
        try:
            return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
        except zstandard.ZstdError as exc:
            raise _CorruptChunk(str(exc)) from None
    raise FormatError(f"unsupported chunk compression {compression!r}", path)


def _chunk_records(data: bytes, chunk: "_Chunk", path: str) -> bytes:
    """Decompress a chunk's records and check their CRC; _CorruptChunk when either fails."""
    raw = _decompress(data, chunk.compression, chunk.uncompressed_size, path)
    if chunk.uncompressed_crc and zlib.crc32(raw) != chunk.uncompressed_crc:
        raise _CorruptChunk("checksum mismatch")
    return raw


#: what parsing damaged record bytes raises (fields running off the end, bad UTF-8 strings)
_PARSE_ERRORS = (struct.error, UnicodeDecodeError, IndexError, ValueError)


def _parse_records(data: bytes, scan: McapScan, chunk_index: int, want_messages: bool) -> None:
    """Schemas, channels (and, if asked, message locations) from a chunk's uncompressed records."""
    pos, n = 0, len(data)
    while pos + 9 <= n:
        op = data[pos]
        length = struct.unpack_from("<Q", data, pos + 1)[0]
        body = pos + 9
        if body + length > n:
            break
        b = _Buf(data, body)
        try:
            if op == _OP_SCHEMA:
                sid = b.u16()
                scan.schemas[sid] = (b.string(), b.string(), b.blob32())
            elif op == _OP_CHANNEL:
                cid = b.u16()
                sid = b.u16()
                scan.channels[cid] = (b.string(), sid, b.string())
            elif op == _OP_MESSAGE and want_messages:
                cid = b.u16()
                b.u32()
                log_time = b.u64()
                scan.messages.setdefault(log_time, {})[cid] = _Loc(chunk_index, pos)
        except _PARSE_ERRORS:
            break  # a damaged record: what came before it stands
        pos = body + length


def scan_mcap(path: str | os.PathLike[str]) -> McapScan:
    """Index an MCAP file by reading its records from the start (never the summary).

    Chunks are located by their headers; their messages by the message index records that
    follow each chunk, or, where those are missing (a cut-short file), by decompressing the
    chunk. The scan stops quietly at the first record that runs past the end of the file or
    makes no sense, and says so in ``stopped_at``.
    """
    path = os.fspath(path)
    scan = McapScan({}, {}, {}, {}, [], False, None)
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise FormatError(f"cannot open the recording ({exc.strerror})", path) from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if f.read(8) != _MAGIC:
            raise FormatError("not an MCAP file (bad magic bytes)", path)
        pos = 8
        while True:
            if pos + 9 > size:
                scan.stopped_at = None if pos == size else f"file ends inside a record header at byte {pos}"
                break
            f.seek(pos)
            head = f.read(9)
            op = head[0]
            length = struct.unpack_from("<Q", head, 1)[0]
            body = pos + 9
            if body + length > size:
                scan.stopped_at = f"last record (opcode {op:#04x}) is cut off at byte {size} (torn write)"
                break
            try:
                if op == _OP_CHUNK:
                    hdr = f.read(min(length, 4096))
                    b = _Buf(hdr)
                    b.u64()
                    b.u64()
                    usize = b.u64()
                    crc = b.u32()
                    comp = b.string()
                    rlen = b.u64()
                    if b.pos + rlen != length:
                        scan.stopped_at = f"chunk at byte {pos} is malformed"
                        break
                    scan.chunks.append(_Chunk(body + b.pos, rlen, comp, usize, crc, []))
                elif op == _OP_MESSAGE_INDEX and scan.chunks:
                    b = _Buf(f.read(length))
                    cid = b.u16()
                    nbytes = b.u32()
                    entries = scan.chunks[-1].indexed
                    for _ in range(nbytes // 16):
                        entries.append((cid, b.u64(), b.u64()))
                elif op in (_OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE):
                    data = f.read(length)
                    rec = bytes([op]) + head[1:] + data
                    if op == _OP_MESSAGE:
                        b = _Buf(data)
                        cid = b.u16()
                        b.u32()
                        scan.messages.setdefault(b.u64(), {})[cid] = _Loc(-1, pos)
                    else:
                        _parse_records(rec, scan, -1, False)
                elif op == _OP_METADATA:
                    b = _Buf(f.read(length))
                    name = b.string()
                    scan.metadata[name] = b.str_map()
                elif op in (_OP_DATA_END, _OP_FOOTER):
                    scan.complete = True
                    break
                elif op == 0 or op > 0x0F:
                    scan.stopped_at = f"unknown record (opcode {op:#04x}) at byte {pos}"
                    break
            except _PARSE_ERRORS:
                scan.stopped_at = f"record (opcode {op:#04x}) at byte {pos} is malformed"
                break
            pos = body + length
        # locate messages: from the indexes, or by opening chunks the index does not cover
        for i, ch in enumerate(scan.chunks):
            if not scan.complete and i == len(scan.chunks) - 1:
                ch.indexed = []  # a cut-short file's last index may be partial: read the chunk itself
            known = all(cid in scan.channels for cid, _, _ in ch.indexed)
            if ch.indexed and known:
                for cid, log_time, off in ch.indexed:
                    scan.messages.setdefault(log_time, {})[cid] = _Loc(i, off)
                continue
            f.seek(ch.records_offset)
            try:
                raw = _chunk_records(f.read(ch.records_length), ch, path)
            except _CorruptChunk as exc:
                scan.stopped_at = f"chunk {i} is damaged ({exc}); the recording is read up to it"
                scan.chunks = scan.chunks[:i]
                scan.messages = {t: {c: loc for c, loc in m.items() if loc.chunk < i}
                                 for t, m in scan.messages.items()}
                break
            _parse_records(raw, scan, i, not ch.indexed)
            if ch.indexed:
                for cid, log_time, off in ch.indexed:
                    scan.messages.setdefault(log_time, {})[cid] = _Loc(i, off)
    return scan


@dataclass(frozen=True)
class ReplayExtras:
    """What the app recorded with a frame besides the frame itself."""

    prediction_depth8: np.ndarray | None
    metrics: dict | None


class ReplaySource(IndexedSource):
    """Plays a recording (``replay:FILE.mcap[,pace=off][,loop=on]``); see the module docstring."""

    default_pace = True

    def __init__(self, uri: SourceURI) -> None:
        super().__init__(uri)
        opts = Options(uri)
        self._read_common_options(opts)
        opts.finish()
        self.path = os.fspath(uri.target or "")
        self._scan: McapScan | None = None
        self._frames: list[int] = []  # log time of each frame
        self._topic_ids: dict[str, int] = {}
        self._file: Any = None
        self._chunk_cache: OrderedDict[int, bytes] = OrderedDict()
        self._decoders: dict[int, Any] = {}
        self._file_lock = threading.Lock()
        self.last_extras: ReplayExtras | None = None
        self._clock_offset_ns = 0
        self._centres = StoredCentres()

    def _open(self) -> None:
        scan = scan_mcap(self.path)
        self._topic_ids = {topic: cid for cid, (topic, _, _) in scan.channels.items()}
        fid = self._topic_ids.get(TOPIC_FRAME)
        if fid is None:
            if not scan.complete and not scan.messages:
                raise FormatError("recording holds no complete frame (cut short before the first frame)", self.path)
            raise FormatError(f"not a facedepth recording (no {TOPIC_FRAME} messages)", self.path)
        self._frames = sorted(t for t, by_channel in scan.messages.items() if fid in by_channel)
        if not self._frames:
            raise FormatError("recording holds no complete frame (cut short before the first frame)", self.path)
        clock = scan.metadata.get("facedepth.clock", {})
        try:
            self._clock_offset_ns = int(clock.get("log_time_minus_timestamp_ns", "0"))
        except ValueError:
            self._clock_offset_ns = 0
        self._scan = scan
        self._file = open(self.path, "rb")
        self._set_timestamps([t - self._clock_offset_ns for t in self._frames])

    def _close(self) -> None:
        with self._file_lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            self._chunk_cache.clear()

    # -- message access ---------------------------------------------------------------------
    def _chunk(self, i: int) -> bytes:
        data = self._chunk_cache.get(i)
        if data is not None:
            self._chunk_cache.move_to_end(i)
            return data
        ch = self._scan.chunks[i]
        self._file.seek(ch.records_offset)
        try:
            data = _chunk_records(self._file.read(ch.records_length), ch, self.path)
        except _CorruptChunk as exc:
            raise FormatError(f"chunk {i} is damaged ({exc}; corrupt recording)", self.path) from None
        self._chunk_cache[i] = data
        while len(self._chunk_cache) > 3:
            self._chunk_cache.popitem(last=False)
        return data

    def _message(self, log_time: int, topic: str) -> Any:
        cid = self._topic_ids.get(topic)
        loc = None if cid is None else self._scan.messages.get(log_time, {}).get(cid)
        if loc is None:
            return None
        try:
            with self._file_lock:
                if self._file is None:
                    raise EOFError(f"{self.uri} is closed")
                if loc.chunk >= 0:
                    data, pos = self._chunk(loc.chunk), loc.offset
                else:
                    self._file.seek(loc.offset)
                    head = self._file.read(9)
                    data, pos = head + self._file.read(struct.unpack_from("<Q", head, 1)[0]), 0
            length = struct.unpack_from("<Q", data, pos + 1)[0]
            payload = bytes(data[pos + 9 + 22:pos + 9 + length])  # channel u16, sequence u32, two u64 times
            decoder = self._decoders.get(cid)
            if decoder is None:
                from mcap.records import Schema
                from mcap_ros2.decoder import DecoderFactory

                sid = self._scan.channels[cid][1]
                name, encoding, text = self._scan.schemas[sid]
                decoder = DecoderFactory().decoder_for("cdr", Schema(id=sid, name=name, encoding=encoding,
                                                                     data=text))
                self._decoders[cid] = decoder
        except (*_PARSE_ERRORS, KeyError, OverflowError):
            raise FormatError(f"message on {topic} at log time {log_time} is damaged", self.path) from None
        try:
            return decoder(payload)
        except Exception as exc:  # noqa: BLE001 - the decoder raises assorted errors on bad bytes
            raise FormatError(f"message on {topic} at log time {log_time} cannot be decoded ({exc})",
                              self.path) from None

    def _image(self, msg: Any, encoding: str, dtype: str, what: str) -> np.ndarray:
        if msg.encoding != encoding:
            raise FormatError(f"{what} has encoding {msg.encoding!r}, expected {encoding}", self.path)
        itemsize = np.dtype(dtype).itemsize
        if msg.step != msg.width * itemsize or len(msg.data) != msg.height * msg.step:
            raise FormatError(f"{what} has {len(msg.data)} bytes for {msg.width}x{msg.height}", self.path)
        dt = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
        return np.frombuffer(msg.data, dtype=dt).reshape(msg.height, msg.width).astype(dtype)

    def extras(self, index: int) -> ReplayExtras:
        """The prediction and metrics the app recorded with frame ``index`` (None where absent)."""
        t = self._frames[index]
        pred = self._message(t, TOPIC_PREDICTION)
        met = self._message(t, TOPIC_METRICS)
        return ReplayExtras(None if pred is None else self._image(pred, "mono8", "uint8", "prediction"),
                            None if met is None else self._metrics(met, index))

    def recorded_prediction(self, frame: Frame) -> np.ndarray | None:
        """The 8-bit depth crop the app predicted for this replayed frame, if it was recorded."""
        if 0 <= frame.index < len(self._frames):
            return self.extras(frame.index).prediction_depth8
        return None

    def _load(self, position: int) -> Frame:
        import cv2

        t = self._frames[position]
        meta_msg = self._message(t, TOPIC_FRAME)
        try:
            meta = json.loads(meta_msg.data)
        except ValueError:
            meta = None
        if not isinstance(meta, dict):
            raise FormatError(f"frame {position} has an unreadable record", self.path)
        cmsg = self._message(t, TOPIC_COLOR)
        if cmsg is None:
            raise FormatError(f"frame {position} has no colour image", self.path)
        # straight to RGB: no second pass over (and no second copy of) a 1080p image per frame
        color = cv2.imdecode(np.frombuffer(cmsg.data, np.uint8), cv2.IMREAD_COLOR_RGB)
        if color is None:
            raise FormatError(f"frame {position}: the colour image ({cmsg.format}) cannot be decoded", self.path)
        depth = clean = None
        if meta.get("depth_camera"):
            dmsg = self._message(t, TOPIC_DEPTH)
            depth = None if dmsg is None else self._image(dmsg, "16UC1", "uint16", f"frame {position} depth")
            cmsg2 = self._message(t, TOPIC_DEPTH_CLEAN)
            clean = None if cmsg2 is None else self._image(cmsg2, "16UC1", "uint16", f"frame {position} clean depth")
        pred = self._message(t, TOPIC_PREDICTION) if meta.get("prediction") else None
        met = self._message(t, TOPIC_METRICS) if meta.get("metrics") else None
        self.last_extras = ReplayExtras(None if pred is None else self._image(pred, "mono8", "uint8", "prediction"),
                                        None if met is None else self._metrics(met, position))
        try:
            color_cam = CameraIntrinsics.from_dict(meta["color_camera"])
            depth_cam = CameraIntrinsics.from_dict(meta["depth_camera"]) if depth is not None else None
            ext = Extrinsics.from_dict(meta["depth_to_color"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"frame {position} record lacks camera data ({exc})", self.path) from None
        try:
            source = meta.get("source") or f"replay:{os.path.basename(self.path)}#{position}"
            centre, raw = self._centres(
                meta.get("head_center_definition"), str(source), meta.get("head_center_mm"),
                meta.get("head_rotation"), meta.get("head_center_raw_mm"), depth, depth_cam)
            return Frame(index=position, timestamp_ns=int(meta["timestamp_ns"]), color=color, color_camera=color_cam,
                         depth_mm=depth, depth_camera=depth_cam, depth_to_color=ext,
                         head_center_mm=centre, head_rotation=meta.get("head_rotation"),
                         subject_id=meta.get("subject_id"), depth_clean_mm=clean if depth is not None else None,
                         source=source, head_center_raw_mm=raw)
        except (SensorError, KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"frame {position} record does not fit its images ({exc})", self.path) from None

    def _metrics(self, msg: Any, position: int) -> dict:
        try:
            metrics = json.loads(msg.data)
        except ValueError:
            metrics = None
        if not isinstance(metrics, dict):
            raise FormatError(f"frame {position} has unreadable metrics", self.path)
        return metrics

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        scan = self._scan
        if scan is not None:
            d.update({
                "file": self.path,
                "complete": scan.complete,
                "recovered": None if scan.complete else (scan.stopped_at or "no summary (recording was cut short)"),
                "topics": sorted(self._topic_ids),
                "duration_s": round((self._frames[-1] - self._frames[0]) / 1e9, 3) if self._frames else 0.0,
                "head_centre": self._centres.describe(),
            })
            info = scan.metadata.get("facedepth", {})
            if "source" in info:
                try:
                    d["recorded_from"] = json.loads(info["source"])
                except ValueError:
                    d["recorded_from"] = info["source"]
        return d
