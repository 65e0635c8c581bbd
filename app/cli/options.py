"""The options several commands share, defined once so that one thing has one spelling.

Each ``add_*`` adds one option with the shared name, metavar and destination; the help text
may be specific to the command. A few options had other spellings before they were shared
(README, "Command line"): ``old`` keeps such a spelling working, hidden from ``--help``.
"""
from __future__ import annotations

import argparse
from typing import Any

from models.common import shipped


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
    p.add_argument("--threads", type=int, default=default, metavar="N", help=help)


def add_device(p: Any, help: str, default: str | None = "auto") -> None:
    """``--device {auto,cpu,cuda}``: where PyTorch trains."""
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=default, help=help)


def add_seed(p: Any, help: str, default: int | None = 0) -> None:
    """``--seed S``: the random seed."""
    p.add_argument("--seed", type=int, default=default, metavar="S", help=help)


def add_max_frames(p: Any, help: str, group: Any = None) -> None:
    """``--max-frames N``: read at most N frames of the source (``group``: a mutually exclusive group)."""
    (group or p).add_argument("--max-frames", type=int, default=None, metavar="N", help=help)


def add_every(p: Any, help: str, default: int, type: Any = int) -> None:
    """``--every K``: take every K-th frame."""
    p.add_argument("--every", type=type, default=default, metavar="K", help=help)


def add_batch_size(p: Any, help: str, default: int | None, old: str | None = None) -> None:
    """``--batch-size B``: samples per training step."""
    p.add_argument("--batch-size", type=int, default=default, metavar="B", help=help)
    _hidden_alias(p, old, "batch_size", type=int, metavar="B")


def add_max_minutes(p: Any, help: str) -> None:
    """``--max-minutes M``: a wall-time limit for training."""
    p.add_argument("--max-minutes", type=float, default=None, metavar="M", help=help)


def add_force(p: Any, help: str = "overwrite the output if it exists (never an input being read)") -> None:
    """``--force``: write over an existing output (the one overwrite rule: ``app.cli.outputs``)."""
    p.add_argument("--force", action="store_true", help=help)
