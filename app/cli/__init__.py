"""The command line: one registry of commands (``registry``), the options they share
(``options``) and one thin module per command that parses its arguments, builds a frozen
config and calls the library.

A command module defines ``add_arguments(parser)`` and ``main(args) -> int`` and keeps heavy
imports (torch, Qt, onnxruntime) inside ``main``: building a parser imports only the module of
the command being run, and the live commands never load torch.
"""
from __future__ import annotations

from app.cli.registry import main

__all__ = ["main"]
