"""Playing a recording back as a frame source.

Replay: ``replay:FILE.mcap[,pace=off][,loop=on]`` (:class:`ReplaySource`), real-time by default,
seekable by index and time. Depth and annotations replay bit-exactly; colour replays exactly
when recorded as PNG. The app's recorded prediction and metrics of a frame are available from
:meth:`ReplaySource.extras` (by index), :meth:`ReplaySource.recorded_prediction` (by frame) and
``ReplaySource.last_extras`` (the frame read last).
"""
from __future__ import annotations

import bisect
import json
import os
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from sensors.errors import FormatError, FramesLostError, SensorError
from sensors.frame import Frame
from sensors.geometry import CameraIntrinsics, Extrinsics
from sensors.indexed import IndexedSource
from sensors.locate.stored import StoredCentres
from sensors.recording.index import PARSE_ERRORS, CorruptChunk, McapScan, chunk_records, scan_mcap
from sensors.recording.schema import (
    TOPIC_COLOR, TOPIC_DEPTH, TOPIC_DEPTH_CLEAN, TOPIC_FRAME, TOPIC_METRICS, TOPIC_PREDICTION,
)
from sensors.source import Options, SourceURI


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
        self._set_losses(self._losses(scan))

    def _losses(self, scan: McapScan) -> dict[int, FramesLostError]:
        """The frames each damaged stretch of the file took, keyed by the position of the frame
        after it. How many: the time between the frames either side over the usual frame
        spacing (the file no longer says), so "about"."""
        frames = self._frames
        spacing = np.diff(np.asarray(frames, dtype=np.int64))
        period_ns = float(np.median(spacing)) if len(spacing) else 0.0
        by_position: dict[int, list[str]] = {}
        for resume_chunk, why in scan.damage:
            if resume_chunk >= len(scan.chunks):
                continue  # nothing readable after it: the replay ends there (a torn end)
            position = bisect.bisect_left(frames, scan.chunks[resume_chunk].start_time)
            if 0 < position < len(frames):
                by_position.setdefault(position, []).append(why)
            elif position == 0:  # damage before the first readable frame: its loss cannot be sized
                by_position.setdefault(0, []).append(why)
        out: dict[int, FramesLostError] = {}
        for position, whys in sorted(by_position.items()):
            if position == 0 or period_ns <= 0:
                n, span_s = 0, None  # counted as 0: the file no longer says how many
                size = "an unknown number of frames"
            else:
                gap_ns = frames[position] - frames[position - 1]
                n = max(int(round(gap_ns / period_ns)) - 1, 1)
                span_s = n * period_ns / 1e9
                size = f"about {n} frame{'s' if n != 1 else ''} ({span_s:.2f} s)"
            where = f"before frame {position}" if position else "before the first readable frame"
            out[position] = FramesLostError(f"{size} lost {where} ({'; '.join(whys)}); the replay goes on after them", self.path,
                                            frames=n, span_s=span_s)
        return out

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
            data = chunk_records(self._file.read(ch.records_length), ch, self.path)
        except CorruptChunk as exc:
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
        except (*PARSE_ERRORS, KeyError, OverflowError):
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
                "damaged": [{"before_frame": p, "frames": e.frames, "span_s": e.span_s, "reason": e.message}
                            for p, e in sorted(self._lost.items())],
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
