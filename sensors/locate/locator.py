"""Head localisation: where the head centre is, in colour-camera millimetres, for the crop.

Three ways, each usable on its own (``LocatorConfig.mode``):

1. **annotation** -- the source's ``head_center_mm`` (Biwi pose, Pandora head joint, the virtual
   Kinect's ground truth), moved to colour-camera coordinates. Never smoothed.
2. **colour + depth** -- a face detector (OpenCV's bundled Haar cascades, frontal and both
   profiles) on a downscaled colour image; the face box's centre is mapped into the depth
   image, where the head's silhouette is measured (``measure_head``): its left/right extent,
   halved, gives the centre's column (yaw-independent for a roughly ellipsoidal head), a linear
   fit of the top, widest row, neck and widths gives its row, and the nearest face depth plus
   :data:`_Z_BEHIND_FRONT_MM` its distance. When the cascades find no face (strong roll, turned
   or dark faces), the depth image alone is searched for a head on shoulders
   (``find_head_candidates``) and the best candidate that measures as a head is used (method
   ``depth``).
   A detected centre in a frame with depth can then be refined by a learned model given to the
   locator (``HeadLocator(refiner=...)``; ``models.refiner.runtime``: a small network that reads a
   wide crop around the centre and says where the skull centre is; the app and the offline
   commands use the shipped one). This module only calls it: sensors import nothing else of
   the project.
3. **colour only** (webcams, photos) -- the detector, and the distance from the detected box's
   width and the focal length (a face box spans about ``LocatorConfig.face_box_mm``).

Live tracking (``HeadLocator(live=True)``): the detector first searches a region around the
last face at a resolution matched to its size (a few ms), and the whole frame only when the
face is lost; the centre is smoothed causally (a One Euro filter: steady when still, little lag
when moving). With several faces in view the nearest (largest) one is tracked; ``select(point)``
switches to the face under an image point. Offline (``live=False``, dataset building) every
frame is detected afresh and nothing is smoothed; annotations are never smoothed.

``locate`` returns ``None`` when there is no face: never an exception for an empty frame.

Head axes, rotations and the head centre's definition are those of :mod:`sensors.geometry`.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from sensors.errors import ConfigError, SensorError
from sensors.frame import CameraIntrinsics, Frame
from sensors.geometry import FACE_TO_CENTER_MM, centre_from_anchor
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
# the face detector


class FaceDetector:
    """OpenCV's Haar cascades (frontal, and left and right profiles) on a grey image."""

    def __init__(self) -> None:
        import cv2

        self._cv2 = cv2
        base = cv2.data.haarcascades
        self._frontal = cv2.CascadeClassifier(base + "haarcascade_frontalface_alt2.xml")
        self._profile = cv2.CascadeClassifier(base + "haarcascade_profileface.xml")
        if self._frontal.empty() or self._profile.empty():
            raise SensorError("OpenCV's bundled face cascades are missing (opencv-python 4.x ships them)", base)

    def detect(self, gray: np.ndarray, min_px: int, max_px: int | None = None) -> list[tuple[int, int, int, int]]:
        """Face boxes (x, y, w, h) in ``gray``'s pixels; frontal first, profiles if none."""
        cv2 = self._cv2
        h, w = gray.shape
        if min(h, w) < min_px:
            return []
        kw = dict(scaleFactor=1.1, minNeighbors=4, minSize=(min_px, min_px))
        if max_px is not None:
            kw["maxSize"] = (max_px, max_px)
        boxes = [tuple(int(v) for v in b) for b in self._frontal.detectMultiScale(gray, **kw)]
        if boxes:
            return boxes
        boxes = [tuple(int(v) for v in b) for b in self._profile.detectMultiScale(gray, **kw)]
        flipped = cv2.flip(gray, 1)
        for x, y, bw, bh in self._profile.detectMultiScale(flipped, **kw):
            boxes.append((int(w - x - bw), int(y), int(bw), int(bh)))
        return boxes  # type: ignore[return-value]


def _gray(color: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    if scale < 1.0:
        h, w = color.shape[:2]
        small = cv2.resize(color, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    else:
        small = color
    return cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))


# --------------------------------------------------------------------------------------------
# from a face box to the head centre


def _ray(camera: CameraIntrinsics, u: float, v: float) -> np.ndarray:
    return np.array([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, 1.0])


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
    ray = _ray(cam, x + w / 2, y + h / 2)
    face = ray * d_face
    return face - config.face_to_center_mm * _forward_axis(frame, config, ray)


def center_from_depth(frame: Frame, box: tuple[int, int, int, int], config: LocatorConfig) -> np.ndarray | None:
    """Colour + depth from a face box: the depth head shape under the box; None without usable depth."""
    if frame.depth_mm is None or frame.depth_camera is None:
        return None
    cam = frame.color_camera
    x, y, w, h = box
    d_face = cam.fx * config.face_box_mm / max(w, 1)
    face_c = _ray(cam, x + w / 2, y + h / 2) * d_face
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
            ray = _ray_depth(frame.depth_camera, u, v)
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
# the head in a depth image: candidates from a head-and-shoulders template, then the head's
# silhouette measured around a candidate

#: the head centre below the top of the silhouette (mm) = _V_COEF . (1, widest-row depth below the
#: top, neck-row depth below the top, widest width, neck width), all in mm: a robust linear fit to
#: the virtual Kinect's skull centres, made by ``launch.py evaluate-locator --fit-shape --every 3
#: --source virtual:seed=11,subjects=300-359,sequence=mixed,frames=1800,sequence_frames=60``
_V_COEF = np.array([89.909, 0.060, -0.006, 0.126, 0.003])
#: the head centre behind the nearest part of the face (mm), the median of the same frames
_Z_BEHIND_FRONT_MM = 106.0


@dataclass(frozen=True, eq=False)
class HeadShape:
    """A head measured in a depth image (depth-camera pixels and mm).

    ``center_depth_mm`` the estimated head centre (depth-camera coordinates); ``plausible``
    whether the measurements fit a human head; ``score`` how well (0..1); ``features`` (1,
    widest-row depth below the top, neck-row depth below the top, widest width, neck width) in
    mm, the inputs of the row model :data:`_V_COEF`; ``top_v_px`` the top's row in the depth
    image; ``z_front_mm`` the nearest face depth (both for fitting the model).
    """

    center_depth_mm: np.ndarray
    plausible: bool
    score: float
    features: np.ndarray
    top_v_px: float
    z_front_mm: float

    @property
    def width_mm(self) -> float:
        """The widest part of the head."""
        return float(self.features[3])

    @property
    def neck_width_mm(self) -> float:
        """The narrowest part below it (the widest width again when no neck was seen)."""
        return float(self.features[4])


def _ray_depth(cam: CameraIntrinsics, u: float, v: float) -> np.ndarray:
    """The undistorted ray (x/z, y/z, 1) of a depth pixel."""
    if any(cam.distortion):
        import cv2

        und = cv2.undistortPoints(np.array([[[u, v]]], np.float64), cam.matrix(),
                                  np.asarray(cam.distortion, dtype=np.float64))
        return np.array([und[0, 0, 0], und[0, 0, 1], 1.0])
    return _ray(cam, u, v)


def _runs_through(comp: np.ndarray, col: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: is ``col`` set, and the first and last column of the run containing it."""
    h, w = comp.shape
    on = comp[:, col]
    idx = np.arange(w)
    left_gap = np.where(~comp[:, :col], idx[:col], -1).max(axis=1) if col > 0 else np.full(h, -1)
    right_gap = np.where(~comp[:, col:], idx[col:], w).min(axis=1)
    return on, left_gap + 1, right_gap - 1


def measure_head(depth_mm: np.ndarray, cam: CameraIntrinsics, u: float, v: float) -> HeadShape | None:
    """Measure the head whose face covers depth pixel (u, v); None when there is no surface there.

    The head is the connected surface within -150..+160 mm of the depth at (u, v); its
    silhouette gives the centre: the midpoint of the upper head's left and right edges
    (independent of yaw for a head that is roughly an ellipsoid), the height from the top of
    the head, the widest row, the neck and the widths (a linear fit, :data:`_V_COEF`), and the
    depth from the nearest part of the face.
    """
    import cv2

    hgt, wid = depth_mm.shape
    ui, vi = int(round(u)), int(round(v))
    if not (0 <= ui < wid and 0 <= vi < hgt):
        return None
    patch = depth_mm[max(0, vi - 2):vi + 3, max(0, ui - 2):ui + 3]
    vals = patch[patch > 0]
    if vals.size == 0:
        return None
    z0 = float(np.median(vals))
    s = cam.fx / z0  # pixels per mm near the face
    x0, x1 = max(0, int(ui - 260 * s)), min(wid, int(ui + 260 * s) + 1)
    y0, y1 = max(0, int(vi - 330 * s)), min(hgt, int(vi + 330 * s) + 1)
    d = depth_mm[y0:y1, x0:x1]
    mask = ((d > z0 - 150.0) & (d < z0 + 160.0)).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    _, lab = cv2.connectedComponents(mask, connectivity=4)
    cu, cv_ = ui - x0, vi - y0
    label = lab[cv_, cu]
    if label == 0:
        return None
    comp = lab == label
    # the top of the head above the face, then the column through the middle of the upper head
    band = comp[:, max(0, cu - int(35 * s)):cu + int(35 * s) + 1]
    rows = np.flatnonzero(band.any(axis=1))
    if rows.size == 0:
        return None
    top = int(rows[0])
    col = cu
    for _ in range(2):
        on, left, right = _runs_through(comp, col)
        rr = np.arange(comp.shape[0])
        upper = on & (rr >= top + 15 * s) & (rr <= top + 95 * s)
        if upper.sum() < 3:
            return None
        mid = float(np.median((left[upper] + right[upper]) / 2.0))
        col = int(round(mid))
        top_rows = np.flatnonzero(comp[:, col])
        if top_rows.size:
            top = min(top, int(top_rows[0])) if abs(col - cu) < 35 * s else int(top_rows[0])
    on, left, right = _runs_through(comp, col)
    rr = np.arange(comp.shape[0])
    width_px = np.where(on, right - left + 1, 0).astype(np.float64)
    rows_mm = (rr - top) / s
    upper = on & (rows_mm >= 0) & (rows_mm <= 180)
    if upper.sum() < 5:
        return None
    iw = int(np.argmax(np.where(upper, width_px, -1)))
    below = on & (rows_mm > rows_mm[iw] + 40) & (rows_mm < rows_mm[iw] + 200)
    if below.sum() >= 3:
        ineck = int(np.argmin(np.where(below, width_px, np.inf)))
        neck_row_mm, neck_w = float(rows_mm[ineck]), float(width_px[ineck] / s)
    else:  # the head's surface ends (occluded or out of view): no neck measured
        neck_row_mm, neck_w = float(rows_mm[iw] + 120.0), float(width_px[iw] / s)
    width_mm = float(width_px[iw] / s)
    # the front of the face: the nearer depths of the head between its top and the neck
    head_rows = comp[top:max(top + 1, int(top + neck_row_mm * s))]
    head_depth = d[top:top + head_rows.shape[0]][head_rows]
    head_depth = head_depth[head_depth > 0]  # the closing above also takes in holes of the reading
    if head_depth.size < 10:
        return None
    z_front = float(np.percentile(head_depth, 10))
    z_c = z_front + _Z_BEHIND_FRONT_MM
    feats = np.array([1.0, rows_mm[iw], neck_row_mm, width_mm, neck_w])
    v_c = y0 + top + float(feats @ _V_COEF) * cam.fy / z_c
    u_c = x0 + mid
    center = _ray_depth(cam, u_c, v_c) * z_c
    plausible = 95.0 <= width_mm <= 280.0 and neck_w < 0.95 * width_mm and (rows_mm[on].max() >= 150.0)
    score = float(np.exp(-(((width_mm - 150.0) / 45.0) ** 2)) * (1.0 - min(1.0, neck_w / max(width_mm, 1.0))))
    return HeadShape(center, bool(plausible), score, feats, float(y0 + top), z_front)


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


def _padded_integral(a: np.ndarray, pad: int) -> np.ndarray:
    """The integral image of ``a`` padded with ``pad`` zeros on every side."""
    import cv2

    return cv2.integral(cv2.copyMakeBorder(a, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0), sdepth=cv2.CV_64F)


def _box_mean(integ: np.ndarray, pad: int, shape: tuple[int, int], r: float,
              box: tuple[float, float, float, float]) -> np.ndarray:
    """Mean of a padded integral image (:func:`_padded_integral`) over ``box`` around every pixel:
    (x0, x1, y0, y1) offsets in units of ``r`` pixels, rounded, at least one pixel wide."""
    h, w = shape
    bx0, by0 = int(round(box[0] * r)), int(round(box[2] * r))
    bx1, by1 = max(int(round(box[1] * r)), bx0 + 1), max(int(round(box[3] * r)), by0 + 1)
    total = (integ[pad + by1:pad + by1 + h, pad + bx1:pad + bx1 + w]
             - integ[pad + by0:pad + by0 + h, pad + bx1:pad + bx1 + w]
             - integ[pad + by1:pad + by1 + h, pad + bx0:pad + bx0 + w]
             + integ[pad + by0:pad + by0 + h, pad + bx0:pad + bx0 + w])
    return total / float((bx1 - bx0) * (by1 - by0))


def find_head_candidates(depth_mm: np.ndarray, cam: CameraIntrinsics, max_candidates: int = 6,
                         z_range_mm: tuple[float, float] = (450.0, 2000.0)) -> list[tuple[float, float, float, float]]:
    """Places that look like a face on a head and shoulders, best first: (u, v, z_mm, score).

    A template on a quarter-resolution depth image, for each 70 mm slice of distance: the face
    box is surface, the head's sides and the space above it are background (or no reading),
    the middle of the face is nearer than its sides, and a neck and shoulders are below.
    """
    import cv2

    sub = 4 if cam.width >= 400 else 2
    d = depth_mm[::sub, ::sub].astype(np.float32)
    f = cam.fx / sub
    h, w = d.shape
    acc = np.zeros((h, w), np.float32)
    zacc = np.zeros((h, w), np.float32)
    step = 70.0
    for zk in np.arange(z_range_mm[0], z_range_mm[1], step):
        inbin = np.abs(d - zk) <= step / 2
        if np.count_nonzero(inbin) < 4:
            continue
        r = f * 75.0 / zk  # pixels per 75 mm (half a face's width) at this distance
        pad = int(round(3.6 * r)) + 2
        near = ((d >= zk - 100) & (d <= zk + 170)).astype(np.float32)
        far = (d > zk + 180).astype(np.float32) + np.float32(0.5) * (d == 0)
        body = ((d >= zk - 250) & (d <= zk + 300)).astype(np.float32)
        i_near, i_far, i_body, i_nd = (_padded_integral(a, pad) for a in (near, far, body, near * d))

        def mean(integ: np.ndarray, *box: float, pad: int = pad, r: float = r) -> np.ndarray:
            return _box_mean(integ, pad, (h, w), r, box)

        fg = mean(i_near, -0.6, 0.6, -1.0, 0.5)
        side = np.sqrt(mean(i_far, -2.4, -1.7, -1.9, -0.6) * mean(i_far, 1.7, 2.4, -1.9, -0.6))
        top = mean(i_far, -0.7, 0.7, -3.2, -2.6)
        bc, bl, br = (-0.3, 0.3, -0.5, 0.2), (-1.05, -0.75, -0.8, 0.2), (0.75, 1.05, -0.8, 0.2)
        cn = mean(i_near, *bc)
        cd = mean(i_nd, *bc) / np.maximum(cn, 1e-6)
        sn = mean(i_near, *bl) + mean(i_near, *br)
        sd = (mean(i_nd, *bl) + mean(i_nd, *br)) / np.maximum(sn, 1e-6)
        relief = np.where((cn > 0.1) & (sn > 0.1), sd - cd, 0.0)
        shoulders = 0.5 * (mean(i_body, -2.2, -1.2, 2.2, 3.2) + mean(i_body, 1.2, 2.2, 2.2, 3.2))
        neck = mean(i_body, -0.4, 0.4, 1.5, 2.2)
        score = (fg * side * top * np.clip(relief / 50.0, 0, 1) * np.clip(1.5 * shoulders, 0, 1) * neck)
        score = np.where(inbin, score, 0.0).astype(np.float32)
        better = score > acc
        acc[better] = score[better]
        zacc[better] = zk
    smooth = cv2.GaussianBlur(acc, (0, 0), 1.5 if sub == 4 else 3.0)
    # local maxima, best first, at least a head apart
    dil = cv2.dilate(smooth, np.ones((5, 5), np.uint8))
    peaks = np.argwhere((smooth >= dil) & (smooth > 0.02))
    order = np.argsort(-smooth[peaks[:, 0], peaks[:, 1]])
    out: list[tuple[float, float, float, float]] = []
    for i in order:
        py, px = peaks[i]
        u, v = float(px * sub + (sub - 1) / 2), float(py * sub + (sub - 1) / 2)
        z = float(zacc[py, px])
        if z <= 0:  # a peak of the blurred score where no distance slice scored
            continue
        if any(math.hypot(u - a, v - b) < 0.6 * cam.fx * 150.0 / z for a, b, _, _ in out):
            continue
        out.append((u, v, z, float(smooth[py, px])))
        if len(out) >= max_candidates:
            break
    return out


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
        gray = _gray(frame.color, scale)
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
        gray = _gray(np.ascontiguousarray(frame.color[y0:y1, x0:x1]), scale)
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
