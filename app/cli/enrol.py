"""``launch.py enrol``: capture a person's depth reference for live face verification.

    python launch.py enrol --source kinect: --name alice --frames 30 --out alice.json
    python launch.py enrol --source webcam:0 --name alice --frames 30 --out alice.json
"""
from __future__ import annotations

import argparse
from pathlib import Path

from app.cli import options
from app.enrol import ENROLMENT_RULE
from app.run_config import DEFAULT_SOURCE
from models.common import shipped


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_source(p, default=DEFAULT_SOURCE, help="where frames come from (default %(default)s)")
    p.add_argument("--name", required=True, help="the person's name, stored in the enrolment")
    # --frames is range-checked by EnrolConfig (exit 2, tested through launch.main)
    p.add_argument("--frames", type=int, default=ENROLMENT_RULE.frames, metavar="N",
                   help="crops to enrol (default %(default)s; each needs "
                        f"{ENROLMENT_RULE.min_valid_fraction:.0%} valid depth pixels)")
    options.add_every(p, default=3, help="use every K-th frame with a face, for more varied poses (default %(default)s)")
    options.add_out(p, "FILE.json", "where to write the enrolment")
    options.add_verifier(p, help=f"face verifier (default: the shipped {shipped.VERIFIER.name})")
    options.add_model(p, help=f"depth generator, used when the source has no depth "
                              f"(default: the shipped {shipped.GENERATOR.name})")
    p.add_argument("--timeout-s", type=options.positive_float, default=60.0, help="give up after this many seconds (default %(default)s)")
    options.add_quiet(p)
    options.add_force(p)


def main(args: argparse.Namespace) -> int:
    from app.cli.outputs import check_output, source_inputs
    from app.enrol import EnrolConfig, enrol

    options.check_sources(args.source)
    out = Path(args.out)
    check_output(out, force=args.force, inputs=[*source_inputs(args.source), args.verifier, args.model])
    cfg = EnrolConfig(name=args.name, source=args.source, frames=args.frames, every=args.every,
                      timeout_s=args.timeout_s, verifier=Path(args.verifier) if args.verifier else shipped.VERIFIER,
                      model=Path(args.model) if args.model else shipped.GENERATOR, progress=not args.quiet)
    enrolment, verifier = enrol(cfg)
    enrolment.save(out)
    print(f"enrolled {enrolment.name!r} from {len(enrolment.embeddings)} {enrolment.kind} crops of {enrolment.source} -> {out} "
          f"(scores against it measure {enrolment.label}; verifier {verifier.name} {verifier.sha256[:12]})")
    return 0
