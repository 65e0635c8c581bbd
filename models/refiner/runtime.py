"""Learned refinement of the head centre: a small network that looks at a wide crop around a
rough head centre and says where the true centre is. numpy and onnxruntime only (the live path
runs it); the network is ``models.refiner.net``, its training ``models.refiner.train`` and its
export ``models.refiner.export``.

Why
    The depth silhouette (``sensors.locate.silhouette.measure_head``) places the head centre's column well,
    but its row depends on hair, pitch and the neck, which a hand-made model of the silhouette
    captures only roughly (about 8 mm median error). The face itself (nose, eye sockets, chin in
    depth; eyes and mouth in colour) fixes the skull far better, and a network learns that
    relation from annotated frames.

Input (``refine_input``, shared by training and inference)
    The crop of the frame around the rough centre, cut by ``sensors.crop.crop_face`` with a
    wider window than the face crop (``RefinerSpec.crop``, 320 mm over 64 px by default), as
    two uint8 planes: the depth in the 8-bit encoding around the rough centre's distance and
    the grey colour. The network turns them into relative depth, a valid mask and centred grey.

Output
    The true centre relative to the rough one: its offset in crop pixels of that wide crop
    (x right, y down) and its depth difference in units of ``DZ_SCALE_MM``; and the logit of
    "a head is centred within a few cm of here" (``head_probability``), which lets the locator
    reject a face box or depth candidate that is not a head (a seat, a door, a hand). ``HeadRefiner``
    maps the offset back through the crop's window onto the colour-camera ray, and repeats the
    step ``RefinerSpec.iterations`` times (each from the previous step's centre). A step that
    lands further than ``RefinerSpec.max_step_mm`` from where it started is refused: the rough
    centre was too far off for the network (or not on a head), and the last trusted centre
    stands.

The ONNX file carries its spec (crop, iterations, training sources) as JSON in the metadata
key :data:`METADATA_KEY`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from models.common import shipped
from models.common.errors import ModelError
from models.common.runtime import open_session
from sensors.crop import CropConfig, crop_face
from sensors.errors import FormatError, SensorError
from sensors.frame import Frame

#: ONNX metadata key holding the refiner's JSON spec
METADATA_KEY = "facedepth.head_refiner"
#: the network's third output is the depth difference in these units (mm)
DZ_SCALE_MM = 10.0
#: the shipped refiner
DEFAULT_PATH = os.fspath(shipped.REFINER)


@dataclass(frozen=True)
class RefinerSpec:
    """How the refiner is applied: its input crop, the number of steps, the largest step it may take."""

    crop: CropConfig = CropConfig(size_px=64, window_x_mm=320.0, window_y_mm=320.0, half_range_mm=150.0)
    iterations: int = 3
    max_step_mm: float = 150.0

    def to_dict(self) -> dict[str, Any]:
        return {"crop": self.crop.to_dict(), "iterations": self.iterations, "max_step_mm": self.max_step_mm}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RefinerSpec":
        return cls(CropConfig.from_dict(d["crop"]), int(d["iterations"]), float(d["max_step_mm"]))


@dataclass(frozen=True)
class RefineStep:
    """One step's geometry: the crop window it looked through (colour-image pixels) and its centre."""

    window_px: tuple[float, float, float, float]
    distance_mm: float


def refine_input(frame: Frame, center_color_mm: np.ndarray, crop: CropConfig) -> tuple[np.ndarray, RefineStep]:
    """The network's input for a rough centre, (2, S, S) uint8: the depth crop's 8-bit levels
    around the rough centre's distance (0 = invalid) and the grey colour crop; and the step's
    geometry. The network normalises the planes itself (``models.refiner.net``)."""
    fc = crop_face(frame, center_color_mm, crop)
    levels = fc.depth8()
    if levels is None:
        raise SensorError("head refinement needs a frame with depth")
    grey = cv2.cvtColor(fc.color, cv2.COLOR_RGB2GRAY)
    return np.stack([levels, grey]), RefineStep(fc.window_px, fc.distance_mm)


def refine_target(frame: Frame, step: RefineStep, true_center_color_mm: np.ndarray, crop: CropConfig) -> np.ndarray:
    """The training target for a step: the true centre's offset from the crop centre in crop
    pixels (x, y) and its depth difference / DZ_SCALE_MM, float32 (3,)."""
    from sensors.crop import window_to_crop

    c = np.asarray(true_center_color_mm, dtype=np.float64).reshape(3)
    xy = window_to_crop(frame.color_camera.project(c[None]), step.window_px, crop.size_px)[0]
    mid = (crop.size_px - 1) / 2.0
    return np.array([xy[0] - mid, xy[1] - mid, (c[2] - step.distance_mm) / DZ_SCALE_MM], np.float32)


def apply_output(frame: Frame, step: RefineStep, out: np.ndarray, crop: CropConfig) -> np.ndarray:
    """The centre (colour-camera mm) a network output points at: the inverse of ``refine_target``."""
    x0, y0, w, h = step.window_px
    mid = (crop.size_px - 1) / 2.0
    u = x0 + (float(out[0]) + mid + 0.5) * w / crop.size_px
    v = y0 + (float(out[1]) + mid + 0.5) * h / crop.size_px
    z = step.distance_mm + float(out[2]) * DZ_SCALE_MM
    cam = frame.color_camera
    return cam.ray(u, v) * z


class HeadRefiner:
    """The exported refiner run through ONNX Runtime; call it with (frame, rough centre).

    ``HeadRefiner(path)`` raises FormatError naming the file when it is missing or not a
    refiner. Calling it returns the refined centre in colour-camera mm (the rough one when the
    frame has no depth or a step is refused).
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_PATH, threads: int = 1) -> None:
        self.path = os.fspath(path)
        try:
            opened = open_session(self.path, provider="cpu", threads=threads, what="head refiner",
                                  missing_hint="make one with `launch.py train-refiner`")
        except ModelError as exc:
            # the refiner is an optional part of the locator: its file is reported like the
            # locator's other data files
            raise FormatError(exc.message, exc.path) from None
        self._session = opened.session
        try:
            info = json.loads(opened.metadata[METADATA_KEY])
            self.spec = RefinerSpec.from_dict(info["spec"])
        except KeyError:
            raise FormatError(f"not a head refiner: no {METADATA_KEY} metadata", self.path) from None
        except (json.JSONDecodeError, TypeError, ValueError) as exc:
            raise FormatError(f"not a readable head refiner ({type(exc).__name__}: {exc})", self.path) from None
        self.info = info
        self._input = self._session.get_inputs()[0].name
        # the steps already taken on the newest frame, by centre: a candidate judged and then
        # refined, or judged among several, is looked at once
        self._frame_key: tuple | None = None
        self._seen: dict[bytes, tuple[RefineStep, np.ndarray] | None] = {}

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N, 2, S, S) uint8 inputs -> (N, 4) outputs: offset x, y, depth difference, head logit."""
        return self._session.run(None, {self._input: np.ascontiguousarray(x, np.uint8)})[0]

    def _step(self, frame: Frame, center: np.ndarray) -> tuple[RefineStep, np.ndarray] | None:
        frame_key = (id(frame), frame.index, frame.timestamp_ns)
        if frame_key != self._frame_key:
            self._frame_key, self._seen = frame_key, {}
        key = center.tobytes()
        if key not in self._seen:
            try:
                x, step = refine_input(frame, center, self.spec.crop)
                self._seen[key] = step, self.predict(x[None])[0]
            except SensorError:  # no depth, or a centre behind the camera
                self._seen[key] = None
        return self._seen[key]

    def head_probability(self, frame: Frame, center_color_mm: np.ndarray) -> float:
        """How likely a head is centred within a few cm of ``center_color_mm`` (0..1; 0 without depth)."""
        got = self._step(frame, np.asarray(center_color_mm, dtype=np.float64).reshape(3))
        return 0.0 if got is None else float(1.0 / (1.0 + np.exp(-got[1][3])))

    def __call__(self, frame: Frame, center_color_mm: np.ndarray) -> np.ndarray:
        center = np.asarray(center_color_mm, dtype=np.float64).reshape(3)
        for _ in range(self.spec.iterations):
            got = self._step(frame, center)
            if got is None:
                return center
            new = apply_output(frame, got[0], got[1], self.spec.crop)
            if not np.all(np.isfinite(new)) or np.linalg.norm(new - center) > self.spec.max_step_mm:
                return center
            center = new
        return center


def load_refiner(path: str | os.PathLike[str] | None = DEFAULT_PATH) -> HeadRefiner | None:
    """The refiner at ``path``; None for ``None`` or ``"none"``, and for the shipped default when
    it is absent (a checkout without weights locates heads without refinement). Any other
    missing or malformed file is a FormatError naming it."""
    if path is None or os.fspath(path) == "none":
        return None
    if os.fspath(path) == DEFAULT_PATH and not os.path.isfile(DEFAULT_PATH):
        return None
    return HeadRefiner(path)


def default_locator(smoothing: bool) -> Any:
    """The app's head locator (``sensors.locate.locator.HeadLocator``) with the shipped refiner when
    it is there: one place for the pipeline and ``enrol``. It tracks: the app plays every source in
    order (cameras, videos, recordings, photo folders); dataset building, which takes frames apart,
    detects each afresh with a locator of its own. ``smoothing`` (live cameras) steadies the centre
    over time; a recording or dataset is scored on unsmoothed centres, which lag behind no motion."""
    from sensors.locate.locator import HeadLocator, LocatorConfig

    return HeadLocator(LocatorConfig(smoothing=smoothing), live=True, refiner=load_refiner())
