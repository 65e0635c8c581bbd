"""``launch.py evaluate``: score generators and baselines on a crop dataset (JSON report, figure)."""
from __future__ import annotations

import argparse
from pathlib import Path

from app.cli import options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="FILE.npz", help="crop dataset (launch.py build-dataset)")
    p.add_argument("--models", default="", metavar="A.onnx,B.onnx", help="generators to score (comma-separated)")
    options.add_report(p, required=True)
    p.add_argument("--figure", default=None, metavar="FILE.png", help="write the figure here")
    p.add_argument("--split", choices=("train", "val", "test", "all"), default="test", help="which crops [test]")
    p.add_argument("--truth", choices=("auto", "clean", "sensor"), default="auto",
                   help="ground truth: auto = clean depth where the data has it, else sensor depth [auto]")
    p.add_argument("--mean-from", default=None, metavar="FILE.npz",
                   help="dataset whose training split gives the mean-crop baseline [--data]")
    p.add_argument("--examples", type=options.non_negative_int, default=4, metavar="K", help="best and worst examples in the figure [4]")
    options.add_threads(p, default=0, help="ONNX Runtime threads (0 = all cores) [0]")
    p.add_argument("--provider", choices=("auto", "cpu", "cuda", "tensorrt"), default="auto", help="[auto]")
    p.add_argument("--external", action="append", default=[], metavar="NAME=FILE.npz",
                   help="also score depth crops made outside the project for this dataset and split (MediaPipe's, "
                        "from models.evaluation.realism --predictions): shape metrics only, and every row's face "
                        "region cut to the pixels they cover; repeatable")
    options.add_verifier(p, help="also run the face-verification protocol with this verifier")
    p.add_argument("--pairs", default=None, metavar="FILE.json",
                   help="verification pair list to read (or write, if missing); default: beside the data, "
                        "DATA.SPLIT_pairs.json")
    options.add_force(p, help="overwrite --report and --figure if they exist (never an input)")


def _check_outputs(args: argparse.Namespace, read: list[str]) -> None:
    """The report, the figures and a pair list still to be drawn, checked before any scoring."""
    from app.cli.outputs import check_output

    inputs = [args.data, args.mean_from, args.verifier, *read]
    check_output(args.report, option="--report", force=args.force, inputs=inputs)
    if args.figure:
        check_output(args.figure, option="--figure", force=args.force, inputs=inputs)
        if args.verifier:  # the ROC figure goes beside it (models.evaluation.generator.add_verification)
            roc = Path(args.figure).with_name(Path(args.figure).stem + "_verification.png")
            check_output(roc, option="--figure", force=args.force, inputs=inputs)
    if args.verifier:
        from models.verifier.runtime import default_pairs_file

        pairs = args.pairs or default_pairs_file(args.data, "test" if args.split == "all" else args.split)
        if not Path(pairs).exists():  # drawn and written by this run; an existing one is read
            check_output(pairs, option="--pairs", inputs=inputs)


def main(args: argparse.Namespace) -> int:
    from models.common.files import write_json
    from models.evaluation.generator import (add_verification, budget_lines, centre_check_line, draw_figure,
                                             evaluate, markdown_table)
    from sensors.errors import ConfigError

    models = [m for m in (s.strip() for s in args.models.split(",")) if m]
    external = []
    for item in args.external:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ConfigError(f"--external {item!r}: expected NAME=FILE.npz")
        external.append((name.strip(), path.strip()))
    for m in models:
        options.check_input_file(m, "model file")
    _check_outputs(args, models + [path for _, path in external])
    report, arrays = evaluate(args.data, models, args.split, args.truth, args.mean_from, args.threads, args.provider,
                              external)
    if args.verifier:
        add_verification(report, arrays, args.data, args.verifier, args.figure, args.pairs, args.split)
    if args.figure:
        draw_figure(report, arrays, args.figure, args.examples)
    write_json(args.report, report, indent=2)
    print(markdown_table(report))
    print("\n".join(budget_lines(report)))
    print(centre_check_line(report["head_centre_check"]))
    return 0
