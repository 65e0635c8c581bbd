"""Where commands write: every output path is checked before any work starts, under one rule.

The rule (README, "Command line"):

- the folder an output goes in must exist and be writable (a recording also needs some free
  space there); the command does not make missing folders, so a mistyped folder fails at once
  instead of after the work;
- an output that exists is refused unless ``--force`` (a folder output only when it holds
  something: an empty folder is fine); ``train --resume`` and ``--export-only`` write into
  their run folder by design;
- an output is never one of the command's inputs (the same file, or a folder output holding an
  input), whatever the flags: ``record --source replay:X.mcap --out X.mcap --force`` is refused.

Errors are one line naming the path the user typed: :class:`OutputError` (exit 1) when the file
system says no, :class:`~sensors.errors.ConfigError` (exit 2) when the arguments ask for an
overwrite that needs ``--force`` or one that is never allowed.
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterable
from typing import Literal

from sensors.errors import ConfigError, FacedepthError

#: free space a recording needs in its folder before it starts (a few seconds of a Kinect);
#: a disk that fills up later still ends the recording cleanly with every frame before it
MIN_RECORDING_FREE_BYTES = 64 * 1024 * 1024

PathLike = str | os.PathLike[str]


class OutputError(FacedepthError):
    """An output cannot be written where the command was told to write it (CLI exit code 1)."""


def check_output(path: PathLike, *, option: str = "--out", force: bool = False,
                 inputs: Iterable[PathLike | None] = (), kind: Literal["file", "folder"] = "file",
                 min_free_bytes: int = 0, hint: str = "") -> None:
    """Raise when the command may not write ``path`` (see the module docstring); create nothing.

    ``inputs``: the files and folders the command reads (None entries and paths that do not
    exist are ignored). ``kind``: whether the output is a file or a folder the command fills.
    ``hint``: words added to the "pass --force" message (e.g. "or --resume to continue it").
    """
    shown = os.fspath(path)
    if not shown.strip():
        raise ConfigError(f"{option} needs a path")
    target = os.path.expanduser(shown)
    _check_not_an_input(target, shown, option, kind, inputs)
    mode = _stat_mode(target, shown)
    if mode is not None:
        if kind == "file" and stat.S_ISDIR(mode):
            raise OutputError(f"is a folder; {option} names a file to write", shown)
        if kind == "folder" and not stat.S_ISDIR(mode):
            raise OutputError(f"is a file; {option} names a folder to write into", shown)
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            # a device or pipe (/dev/null): written as it is, nothing is replaced
            if not os.access(target, os.W_OK):
                raise OutputError("is not writable", shown)
            return
        if not force and (kind == "file" or _holds_anything(target)):
            what = "exists; pass --force to overwrite it" if kind == "file" else \
                "exists and is not empty; pass --force to write into it"
            raise ConfigError(f"{what}{' ' + hint if hint else ''}", shown)
    folder = target if kind == "folder" and mode is not None else os.path.dirname(os.path.abspath(target))
    _check_writable_folder(folder, shown)
    if min_free_bytes > 0:
        free = shutil.disk_usage(folder).free
        if free < min_free_bytes:
            raise OutputError(f"only {free / 2**20:.0f} MiB free in {folder}; "
                              f"at least {min_free_bytes / 2**20:.0f} MiB are needed", shown)


def source_inputs(uri: str) -> tuple[str, ...]:
    """The files and folders a source URI reads (its path and the files its options name)."""
    from sensors.source import PATH_SCHEMES, parse_uri

    parsed = parse_uri(uri)
    paths = [parsed.target] if parsed.scheme in PATH_SCHEMES and parsed.target else []
    paths += [parsed.options[k] for k in ("calibration", "face_model") if parsed.options.get(k)]
    return tuple(paths)


def _stat_mode(path: str, shown: str) -> int | None:
    try:
        return os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:  # e.g. a path under a file (NotADirectoryError) or a folder we may not enter
        if os.path.lexists(path) or not isinstance(exc, NotADirectoryError):
            raise OutputError(f"cannot be reached ({exc.strerror})", shown) from None
        return None


def _holds_anything(folder: str) -> bool:
    with os.scandir(folder) as entries:
        return next(entries, None) is not None


def _check_writable_folder(folder: str, shown: str) -> None:
    """The folder exists, is a folder, and a file can be made in it (tried, not guessed: the
    permission bits do not tell about read-only mounts, ACLs or root)."""
    if not os.path.exists(folder):
        raise OutputError(f"folder {folder} does not exist (make it first)", shown)
    if not os.path.isdir(folder):
        raise OutputError(f"{folder} is not a folder", shown)
    try:
        fd, probe = tempfile.mkstemp(prefix=".facedepth-write-test-", dir=folder)
    except OSError as exc:
        raise OutputError(f"folder {folder} is not writable ({exc.strerror})", shown) from None
    os.close(fd)
    os.remove(probe)


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def _check_not_an_input(target: str, shown: str, option: str, kind: str,
                        inputs: Iterable[PathLike | None]) -> None:
    """Never write onto what is being read, whatever the flags (resolved paths, so a link or
    another spelling of the same file is caught too)."""
    if not os.path.lexists(target):
        return
    out_real = os.path.realpath(target)
    for item in inputs:
        if item is None or not os.fspath(item).strip():
            continue
        inp = os.path.expanduser(os.fspath(item))
        if not os.path.exists(inp):
            continue
        same = os.path.samefile(inp, target) if os.path.exists(target) else False
        if same or (kind == "folder" and os.path.isdir(out_real) and _inside(os.path.realpath(inp), out_real)):
            what = "is also" if same else "holds"
            named = "" if os.fspath(item) == shown else f" ({os.fspath(item)})"
            raise ConfigError(f"{what} an input of this command{named}; choose another {option} "
                              "(an input is never overwritten, even with --force)", shown)
