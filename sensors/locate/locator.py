"""Head localisation: where the head centre is, in colour-camera millimetres, for the crop.

Three ways, each usable on its own (``LocatorConfig.mode``):

1. **annotation** -- the source's ``head_center_mm`` (Biwi pose, Pandora head joint, the virtual
   Kinect's ground truth), moved to colour-camera coordinates. Never smoothed.
2. **colour + depth** -- a face detector (:mod:`sensors.locate.colour`: OpenCV's bundled Haar
   cascades, frontal and both profiles). A frame searched afresh is first searched in depth for
   heads on shoulders (``find_head_candidates``, a few ms); the cascades then run only on the
   colour region of the face each of the best :data:`PROPOSALS` candidates implies, nearest
   first, for faces of about the size its distance gives (a few ms; the whole 1080p frame
   costs the cascades about 100-200 ms). Only when no candidate has a face there and depth alone
   finds no head either is the whole frame searched (as for colour-only frames, below). The face
   box's centre is mapped into the depth image, where the head's silhouette is measured
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
   width and the focal length (a face box spans about ``LocatorConfig.face_box_mm``). The whole
   frame is searched coarse to fine: the image at ``coarse_width_px`` with coarse size steps
   (:data:`COARSE_SCALE_FACTOR`), each face found there confirmed and placed by a search around
   it at the tracking resolution; only when none is confirmed, the image at ``detect_width_px``
   with fine steps (faces too small for the coarse image).

Live tracking (``HeadLocator(live=True)``, the app's locator for every source it plays: live
cameras, videos, recordings and photo folders alike): the detector first searches a region
around the last face at a resolution matched to its size (a few ms), and the whole frame only
when the face is lost or the frames are not consecutive (a seek, a gap of over
``CONSECUTIVE_S``). While a source shows no face, the whole frame is searched at most every
``SEARCH_EVERY_S`` of the source's time, and at most a quarter of the time, and the frames
between are passed over, so a video without a face still plays at its rate, and a face that
comes into view is found within that time (frames with depth still search at the depth image's
head candidates, which is cheap, every frame). With ``LocatorConfig.smoothing`` (the app sets
it for live cameras) the centre is smoothed causally (a One Euro filter: steady when still,
little lag when moving). With several faces in view the nearest (largest) one is tracked;
``select(point)`` switches to the face under an image point. Offline (``live=False``, dataset building) every
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
#: a fresh search in a frame with depth looks for a face at this many of the depth search's best candidates
PROPOSALS = 3
#: ... in the region of the face a candidate implies grown by this many face sizes on each side
#: (a candidate sits up to about a third of a face below the face's centre)
PROPOSAL_MARGIN = 0.6
#: ... for faces this many times the size a face at the candidate's distance would have
PROPOSAL_SIZES = (0.7, 1.45)
#: the coarse full-frame search's step between face sizes (the fine one's is 1.1)
COARSE_SCALE_FACTOR = 1.2


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
    ``detect_width_px``: the colour image is downscaled to this width for the fine full-frame
    search; ``coarse_width_px``: to this one for the coarse search tried before it.
    ``min_face_px``: smallest face searched, in pixels of those downscaled images.
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
    coarse_width_px: int = 320
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
        if (not 64 <= self.detect_width_px <= 4096 or not 64 <= self.coarse_width_px <= 4096
                or not 12 <= self.min_face_px <= 400):
            raise ConfigError(
                f"head locator detect_width_px and coarse_width_px must be in 64..4096 and min_face_px in 12..400, "
                f"got {self.detect_width_px}, {self.coarse_width_px} and {self.min_face_px}"
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


#: a head-and-shoulders candidate of the depth image: (u, v) depth pixel, face depth (mm), score
Candidate = tuple[float, float, float, float]


def depth_candidates(frame: Frame) -> list[Candidate]:
    """The depth image's head-and-shoulders candidates, best first (:func:`find_head_candidates`)."""
    return find_head_candidates(frame.depth_mm, frame.depth_camera)


def candidate_center(frame: Frame, candidate: Candidate) -> np.ndarray:
    """A candidate's own guess of the head centre: :data:`FACE_TO_CENTER_MM` behind the face it
    found, along the depth camera's ray, in colour-camera mm."""
    u, v, z, _ = candidate
    ray = frame.depth_camera.ray_distorted(u, v)
    return frame.depth_to_color.apply(ray * z + FACE_TO_CENTER_MM * ray / np.linalg.norm(ray))


def depth_heads(frame: Frame, raw: bool = False,
                candidates: list[Candidate] | None = None) -> list[tuple[float, np.ndarray]]:
    """Every head-and-shoulders candidate of the depth image whose silhouette measures as a
    head: (score, centre in colour-camera mm), in the search's order. ``raw``: also each
    candidate's own guess (:func:`candidate_center`; for a judge that can tell heads apart,
    when the silhouette is merged with a seat or a wall). ``candidates``: the frame's search,
    when already run."""
    heads = []
    for cand in depth_candidates(frame) if candidates is None else candidates:
        head = _plausible_head(frame, cand[0], cand[1])
        if head is not None:
            heads.append((cand[3] * head[0], head[1]))
        if raw:
            heads.append((cand[3], candidate_center(frame, cand)))
    return heads


def center_from_depth_only(frame: Frame, near_color_mm: np.ndarray | None = None,
                           refiner: Refiner | None = None,
                           candidates: list[Candidate] | None = None) -> np.ndarray | None:
    """Depth alone: the head-and-shoulders candidate whose silhouette measures most like a head
    (with a refiner: among all candidates, measured or raw, the one it judges most likely a
    head, if it accepts any; when tracking, the accepted one nearest ``near_color_mm``), in
    colour-camera mm; None when there is none.

    When the refiner accepts no candidate (a hand or an object over the face pulls the
    silhouette's centre off the skull, or the face is too near for the sensor and only the
    shoulders show), it is run from the first :data:`RESCUE_CANDIDATES` candidates of the
    search, and a centre it then accepts is taken."""
    heads = depth_heads(frame, raw=refiner is not None, candidates=candidates)
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
    #: live, while no face is found: the whole-frame search at most this often (s),
    #: and never more than a quarter of the time (a search that took 0.2 s waits 0.6 s)
    SEARCH_EVERY_S = 0.25

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
        #: live, while no face is found: the source time before which the whole frame is not searched again
        self._next_search_ns: int | None = None
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
                self._next_search_ns = None
                self._filter.reset()
        t0 = time.perf_counter()
        has_depth = frame.depth_mm is not None and frame.depth_camera is not None
        refiner = self.refiner if has_depth else None
        # with depth, a fresh search looks for the face only where the depth image shows a head
        candidates = depth_candidates(frame) if has_depth and self._fresh() else None
        found = self._detect(frame, candidates)
        center, method = self._center(frame, found, has_depth)
        if has_depth and (center is None or (
                refiner is not None and refiner.head_probability(frame, center) < HEAD_PROBABILITY)):
            # no face in colour (rolled, turned or dark faces defeat the cascades), or one the
            # refiner does not take for a head: a head in depth
            alt = center_from_depth_only(frame, self._track.center if self._track is not None else None, refiner,
                                         candidates)
            if alt is not None:
                center, method = alt, "depth"
                found = face_box_for(frame.color_camera, center, self.config)
            elif found is None and candidates is not None:
                # neither a face at the depth image's heads nor a head in depth alone: the whole frame
                found = self._whole_frame(frame)
                center, method = self._center(frame, found, has_depth)
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
        self._next_search_ns = None
        self._filter.reset()

    def reset(self) -> None:
        """Forget the tracked face, the selection and the smoothing state."""
        self._track = None
        self._select_px = None
        self._last_ns = None
        self._next_search_ns = None
        self._filter.reset()

    # -- detection ---------------------------------------------------------------------
    def _detector_(self) -> FaceDetector:
        if self._detector is None:
            self._detector = FaceDetector()
        return self._detector

    def _fresh(self) -> bool:
        """Whether this frame is searched afresh (no tracked face), not at a chosen point."""
        return not (self.live and self._track is not None) and self._select_px is None

    def _center(self, frame: Frame, found: tuple[int, int, int, int] | None,
                has_depth: bool) -> tuple[np.ndarray | None, str]:
        """The head centre a face box gives, and how it was found."""
        if found is None:
            return None, "color"
        if has_depth:
            center = center_from_depth(frame, found, self.config)
            if center is not None:
                return center, "color+depth"
        return center_from_color(frame, found, self.config), "color"

    def _detect(self, frame: Frame, candidates: list[Candidate] | None) -> tuple[int, int, int, int] | None:
        """The face box: near the tracked face; else, given the depth image's head candidates,
        at the nearest candidate with a face (None when none has one: the caller falls back);
        else the whole frame."""
        if self.live and self._track is not None:
            box = self._detect_near(frame, self._track.box)
            if box is not None:
                return box
        if candidates is not None:
            return self._detect_proposed(frame, candidates)
        return self._whole_frame(frame)

    def _whole_frame(self, frame: Frame) -> tuple[int, int, int, int] | None:
        """The whole frame's face (:meth:`_detect_full`, :meth:`_pick`). Live, while none is found,
        searched at most every ``SEARCH_EVERY_S`` of the source's time and at most a quarter of
        the time: the frames between have no face."""
        t = frame.timestamp_ns
        if self.live and self._next_search_ns is not None and t < self._next_search_ns:
            return None
        t0 = time.perf_counter()
        box = self._pick(frame, self._detect_full(frame))
        if self.live:
            wait_s = max(self.SEARCH_EVERY_S, 3.0 * (time.perf_counter() - t0))
            self._next_search_ns = None if box is not None else t + int(wait_s * 1e9)
        return box

    def _detect_proposed(self, frame: Frame, candidates: list[Candidate]) -> tuple[int, int, int, int] | None:
        """The face at the nearest of the best :data:`PROPOSALS` depth candidates that has one: the
        cascades run only around the face a candidate implies, for faces of about its size."""
        lo, hi = PROPOSAL_SIZES
        for cand in sorted(candidates[:PROPOSALS], key=lambda c: c[2]):
            center = candidate_center(frame, cand)
            if not np.all(np.isfinite(center)) or center[2] <= 0:
                continue
            box = self._detect_near(frame, face_box_for(frame.color_camera, center, self.config),
                                    PROPOSAL_MARGIN, lo, hi)
            if box is not None:
                return box
        return None

    def _pick(self, frame: Frame, boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int] | None:
        """One of the whole frame's faces: the one at the chosen point, near the lost track, or the nearest."""
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
        """Every face of the whole frame, coarse to fine: the image at ``coarse_width_px`` with
        coarse size steps, each face found there confirmed and placed by a search around it in
        the image at ``detect_width_px`` (the box a whole-frame search there would give: in
        colour-only frames it alone places the crop); only when none is confirmed, that whole
        image with fine steps (faces too small for the coarse image)."""
        w = frame.color.shape[1]
        coarse = min(1.0, self.config.coarse_width_px / w)
        fine = min(1.0, self.config.detect_width_px / w)
        boxes = self._detector_().detect(detection_gray(frame.color, coarse), self.config.min_face_px,
                                         scale_factor=COARSE_SCALE_FACTOR)
        confirmed = [self._detect_near(frame, _scale_box(b, 1.0 / coarse), scale=fine) for b in boxes]
        found = [b for b in confirmed if b is not None]
        if found or coarse >= 1.0:
            return found
        boxes = self._detector_().detect(detection_gray(frame.color, fine), self.config.min_face_px)
        return [_scale_box(b, 1.0 / fine) for b in boxes]

    def _detect_near(self, frame: Frame, box: tuple[int, int, int, int], margin: float | None = None,
                     min_size: float = 0.6, max_size: float = 1.6,
                     scale: float | None = None) -> tuple[int, int, int, int] | None:
        """Search the region around ``box`` (grown by ``margin`` box sizes on each side; default
        ``roi_margin``) downscaled by ``scale`` (default: to where the box is about 48 px wide),
        for faces ``min_size`` to ``max_size`` times its size; the found face nearest its centre."""
        x, y, bw, bh = box
        m = self.config.roi_margin if margin is None else margin
        h, w = frame.color.shape[:2]
        x0, y0 = max(0, int(x - m * bw)), max(0, int(y - m * bh))
        x1, y1 = min(w, int(x + bw + m * bw)), min(h, int(y + bh + m * bh))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        scale = min(1.0, 48.0 / max(bw, 1)) if scale is None else scale
        gray = detection_gray(np.ascontiguousarray(frame.color[y0:y1, x0:x1]), scale)
        boxes = self._detector_().detect(gray, max(12, int(min_size * bw * scale)), int(max_size * bw * scale) + 1)
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
