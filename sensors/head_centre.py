"""Head centres in files the project wrote itself (MCAP recordings, TUM folders).

Since the head centre got one definition (:mod:`sensors.geometry`), files record it as
``head_center_definition`` (:data:`~sensors.geometry.HEAD_CENTRE_DEFINITION`). A file written
before holds each frame's centre as its source gave it: a dataset's own point for Biwi and
Pandora frames, the skull centre for every other source (the virtual Kinect's ground truth;
live sensors have no annotation). :func:`stored_centre` converts such a centre the way the
dataset's reader does today, when the frame's source says which dataset it came from.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .frame import CameraIntrinsics
from .geometry import HEAD_CENTRE_DEFINITION

_OLD = "file written before the definition was recorded"


def stored_centre(definition: str | None, source: str, centre_mm: Any, rotation: Any, raw_mm: Any,
                  depth_mm: np.ndarray | None, depth_camera: CameraIntrinsics | None) -> tuple[Any, Any, str]:
    """(head centre, raw annotation, what was done) for a centre read from a file: as stored
    when the file names the project's definition; else converted by its source's reader
    (``biwi:``, ``pandora:`` frames), or as stored for other sources."""
    if centre_mm is None or definition == HEAD_CENTRE_DEFINITION:
        return centre_mm, raw_mm, "as stored"
    if definition is not None:
        raise ValueError(f"unknown head-centre definition {definition!r}")
    if source.startswith("biwi:"):
        from .biwi import biwi_centre_conversion

        convert, what = biwi_centre_conversion("offset"), f"converted from Biwi's template centre ({_OLD})"
    elif source.startswith("pandora:"):
        from .pandora import pandora_centre_conversion

        convert, what = pandora_centre_conversion("refine"), f"refined from Pandora's head joint ({_OLD})"
    else:
        return centre_mm, raw_mm, f"as stored ({_OLD}; its source annotates the skull centre)"
    raw = np.asarray(centre_mm, dtype=np.float64)
    rot = None if rotation is None else np.asarray(rotation, dtype=np.float64)
    return convert(raw, rot, depth_mm, depth_camera), raw, what
