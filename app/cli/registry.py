"""The command table and the one entry point every command goes through.

Exit codes: 0 success; 1 a failure with a one-line message naming the file or device;
2 unknown or malformed arguments; 130 stopped by SIGINT (Ctrl-C), 143 stopped by SIGTERM
(``app.stops``: both take the same path, recordings are finished and reports written first).
"""
from __future__ import annotations

import argparse
import importlib
import re
import sys
from dataclasses import dataclass

PROG = "launch.py"
#: the command run when none is named (``launch.py`` alone, or only options)
DEFAULT_COMMAND = "run"


@dataclass(frozen=True)
class Command:
    """A command: its name on the command line, the module that implements it, one line of help."""

    name: str
    module: str
    help: str


COMMANDS: tuple[Command, ...] = (
    Command("run", "app.cli.run", "run the live app (GUI, or --headless with a JSON report)"),
    Command("contact-sheet", "app.cli.contact_sheet",
            "render 16 virtual people in several poses with their depth maps to a PNG"),
    Command("build-dataset", "app.cli.build_dataset",
            "turn sources (virtual Kinect, Biwi, Pandora, recordings) into one crop dataset file"),
    Command("train", "app.cli.train", "train the depth generator (cgan, or the ae baseline) on a crop dataset"),
    Command("average", "app.cli.average",
            "average the weights of generator runs fine-tuned from one checkpoint (a model soup)"),
    Command("export", "app.cli.export", "export a trained generator checkpoint to one self-contained ONNX file"),
    Command("evaluate", "app.cli.evaluate", "score generators and baselines on a crop dataset: JSON report and figure"),
    Command("evaluate-locator", "app.cli.evaluate_locator",
            "score head localisation against annotated head centres, in crop pixels per yaw bin"),
    Command("train-refiner", "app.cli.train_refiner",
            "train the head-centre refiner on annotated frames and export head_refiner.onnx"),
    Command("train-verifier", "app.cli.train_verifier",
            "train the face verifier on true depth crops and export verifier.onnx"),
    Command("enrol", "app.cli.enrol", "capture a person's depth reference for live face verification"),
    Command("record", "app.cli.record", "record a source to an MCAP file (ROS 2 messages; replay with replay:FILE.mcap)"),
    Command("convert", "app.cli.convert", "export a source as a TUM RGB-D folder or an MCAP recording"),
    Command("calibrate", "app.cli.calibrate", "chessboard calibration of a colour camera (OpenCV YAML/JSON)"),
    Command("bench", "app.cli.bench",
            "measure every stage, the generator and the whole pipeline on this machine (table + JSON)"),
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports an argument error in one line and exits with code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # the options' type helpers say "must ..."; argparse prefixes "argument --x: "
        message = re.sub(r"^argument (\S+?): must ", r"\1 must ", " ".join(message.split()))
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, with the options of ``command`` only.

    Every command is listed (with its help) from the table; only ``command``'s module is
    imported, so ``launch.py train --help`` loads nothing of the other commands.
    """
    parser = _Parser(prog=PROG, description="facedepth: predict a face's depth map from its colour image, live.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for cmd in COMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        if cmd.name == command:
            importlib.import_module(cmd.module).add_arguments(p)
            p.set_defaults(_module=cmd.module)
    return parser


def _command_named(argv: list[str]) -> str | None:
    """The command ``argv`` names: its first word that is not an option."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` names (default: ``sys.argv``); no command, or only options, means ``run``."""
    from app import stops
    from sensors.errors import ConfigError, FacedepthError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = [DEFAULT_COMMAND, *argv]
    parser = build_parser(_command_named(argv) if argv[0] not in ("-h", "--help") else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        with stops.installed():
            return int(importlib.import_module(args._module).main(args) or 0)
    except ConfigError as exc:
        sys.stderr.write(f"{PROG} {args.command}: error: {exc}\n")
        return 2
    except FacedepthError as exc:
        sys.stderr.write(f"{PROG} {args.command}: error: {exc}\n")
        return 1
    except OSError as exc:  # a file or device the OS refused, named by the OS
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        sys.stderr.write(f"{PROG} {args.command}: error: {where}{exc.strerror or exc}\n")
        return 1
    except KeyboardInterrupt as exc:  # SIGINT or SIGTERM (app.stops), the exception says which
        stops.announce(args.command, exc)
        return stops.exit_code(exc)
