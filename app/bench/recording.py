"""The recording ``launch.py bench`` replays: a source recorded as a Kinect v2 delivers it, and
the sample of its frames the stage timings use."""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.bench.plan import FRAME_PERIOD_NS
from sensors.errors import FormatError
from sensors.frame import Frame
from sensors.source import open_source


def record_source(uri: str, frames: int, path: Path) -> dict[str, Any]:
    """Record ``frames`` frames of ``uri`` to ``path`` as ``launch.py record`` would, as a Kinect v2
    delivers them: without the virtual Kinect's noise-free depth (no sensor has it) and stamped
    at 30 Hz (rendering as fast as possible stamps frames at the renderer's pace)."""
    from sensors.recording import Recorder

    t0 = time.perf_counter()
    written = 0
    with open_source(uri) as src:
        info = src.describe()
        with Recorder(path, source_info=info) as rec:
            for frame in src:
                if written >= frames:
                    break
                if written == 0:
                    t_first = frame.timestamp_ns
                stamped = dataclasses.replace(frame, depth_clean_mm=None,
                                              timestamp_ns=t_first + written * FRAME_PERIOD_NS)
                if not rec.write(stamped, wait_s=60.0):
                    raise FormatError(f"the recorder refused frame {frame.index} ({rec.error or 'queue full'})", path)
                written += 1
        stats = rec.close()
    if stats.error:
        raise FormatError(stats.error, path)
    return {"recorded_from": uri, "frames": stats.frames_written, "bytes": stats.bytes,
            "seconds": round(time.perf_counter() - t0, 2)}


@dataclass
class RecordingSample:
    """What the stage timings use: consecutive frames, their recorded JPEG colour, and the head
    distance (colour-camera z, mm) of every annotated frame in the recording."""

    frames: list[Frame]
    jpegs: list[bytes]
    distances_mm: list[float]
    color_size: tuple[int, int]
    depth_size: tuple[int, int] | None
    total_frames: int


def load_sample(path: Path, count: int, limit: int | None) -> RecordingSample:
    """The first ``count`` frames of a recording, their JPEG bytes and every frame's head distance."""
    from mcap.exceptions import McapError
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    from sensors.geometry import Extrinsics
    from sensors.recording import TOPIC_COLOR, TOPIC_FRAME

    jpegs: list[bytes] = []
    distances: list[float] = []
    records = 0
    try:
        with open(path, "rb") as f:
            reader = make_reader(f, decoder_factories=[DecoderFactory()])
            for _, channel, _, msg in reader.iter_decoded_messages(topics=[TOPIC_COLOR, TOPIC_FRAME]):
                if channel.topic == TOPIC_COLOR:
                    if len(jpegs) < count and msg.format in ("jpeg", "jpg"):
                        jpegs.append(bytes(msg.data))
                    continue
                records += 1
                meta = json.loads(msg.data)
                head = meta.get("head_center_mm")
                if head is not None:
                    ext = (Extrinsics.from_dict(meta["depth_to_color"]) if meta.get("depth_camera")
                           else Extrinsics.identity())
                    distances.append(float(ext.apply(np.asarray(head, dtype=np.float64))[2]))
                if limit is not None and records >= limit:
                    break
    except (McapError, ValueError, KeyError, TypeError) as exc:
        raise FormatError(f"the recording cannot be read for the benchmark ({type(exc).__name__}: {exc})", path) from None
    frames: list[Frame] = []
    with open_source(f"replay:{path},pace=off") as src:
        total = len(src)  # type: ignore[arg-type]
        for frame in src:
            frames.append(frame)
            if len(frames) >= count:
                break
    if not frames:
        raise FormatError("the recording holds no frame", path)
    f0 = frames[0]
    return RecordingSample(frames, jpegs, distances, (f0.color.shape[1], f0.color.shape[0]),
                           None if f0.depth_mm is None else (f0.depth_mm.shape[1], f0.depth_mm.shape[0]),
                           min(total, limit) if limit else total)
