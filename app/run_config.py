"""What ``run`` needs, in the window or headless: the source, the models and where results go."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models.common import shipped

#: the source ``run`` and ``enrol`` read when none is given: the built-in virtual Kinect. The
#: GUI tells "no --source" from an explicit ``--source virtual:`` by identity with this object
#: (``app.gui.initial_source``), so pass it on as it is.
DEFAULT_SOURCE = "virtual:"


@dataclass(frozen=True)
class RunConfig:
    """One run of the live app. ``verifier`` is skipped when the file is absent (the shipped
    one may not be); ``max_frames`` None runs to the end of the source (or until closed), else it is at least 1
    (the command line refuses 0); ``report``, ``save`` (headless) and ``screenshot`` (GUI) None mean not
    written; ``enrolment`` (from ``launch.py enrol``) is the reference live verification scores against."""

    model: Path = shipped.GENERATOR
    source: str = DEFAULT_SOURCE
    second_model: Path | None = None
    verifier: Path = shipped.VERIFIER
    max_frames: int | None = None
    report: Path | None = None
    save: Path | None = None
    screenshot: Path | None = None
    enrolment: Path | None = None
    view3d: bool = False                          # GUI: open the 3D view at start
    window_size_px: tuple[int, int] | None = None  # GUI: (width, height); None: as last time
