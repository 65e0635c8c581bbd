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
    options.add_verifier(p, help="also run the face-verification protocol with this verifier")
    p.add_argument("--pairs", default=None, metavar="FILE.json",
                   help="verification pair list to read (or write, if missing); default: beside the data, "
                        "DATA.SPLIT_pairs.json")


def main(args: argparse.Namespace) -> int:
    from models.common.files import write_json
    from models.evaluation.generator import (add_verification, centre_check_line, draw_figure, evaluate,
                                             markdown_table)

    models = [m for m in (s.strip() for s in args.models.split(",")) if m]
    # --verifier is checked when it is loaded, after the generators are scored (a test stands a
    # mocked verifier in for a path that does not exist)
    for m in models:
        options.check_input_file(m, "model file")
    report, arrays = evaluate(args.data, models, args.split, args.truth, args.mean_from, args.threads, args.provider)
    if args.verifier:
        add_verification(report, arrays, args.data, args.verifier, args.figure, args.pairs, args.split)
    if args.figure:
        draw_figure(report, arrays, args.figure, args.examples)
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    write_json(args.report, report, indent=2)
    print(markdown_table(report))
    print(centre_check_line(report["head_centre_check"]))
    return 0
