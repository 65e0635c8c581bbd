"""Head localisation: where the head centre is, in colour-camera millimetres, for the crop.

Three ways, each usable on its own (``LocatorConfig.mode``):

1. **annotation** -- the source's ``head_center_mm`` (Biwi pose, Pandora head joint, the virtual
   Kinect's ground truth), moved to colour-camera coordinates. Never smoothed.
2. **colour + depth** -- a face detector (:mod:`sensors.locate.colour`: OpenCV's bundled Haar
   cascades, frontal and both profiles) on a downscaled colour image; the face box's centre is
   mapped into the depth image, where the head's silhouette is measured
   (:mod:`sensors.locate.silhouette`, ``measure_head``): its left/right extent, halved, gives
   the centre's column (yaw-independent for a roughly ellipsoidal head), a linear fit of the
   top, widest row, neck and widths gives its row, and the nearest face depth plus a fixed
   depth behind it its distance. When the cascades find no face (strong roll, turned or dark
   faces), the depth image alone is searched for a head on shoulders (``find_head_candidates``)
   and the best candidate that measures as a head is used (method ``depth``).
   A detected centre in a frame with depth can then be refined by a learned model given to the
   locator (``HeadLocator(refiner=...)``; ``models.refiner.runtime``: a small network that reads a
   wide crop around the centre and says where the skull centre is; the app and the offline
   commands use the shipped one). This module only calls it: sensors import nothing else of
   the project.
3. **colour only** (webcams, photos) -- the detector, and the distance from the detected box's
   width and the focal length (a face box spans about ``LocatorConfig.face_box_mm``).

Live tracking (``HeadLocator(live=True)``, the app's locator for every source it plays: live
cameras, videos, recordings and photo folders alike): the detector first searches a region
around the last face at a resolution matched to its size (a few ms), and the whole frame only
when the face is lost or the frames are not consecutive (a seek, a gap of over
``CONSECUTIVE_S``); with ``LocatorConfig.smoothing`` (the app sets it for live cameras) the
centre is smoothed causally (a One Euro filter: steady when still, little lag when moving). With several faces in view the nearest (largest) one is tracked; ``select(point)``
switches to the face under an image point. Offline (``live=False``, dataset building) every
frame is detected afresh and nothing is smoothed; annotations are never smoothed.

``locate`` returns ``None`` when there is no face: never an exception for an empty frame.

Head axes, rotations and the head centre's definition are those of :mod:`sensors.geometry`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from sensors.errors import ConfigError
from sensors.frame import Frame
from sensors.geometry import CameraIntrinsics, FACE_TO_CENTER_MM
from sensors.locate.colour import FaceDetector, detection_gray
from sensors.locate.silhouette import find_head_candidates, measure_head

MODES = ("auto", "annotation", "detect")
#: a refiner's head probability below this rejects a centre
HEAD_PROBABILITY = 0.5
#: when the refiner accepts none of the depth search's candidates, it is run from this many of them
RESCUE_CANDIDATES = 3


class Refiner(Protocol):
    """A learned judge and refinement of head centres (``models.refiner.runtime.HeadRefiner``)."""

    def __call__(self, frame: Frame, center_color_mm: np.ndarray) -> np.ndarray:
        """The refined centre (colour-camera mm); the given one when it cannot do better."""

    def head_probability(self, frame: Frame, center_color_mm: np.ndarray) -> float:
        """How likely a head is centred about here (0..1)."""


@dataclass(frozen=True, eq=False)
class HeadLocation:
    """Where the head is: ``center_color_mm`` (3,) in colour-camera mm; ``method`` one of
    ``annotation``, ``color+depth``, ``depth``, ``color``; ``face_box_px`` the detector's box
    (x, y, w, h) in colour-image pixels (for ``depth``, the box a frontal face there would give;
    None for annotations); ``detect_ms`` the time spent locating; ``refined`` whether the
    locator's refiner moved the detected centre."""

    center_color_mm: np.ndarray
    method: str
    face_box_px: tuple[int, int, int, int] | None = None
    detect_ms: float = 0.0
    refined: bool = False

    def __post_init__(self) -> None:
        c = np.asarray(self.center_color_mm, dtype=np.float64).reshape(3).copy()
        c.setflags(write=False)
        object.__setattr__(self, "center_color_mm", c)

    @property
    def distance_mm(self) -> float:
        """D: the head centre's z in colour-camera coordinates."""
        return float(self.center_color_mm[2])


@dataclass(frozen=True)
class LocatorConfig:
    """How heads are found.

    ``mode``: ``auto`` (the annotation when the frame has one, else detection), ``annotation``
    (only annotations; frames without one have no face) or ``detect`` (never annotations).
    ``smoothing`` / ``smoothing_min_cutoff_hz`` / ``smoothing_beta``: the live One Euro filter
    (cut-off frequency at rest, and how fast it opens with speed in mm/s).
    ``detect_width_px``: the colour image is downscaled to this width for full-frame detection.
    ``min_face_px``: smallest face searched, in pixels of that downscaled image.
    ``roi_margin``: the live search region is the last face box grown by this many box sizes on
    each side. ``face_box_mm``: the physical width a detector box spans at the face (colour-only
    distance). ``face_to_center_mm``: depth of the head centre behind the face surface.
    ``use_rotation``: orient that offset by ``Frame.head_rotation`` when a frame has one.
    """

    mode: str = "auto"
    smoothing: bool = True
    smoothing_min_cutoff_hz: float = 1.0
    smoothing_beta: float = 0.02
    detect_width_px: int = 640
    min_face_px: int = 20
    roi_margin: float = 0.8
    face_box_mm: float = 150.0
    face_to_center_mm: float = FACE_TO_CENTER_MM
    use_rotation: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"head locator mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        for name in ("smoothing_min_cutoff_hz", "face_box_mm", "roi_margin"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"head locator {name} must be positive, got {getattr(self, name)!r}")
        if self.smoothing_beta < 0 or self.face_to_center_mm < 0:
            raise ConfigError("head locator smoothing_beta and face_to_center_mm must not be negative")
        if not 64 <= self.detect_width_px <= 4096 or not 12 <= self.min_face_px <= 400:
            raise ConfigError(
                f"head locator detect_width_px must be in 64..4096 and min_face_px in 12..400, got "
                f"{self.detect_width_px} and {self.min_face_px}"
            )


# --------------------------------------------------------------------------------------------
# from a face box to the head centre


def _forward_axis(frame: Frame, config: LocatorConfig, view_ray: np.ndarray) -> np.ndarray:
    """Unit vector from the head centre towards the face, in colour-camera coordinates."""
    if config.use_rotation and frame.head_rotation is not None:
        r = frame.head_rotation
        if frame.depth_camera is not None:
            r = frame.depth_to_color.rotation @ r
        f = r @ np.array([0.0, 0.0, -1.0])
        return f / np.linalg.norm(f)
    return -view_ray / np.linalg.norm(view_ray)


def center_from_color(frame: Frame, box: tuple[int, int, int, int], config: LocatorConfig) -> np.ndarray:
    """Colour only: distance from the box width, centre behind the box centre."""
    cam = frame.color_camera
    x, y, w, h = box
    d_face = cam.fx * config.face_box_mm / max(w, 1)
    ray = cam.ray(x + w / 2, y + h / 2)
    face = ray * d_face
    return face - config.face_to_center_mm * _forward_axis(frame, config, ray)


def center_from_depth(frame: Frame, box: tuple[int, int, int, int], config: LocatorConfig) -> np.ndarray | None:
    """Colour + depth from a face box: the depth head shape under the box; None without usable depth."""
    if frame.depth_mm is None or frame.depth_camera is None:
        return None
    cam = frame.color_camera
    x, y, w, h = box
    d_face = cam.fx * config.face_box_mm / max(w, 1)
    face_c = cam.ray(x + w / 2, y + h / 2) * d_face
    p = frame.depth_to_color.inverse().apply(face_c)
    if p[2] <= 0:
        return None
    u, v = frame.depth_camera.project(p[None])[0]
    head = _plausible_head(frame, u, v)
    return None if head is None else head[1]


def depth_heads(frame: Frame, raw: bool = False) -> list[tuple[float, np.ndarray]]:
    """Every head-and-shoulders candidate of the depth image whose silhouette measures as a
    head: (score, centre in colour-camera mm), in the search's order. ``raw``: also each
    candidate's own guess, :data:`FACE_TO_CENTER_MM` behind the face it found (for a judge
    that can tell heads apart, when the silhouette is merged with a seat or a wall)."""
    heads = []
    for u, v, z, score in find_head_candidates(frame.depth_mm, frame.depth_camera):
        head = _plausible_head(frame, u, v)
        if head is not None:
            heads.append((score * head[0], head[1]))
        if raw:
            ray = frame.depth_camera.ray_distorted(u, v)
            face = ray * z
            heads.append((score, frame.depth_to_color.apply(face + FACE_TO_CENTER_MM * ray / np.linalg.norm(ray))))
    return heads


def center_from_depth_only(frame: Frame, near_color_mm: np.ndarray | None = None,
                           refiner: Refiner | None = None) -> np.ndarray | None:
    """Depth alone: the head-and-shoulders candidate whose silhouette measures most like a head
    (with a refiner: among all candidates, measured or raw, the one it judges most likely a
    head, if it accepts any; when tracking, the accepted one nearest ``near_color_mm``), in
    colour-camera mm; None when there is none.

    When the refiner accepts no candidate (a hand or an object over the face pulls the
    silhouette's centre off the skull, or the face is too near for the sensor and only the
    shoulders show), it is run from the first :data:`RESCUE_CANDIDATES` candidates of the
    search, and a centre it then accepts is taken."""
    heads = depth_heads(frame, raw=refiner is not None)
    if refiner is not None:
        judged = [(refiner.head_probability(frame, c), c) for _, c in heads]
        accepted = [(p, c) for p, c in judged if p >= HEAD_PROBABILITY]
        if not accepted:
            for _, c in heads[:RESCUE_CANDIDATES]:
                moved = refiner(frame, c)
                p = refiner.head_probability(frame, moved)
                if p >= HEAD_PROBABILITY:
                    accepted.append((p, moved))
        heads = accepted
    if not heads:
        return None
    if near_color_mm is not None:
        return min(heads, key=lambda h: float(np.linalg.norm(h[1] - near_color_mm)))[1]
    return max(heads, key=lambda h: h[0])[1]


def _plausible_head(frame: Frame, u: float, v: float) -> tuple[float, np.ndarray] | None:
    """The head measured at depth pixel (u, v) when it fits a human head: (its score, its
    centre in colour-camera mm)."""
    shape = measure_head(frame.depth_mm, frame.depth_camera, u, v)
    if shape is None or not shape.plausible:
        return None
    return shape.score, frame.depth_to_color.apply(shape.center_depth_mm)


def face_box_for(camera: CameraIntrinsics, center_color_mm: np.ndarray, config: LocatorConfig) -> tuple[int, int, int, int]:
    """The colour-image box a frontal face detector would give for a head centred here (the
    inverse of :func:`center_from_color` for a head facing the camera)."""
    c = np.asarray(center_color_mm, dtype=np.float64)
    face = c - config.face_to_center_mm * c / np.linalg.norm(c)
    u, v = camera.project(face[None])[0]
    w = camera.fx * config.face_box_mm / face[2]
    return int(round(u - w / 2)), int(round(v - w / 2)), int(round(w)), int(round(w))


# --------------------------------------------------------------------------------------------
# smoothing


class _OneEuro:
    """The One Euro filter (Casiez et al. 2012) on a vector: causal, adaptive low-pass."""

    def __init__(self, min_cutoff_hz: float, beta: float, d_cutoff_hz: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff_hz, beta, d_cutoff_hz
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.t_ns: int | None = None

    @staticmethod
    def _alpha(cutoff_hz: float, dt_s: float) -> float:
        tau = 1.0 / (2 * math.pi * cutoff_hz)
        return 1.0 / (1.0 + tau / dt_s)

    def __call__(self, x: np.ndarray, t_ns: int) -> np.ndarray:
        if self.x is None or self.t_ns is None:
            self.x, self.dx, self.t_ns = x.copy(), np.zeros_like(x), t_ns
            return x
        dt = (t_ns - self.t_ns) / 1e9
        if dt <= 0:
            dt = 1.0 / 30.0  # repeated or non-increasing clocks: assume a 30 Hz stream
        self.t_ns = t_ns
        dx = (x - self.x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        assert self.dx is not None
        self.dx = a_d * dx + (1 - a_d) * self.dx
        cutoff = self.min_cutoff + self.beta * float(np.linalg.norm(self.dx))
        a = self._alpha(cutoff, dt)
        self.x = a * x + (1 - a) * self.x
        return self.x.copy()

    def reset(self) -> None:
        self.x = self.dx = None
        self.t_ns = None


# --------------------------------------------------------------------------------------------
# the locator


@dataclass
class _Track:
    box: tuple[int, int, int, int]
    center: np.ndarray
    misses: int = 0
    extra: dict = field(default_factory=dict)


class HeadLocator:
    """Finds the head in each frame. See the module docstring for the methods and tracking.

    ``refiner``, when given, judges and refines detected centres in frames with depth: a face
    box whose centre it does not take for a head gives way to the depth search's candidate it
    judges most likely a head, and the centre kept is refined (before the live smoothing).
    Annotations are never judged nor refined.
    """

    #: a face jumping further than this between frames restarts the smoothing (mm)
    JUMP_MM = 150.0
    #: frames further apart than this, or going back in time, are not consecutive (a seek in a
    #: recording or video, the next of a folder's photos taken apart): tracking starts afresh (s)
    CONSECUTIVE_S = 1.0

    def __init__(self, config: LocatorConfig = LocatorConfig(), live: bool = False,
                 refiner: Refiner | None = None) -> None:
        if not isinstance(config, LocatorConfig):
            raise ConfigError(f"expected a LocatorConfig, got {type(config).__name__}")
        self.config = config
        self.live = live
        self.refiner = refiner
        self._detector: FaceDetector | None = None
        self._track: _Track | None = None
        self._select_px: tuple[float, float] | None = None
        self._filter = _OneEuro(config.smoothing_min_cutoff_hz, config.smoothing_beta)
        self._last_ns: int | None = None
        #: milliseconds the last locate() spent detecting (0 for annotations)
        self.last_detect_ms = 0.0

    # -- public API --------------------------------------------------------------------
    def locate(self, frame: Frame) -> HeadLocation | None:
        """The head in ``frame``, or None when there is none."""
        mode = self.config.mode
        if mode != "detect" and frame.head_center_mm is not None:
            self.last_detect_ms = 0.0
            c = frame.head_center_color_mm()
            if c is None or c[2] <= 0:
                return None
            return HeadLocation(c, "annotation", None, 0.0)
        if mode == "annotation":
            self.last_detect_ms = 0.0
            return None
        if self.live:
            last, self._last_ns = self._last_ns, frame.timestamp_ns
            if last is not None and not 0 <= frame.timestamp_ns - last <= self.CONSECUTIVE_S * 1e9:
                self._track = None
                self._filter.reset()
        t0 = time.perf_counter()
        found = self._detect(frame)
        center: np.ndarray | None = None
        method = "color"
        has_depth = frame.depth_mm is not None and frame.depth_camera is not None
        refiner = self.refiner if has_depth else None
        if found is not None:
            if has_depth:
                center = center_from_depth(frame, found, self.config)
                method = "color+depth"
            if center is None:
                center = center_from_color(frame, found, self.config)
                method = "color"
        if has_depth and (center is None or (
                refiner is not None and refiner.head_probability(frame, center) < HEAD_PROBABILITY)):
            # no face in colour (rolled, turned or dark faces defeat the cascades), or one the
            # refiner does not take for a head: a head in depth
            alt = center_from_depth_only(frame, self._track.center if self._track is not None else None, refiner)
            if alt is not None:
                center, method = alt, "depth"
                found = face_box_for(frame.color_camera, center, self.config)
        refined = False
        if center is not None and refiner is not None and np.all(np.isfinite(center)):
            better = refiner(frame, center)
            refined = not np.array_equal(better, center)
            center = better
        ms = (time.perf_counter() - t0) * 1e3
        self.last_detect_ms = ms
        if center is None or found is None or not np.all(np.isfinite(center)) or center[2] <= 0:
            if self._track is not None:
                self._track.misses += 1
                if self._track.misses > 2:
                    self._track = None
                    self._filter.reset()
            return None
        if self.live:
            if self._track is not None and np.linalg.norm(center - self._track.center) > self.JUMP_MM:
                self._filter.reset()
            raw = center
            if self.config.smoothing:
                center = self._filter(center, frame.timestamp_ns)
            self._track = _Track(found, raw)
        return HeadLocation(center, method, found, ms, refined)

    def select(self, point_px: tuple[float, float]) -> None:
        """Track the face nearest to this colour-image point from the next frame on."""
        self._select_px = (float(point_px[0]), float(point_px[1]))
        self._track = None
        self._filter.reset()

    def reset(self) -> None:
        """Forget the tracked face, the selection and the smoothing state."""
        self._track = None
        self._select_px = None
        self._last_ns = None
        self._filter.reset()

    # -- detection ---------------------------------------------------------------------
    def _detector_(self) -> FaceDetector:
        if self._detector is None:
            self._detector = FaceDetector()
        return self._detector

    def _detect(self, frame: Frame) -> tuple[int, int, int, int] | None:
        if self.live and self._track is not None:
            box = self._detect_near(frame, self._track.box)
            if box is not None:
                return box
        boxes = self._detect_full(frame)
        if not boxes:
            return None
        if self._select_px is not None:
            px, py = self._select_px
            best = min(boxes, key=lambda b: _box_distance(b, px, py))
            if self.live:
                self._select_px = None  # from now on, track it
            return best
        if self.live and self._track is not None:
            tx, ty, tw, th = self._track.box
            near = [b for b in boxes if _box_distance(b, tx + tw / 2, ty + th / 2) < max(tw, th)]
            if near:
                return max(near, key=lambda b: b[2] * b[3])
        return self._nearest(frame, boxes)

    def _nearest(self, frame: Frame, boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
        """The nearest face: by depth where the frame has it, else the largest box."""
        if len(boxes) == 1:
            return boxes[0]
        if frame.depth_mm is not None:
            def dist(b: tuple[int, int, int, int]) -> float:
                c = center_from_depth(frame, b, self.config)
                return float(c[2]) if c is not None else math.inf
            dists = [dist(b) for b in boxes]
            if np.isfinite(min(dists)):
                return boxes[int(np.argmin(dists))]
        return max(boxes, key=lambda b: b[2] * b[3])

    def _detect_full(self, frame: Frame) -> list[tuple[int, int, int, int]]:
        h, w = frame.color.shape[:2]
        scale = min(1.0, self.config.detect_width_px / w)
        gray = detection_gray(frame.color, scale)
        boxes = self._detector_().detect(gray, self.config.min_face_px)
        return [_scale_box(b, 1.0 / scale) for b in boxes]

    def _detect_near(self, frame: Frame, box: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
        """Search the region around the last face at a resolution where it is about 48 px wide."""
        x, y, bw, bh = box
        m = self.config.roi_margin
        h, w = frame.color.shape[:2]
        x0, y0 = max(0, int(x - m * bw)), max(0, int(y - m * bh))
        x1, y1 = min(w, int(x + bw + m * bw)), min(h, int(y + bh + m * bh))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        scale = min(1.0, 48.0 / max(bw, 1))
        gray = detection_gray(np.ascontiguousarray(frame.color[y0:y1, x0:x1]), scale)
        boxes = self._detector_().detect(gray, max(12, int(0.6 * bw * scale)), int(1.6 * bw * scale) + 1)
        if not boxes:
            return None
        cx, cy = (x + bw / 2 - x0) * scale, (y + bh / 2 - y0) * scale
        best = min(boxes, key=lambda b: _box_distance(b, cx, cy))
        bx, by, bw2, bh2 = _scale_box(best, 1.0 / scale)
        return bx + x0, by + y0, bw2, bh2


def _scale_box(b: tuple[int, int, int, int], s: float) -> tuple[int, int, int, int]:
    return (int(round(b[0] * s)), int(round(b[1] * s)), int(round(b[2] * s)), int(round(b[3] * s)))


def _box_distance(b: tuple[int, int, int, int], px: float, py: float) -> float:
    return math.hypot(b[0] + b[2] / 2 - px, b[1] + b[3] / 2 - py)
