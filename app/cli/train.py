"""``launch.py train``: train the depth generator (``models.generator.train``), as a cGAN (the
method) or as the AE baseline.

    python launch.py train --data data/train.npz --out runs/cgan --mode cgan
    torchrun --nproc-per-node 2 launch.py train --data ... --out ...   (DistributedDataParallel)
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from app.cli import options


def add_arguments(p: argparse.ArgumentParser) -> None:
    # the defaults shown are the library's (importing it loads torch, so only for this command)
    from models.generator.train import ADV_WEIGHT, BACKGROUND_WEIGHT, ID_REGIONS, ID_TRIPLET_MARGIN, ID_WEIGHT

    g = p.add_argument_group("data and output")
    g.add_argument("--data", required=True, action="append", metavar="FILE.npz",
                   help="crop dataset (launch.py build-dataset); repeat to add the TRAINING crops of more files "
                        "(more people), validation stays the first file's")
    options.add_out(g, "DIR", "run folder: checkpoints, config, curves, samples")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    options.add_force(g, help="train into --out even if it holds a run (its files are replaced; "
                              "--resume continues one instead)")
    g.add_argument("--init", default=None, metavar="CKPT",
                   help="start from these weights (fine-tuning, e.g. models/weights/generator.pt)")
    g = p.add_argument_group("method")
    g.add_argument("--mode", choices=("cgan", "ae"), default=None,
                   help="cgan: MSE + adversarial loss (the method); ae: MSE only (the baseline) [cgan]")
    g.add_argument("--adv-weight", type=options.non_negative_float, default=None, metavar="LAMBDA",
                   help=f"weight of the adversarial loss in the generator loss [{ADV_WEIGHT}]")
    g.add_argument("--id-verifier", default=None, metavar="CKPT[,CKPT...]",
                   help="add an identity loss: 1 - cosine similarity of this verifier's embeddings (a train-verifier "
                        "best.pt) of the generated and the true depth; several, comma-separated: the mean of their "
                        "cosine similarities; use other verifiers than the one you evaluate with")
    g.add_argument("--id-weight", type=options.non_negative_float, default=None, metavar="W",
                   help=f"weight of the identity loss [{ID_WEIGHT} with --id-verifier]")
    g.add_argument("--id-region", choices=ID_REGIONS, default=None,
                   help="face: the identity loss sees the generated depth inside the true face's outline only; "
                        "crop: the whole generated crop [face]")
    g.add_argument("--id-negatives", type=options.non_negative_float, default=None, metavar="W",
                   help="weight of a term that keeps the generated depth from passing, by the loss's verifier and its "
                        "threshold, as the other people of the batch [0: off]")
    g.add_argument("--id-margin", type=options.non_negative_float, default=None, metavar="M",
                   help="the other-people term counts pairs scoring above the loss verifier's threshold minus M [0]")
    g.add_argument("--id-triplet", type=options.non_negative_float, default=None, metavar="W",
                   help="weight of a triplet term: the generated depth must score at least M higher against its own "
                        "true depth than against the most similar other person of the batch [0: off]")
    g.add_argument("--id-triplet-margin", type=options.non_negative_float, default=None, metavar="M",
                   help=f"the triplet term's margin M, in cosine similarity [{ID_TRIPLET_MARGIN:g}]")
    g.add_argument("--background-weight", type=options.non_negative_float, default=None, metavar="W",
                   help=f"loss weight of background pixels of clean targets [{BACKGROUND_WEIGHT}]")
    g.add_argument("--face-weight", type=float, default=None, metavar="W",
                   help="loss weight of the face's pixels (the data's face masks, virtual Kinect) against 1 for the "
                        "others [1]")
    g.add_argument("--relief-weight", type=float, default=None, metavar="W",
                   help="weight of a relief term: the error of depth gradients over 4 pixels, in tanh units [0: off]")
    g.add_argument("--widths", default=None, metavar="W0,W1,...",
                   help="generator channel widths per level [16,32,48,64,96]; with --init, wider ones widen its "
                        "network (the same output at the start, the new channels trained from there)")
    g.add_argument("--no-augment", action="store_true", help="train without augmentation")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=options.positive_int, default=None, metavar="N", help="epochs [20]")
    options.add_batch_size(g, default=None, help="crops per step and process [16]")
    g.add_argument("--lr", type=options.positive_float, default=None, help="generator learning rate (Adam, cosine decay) [1e-3]")
    g.add_argument("--lr-d", type=options.positive_float, default=None, help="discriminator learning rate (Adam, beta1 0.5) [2e-4]")
    g.add_argument("--beta1", type=options.float_in(0.0, 1.0, high_open=True), default=None, help="generator Adam beta1 [0.9]")
    g.add_argument("--select-metric", default=None, metavar="KEY",
                   help="validation metric that picks best.pt (a models.metrics key) [l1_mm]")
    options.add_seed(g, default=None, help="random seed [0]")
    options.add_max_minutes(g, help="stop (after validating and saving) once this much wall time has passed [no limit]")
    g.add_argument("--max-train-samples", type=options.positive_int, default=None, metavar="N",
                   help="use only the first N training crops (quick experiments) [all]")
    g = p.add_argument_group("hardware")
    options.add_device(g, default=None, help="auto: CUDA when present, else CPU [auto]")
    g.add_argument("--workers", type=options.non_negative_int, default=None, metavar="N", help="data loader processes [0]")
    options.add_threads(g, help="CPU threads per process [cores / local processes]")
    options.add_quiet(g, help="no progress bars (one line per epoch)", old="--no-progress")


def config_from_args(args: argparse.Namespace) -> Any:
    """The resolved ``TrainConfig``: command-line values over the saved run's (on --resume)
    over the defaults."""
    from dataclasses import replace

    from models.generator.train import ID_WEIGHT, TrainConfig, command_for, generator_config_for_widths
    from sensors.errors import ConfigError, FormatError

    given = {
        "mode": args.mode, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "lr_d": args.lr_d, "beta1": args.beta1, "background_weight": args.background_weight, "adv_weight": args.adv_weight,
        "face_weight": args.face_weight, "relief_weight": args.relief_weight,
        "id_weight": args.id_weight, "id_region": args.id_region, "id_negatives": args.id_negatives,
        "id_margin": args.id_margin, "id_triplet": args.id_triplet, "id_triplet_margin": args.id_triplet_margin,
        "seed": args.seed, "device": args.device,
        "workers": args.workers, "threads": args.threads, "max_minutes": args.max_minutes,
        "select_metric": args.select_metric, "max_train_samples": args.max_train_samples,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if args.id_verifier is not None:
        given["id_verifier"] = args.id_verifier
        given.setdefault("id_weight", ID_WEIGHT)
    if args.widths is not None:
        try:
            widths = [int(w) for w in args.widths.split(",")]
        except ValueError:
            raise ConfigError(f"--widths must be comma-separated integers, got {args.widths!r}") from None
        given["generator"] = generator_config_for_widths(widths)
    base: TrainConfig
    if args.resume:
        cfg_path = Path(args.out) / "config.json"
        try:
            base = TrainConfig.from_dict(json.loads(cfg_path.read_text()))
        except FileNotFoundError:
            raise ConfigError("--resume: no config.json in the run folder", args.out) from None
        except (json.JSONDecodeError, TypeError) as exc:
            raise FormatError(f"--resume: config.json is not readable ({exc})", cfg_path) from None
        if len(args.data) != 1 + len(base.extra_data):
            saved = " ".join(f"--data {d}" for d in (base.data, *base.extra_data))
            raise ConfigError(f"--resume: the run trains on {1 + len(base.extra_data)} data files ({saved}); "
                              f"give the same --data list", args.out)
        base = replace(base, data=args.data[0], extra_data=tuple(args.data[1:]), out=args.out)
    else:
        base = TrainConfig(data=args.data[0], extra_data=tuple(args.data[1:]), out=args.out)
    cfg = replace(base, init=args.init if args.init is not None else base.init, **given)
    if args.no_augment:
        cfg = replace(cfg, augment=replace(cfg.augment, enabled=False))
    return replace(cfg, command=command_for(cfg))


def main(args: argparse.Namespace) -> int:
    """Train; SIGINT or SIGTERM ends the epoch at the next step and saves ``last.pt`` (exit 130 / 143),
    which ``--resume`` continues."""
    from app import stops
    from app.cli.outputs import check_output
    from models.generator.train import train

    # --resume continues the run in --out; anything else would replace its best.pt
    check_output(args.out, force=args.force or args.resume, kind="folder", hint="(or --resume to continue it)",
                 inputs=[*args.data, args.init, *(args.id_verifier or "").split(",")])
    cfg = config_from_args(args)
    result = train(cfg, resume=args.resume, progress=not args.quiet, stop=stops.poll)
    if result.rank == 0:
        print(json.dumps({"out": cfg.out, "epochs_done": result.epochs_done, "best_epoch": result.best_epoch,
                          "best": {k: round(v, 5) for k, v in result.best_metrics.items()},
                          "stopped": result.stopped, "world_size": result.world_size,
                          "samples_per_process": result.samples_per_process}, indent=None))
    if stops.requested():
        stops.announce("train")
        return stops.exit_code()
    return 0
