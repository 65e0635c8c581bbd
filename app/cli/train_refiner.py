"""``launch.py train-refiner``: train the head-centre refiner (``models.refiner.train``) and
export head_refiner.onnx."""
from __future__ import annotations

import argparse

from app.cli import options


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_source(p, action="append",
                       help="annotated training source (repeatable); its identities must not be evaluated on")
    p.add_argument("--val-source", required=True, metavar="URI", help="annotated source of other identities")
    options.add_out(p, "DIR", "run folder")
    p.add_argument("--samples-per-frame", type=options.positive_int, default=4, help="offsets per frame [4]")
    p.add_argument("--negatives-per-frame", type=options.non_negative_int, default=2, help="not-a-head samples per frame [2]")
    p.add_argument("--ray-negatives-per-frame", type=options.non_negative_int, default=1,
                   help="not-a-head samples per frame on the true centre's own ray, at another distance [1]")
    p.add_argument("--perturb-mm", type=options.positive_float, default=30.0, help="largest offset standard deviation in x and y, mm [30]")
    p.add_argument("--epochs", type=options.positive_int, default=12, help="epochs [12]")
    options.add_batch_size(p, default=64, help="batch size [64]", old="--batch", type=options.int_at_least(2))
    p.add_argument("--lr", type=options.positive_float, default=2e-3, help="peak learning rate [2e-3]")
    options.add_seed(p, help="random seed [0]")
    options.add_threads(p, help="CPU threads for PyTorch")
    p.add_argument("--resume", action="store_true", help="continue from DIR/last.pt")
    p.add_argument("--export-only", action="store_true",
                   help="no training: export DIR/best.pt to DIR/head_refiner.onnx (with this version's spec)")
    options.add_force(p, help="train into --out even if it holds a run (its files are replaced)")
    options.add_quiet(p, help="no progress bars")


def main(args: argparse.Namespace) -> int:
    from app import stops
    from app.cli.outputs import check_output, source_inputs

    # --resume and --export-only work on the run in --out; a new run would replace its files
    check_output(args.out, force=args.force or args.resume or args.export_only, kind="folder",
                 hint="(or --resume to continue it)",
                 inputs=[p for uri in (*args.source, args.val_source) for p in source_inputs(uri)])
    from models.refiner.train import RefinerTrainConfig, train_refiner

    options.check_sources(*args.source, args.val_source)  # every source, before the first is read
    cfg = RefinerTrainConfig(
        source=tuple(args.source), val_source=args.val_source, out=args.out, samples_per_frame=args.samples_per_frame,
        negatives_per_frame=args.negatives_per_frame, ray_negatives_per_frame=args.ray_negatives_per_frame,
        perturb_mm=args.perturb_mm, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        threads=args.threads, resume=args.resume, export_only=args.export_only, quiet=args.quiet)
    # launch.py's parser names the command in ``args``; the run's config.json records it with the options
    rc = train_refiner(cfg, getattr(args, "command", None), stop=stops.poll)
    if stops.requested():  # last.pt holds the epoch the signal cut short; the best so far is exported
        stops.announce(args.command)
        return stops.exit_code()
    return rc
