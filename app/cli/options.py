"""The options several commands share, defined once so that one thing has one spelling.

Each ``add_*`` adds one option with the shared name, metavar and destination; the help text
may be specific to the command. A few options had other spellings before they were shared
(README, "Command line"): ``old`` keeps such a spelling working, hidden from ``--help``.
"""
from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from typing import Any

from models.common import shipped


# -- argparse ``type=`` helpers: a bad number is a usage error (exit 2, one line naming the option) --
# Each raises ArgumentTypeError with "must ..., got 'TEXT'"; the parser writes it as
# "--OPTION must ..., got 'TEXT'" (registry._Parser). Floats must be finite: "nan" and "inf"
# parse as floats and would slip past every comparison.

def _number(text: str, kind: type) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be {'a whole number' if kind is int else 'a number'}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def int_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """A whole number >= ``minimum`` (and <= ``maximum`` when given)."""

    def parse(text: str) -> int:
        value = _number(text, int)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text!r}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {text!r}")
        return value

    parse.__name__ = "int"
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def finite_float(text: str) -> float:
    """Any finite number."""
    return _number(text, float)


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text!r}")
    return value


def float_in(low: float, high: float, high_open: bool = False) -> Callable[[str], float]:
    """A finite number in [low, high] (or [low, high) with ``high_open``)."""
    span = f"[{low:g}, {high:g}{')' if high_open else ']'}"

    def parse(text: str) -> float:
        value = _number(text, float)
        if not (low <= value and (value < high if high_open else value <= high)):
            raise argparse.ArgumentTypeError(f"must be in {span}, got {text!r}")
        return value

    parse.__name__ = "float"
    return parse


fraction = float_in(0.0, 1.0, high_open=True)
probability = float_in(0.0, 1.0)


def check_input_file(path: str | os.PathLike[str] | None, what: str) -> None:
    """Before any work starts: a file the user named must exist and be a file (FormatError
    naming it, exit 1). None (the option not given) passes."""
    from sensors.errors import FormatError

    if path is None:
        return
    if os.path.isdir(path):
        raise FormatError(f"{what} is a folder, not a file", path)
    if not os.path.exists(path):
        raise FormatError(f"{what} does not exist", path)


def check_sources(*uris: str | None) -> None:
    """Before any work starts: every source URI given parses and its options are valid
    (ConfigError, exit 2; see sensors.source.check_uri). None (not given) passes."""
    from sensors.source import check_uri

    for uri in uris:
        if uri is not None:
            check_uri(uri)


def _hidden_alias(p: Any, old: str | None, dest: str, **kwargs: Any) -> None:
    """``old`` sets ``dest`` too but is not listed; it leaves ``dest`` alone when absent."""
    if old:
        p.add_argument(old, dest=dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)


def add_source(p: Any, help: str, default: str | None = None, **kwargs: Any) -> None:
    """``--source URI``; required unless it has a ``default`` (or ``kwargs`` say otherwise)."""
    kwargs.setdefault("required", default is None)
    if default is not None:
        kwargs["default"] = default
    p.add_argument("--source", metavar="URI", help=help, **kwargs)


def add_model(p: Any, help: str = f"depth generator (default: the shipped {shipped.GENERATOR.name})") -> None:
    """``--model FILE.onnx``, a depth generator; None means the shipped one."""
    p.add_argument("--model", default=None, metavar="FILE.onnx", help=help)


def add_verifier(p: Any, help: str = f"face verifier (default: the shipped {shipped.VERIFIER.name} when present)") -> None:
    """``--verifier FILE.onnx``, a face verifier; None means the shipped one (or none, as the command says)."""
    p.add_argument("--verifier", default=None, metavar="FILE.onnx", help=help)


def add_out(p: Any, metavar: str, help: str) -> None:
    """``--out``: the file or folder the command makes (always required)."""
    p.add_argument("--out", required=True, metavar=metavar, help=help)


def add_report(p: Any, help: str = "write the JSON report here", required: bool = False,
               old: str | None = None) -> None:
    """``--report FILE.json``: the command's JSON report."""
    p.add_argument("--report", required=required, default=None, metavar="FILE.json", help=help)
    _hidden_alias(p, old, "report", metavar="FILE.json")


def add_quiet(p: Any, help: str = "no progress bar", old: str | None = None) -> None:
    """``--quiet``: no progress bars."""
    p.add_argument("--quiet", action="store_true", help=help)
    _hidden_alias(p, old, "quiet", action="store_true")


def add_threads(p: Any, help: str, default: int | None = None) -> None:
    """``--threads N``: CPU threads (of PyTorch or ONNX Runtime, as ``help`` says)."""
    p.add_argument("--threads", type=non_negative_int, default=default, metavar="N", help=help)


def add_device(p: Any, help: str, default: str | None = "auto") -> None:
    """``--device {auto,cpu,cuda}``: where PyTorch trains."""
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=default, help=help)


def add_seed(p: Any, help: str, default: int | None = 0) -> None:
    """``--seed S``: the random seed."""
    p.add_argument("--seed", type=non_negative_int, default=default, metavar="S", help=help)


def add_max_frames(p: Any, help: str, group: Any = None) -> None:
    """``--max-frames N``: read at most N frames of the source (``group``: a mutually exclusive group).
    N is at least 1; leave the option out for no limit (0 is refused, not read as "no limit")."""
    (group or p).add_argument("--max-frames", type=positive_int, default=None, metavar="N", help=help)


def add_every(p: Any, help: str, default: int, type: Any = positive_int) -> None:
    """``--every K``: take every K-th frame."""
    p.add_argument("--every", type=type, default=default, metavar="K", help=help)


def add_batch_size(p: Any, help: str, default: int | None, old: str | None = None,
                   type: Any = positive_int) -> None:
    """``--batch-size B``: samples per training step."""
    p.add_argument("--batch-size", type=type, default=default, metavar="B", help=help)
    _hidden_alias(p, old, "batch_size", type=type, metavar="B")


def add_max_minutes(p: Any, help: str, type: Any = positive_float) -> None:
    """``--max-minutes M``: a wall-time limit for training."""
    p.add_argument("--max-minutes", type=type, default=None, metavar="M", help=help)


def add_force(p: Any, help: str = "overwrite the output if it exists (never an input being read)") -> None:
    """``--force``: write over an existing output (the one overwrite rule: ``app.cli.outputs``)."""
    p.add_argument("--force", action="store_true", help=help)
