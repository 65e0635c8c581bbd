"""Writing files so that a reader never sees half of one, and their hashes.

Every file the project writes as a whole (reports, datasets, checkpoints, exported models,
enrolments, pair lists, CSV) goes through :func:`atomic_path`: it is written beside its
destination under a temporary name and renamed over it only when complete, so an interrupted
run leaves the previous file (or none), never a truncated one. Recordings stream frame by frame
and keep their own scheme (``sensors.recording``).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[str]:
    """A temporary path beside ``path`` (``PATH.partial`` + ``suffix``, for writers that insist on
    an ending such as ``.onnx`` or ``.npz``) to write to; renamed over ``path`` when the block ends,
    removed when it raises (an OSError about the temporary then names ``path``). A device or
    pipe at ``path`` is written directly."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path):
        yield path  # a device or pipe (/dev/null): written as it is, never replaced by a file
        return
    tmp = f"{path}.partial{suffix}"
    try:
        yield tmp
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(exc, OSError) and exc.filename == tmp:
            exc.filename = path  # the error names the file the user asked for, not the temporary
        raise
    try:
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        exc.filename, exc.filename2 = path, None
        raise


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 1, **dumps: Any) -> None:
    """Write ``obj`` as JSON (with a final newline) to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=indent, **dumps) + "\n")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
