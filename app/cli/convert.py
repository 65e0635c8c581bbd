"""``launch.py convert``: export any source as a TUM RGB-D folder or an MCAP recording.

    python launch.py convert --source biwi:/data/hpdb,sequences=1 --out biwi01_tum --format tum
    python launch.py convert --source replay:session.mcap --out session_tum/
    python launch.py convert --source tum:rgbd_dataset_freiburg1_xyz --out fr1.mcap

``--format`` defaults to ``mcap`` when ``--out`` ends in ``.mcap``, else ``tum``. Conversion
reads the source as fast as it can (no real-time pacing) and never drops a frame. TUM output
writes depth as 16-bit PNG at 5000 per metre with the scale recorded in ``calibration.json``
and ``depth.txt``; MCAP output stores colour as PNG (lossless) unless ``--color-format jpeg``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from app.cli import options


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_source(p, help="what to convert")
    options.add_out(p, "DIR|FILE.mcap", "the folder (tum) or file (mcap) to write")
    p.add_argument("--format", choices=("tum", "mcap"), default=None,
                   help="output format (default: from --out: .mcap -> mcap, else tum)")
    options.add_max_frames(p, help="convert at most N frames")
    p.add_argument("--color-format", choices=("png", "jpeg"), default="png",
                   help="mcap: colour as png (lossless, default) or jpeg")


def main(args: argparse.Namespace) -> int:
    from sensors import ConfigError, FormatError, open_source
    from sensors.indexed import IndexedSource

    fmt = args.format or ("mcap" if args.out.lower().endswith(".mcap") else "tum")
    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError("--max-frames must be at least 1")
    if fmt == "mcap" and os.path.exists(args.out):
        raise ConfigError(f"{args.out} exists; choose a new file name")
    if fmt == "tum" and os.path.isfile(args.out):
        raise ConfigError(f"{args.out} is a file; TUM output is a folder")
    t0 = time.monotonic()
    bad: list[str] = []
    with open_source(args.source) as src:
        if isinstance(src, IndexedSource):
            src.set_pacing(False)
        if fmt == "tum":
            from sensors.datasets.tum import TumWriter

            writer = TumWriter(args.out)
        else:
            from sensors.recording import Recorder

            if os.path.dirname(args.out):
                os.makedirs(os.path.dirname(args.out), exist_ok=True)
            writer = Recorder(args.out, color_format=args.color_format, source_info=src.describe())
        n = 0
        try:
            while args.max_frames is None or n < args.max_frames:
                try:
                    frame = src.read(timeout_s=src.lost_after_s + 1.0 if src.is_live else 10.0)
                except TimeoutError:
                    continue
                except EOFError:
                    break
                except FormatError as exc:  # one unreadable dataset frame: say which, go on
                    bad.append(str(exc))
                    continue
                if fmt == "tum":
                    writer.write(frame)
                elif not writer.write(frame, wait_s=60.0):
                    raise FormatError(f"the recorder refused frame {n}: {writer.error or 'queue stalled'}", args.out)
                n += 1
        finally:
            result = writer.close()
    written = n if fmt == "tum" else result.frames_written
    print(f"converted {written} frames from {args.source} to {args.out} ({fmt}) in {time.monotonic() - t0:.1f} s"
          + (f"; {len(bad)} unreadable frames skipped" if bad else ""))
    for line in bad[:10]:
        sys.stderr.write(f"  skipped: {line}\n")
    if fmt == "mcap" and result.error:
        sys.stderr.write(f"launch.py convert: error: {result.error}\n")
        return 1
    return 0
