"""``launch.py export``: a trained generator checkpoint to one self-contained ONNX file."""
from __future__ import annotations

import argparse
import os

from app.cli import options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="a train checkpoint (best.pt, last.pt)")
    options.add_out(p, "FILE.onnx", "the ONNX file to write")
    p.add_argument("--fp16", action="store_true", help="float16 weights and compute (for CUDA / TensorRT)")
    p.add_argument("--slim-checkpoint", default=None, metavar="FILE.pt",
                   help="also write the checkpoint without optimiser state (the shipped fine-tuning checkpoint)")
    options.add_force(p, help="overwrite --out and --slim-checkpoint if they exist (never --checkpoint)")


def main(args: argparse.Namespace) -> int:
    import json

    from app.cli.outputs import check_output
    from models.generator.export import export_onnx, slim_checkpoint
    from sensors.errors import ConfigError

    check_output(args.out, force=args.force, inputs=[args.checkpoint])
    if args.slim_checkpoint:
        check_output(args.slim_checkpoint, option="--slim-checkpoint", force=args.force, inputs=[args.checkpoint])
        if os.path.abspath(args.slim_checkpoint) == os.path.abspath(args.out):
            raise ConfigError("--slim-checkpoint and --out name the same file", args.out)
    info = export_onnx(args.checkpoint, args.out, fp16=args.fp16)
    if args.slim_checkpoint:
        slim_checkpoint(args.checkpoint, args.slim_checkpoint)
    print(json.dumps(info))
    return 0
