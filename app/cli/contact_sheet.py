"""``launch.py contact-sheet --out FILE.png [--seed S]``: the virtual people at a glance."""
from __future__ import annotations

import argparse

from app.cli import options


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_out(p, "OUT", "PNG file to write")
    options.add_seed(p, help="identity and scene seed (default 0)")
    p.add_argument("--first-subject", type=options.non_negative_int, default=0, help="first of the 16 subjects (default 0)")
    p.add_argument("--tile", type=options.int_at_least(32, 512), default=120, help="tile size in pixels (default 120)")
    p.add_argument("--heads", choices=("procedural", "scan", "mixed"), default="procedural",
                   help="which people: procedural, scan (needs --face-model) or mixed (default %(default)s)")
    p.add_argument("--face-model", default=None, metavar="DIR",
                   help="an ICT-FaceKit FaceXModel folder, for --heads scan or mixed")
    options.add_force(p)


def main(args: argparse.Namespace) -> int:
    import cv2

    from app.cli.outputs import check_output
    from sensors.errors import FormatError
    from sensors.virtual.contact_sheet import render_sheet

    check_output(args.out, force=args.force, inputs=[args.face_model])
    sheet = render_sheet(args.seed, args.first_subject, args.tile, args.heads, args.face_model)
    if not cv2.imwrite(args.out, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise FormatError(f"could not write the contact sheet {args.out!r} (unknown extension or unwritable path)")
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0
