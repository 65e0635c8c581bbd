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
import sys

from app.cli import options


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_source(p, help="what to convert")
    options.add_out(p, "DIR|FILE.mcap", "the folder (tum) or file (mcap) to write")
    p.add_argument("--format", choices=("tum", "mcap"), default=None,
                   help="output format (default: from --out: .mcap -> mcap, else tum)")
    options.add_max_frames(p, help="convert at most N frames")
    p.add_argument("--color-format", choices=("png", "jpeg"), default="png",
                   help="mcap: colour as png (lossless, default) or jpeg")
    options.add_force(p, help="write over --out if it exists (a file, or a folder that holds something; "
                              "never the source being read)")


def main(args: argparse.Namespace) -> int:
    from app import stops
    from app.cli.outputs import MIN_RECORDING_FREE_BYTES, check_output, source_inputs
    from sensors.convert import ConvertConfig, convert_source, format_for

    options.check_sources(args.source)
    fmt = args.format or format_for(args.out)
    check_output(args.out, force=args.force, inputs=source_inputs(args.source),
                 kind="file" if fmt == "mcap" else "folder", min_free_bytes=MIN_RECORDING_FREE_BYTES)
    result = convert_source(ConvertConfig(source=args.source, out=args.out, format=fmt, max_frames=args.max_frames,
                                          color_format=args.color_format, overwrite=args.force))
    print(f"converted {result.frames_written} frames from {args.source} to {args.out} ({fmt}) in {result.elapsed_s:.1f} s"
          + (f"; {len(result.skipped)} unreadable frames skipped" if result.skipped else "")
          + (f" - stopped by {stops.by_words()}" if result.interrupted else ""))
    for line in result.skipped[:10]:
        sys.stderr.write(f"  skipped: {line}\n")
    if result.error:
        sys.stderr.write(f"launch.py convert: error: {result.error}\n")
        return 1
    return stops.exit_code() if result.interrupted else 0
