#!/usr/bin/env python3
"""facedepth: the single entry point. ``python launch.py`` alone means ``run`` with defaults.

Each subcommand lives in its own module that defines ``add_arguments(parser)`` and
``main(args) -> int``. Command modules keep heavy imports (torch, Qt, onnxruntime) inside
``main`` so that building this parser stays fast, and so that the live commands never load
torch. This file sits outside the packages on purpose: it is the one place that knows both
the live commands (``app``) and the offline ones (``models``).

Exit codes: 0 success; 1 a failure with a one-line message naming the file or device;
2 unknown or malformed arguments; 130 interrupted (Ctrl-C).
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: name -> (module, one-line help). A module listed here must exist.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("app.run_command", "run the live app (GUI, or --headless with a JSON report)"),
    "contact-sheet": ("sensors.virtual.contact_sheet", "render 16 virtual people in several poses with their depth maps to a PNG"),
    "build-dataset": ("models.data.build", "turn sources (virtual Kinect, Biwi, Pandora, recordings) into one crop dataset file"),
    "train": ("models.generator.train", "train the depth generator (cgan, or the ae baseline) on a crop dataset"),
    "average": ("models.generator.average", "average the weights of generator runs fine-tuned from one checkpoint (a model soup)"),
    "export": ("models.generator.export", "export a trained generator checkpoint to one self-contained ONNX file"),
    "evaluate": ("models.evaluation.generator", "score generators and baselines on a crop dataset: JSON report and figure"),
    "evaluate-locator": ("models.evaluation.locator", "score head localisation against annotated head centres, in crop pixels per yaw bin"),
    "train-refiner": ("models.refiner.train", "train the head-centre refiner on annotated frames and export head_refiner.onnx"),
    "train-verifier": ("models.verifier.train", "train the face verifier on true depth crops and export verifier.onnx"),
    "enrol": ("app.enrol_command", "capture a person's depth reference for live face verification"),
    "record": ("app.record_command", "record a source to an MCAP file (ROS 2 messages; replay with replay:FILE.mcap)"),
    "convert": ("app.convert_command", "export a source as a TUM RGB-D folder or an MCAP recording"),
    "calibrate": ("app.calibrate_command", "chessboard calibration of a colour camera (OpenCV YAML/JSON)"),
    "bench": ("app.bench", "measure every stage, the generator and the whole pipeline on this machine (table + JSON)"),
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports an argument error in one line and exits with code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="launch.py",
        description="facedepth: predict a face's depth map from its colour image, live.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_module=module_name)
    return parser


def main(argv: list[str] | None = None) -> int:
    from sensors.errors import ConfigError, FacedepthError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["run", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(importlib.import_module(args._module).main(args) or 0)
    except ConfigError as exc:
        sys.stderr.write(f"launch.py {args.command}: error: {exc}\n")
        return 2
    except FacedepthError as exc:
        sys.stderr.write(f"launch.py {args.command}: error: {exc}\n")
        return 1
    except OSError as exc:  # a file or device the OS refused, named by the OS
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        sys.stderr.write(f"launch.py {args.command}: error: {where}{exc.strerror or exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"launch.py {args.command}: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
