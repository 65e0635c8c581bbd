"""``launch.py export``: a trained generator checkpoint to one self-contained ONNX file."""
from __future__ import annotations

import argparse

from app.cli import options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="a train checkpoint (best.pt, last.pt)")
    options.add_out(p, "FILE.onnx", "the ONNX file to write")
    p.add_argument("--fp16", action="store_true", help="float16 weights and compute (for CUDA / TensorRT)")
    p.add_argument("--slim-checkpoint", default=None, metavar="FILE.pt",
                   help="also write the checkpoint without optimiser state (the shipped fine-tuning checkpoint)")


def main(args: argparse.Namespace) -> int:
    import json

    from models.generator.export import export_onnx, slim_checkpoint

    info = export_onnx(args.checkpoint, args.out, fp16=args.fp16)
    if args.slim_checkpoint:
        slim_checkpoint(args.checkpoint, args.slim_checkpoint)
    print(json.dumps(info))
    return 0
