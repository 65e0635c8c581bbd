"""``launch.py evaluate-locator``: how well head localisation centres the crop, per yaw bin."""
from __future__ import annotations

import argparse

from app.cli import options
from models.evaluation.locator import DEFAULT_SOURCE


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_source(p, default=DEFAULT_SOURCE,
                       help="an annotated source (default: %(default)s)")
    options.add_every(p, default=3, help="score every K-th frame [3]")
    options.add_max_frames(p, help="read at most N frames")
    p.add_argument("--live", choices=("off", "on"), default="off",
                   help="off: detect every frame afresh; on: the live tracker with smoothing [off]")
    p.add_argument("--window-mm", type=float, default=240.0, metavar="R", help="crop window R_x = R_y, mm [240]")
    p.add_argument("--size", type=int, default=100, metavar="S", help="crop side, pixels [100]")
    options.add_report(p)
    p.add_argument("--refiner", default=None, metavar="FILE.onnx|none",
                   help="head-centre refiner (default: the shipped models/weights/head_refiner.onnx; "
                        "none: the detector and depth silhouette alone)")
    options.add_quiet(p)
    p.add_argument("--fit-shape", action="store_true",
                   help="instead: fit the head-silhouette model of sensors/locate/silhouette.py (the centre's row and depth "
                        "behind the face) to the source's annotated centres and print its constants")


def main(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from models.evaluation.locator import LocatorEvalConfig, evaluate_locator, fit_shape, format_table
    from sensors.errors import ConfigError

    if args.every < 1:
        raise ConfigError(f"--every must be at least 1, got {args.every}")
    cfg = LocatorEvalConfig(source=args.source, every=args.every, max_frames=args.max_frames, live=args.live == "on",
                            window_mm=args.window_mm, size_px=args.size, refiner=args.refiner,
                            progress=not args.quiet)
    if args.fit_shape:
        fit_shape(cfg)
        return 0
    report = evaluate_locator(cfg)
    print(format_table(report))
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2, default=str))
    return 0
