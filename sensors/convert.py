"""Convert any source to a TUM RGB-D folder or an MCAP recording: the loop behind ``launch.py convert``.

The source is read as fast as it can be (no real-time pacing) and no frame is dropped: the
MCAP writer is waited for. A recording converted to MCAP keeps the prediction and metrics
recorded with each frame, so ``convert --source replay:torn.mcap --out whole.mcap`` repairs a
recording cut short (see README, "Recordings"). A dataset frame that cannot be read is skipped and named in the
result; any other error stops the conversion (the output written so far is finalised).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Literal

from sensors.errors import FormatError
from sensors.indexed import IndexedSource
from sensors.source import open_source

OutputFormat = Literal["tum", "mcap"]
#: how long a frame may wait for room in the MCAP writer's queue before the conversion fails, seconds
_MCAP_WAIT_S = 60.0


def format_for(out: str) -> OutputFormat:
    """The output format an ``out`` path implies: ``mcap`` for ``*.mcap``, else ``tum`` (a folder)."""
    return "mcap" if out.lower().endswith(".mcap") else "tum"


@dataclass(frozen=True)
class ConvertConfig:
    """What to convert: ``source`` (a URI) to ``out`` as ``format``, at most ``max_frames`` frames
    (None: all); ``color_format`` is the MCAP colour compression; ``overwrite``: write over an
    existing recording, or into a folder that already holds a TUM dataset (``--force``)."""

    source: str
    out: str
    format: OutputFormat
    max_frames: int | None = None
    color_format: Literal["png", "jpeg"] = "png"
    overwrite: bool = False


@dataclass(frozen=True)
class ConvertResult:
    """A finished conversion: frames written, the unreadable frames skipped (one message each),
    the MCAP writer's error (None for TUM output or success), the time taken and whether Ctrl-C
    (KeyboardInterrupt) stopped it before the source ended."""

    frames_written: int
    skipped: tuple[str, ...]
    error: str | None
    elapsed_s: float
    interrupted: bool = False


def _recorded_extras(src: object) -> dict[str, Any]:
    """A replayed frame's recorded prediction and metrics, so that converting a recording to MCAP
    (repairing a torn one, say) keeps the session as it ran; nothing for other sources."""
    extras = getattr(src, "last_extras", None)
    if extras is None:
        return {}
    return {"prediction_depth8": extras.prediction_depth8, "metrics": extras.metrics}


def convert_source(cfg: ConvertConfig) -> ConvertResult:
    """Read ``cfg.source`` to its end (or ``cfg.max_frames``) and write every frame to ``cfg.out``."""
    t0 = time.monotonic()
    skipped: list[str] = []
    with open_source(cfg.source) as src:
        if isinstance(src, IndexedSource):
            src.set_pacing(False)
        if cfg.format == "tum":
            from sensors.datasets.tum import TumWriter

            writer = TumWriter(cfg.out, overwrite=cfg.overwrite)
        else:
            from sensors.recording import Recorder

            if os.path.dirname(cfg.out):
                os.makedirs(os.path.dirname(cfg.out), exist_ok=True)
            writer = Recorder(cfg.out, color_format=cfg.color_format, source_info=src.describe())
        n = 0
        interrupted = False
        try:
            while cfg.max_frames is None or n < cfg.max_frames:
                try:
                    frame = src.read(timeout_s=src.lost_after_s + 1.0 if src.is_live else 10.0)
                except TimeoutError:
                    continue
                except EOFError:
                    break
                except FormatError as exc:  # one unreadable dataset frame: say which, go on
                    skipped.append(str(exc))
                    continue
                if cfg.format == "tum":
                    writer.write(frame)
                elif not writer.write(frame, wait_s=_MCAP_WAIT_S, **_recorded_extras(src)):
                    raise FormatError(f"the recorder refused frame {n}: {writer.error or 'queue stalled'}", cfg.out)
                n += 1
        except KeyboardInterrupt:  # stop reading; what was written is closed properly below
            interrupted = True
        finally:
            result = writer.close()
    if cfg.format == "tum":
        return ConvertResult(n, tuple(skipped), None, time.monotonic() - t0, interrupted)
    return ConvertResult(result.frames_written, tuple(skipped), result.error, time.monotonic() - t0,
                         interrupted)
