"""``launch.py run``: the live app (the default command), in a window or headless."""
from __future__ import annotations

import argparse
from pathlib import Path

from app.cli import options
from app.run_config import DEFAULT_SOURCE, RunConfig
from models.common import shipped


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_source(p, default=DEFAULT_SOURCE,
                       help="where frames come from (default: the built-in virtual Kinect, %(default)s)")
    options.add_model(p)
    p.add_argument("--second-model", default=None, metavar="FILE.onnx",
                   help="a second generator shown beside the first (e.g. the AE baseline)")
    options.add_verifier(p)
    p.add_argument("--enrolment", default=None, metavar="FILE.json",
                   help="score live verification against this enrolment (made by `launch.py enrol`)")
    p.add_argument("--headless", action="store_true", help="no window: process frames and write a report")
    options.add_max_frames(p, help="stop after N frames")
    options.add_report(p, help="headless: write the JSON report here; with --screenshot: the window's figures "
                               "(frames drawn per second, latency)")
    p.add_argument("--save", default=None, metavar="DIR", help="headless: save per-frame crops as PNGs here")
    p.add_argument("--screenshot", default=None, metavar="FILE.png",
                   help="GUI: render off-screen after --max-frames frames, save a screenshot and exit")
    options.add_force(p, help="overwrite --report, --screenshot or a non-empty --save folder if they exist")
    p.add_argument("--view3d", action="store_true", help="GUI: open the 3D view at start")
    p.add_argument("--window-size", default=None, type=_window_size, metavar="WxH",
                   help="GUI: the window's size in pixels, e.g. 1920x1080 (default: as last time, "
                        "or 1440x900)")


def _window_size(text: str) -> tuple[int, int]:
    """``WxH`` -> (W, H), each 320..7680 pixels."""
    w, sep, h = text.lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit() and 320 <= int(w) <= 7680 and 320 <= int(h) <= 7680):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels (320 to 7680 each), got {text!r}")
    return int(w), int(h)


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _check_outputs(args: argparse.Namespace) -> None:
    """Every file the run will write, checked before any frame is read."""
    from app.cli.outputs import check_output, source_inputs

    inputs = (*source_inputs(args.source), args.model, args.second_model, args.verifier)
    for option, value, kind in (("--report", args.report, "file"), ("--save", args.save, "folder"),
                                ("--screenshot", args.screenshot, "file")):
        if value:
            check_output(value, option=option, force=args.force, inputs=inputs, kind=kind)


def main(args: argparse.Namespace) -> int:
    from models.common.errors import ModelError

    options.check_sources(args.source)  # a malformed source URI is a usage error (exit 2) whatever else is wrong
    _check_outputs(args)
    model = Path(args.model) if args.model else shipped.GENERATOR
    if not model.exists():
        if args.model:
            raise ModelError("model file does not exist", model)
        raise ModelError(
            "no shipped generator yet: train and export one (see models/README.md) or pass --model FILE.onnx",
            model,
        )
    # a verifier or second model the user named must be there: silently running without it
    # would look like a run with it (only the shipped verifier may be absent)
    options.check_input_file(args.verifier, "verifier file")
    options.check_input_file(args.second_model, "second model file")
    cfg = RunConfig(model=model, source=args.source, second_model=_path(args.second_model),
                    verifier=_path(args.verifier) or shipped.VERIFIER, max_frames=args.max_frames,
                    report=_path(args.report), save=_path(args.save), screenshot=_path(args.screenshot),
                    enrolment=_path(args.enrolment), view3d=args.view3d,
                    window_size_px=args.window_size)
    if cfg.enrolment is not None and not args.headless:
        # the window would only show a notice: a file named on the command line fails here, in one line
        from app.enrol import load_run_enrolment
        from app.headless import load_verifier

        load_run_enrolment(cfg.enrolment, load_verifier(cfg.verifier), cfg.verifier)
    if args.headless:
        from app.headless import run_headless

        return run_headless(cfg)
    from app.gui import run_gui

    return run_gui(cfg)
