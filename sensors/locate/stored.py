"""Head centres in files the project wrote itself (MCAP recordings, TUM folders).

Since the head centre got one definition (:mod:`sensors.geometry`), files record it as
``head_center_definition`` (:data:`~sensors.geometry.HEAD_CENTRE_DEFINITION`). A file written
before holds each frame's centre as its source gave it: a dataset's own point for Biwi and
Pandora frames, the skull centre for every other source (the virtual Kinect's ground truth;
live sensors have no annotation). :func:`stored_centre` converts such a centre the way the
dataset's reader does today, when the frame's source says which dataset it came from;
:class:`StoredCentres` does that for a reader and counts what it did, for ``describe()``.
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np

from sensors.geometry import CameraIntrinsics, HEAD_CENTRE_DEFINITION
from sensors.locate.centre import CentreConversion

_OLD = "file written before the definition was recorded"


def _legacy_conversion(source: str) -> tuple[str, CentreConversion, str] | None:
    """(source prefix, the reader's conversion, what to call it) for a frame source that annotates
    another point than the skull centre; None for the others."""
    if source.startswith("biwi:"):
        from sensors.datasets.biwi import biwi_centre_conversion

        return "biwi:", biwi_centre_conversion("offset"), f"converted from Biwi's template centre ({_OLD})"
    if source.startswith("pandora:"):
        from sensors.datasets.pandora import pandora_centre_conversion

        return "pandora:", pandora_centre_conversion("refine"), f"refined from Pandora's head joint ({_OLD})"
    return None


def stored_centre(definition: str | None, source: str, centre_mm: Any, rotation: Any, raw_mm: Any,
                  depth_mm: np.ndarray | None, depth_camera: CameraIntrinsics | None,
                  conversions: dict[str, tuple[CentreConversion, str]] | None = None) -> tuple[Any, Any, str]:
    """(head centre, raw annotation, what was done) for a centre read from a file: as stored
    when the file names the project's definition; else converted by its source's reader
    (``biwi:``, ``pandora:`` frames), or as stored for other sources. ``conversions`` keeps
    the readers' conversions between calls (by source prefix)."""
    if centre_mm is None or definition == HEAD_CENTRE_DEFINITION:
        return centre_mm, raw_mm, "as stored"
    if definition is not None:
        raise ValueError(f"unknown head-centre definition {definition!r}")
    prefix = next((p for p in (conversions or {}) if source.startswith(p)), None)
    if prefix is not None:
        convert, what = conversions[prefix]
    else:
        found = _legacy_conversion(source)
        if found is None:
            return centre_mm, raw_mm, f"as stored ({_OLD}; its source annotates the skull centre)"
        prefix, convert, what = found
        if conversions is not None:
            conversions[prefix] = (convert, what)
    raw = np.asarray(centre_mm, dtype=np.float64)
    rot = None if rotation is None else np.asarray(rotation, dtype=np.float64)
    return convert(raw, rot, depth_mm, depth_camera), raw, what


class StoredCentres:
    """A file reader's head centres: :func:`stored_centre` with the conversions kept, and how
    many frames each way was taken (``describe()``)."""

    def __init__(self) -> None:
        self._conversions: dict[str, tuple[CentreConversion, str]] = {}
        self._notes: dict[str, int] = {}
        self._lock = threading.Lock()  # frames load on a capture thread while describe() may be asked elsewhere

    def __call__(self, definition: str | None, source: str, centre_mm: Any, rotation: Any, raw_mm: Any,
                 depth_mm: np.ndarray | None, depth_camera: CameraIntrinsics | None) -> tuple[Any, Any]:
        """(head centre, raw annotation) of one frame read from a file."""
        with self._lock:
            centre, raw, how = stored_centre(definition, source, centre_mm, rotation, raw_mm, depth_mm,
                                             depth_camera, self._conversions)
            if centre is not None:
                self._notes[how] = self._notes.get(how, 0) + 1
        return centre, raw

    def describe(self) -> dict[str, int]:
        with self._lock:
            return dict(self._notes)
