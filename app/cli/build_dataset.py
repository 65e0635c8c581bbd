"""``launch.py build-dataset``: any sources -> one crop dataset file (``models.data.build``).

    python launch.py build-dataset --out data/virtual.npz \\
        --source virtual:heads=procedural,seed=0,subjects=0-79,frames=4000 --split train \\
        --source virtual:heads=procedural,seed=0,subjects=80-89,frames=500 --split val \\
        --source virtual:heads=procedural,seed=0,subjects=90-99,frames=500 --split test
"""
from __future__ import annotations

import argparse
import shlex
import sys

from app.cli import options
from models.data.build import DEFAULT_MIN_VALID, SPLIT_NAMES
from sensors.source import MAX_RANGE_COUNT


class _SourceAction(argparse.Action):
    """``--source URI`` appends a source; ``--split NAME`` tags the source before it."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[override]
        items = list(getattr(namespace, "sources", None) or [])
        if option_string == "--split":
            if not items:
                parser.error("--split must follow the --source it applies to")
            if items[-1]["split"] is not None:
                parser.error(f"source {items[-1]['uri']} already has a split")
            items[-1] = {**items[-1], "split": values}
        else:
            items.append({"uri": values, "split": None})
        namespace.sources = items


def _int_list(text: str) -> list[int]:
    """``3,5,9-12`` -> [3, 5, 9, 10, 11, 12]."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        a, dash, b = part.partition("-")
        try:
            lo, hi = int(a), int(b) if dash else int(a)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected subject ids like 3,5,9-12, got {text!r}") from None
        if hi < lo:
            raise argparse.ArgumentTypeError(f"range {part!r} runs backwards")
        if len(out) + hi - lo + 1 > MAX_RANGE_COUNT:  # refused before a list of that length is made
            raise argparse.ArgumentTypeError(f"must list at most {MAX_RANGE_COUNT} subject ids, got {text!r}")
        out.extend(range(lo, hi + 1))
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.set_defaults(sources=[])
    src = p.add_argument_group("sources and splits")
    options.add_source(src, action=_SourceAction,
                       help="a source URI (repeatable), e.g. virtual:heads=procedural,seed=0,subjects=0-79 or biwi:/data/hpdb")
    src.add_argument("--split", action=_SourceAction, choices=SPLIT_NAMES,
                     help="put every frame of the preceding --source in this split")
    src.add_argument("--split-by", choices=("subject",), default="subject",
                     help="how untagged sources are split: by subject identity (the only way; never by frame)")
    src.add_argument("--val-subjects", type=_int_list, default=[], metavar="IDS",
                     help="subject ids for validation, e.g. 9,18,21,22 or 80-89")
    src.add_argument("--test-subjects", type=_int_list, default=[], metavar="IDS",
                     help="subject ids for testing, e.g. 10,14,16,20 or 90-99")
    src.add_argument("--val-fraction", type=options.fraction, default=0.0, metavar="F",
                     help="without subject lists: this share of subjects (by a fixed hash of the id) to validation")
    src.add_argument("--test-fraction", type=options.fraction, default=0.0, metavar="F",
                     help="without subject lists: this share of subjects to testing")
    src.add_argument("--max-frames", type=options.positive_int, default=None, metavar="N",
                     help="read at most N frames of each source")
    options.add_every(src, default=1, type=options.positive_int,
                      help="keep every K-th frame of each source (recordings, datasets and the virtual Kinect "
                           "with frames=N jump to them; other sources are read through)")
    crop = p.add_argument_group("crop")
    crop.add_argument("--size", type=options.positive_int, default=100, metavar="S", help="crop side in pixels (100)")
    crop.add_argument("--window-mm", type=options.positive_float, default=240.0, metavar="R",
                      help="window width R_x at the head's distance, mm (240)")
    crop.add_argument("--window-y-mm", type=options.positive_float, default=None, metavar="R",
                      help="window height R_y, mm (default: the same as --window-mm)")
    crop.add_argument("--half-range-mm", type=options.positive_float, default=150.0, metavar="H",
                      help="half-range H of the 8-bit depth encoding, mm (150)")
    crop.add_argument("--locator", choices=("auto", "annotation", "detect"), default="auto",
                      help="head localisation: the source's annotation when present (auto), only "
                           "annotations, or always detection")
    crop.add_argument("--refiner", default=None, metavar="FILE.onnx|none",
                      help="head-centre refiner for detected heads (default: the shipped "
                           "models/weights/head_refiner.onnx; none: without)")
    crop.add_argument("--centre-check", type=options.non_negative_int, default=10, metavar="K",
                      help="on every K-th annotated crop also locate the head without the annotation and store "
                           "both distances D, for evaluate's head-centre line (0: never) (10)")
    crop.add_argument("--min-valid", type=options.positive_int, default=DEFAULT_MIN_VALID, metavar="N",
                      help="skip crops with fewer valid depth pixels (%(default)s)")
    out = p.add_argument_group("output")
    options.add_out(out, "FILE.npz", "the dataset file to write")
    options.add_force(out)
    out.add_argument("--workers", type=options.positive_int, default=2, metavar="N", help="worker processes (2)")
    options.add_quiet(out)


def main(args: argparse.Namespace) -> int:
    from app.cli.outputs import check_output, source_inputs
    from models.data.build import BuildConfig, build_dataset

    options.check_sources(*(s["uri"] for s in args.sources))  # every source, before the first is read
    read = [path for s in args.sources for path in source_inputs(s["uri"])]
    check_output(args.out, force=args.force, inputs=[*read, args.refiner if args.refiner != "none" else None])
    # the command line as typed, when it was typed (not when called in-process)
    command = ("launch.py build-dataset " + " ".join(shlex.quote(a) for a in sys.argv[2:])
               if len(sys.argv) > 1 and sys.argv[1] == "build-dataset" else "launch.py build-dataset")
    return build_dataset(BuildConfig(
        sources=tuple(dict(s) for s in args.sources), out=args.out, split_by=args.split_by,
        val_subjects=tuple(args.val_subjects), test_subjects=tuple(args.test_subjects),
        val_fraction=args.val_fraction, test_fraction=args.test_fraction, max_frames=args.max_frames,
        every=args.every, size_px=args.size, window_mm=args.window_mm, window_y_mm=args.window_y_mm,
        half_range_mm=args.half_range_mm, locator=args.locator, refiner=args.refiner,
        centre_check=args.centre_check, min_valid=args.min_valid, workers=args.workers,
        progress=not args.quiet, command=command))
