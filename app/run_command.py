"""``launch.py run``: the live app (the default command), in a window or headless."""
from __future__ import annotations

import argparse
from pathlib import Path

from models.common import shipped

DEFAULT_SOURCE = "virtual:"
DEFAULT_MODEL = shipped.GENERATOR
DEFAULT_VERIFIER = shipped.VERIFIER


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", default=DEFAULT_SOURCE, metavar="URI",
                   help="where frames come from (default: the built-in virtual Kinect, %(default)s)")
    p.add_argument("--model", default=None, metavar="FILE.onnx",
                   help=f"depth generator (default: the shipped {DEFAULT_MODEL.name})")
    p.add_argument("--second-model", default=None, metavar="FILE.onnx",
                   help="a second generator shown beside the first (e.g. the AE baseline)")
    p.add_argument("--verifier", default=None, metavar="FILE.onnx",
                   help=f"face verifier (default: the shipped {DEFAULT_VERIFIER.name} when present)")
    p.add_argument("--headless", action="store_true", help="no window: process frames and write a report")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    p.add_argument("--report", default=None, metavar="FILE.json", help="headless: write the JSON report here")
    p.add_argument("--save", default=None, metavar="DIR", help="headless: save per-frame crops as PNGs here")
    p.add_argument("--screenshot", default=None, metavar="FILE.png",
                   help="GUI: render off-screen after --max-frames frames, save a screenshot and exit")


def main(args: argparse.Namespace) -> int:
    from sensors.errors import ModelError
    from sensors.source import parse_uri

    parse_uri(args.source)  # a malformed source URI is a usage error (exit 2) whatever else is wrong
    model = Path(args.model) if args.model else DEFAULT_MODEL
    if not model.exists():
        if args.model:
            raise ModelError("model file does not exist", model)
        raise ModelError(
            "no shipped generator yet: train and export one (see models/README.md) or pass --model FILE.onnx",
            model,
        )
    if args.headless:
        from app.headless import run_headless

        return run_headless(args, model)
    from app.gui import run_gui

    return run_gui(args, model)
