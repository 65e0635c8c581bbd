"""A dataset's own head annotation turned into the project's head centre (:mod:`sensors.geometry`):
an offset in the head's axes, optionally measured from the frame's depth."""
from __future__ import annotations

import threading
from collections import deque

import numpy as np

from sensors.errors import ConfigError
from sensors.geometry import CameraIntrinsics, centre_from_anchor
from sensors.locate.silhouette import measure_head


def refine_centre(depth_mm: np.ndarray, cam: CameraIntrinsics, centre_mm: np.ndarray,
                  max_move_mm: float = 80.0) -> np.ndarray | None:
    """The head centre measured from the depth image's head silhouette (:func:`measure_head`)
    at the pixel ``centre_mm`` (depth-camera mm, roughly the head centre) projects to; None
    when no plausible head is there or the measured centre lies over ``max_move_mm`` away."""
    c = np.asarray(centre_mm, dtype=np.float64).reshape(3)
    if c[2] <= 0:
        return None
    u, v = cam.project(c[None])[0]
    shape = measure_head(depth_mm, cam, u, v)
    if shape is None or not shape.plausible:
        return None
    if float(np.linalg.norm(shape.center_depth_mm - c)) > max_move_mm:
        return None
    return np.asarray(shape.center_depth_mm, dtype=np.float64)


class CentreConversion:
    """How a dataset reader turns its own head annotation into the project's head centre
    (:mod:`sensors.geometry`), and what it has done so far, for ``describe()``.

    ``method``: ``offset`` (the centre is ``offset_head_mm`` from the annotated point, in the
    head's own axes, so it stays right as the head turns) or ``refine`` (that, then measured
    from the frame's depth with the locator's head model, :func:`refine_centre`; the offset
    alone where the measurement fails). ``note`` says where the offset comes from.
    """

    METHODS = ("offset", "refine")
    #: the moves kept for the median in ``describe()``
    RECENT = 2000

    def __init__(self, method: str, offset_head_mm: np.ndarray, note: str) -> None:
        if method not in self.METHODS:
            raise ConfigError(f"centre={method!r}: must be one of {', '.join(self.METHODS)}")
        self.method = method
        self.offset_head_mm = np.asarray(offset_head_mm, dtype=np.float64).reshape(3)
        self.note = note
        self.frames = 0
        self.refine_failed = 0
        self._moves: deque[float] = deque(maxlen=self.RECENT)
        self._max_move = 0.0
        self._lock = threading.Lock()  # frames load on a capture thread while describe() may be asked elsewhere

    def __call__(self, raw_mm: np.ndarray, rotation: np.ndarray | None, depth_mm: np.ndarray | None = None,
                 depth_camera: CameraIntrinsics | None = None) -> np.ndarray:
        """The project's head centre for an annotated point ``raw_mm`` (depth-camera mm)."""
        raw = np.asarray(raw_mm, dtype=np.float64).reshape(3)
        centre = centre_from_anchor(raw, rotation, self.offset_head_mm)
        measured_failed = 0
        if self.method == "refine":
            measured = None
            if depth_mm is not None and depth_camera is not None:
                measured = refine_centre(depth_mm, depth_camera, centre)
            if measured is None:
                measured_failed = 1
            else:
                centre = measured
        move = float(np.linalg.norm(centre - raw))
        with self._lock:
            self.frames += 1
            self.refine_failed += measured_failed
            self._max_move = max(self._max_move, move)
            self._moves.append(move)
        return centre

    def describe(self) -> dict:
        with self._lock:
            moves, frames, failed, max_move = list(self._moves), self.frames, self.refine_failed, self._max_move
        d = {"definition": "skull centre (sensors.geometry)", "method": self.method,
             "offset_head_mm": [round(float(v), 1) for v in self.offset_head_mm], "offset_source": self.note,
             "frames_converted": frames,
             "moved_mm": None if not moves else {
                 "median": round(float(np.median(moves)), 1), "max": round(max_move, 1),
                 "median_over": f"the last {len(moves)} frames"},
             "raw_annotation": "kept as Frame.head_center_raw_mm"}
        if self.method == "refine":
            d["refine_failed"] = failed
        return d
