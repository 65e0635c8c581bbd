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
import time

from app.cli import options


def _board(text: str) -> tuple[int, int]:
    a, sep, b = text.lower().partition("x")
    try:
        cols, rows = int(a), int(b)
    except ValueError:
        raise argparse.ArgumentTypeError(f"board must look like 9x6 (inner corners), got {text!r}") from None
    if not sep or cols < 2 or rows < 2:
        raise argparse.ArgumentTypeError(f"board must look like 9x6 (inner corners), got {text!r}")
    return cols, rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_source(p, default="webcam:0", help="camera or photos (default %(default)s)")
    options.add_out(p, "FILE.yaml|FILE.json", "where to write the calibration")
    p.add_argument("--board", type=_board, default=(9, 6), metavar="COLSxROWS",
                   help="inner corners of the chessboard (default 9x6)")
    p.add_argument("--square-mm", type=float, default=25.0, metavar="MM", help="side of one square (default %(default)s)")
    p.add_argument("--views", type=int, default=15, metavar="N", help="views to collect (default %(default)s)")
    p.add_argument("--interval-s", type=float, default=1.0, metavar="S",
                   help="live sources: at least this long between views (default %(default)s)")
    options.add_max_frames(p, help="give up after reading N frames")


def main(args: argparse.Namespace) -> int:
    from sensors import ConfigError, FormatError, open_source
    from sensors.devices.calibration import calibrate_chessboard, find_chessboard, save_calibration

    if not args.out.lower().endswith((".yaml", ".yml", ".json", ".xml")):
        raise ConfigError(f"--out {args.out!r} must end in .yaml, .yml, .xml or .json")
    if args.square_mm <= 0 or args.views < 3:
        raise ConfigError("--square-mm must be positive and --views at least 3")
    corners, size = [], None
    read, last_view = 0, -1e9
    with open_source(args.source) as src:
        while len(corners) < args.views and (args.max_frames is None or read < args.max_frames):
            try:
                frame = src.read(timeout_s=src.lost_after_s + 1.0 if src.is_live else 10.0)
            except TimeoutError:
                continue
            except EOFError:
                break
            except FormatError as exc:
                sys.stderr.write(f"skipped: {exc}\n")
                continue
            read += 1
            h, w = frame.color.shape[:2]
            if size is not None and size != (w, h):
                sys.stderr.write(f"skipped {frame.source}: {w}x{h}, the first view was {size[0]}x{size[1]}\n")
                continue
            if src.is_live and time.monotonic() - last_view < args.interval_s:
                continue
            found = find_chessboard(frame.color, args.board)
            if found is None:
                continue
            size = (w, h)
            corners.append(found)
            last_view = time.monotonic()
            print(f"view {len(corners)}/{args.views}: board found in {frame.source or 'frame ' + str(read)}")
    if len(corners) < 3:
        raise FormatError(f"the {args.board[0]}x{args.board[1]} board was found in {len(corners)} of {read} "
                          "frames; need at least 3 (check --board counts inner corners)", args.source)
    result = calibrate_chessboard(corners, size, args.board, args.square_mm)
    save_calibration(args.out, result.camera, rms_px=result.rms_px)
    cam = result.camera
    print(f"calibrated from {result.views} views: fx={cam.fx:.2f} fy={cam.fy:.2f} cx={cam.cx:.2f} cy={cam.cy:.2f} "
          f"at {cam.width}x{cam.height}, RMS reprojection error {result.rms_px:.3f} px -> {args.out}")
    if result.rms_px > 1.0:
        print("warning: RMS error above 1 px; use more views, a flatter board, or better light")
    return 0
