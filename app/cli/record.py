"""``launch.py record``: record a source to an MCAP file (ROS 2 messages; see sensors/recording/).

    python launch.py record --source kinect: --out session.mcap --duration 60
    python launch.py record --source webcam:0 --out me.mcap --max-frames 300
    python launch.py record --source biwi:/data/hpdb,sequences=1 --out biwi01.mcap

Ctrl-C (SIGINT) or SIGTERM stops the recording cleanly (the file is finalised; exit code 130
or 143). A live source is
recorded without ever blocking its capture: frames the disk cannot take are dropped and
counted; a file or dataset source is recorded completely (the reader waits for the writer).
"""
from __future__ import annotations

import argparse
import sys

from app.cli import options
from app.run_config import DEFAULT_SOURCE


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_source(p, default=DEFAULT_SOURCE, help="what to record (default %(default)s)")
    options.add_out(p, "FILE.mcap", "the recording to write")
    stop = p.add_mutually_exclusive_group()
    options.add_max_frames(p, help="stop after N frames", group=stop)
    stop.add_argument("--duration", type=options.positive_float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--color-format", choices=("jpeg", "png"), default="jpeg",
                   help="colour compression: jpeg (small) or png (lossless); default %(default)s")
    p.add_argument("--jpeg-quality", type=options.int_at_least(1, 100), default=90, metavar="Q", help="JPEG quality 1-100 (default %(default)s)")
    options.add_force(p, help="overwrite --out if it exists (never the recording being replayed)")


def main(args: argparse.Namespace) -> int:
    from app import stops
    from app.cli.outputs import MIN_RECORDING_FREE_BYTES, check_output, source_inputs
    from sensors.recording.capture import RecordConfig, record_source

    options.check_sources(args.source)
    check_output(args.out, force=args.force, inputs=source_inputs(args.source),
                 min_free_bytes=MIN_RECORDING_FREE_BYTES)
    cfg = RecordConfig(source=args.source, out=args.out, max_frames=args.max_frames, duration_s=args.duration,
                       color_format=args.color_format, jpeg_quality=args.jpeg_quality)
    tty = sys.stderr.isatty()
    result = record_source(cfg, progress=_show_progress if tty else None)
    if tty:
        sys.stderr.write("\n")
    stats = result.stats
    where = (f"to {stats.path} ({stats.bytes / 1e6:.1f} MB)" if stats.frames_written
             else f"(no frame, so no file at {stats.path})")
    print(f"recorded {stats.frames_written} frames ({stats.frames_dropped} dropped) in {result.elapsed_s:.1f} s {where}"
          + (f" - stopped by {stops.by_words()}" if result.interrupted else ""))
    if stats.error:
        sys.stderr.write(f"launch.py record: error: {stats.error}\n")
        return 1
    return stops.exit_code() if result.interrupted else 0


def _show_progress(frames_written: int, frames_dropped: int) -> None:
    sys.stderr.write(f"\rrecording: {frames_written} frames written, {frames_dropped} dropped")
    sys.stderr.flush()
