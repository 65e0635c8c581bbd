"""``launch.py calibrate``: chessboard calibration of a colour camera, written as OpenCV YAML or JSON.

    python launch.py calibrate --source webcam:0 --out cam.yaml --board 9x6 --square-mm 25
    python launch.py calibrate --source images:board_photos/ --out phone.json --board 9x6 --square-mm 24

Print a chessboard, hold it in front of the camera and tilt it between views (a live source
takes a view at most every ``--interval-s`` seconds). ``--board`` counts INNER corners
(columns x rows): a board of 10 x 7 squares has 9 x 6. Use the file with
``webcam:0,calibration=cam.yaml`` or ``images:PATH,calibration=cam.yaml``.
"""
from __future__ import annotations

import argparse
import sys

from app.cli import options


def _board(text: str) -> tuple[int, int]:
    a, sep, b = text.lower().partition("x")
    try:
        cols, rows = int(a), int(b)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must look like 9x6 (inner corners), got {text!r}") from None
    if not sep or cols < 2 or rows < 2:
        raise argparse.ArgumentTypeError(f"must look like 9x6 (inner corners, at least 2x2), got {text!r}")
    return cols, rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_source(p, default="webcam:0", help="camera or photos (default %(default)s)")
    options.add_out(p, "FILE.yaml|FILE.json", "where to write the calibration")
    p.add_argument("--board", type=_board, default=(9, 6), metavar="COLSxROWS",
                   help="inner corners of the chessboard (default 9x6)")
    p.add_argument("--square-mm", type=options.positive_float, default=25.0, metavar="MM", help="side of one square (default %(default)s)")
    p.add_argument("--views", type=options.int_at_least(3), default=15, metavar="N", help="views to collect (default %(default)s)")
    p.add_argument("--interval-s", type=options.non_negative_float, default=1.0, metavar="S",
                   help="live sources: at least this long between views (default %(default)s)")
    options.add_max_frames(p, help="give up after reading N frames")
    options.add_force(p)


def main(args: argparse.Namespace) -> int:
    from app.cli.outputs import check_output, source_inputs
    from sensors.devices.calibration import ChessboardConfig, calibrate_from_source, save_calibration
    from sensors.errors import ConfigError

    options.check_sources(args.source)
    if not args.out.lower().endswith((".yaml", ".yml", ".json", ".xml")):
        raise ConfigError(f"--out {args.out!r} must end in .yaml, .yml, .xml or .json")
    check_output(args.out, force=args.force, inputs=source_inputs(args.source))
    cfg = ChessboardConfig(source=args.source, board=args.board, square_mm=args.square_mm, views=args.views,
                           interval_s=args.interval_s, max_frames=args.max_frames)
    result = calibrate_from_source(
        cfg, on_view=lambda n, where: print(f"view {n}/{cfg.views}: board found in {where}"),
        on_skip=lambda message: sys.stderr.write(message + "\n"))
    save_calibration(args.out, result.camera, rms_px=result.rms_px)
    cam = result.camera
    print(f"calibrated from {result.views} views: fx={cam.fx:.2f} fy={cam.fy:.2f} cx={cam.cx:.2f} cy={cam.cy:.2f} "
          f"at {cam.width}x{cam.height}, RMS reprojection error {result.rms_px:.3f} px -> {args.out}")
    if result.rms_px > 1.0:
        print("warning: RMS error above 1 px; use more views, a flatter board, or better light")
    return 0
