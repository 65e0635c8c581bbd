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
    p.add_argument("--headless", action="store_true", help="no window: process frames and write a report")
    options.add_max_frames(p, help="stop after N frames")
    options.add_report(p, help="headless: write the JSON report here")
    p.add_argument("--save", default=None, metavar="DIR", help="headless: save per-frame crops as PNGs here")
    p.add_argument("--screenshot", default=None, metavar="FILE.png",
                   help="GUI: render off-screen after --max-frames frames, save a screenshot and exit")


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def main(args: argparse.Namespace) -> int:
    from models.common.errors import ModelError

    options.check_sources(args.source)  # a malformed source URI is a usage error (exit 2) whatever else is wrong
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
                    report=_path(args.report), save=_path(args.save), screenshot=_path(args.screenshot))
    if args.headless:
        from app.headless import run_headless

        return run_headless(cfg)
    from app.gui import run_gui

    return run_gui(cfg)
