"""Record a source to an MCAP file: the loop behind ``launch.py record``.

A live source is recorded without ever blocking its capture: frames the disk cannot take are
dropped and counted. A file or dataset source is recorded completely: the reader waits for
the writer. Ctrl-C (KeyboardInterrupt; the CLI turns SIGTERM into one too) during the loop stops
it; the file is still finalised.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sensors.recording.writer import Recorder, RecordingStats
from sensors.source import open_source

#: how often (frames read) ``record_source`` reports progress
PROGRESS_EVERY_FRAMES = 30
#: how long a file or dataset source may wait for room in the writer's queue, seconds
_FILE_SOURCE_WAIT_S = 30.0


@dataclass(frozen=True)
class RecordConfig:
    """What to record: ``source`` (a URI) to ``out``, until the source ends, ``max_frames``
    frames are read or ``duration_s`` seconds pass (None: no such limit)."""

    source: str
    out: str
    max_frames: int | None = None
    duration_s: float | None = None
    color_format: Literal["jpeg", "png"] = "jpeg"
    jpeg_quality: int = 90


@dataclass(frozen=True)
class RecordResult:
    """A finished recording: what the file holds, how long recording took, and whether Ctrl-C stopped it."""

    stats: RecordingStats
    elapsed_s: float
    interrupted: bool


def record_source(cfg: RecordConfig, progress: Callable[[int, int], None] | None = None) -> RecordResult:
    """Record ``cfg.source`` to ``cfg.out`` (its folder is made when missing).

    ``progress(frames_written, frames_dropped)`` is called every :data:`PROGRESS_EVERY_FRAMES`
    frames read. Writing stops early when the recorder fails (``stats.error`` says why).
    """
    if os.path.dirname(cfg.out):
        os.makedirs(os.path.dirname(cfg.out), exist_ok=True)
    with open_source(cfg.source) as src:
        live = src.is_live
        rec = Recorder(cfg.out, jpeg_quality=cfg.jpeg_quality, color_format=cfg.color_format,
                       source_info=src.describe())
        t0 = time.monotonic()
        read = 0
        interrupted = False
        try:
            while cfg.max_frames is None or read < cfg.max_frames:
                if cfg.duration_s is not None and time.monotonic() - t0 >= cfg.duration_s:
                    break
                if rec.error is not None:
                    break
                try:
                    frame = src.read(timeout_s=src.lost_after_s + 1.0 if live else 10.0)
                except TimeoutError:
                    continue
                except EOFError:
                    break
                read += 1
                rec.write(frame, wait_s=0.0 if live else _FILE_SOURCE_WAIT_S)
                if progress is not None and read % PROGRESS_EVERY_FRAMES == 0:
                    progress(rec.frames_written, rec.frames_dropped)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            stats = rec.close()
        elapsed_s = time.monotonic() - t0
    return RecordResult(stats, elapsed_s, interrupted)
