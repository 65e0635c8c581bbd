"""``launch.py record``: record a source to an MCAP file (ROS 2 messages; see sensors/recording/).

    python launch.py record --source kinect: --out session.mcap --duration 60
    python launch.py record --source webcam:0 --out me.mcap --max-frames 300
    python launch.py record --source biwi:/data/hpdb,sequences=1 --out biwi01.mcap

Ctrl-C stops the recording cleanly (the file is finalised; exit code 130). A live source is
recorded without ever blocking its capture: frames the disk cannot take are dropped and
counted; a file or dataset source is recorded completely (the reader waits for the writer).
"""
from __future__ import annotations

import argparse
import sys
import time

from app.cli import options
from app.run_config import DEFAULT_SOURCE


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_source(p, default=DEFAULT_SOURCE, help="what to record (default %(default)s)")
    options.add_out(p, "FILE.mcap", "the recording to write")
    stop = p.add_mutually_exclusive_group()
    options.add_max_frames(p, help="stop after N frames", group=stop)
    stop.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--color-format", choices=("jpeg", "png"), default="jpeg",
                   help="colour compression: jpeg (small) or png (lossless); default %(default)s")
    p.add_argument("--jpeg-quality", type=int, default=90, metavar="Q", help="JPEG quality 1-100 (default %(default)s)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def main(args: argparse.Namespace) -> int:
    import os

    from sensors import ConfigError, open_source
    from sensors.recording import Recorder

    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError("--max-frames must be at least 1")
    if args.duration is not None and args.duration <= 0:
        raise ConfigError("--duration must be positive")
    if os.path.exists(args.out) and not args.force:
        raise ConfigError(f"{args.out} exists; pass --force to overwrite it")
    if os.path.dirname(args.out):
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open_source(args.source) as src:
        live = src.is_live
        rec = Recorder(args.out, jpeg_quality=args.jpeg_quality, color_format=args.color_format,
                       source_info=src.describe())
        t0 = time.monotonic()
        read = 0
        interrupted = False
        try:
            while args.max_frames is None or read < args.max_frames:
                if args.duration is not None and time.monotonic() - t0 >= args.duration:
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
                rec.write(frame, wait_s=0.0 if live else 30.0)
                if sys.stderr.isatty() and read % 30 == 0:
                    sys.stderr.write(f"\rrecording: {rec.frames_written} frames written, {rec.frames_dropped} dropped")
                    sys.stderr.flush()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            stats = rec.close()
        elapsed = time.monotonic() - t0
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    where = (f"to {stats.path} ({stats.bytes / 1e6:.1f} MB)" if stats.frames_written
             else f"(no frame, so no file at {stats.path})")
    print(f"recorded {stats.frames_written} frames ({stats.frames_dropped} dropped) in {elapsed:.1f} s {where}"
          + (" - stopped by Ctrl-C" if interrupted else ""))
    if stats.error:
        sys.stderr.write(f"launch.py record: error: {stats.error}\n")
        return 1
    return 130 if interrupted else 0
