"""Head localisation: where the head centre is, in colour-camera millimetres, for the crop.

Three ways, each usable on its own (``LocatorConfig.mode``):

1. **annotation** -- the source's ``head_center_mm`` (Biwi pose, Pandora head joint, the virtual
   Kinect's ground truth), moved to colour-camera coordinates. Never smoothed.
2. **colour + depth** -- a face detector (OpenCV's bundled Haar cascades, frontal and both
   profiles) on a downscaled colour image, then the depth around the face registered into the
   colour image (``sensors.crop.register_depth``, the crop's own registration). The head's
   silhouette in depth gives the head centre's image position (its left/right extent, halved,
   is yaw-independent for a roughly ellipsoidal head) and its distance: the visible face
   surface lies about :data:`FACE_TO_CENTER_MM` in front of the centre, along the head's
   forward axis when the orientation is known (``Frame.head_rotation``), else along the
   viewing ray.
3. **colour only** (webcams, photos) -- the detector, and the distance from the detected box's
   width and the focal length (a face box spans about ``LocatorConfig.face_box_mm``).

Live tracking (``HeadLocator(live=True)``): the detector first searches a region around the
last face at a resolution matched to its size (a few ms), and the whole frame only when the
face is lost; the centre is smoothed causally (a One Euro filter: steady when still, little lag
when moving). With several faces in view the nearest (largest) one is tracked; ``select(point)``
switches to the face under an image point. Offline (``live=False``, dataset building) every
frame is detected afresh and nothing is smoothed; annotations are never smoothed.

``locate`` returns ``None`` when there is no face: never an exception for an empty frame.

Head pose angles (``euler_deg_from_rotation``): ``Frame.head_rotation`` maps head axes (x right,
y down, z away from the camera for a head facing it; the face looks along -z) to camera axes,
identity = facing the camera, and R = R_y(yaw) R_x(-pitch) R_z(roll), the virtual Kinect's
convention.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .crop import register_depth
from .errors import ConfigError, SensorError
from .frame import CameraIntrinsics, Frame

#: the face surface lies this far in front of the head centre (mm)
FACE_TO_CENTER_MM = 90.0
MODES = ("auto", "annotation", "detect")


@dataclass(frozen=True, eq=False)
class HeadLocation:
    """Where the head is: ``center_color_mm`` (3,) in colour-camera mm; ``method`` one of
    ``annotation``, ``color+depth``, ``color``; ``face_box_px`` the detector's box (x, y, w, h)
    in colour-image pixels (None for annotations); ``detect_ms`` the time spent locating."""

    center_color_mm: np.ndarray
    method: str
    face_box_px: tuple[int, int, int, int] | None = None
    detect_ms: float = 0.0

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
    detect_width_px: int = 480
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


def euler_deg_from_rotation(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a head rotation (head axes -> camera; see module doc)."""
    r = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
    pitch = math.asin(max(-1.0, min(1.0, r[1, 2])))
    yaw = math.atan2(r[0, 2], r[2, 2])
    roll = math.atan2(r[1, 0], r[1, 1])
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)


def rotation_from_euler_deg(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The head rotation of (yaw, pitch, roll) in degrees: R_y(yaw) R_x(-pitch) R_z(roll)."""
    a, b, c = math.radians(yaw), -math.radians(pitch), math.radians(roll)
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return ry @ rx @ rz


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
    """Colour + depth: the head's depth silhouette around the face box; None without usable depth."""
    cam = frame.color_camera
    x, y, w, h = box
    d0 = cam.fx * config.face_box_mm / max(w, 1)  # rough face distance, to bound the registration
    # a window over the whole head: the box grown sideways and upwards, cells about w/24 wide
    wx0, wy0, ww, wh = x - 0.75 * w, y - 0.9 * h, 2.5 * w, 2.6 * h
    nx, ny = 60, max(8, round(60 * wh / ww))
    z = register_depth(frame, (wx0, wy0, ww, wh), (nx, ny), d0, margin_mm=0.45 * d0 + 150.0)
    # the face: the box's central part
    cx0, cx1 = int(nx * (0.75 * w + 0.3 * w) / ww), int(nx * (0.75 * w + 0.7 * w) / ww)
    cy0, cy1 = int(ny * (0.9 * h + 0.3 * h) / wh), int(ny * (0.9 * h + 0.75 * h) / wh)
    core = z[cy0:cy1, cx0:cx1]
    vals = core[core > 0]
    if vals.size < 0.25 * core.size:
        return None
    z_face = float(np.median(vals))
    # the head: connected surface within a head's depth of the face
    head = (z > z_face - 80.0) & (z < z_face + 160.0)
    cols = np.arange(nx)
    # left/right silhouette at the rows of the face, walking out from the face until a gap
    rows = range(cy0, cy1)
    mids = []
    jc = (cx0 + cx1) // 2
    for i in rows:
        line = head[i]
        if not line[jc]:
            continue
        left = jc
        while left > 0 and line[left - 1]:
            left -= 1
        right = jc
        while right < nx - 1 and line[right + 1]:
            right += 1
        if 0 < left and right < nx - 1:
            mids.append((left + right) / 2.0)
    if mids:
        j_mid = float(np.median(mids))
    else:
        j_mid = float(jc)
    del cols
    u = wx0 + (j_mid + 0.5) * ww / nx
    v = y + h / 2
    ray = _ray(cam, u, v)
    face = ray * z_face
    return face - config.face_to_center_mm * _forward_axis(frame, config, ray)


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
    """Finds the head in each frame. See the module docstring for the methods and tracking."""

    #: a face jumping further than this between frames restarts the smoothing (mm)
    JUMP_MM = 150.0

    def __init__(self, config: LocatorConfig = LocatorConfig(), live: bool = False) -> None:
        if not isinstance(config, LocatorConfig):
            raise ConfigError(f"expected a LocatorConfig, got {type(config).__name__}")
        self.config = config
        self.live = live
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
        if found is not None:
            if frame.depth_mm is not None:
                center = center_from_depth(frame, found, self.config)
                method = "color+depth"
            if center is None:
                center = center_from_color(frame, found, self.config)
                method = "color"
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
        return HeadLocation(center, method, found, ms)

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
        det = self._detector_()
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
        del det
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
