"""``launch.py train-verifier``: train the face verifier (``models.verifier.train``) on true
depth crops and export verifier.onnx."""
from __future__ import annotations

import argparse

from app.cli import options


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data and output")
    g.add_argument("--data", required=True, action="append", metavar="FILE.npz",
                   help="crop dataset (launch.py build-dataset); repeat to add the TRAINING crops of more files "
                        "(validation and test stay the first file's)")
    options.add_out(g, "DIR", "run folder: checkpoints, curves, verifier.onnx")
    g.add_argument("--resume", action="store_true", help="continue from DIR/last.pt")
    g.add_argument("--export-only", action="store_true", help="no training: export DIR/best.pt to DIR/verifier.onnx")
    options.add_force(g, help="train into --out even if it holds a run (its files are replaced)")
    g = p.add_argument_group("training")
    # the plain int/float options are range-checked by VerifierTrainConfig (its messages and exit
    # code 2 are tested through launch.main); the others by the options module's types
    g.add_argument("--epochs", type=int, default=40, help="epochs (default %(default)s)")
    g.add_argument("--steps-per-epoch", type=int, default=None,
                   help="batches per epoch (default: training crops / batch size, at least 50)")
    g.add_argument("--identities", type=int, default=16, metavar="P", help="identities per batch (default %(default)s)")
    g.add_argument("--per-identity", type=int, default=8, metavar="K", help="crops per identity (default %(default)s)")
    g.add_argument("--lr", type=options.positive_float, default=1e-3, help="peak learning rate (default %(default)s)")
    g.add_argument("--weight-decay", type=options.non_negative_float, default=5e-4, help="AdamW weight decay (default %(default)s)")
    g.add_argument("--loss", default="supcon", choices=("supcon", "triplet"),
                   help="supervised contrastive or batch-hard triplet (default %(default)s)")
    g.add_argument("--temperature", type=options.positive_float, default=0.1, help="the loss's temperature (default %(default)s)")
    g.add_argument("--clean-prob", type=float, default=0.25,
                   help="share of crops taken from the noise-free depth where the data has it (default %(default)s)")
    g.add_argument("--shift-px", type=int, default=4, help="random shift augmentation, pixels (default %(default)s)")
    g.add_argument("--flip-prob", type=float, default=0.0,
                   help="share of crops mirrored left-right (a mirrored face stands for the same person; default %(default)s)")
    g.add_argument("--erase-prob", type=float, default=0.0,
                   help="share of crops with a random rectangle blanked, like an occluder or a hole (default %(default)s)")
    # the defaults are models.verifier.net.VerifierConfig's (not imported here: it loads torch)
    g.add_argument("--embedding-dim", type=int, default=128, help="embedding length (default %(default)s)")
    g.add_argument("--widths", default="16,32,48,64,96", help="branch widths (default %(default)s)")
    g.add_argument("--extra-convs", default="0,1,1,1,0",
                   help="unstrided 3x3 convs after each strided one (default %(default)s)")
    g = p.add_argument_group("validation and run")
    g.add_argument("--val-pairs", type=int, default=2000, help="validation pairs (default %(default)s)")
    options.add_seed(g, help="random seed (default %(default)s)")
    options.add_device(g, help="training device (default %(default)s)")
    options.add_threads(g, help="CPU threads for PyTorch (default: PyTorch's choice)")
    # checked by VerifierTrainConfig (its message and exit code are tested), so plain float here
    options.add_max_minutes(g, help="stop after the epoch that passes this many minutes, then export (--resume continues)",
                            type=float)
    options.add_quiet(g, help="no progress bars")


def main(args: argparse.Namespace) -> int:
    from app import stops
    from app.cli.outputs import check_output

    from models.verifier.train import VerifierTrainConfig, train_verifier

    cfg = VerifierTrainConfig(
        data=tuple(args.data), out=args.out, resume=args.resume, export_only=args.export_only, epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch, identities=args.identities, per_identity=args.per_identity, lr=args.lr,
        weight_decay=args.weight_decay, loss=args.loss, temperature=args.temperature, clean_prob=args.clean_prob,
        shift_px=args.shift_px, flip_prob=args.flip_prob, erase_prob=args.erase_prob, embedding_dim=args.embedding_dim,
        widths=args.widths, extra_convs=args.extra_convs, val_pairs=args.val_pairs, seed=args.seed, device=args.device,
        threads=args.threads, max_minutes=args.max_minutes, quiet=args.quiet)
    # after the options' own checks (exit 2); --resume and --export-only work on the run in --out,
    # a new run would replace its files
    check_output(args.out, force=args.force or args.resume or args.export_only, kind="folder",
                 hint="(or --resume to continue it)", inputs=args.data)
    # launch.py's parser names the command in ``args``; the run's config.json records it with the options
    rc = train_verifier(cfg, getattr(args, "command", None), stop=stops.poll)
    if stops.requested():  # last.pt holds the epoch the signal cut short; the best so far is exported
        stops.announce(args.command)
        return stops.exit_code()
    return rc
