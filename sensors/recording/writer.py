"""The recorder: frames to an MCAP file (layout in :mod:`sensors.recording.schema`).

Crash safety. Each frame is written as its own LZ4-compressed chunk and flushed to the
operating system before the next; the file is fsync'ed every ``fsync_interval_s``. A recording
cut short (process killed, disk full, power lost after the last sync) keeps every frame flushed
before; the reader scans the file from the start and needs neither the summary nor the last
chunk's index, so it recovers files without a summary and files that end inside a chunk.

Writing happens on a background thread fed by a bounded queue (``max_queue_frames``): when the
disk or the CPU cannot keep up, new frames are dropped and counted (``frames_dropped``), never
queued without bound. The recorder keeps references to the frame's arrays until they are
written: sources must not reuse a frame's arrays (no source in the project does).
"""
from __future__ import annotations

import dataclasses
import json
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from sensors.errors import ConfigError, FormatError
from sensors.frame import Frame
from sensors.geometry import HEAD_CENTRE_DEFINITION
from sensors.recording.schema import (
    COLOR_FRAME_ID, DEPTH_FRAME_ID, FORMAT_VERSION, SCHEMAS, TOPIC_COLOR, TOPIC_COLOR_INFO, TOPIC_DEPTH,
    TOPIC_DEPTH_CLEAN, TOPIC_DEPTH_INFO, TOPIC_FRAME, TOPIC_HEAD, TOPIC_METRICS, TOPIC_PREDICTION, TOPIC_TF,
    camera_info_msg, depth_image_msg, qos_profile_yaml, rotation_to_quaternion, time_msg,
)


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

    def _write_message(self, topic: str, schema: Any, message: Any, log_time: int) -> None:
        """One message; a topic's channel is registered on first use with its QoS metadata (the
        ROS 2 writer would register it with none, and ``ros2 bag play`` expects it)."""
        channels = self._ros._channel_ids  # the ROS 2 writer looks channels up here by topic
        if topic not in channels:
            channels[topic] = self._mcap.register_channel(
                topic=topic, message_encoding="cdr", schema_id=schema.id,
                metadata={"offered_qos_profiles": qos_profile_yaml(transient_local=topic == TOPIC_TF)})
        self._ros.write_message(topic, schema, message, log_time)

    def _write_frame(self, frame: Frame, pred8: np.ndarray | None, metrics: Mapping[str, Any] | None) -> None:
        import cv2

        t = self._log_time(frame)
        w = self._write_message
        s = self._schemas
        stamp = time_msg(t)
        w(TOPIC_COLOR_INFO, s["sensor_msgs/msg/CameraInfo"], camera_info_msg(frame.color_camera, COLOR_FRAME_ID, t), t)
        if frame.depth_camera is not None:
            w(TOPIC_DEPTH_INFO, s["sensor_msgs/msg/CameraInfo"],
              camera_info_msg(frame.depth_camera, DEPTH_FRAME_ID, t), t)
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
            w(TOPIC_DEPTH, s["sensor_msgs/msg/Image"], depth_image_msg(frame.depth_mm, DEPTH_FRAME_ID, t), t)
        if frame.depth_clean_mm is not None:
            w(TOPIC_DEPTH_CLEAN, s["sensor_msgs/msg/Image"], depth_image_msg(frame.depth_clean_mm, DEPTH_FRAME_ID, t), t)
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
