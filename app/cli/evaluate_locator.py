"""``launch.py evaluate-locator``: how well head localisation centres the crop, per yaw bin."""
from __future__ import annotations

import argparse

from app.cli import options
from models.evaluation.locator import DEFAULT_SOURCE, LocatorEvalConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_source(p, default=DEFAULT_SOURCE,
                       help="an annotated source (default: %(default)s)")
    options.add_every(p, default=3, help="score every K-th frame [3]")
    options.add_max_frames(p, help="read at most N frames")
    p.add_argument("--live", choices=("off", "on"), default="off",
                   help="off: detect every frame afresh; on: the live tracker with smoothing [off]")
    p.add_argument("--window-mm", type=options.positive_float, default=240.0, metavar="R", help="crop window R_x = R_y, mm [240]")
    p.add_argument("--size", type=options.positive_int, default=100, metavar="S", help="crop side, pixels [100]")
    options.add_report(p)
    p.add_argument("--refiner", default=None, metavar="FILE.onnx|none",
                   help="head-centre refiner (default: the shipped models/weights/head_refiner.onnx; "
                        "none: the detector and depth silhouette alone)")
    options.add_quiet(p)
    p.add_argument("--fit-shape", action="store_true",
                   help="instead: fit the head-silhouette model of sensors/locate/silhouette.py (the centre's row and depth "
                        "behind the face) to the source's annotated centres; writes its constants to --out, else prints "
                        "them. To install them, replace sensors/locate/head_shape.json with that file")
    p.add_argument("--photos", nargs="+", default=None, metavar="PHOTO",
                   help="instead: locate the face in each photo from its colour alone, crop it, and compare where the face "
                        "detector's box sits in that crop with where it sits on crops of --source's annotated heads "
                        "(|yaw| <= 30; their mean); well framed: box centre within 0.06 of the crop's side, width within "
                        "25 %%. Use --max-frames to bound the virtual frames read")
    p.add_argument("--out", default=None, metavar="FILE.json",
                   help="--fit-shape: write the fitted constants here (the format of sensors/locate/head_shape.json)")
    options.add_force(p, help="overwrite --report or --out if it exists")


def main(args: argparse.Namespace) -> int:
    from app.cli.outputs import check_output, source_inputs
    from models.common.files import write_json
    from models.evaluation.locator import evaluate_locator, format_table
    from sensors.errors import ConfigError

    options.check_sources(args.source)
    cfg = LocatorEvalConfig(source=args.source, every=args.every, max_frames=args.max_frames, live=args.live == "on",
                            window_mm=args.window_mm, size_px=args.size, refiner=args.refiner,
                            progress=not args.quiet)
    if args.out and not args.fit_shape:
        raise ConfigError("--out goes with --fit-shape (the evaluation's report is --report)")
    inputs = [*source_inputs(args.source), args.refiner if args.refiner != "none" else None]
    for option, value in (("--report", None if args.fit_shape else args.report), ("--out", args.out)):
        if value:
            check_output(value, option=option, force=args.force, inputs=inputs)
    if args.fit_shape:
        return _fit_shape(cfg, args.out)
    if args.photos:
        return _photos(cfg, args.photos, args.report)
    report = evaluate_locator(cfg)
    print(format_table(report))
    if args.report:
        write_json(args.report, report, indent=2, default=str)
    return 0


def _photos(cfg: LocatorEvalConfig, photos: list[str], report_path: str | None) -> int:
    """Colour-only framing of real photos against the virtual crops; 0 when every photo is well framed."""
    from models.common.files import write_json
    from models.evaluation.photos import evaluate_photos, format_photo_table
    from sensors.crop import CropConfig

    crop = CropConfig(size_px=cfg.size_px, window_x_mm=cfg.window_mm, window_y_mm=cfg.window_mm)
    report = evaluate_photos(photos, cfg.source, cfg.every, cfg.max_frames, crop, cfg.progress)
    print(format_photo_table(report))
    if report_path:
        write_json(report_path, report, indent=2, default=str)
    return 0 if report["all_ok"] else 1


def _fit_shape(cfg: LocatorEvalConfig, out: str | None) -> int:
    """Fit the head-shape constants; write them to ``out``, or print them when it is None."""
    from models.evaluation.locator import fit_shape
    from sensors.locate.silhouette import HEAD_SHAPE_FILE, head_shape_json, save_head_shape

    fit = fit_shape(cfg)
    print(f"heads: {fit.heads}; row residual median {fit.residual_median_mm:.1f} mm, "
          f"within 12 mm {fit.within_12mm_rate:.2f}")
    made_by = (f"launch.py evaluate-locator --fit-shape --every {cfg.every} --source {cfg.source}"
               + (f" --max-frames {cfg.max_frames}" if cfg.max_frames is not None else ""))
    installed = HEAD_SHAPE_FILE.relative_to(HEAD_SHAPE_FILE.parents[2])
    if out is None:
        print(head_shape_json(fit.model, made_by), end="")
        print(f"(pass --out FILE.json to write these; the locator reads {installed})")
        return 0
    save_head_shape(out, fit.model, made_by)
    print(f"wrote {out}; to install, copy it over {installed}")
    return 0
