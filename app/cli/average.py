"""``launch.py average``: the mean of generator runs fine-tuned from one checkpoint (a model soup)."""
from __future__ import annotations

import argparse

from app.cli import options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, action="append", metavar="CKPT",
                   help="a train checkpoint (repeat: at least two, fine-tuned from the same --init)")
    p.add_argument("--data", required=True, metavar="FILE.npz",
                   help="the dataset file the runs were trained on (its validation crops score the average)")
    options.add_out(p, "FILE.pt", "the averaged checkpoint to write")
    options.add_threads(p, default=0, help="PyTorch CPU threads (0: all cores)")
    options.add_force(p, help="overwrite --out if it exists (never one of the --checkpoint files)")


def main(args: argparse.Namespace) -> int:
    import json

    from app.cli.outputs import check_output
    from models.generator.average import average_checkpoints

    check_output(args.out, force=args.force, inputs=[*args.checkpoint, args.data])
    info = average_checkpoints(args.checkpoint, args.data, args.out, threads=args.threads)
    print(json.dumps(info))
    return 0
