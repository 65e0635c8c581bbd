"""The project's error hierarchy.

Every error the project raises on purpose derives from :class:`FacedepthError`, so callers
catch what they mean and the CLI turns any of them into a one-line message. The hierarchy
lives in ``sensors`` because that is the lowest layer: ``models`` and ``app`` import it from
here, and ``sensors`` imports nothing else from the project. The models' own errors
(``ModelError``, ``VerificationError``) derive from it in ``models.common.errors``.

    FacedepthError            base of everything below
    ├── ConfigError           a bad URI, option or argument value (CLI exit code 2)
    ├── SensorError           a device is absent, its driver is missing, or a frame is malformed
    │   └── SourceLostError   a live source stopped delivering (unplugged, hung)
    └── FormatError           a file is missing, unreadable, or not what its format says
        └── FramesLostError   a stretch of frames a file promised is lost (truncated video, damaged recording)

``EOFError`` (end of a recording) and ``TimeoutError`` (no frame within the read timeout)
are the built-in exceptions, used as their names say; they are not errors of the project.
"""
from __future__ import annotations

import os


class FacedepthError(Exception):
    """Base of every error the project raises on purpose.

    ``path`` names the file or device the error is about; ``str()`` gives one line that
    starts with it, ready for the CLI and the GUI.
    """

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        self.message = " ".join(str(message).split())  # always one line
        self.path = None if path is None else os.fspath(path)
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(FacedepthError):
    """A source URI, option or argument value is malformed or unknown."""


class SensorError(FacedepthError):
    """A sensor cannot be opened (driver missing, device absent) or delivers a malformed frame."""


class SourceLostError(SensorError):
    """A live source stopped delivering frames (unplugged, hung, crashed)."""


class FormatError(FacedepthError):
    """A file is missing or unreadable, or its content is not what its format says."""


class FramesLostError(FormatError):
    """Frames a file promised but cannot deliver: the end of a truncated video, a damaged stretch
    of a recording. ``frames`` of them were lost, ``span_s`` seconds of stream (None when not
    known). Raised once, where the loss is found; the stream goes on past it where it can."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None, *, frames: int,
                 span_s: float | None = None) -> None:
        super().__init__(message, path)
        self.frames = int(frames)
        self.span_s = None if span_s is None else float(span_s)
