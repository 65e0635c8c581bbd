"""Camera models for colour-only sources: calibration files and assumed fields of view.

A calibration file holds an OpenCV camera matrix, distortion coefficients and the image size
it was measured at, in one of two forms:

- OpenCV YAML (what ``cv2.FileStorage`` and ``launch.py calibrate --out cam.yaml`` write)::

    %YAML:1.0
    ---
    image_width: 1280
    image_height: 720
    camera_matrix: !!opencv-matrix
       rows: 3
       cols: 3
       dt: d
       data: [ 1000., 0., 639.5, 0., 1000., 359.5, 0., 0., 1. ]
    distortion_coefficients: !!opencv-matrix
       rows: 1
       cols: 5
       dt: d
       data: [ 0.1, -0.2, 0., 0., 0. ]

- JSON with plain lists::

    {"image_width": 1280, "image_height": 720,
     "camera_matrix": [[1000, 0, 639.5], [0, 1000, 359.5], [0, 0, 1]],
     "distortion_coefficients": [0.1, -0.2, 0, 0, 0]}

When the image a source delivers has another size than the calibration, the camera is scaled
to it (:meth:`CameraIntrinsics.scaled`), which is right for a resized image, not for a crop.

Without a calibration, a colour-only source assumes a horizontal field of view
(:data:`DEFAULT_HFOV_DEG` = 60 degrees, typical of laptop and USB webcams; phone main cameras
are wider, about 65-75 degrees): fx = fy = (width / 2) / tan(hfov / 2), principal point at
the image centre, no distortion. Distances derived from such a camera are only as right as
that guess.
"""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sensors.errors import ConfigError, FormatError
from sensors.filekind import sniff
from sensors.geometry import CameraIntrinsics
from sensors.source import open_source

#: horizontal field of view assumed for an uncalibrated colour camera, degrees
DEFAULT_HFOV_DEG = 60.0


def fov_intrinsics(width: int, height: int, hfov_deg: float = DEFAULT_HFOV_DEG) -> CameraIntrinsics:
    """A distortion-free camera of the given horizontal field of view, centred principal point."""
    if not 1.0 <= hfov_deg <= 170.0:
        raise ConfigError(f"field of view must be between 1 and 170 degrees, got {hfov_deg:g}")
    f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return CameraIntrinsics(f, f, (width - 1) / 2.0, (height - 1) / 2.0, int(width), int(height))


@dataclass(frozen=True)
class Calibration:
    """A camera model read from a file, and where it came from."""

    camera: CameraIntrinsics
    path: str

    def for_size(self, width: int, height: int) -> CameraIntrinsics:
        """The camera for images of ``width`` x ``height`` (scaled when the size differs)."""
        if (self.camera.width, self.camera.height) == (width, height):
            return self.camera
        return self.camera.scaled(width, height)


def _from_parts(k: np.ndarray, dist: np.ndarray, width: float, height: float, path: str) -> CameraIntrinsics:
    k = np.asarray(k, dtype=np.float64)
    if k.shape != (3, 3) or not np.all(np.isfinite(k)):
        raise FormatError(f"camera_matrix must be a finite 3x3 matrix, got shape {k.shape}", path)
    if k[0, 0] <= 0 or k[1, 1] <= 0:
        raise FormatError("camera_matrix has a non-positive focal length", path)
    d = np.asarray(dist, dtype=np.float64).ravel()
    if not np.all(np.isfinite(d)):
        raise FormatError("distortion coefficients are not finite numbers", path)
    if not (width and height and width > 0 and height > 0):
        raise FormatError("calibration needs image_width and image_height", path)
    return CameraIntrinsics(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]),
                            int(width), int(height), tuple(float(x) for x in d))


def load_calibration(path: str | os.PathLike[str]) -> Calibration:
    """Read an OpenCV camera matrix file (YAML or JSON, by content); FormatError when malformed."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FormatError("calibration file does not exist", path)
    kind = sniff(path)
    if kind is not None:  # OpenCV's reader fails on these with a SystemError, not a message
        raise FormatError(f"not a calibration file: it is {kind} (expected OpenCV YAML/XML or JSON, "
                          f"as `launch.py calibrate` writes)", path)
    with open(path, "rb") as f:
        head = f.read(64).lstrip()
    if head.startswith(b"{"):
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except (ValueError, UnicodeDecodeError) as exc:
            raise FormatError(f"not valid JSON ({exc})", path) from None
        if not isinstance(d, dict):
            raise FormatError("calibration JSON must be an object", path)
        k = d.get("camera_matrix", d.get("K"))
        dist = d.get("distortion_coefficients", d.get("dist_coeffs", d.get("D", [])))
        if k is None:
            raise FormatError("calibration JSON has no camera_matrix", path)
        try:
            return Calibration(_from_parts(np.array(k, dtype=np.float64).reshape(3, 3),
                                           np.array(dist, dtype=np.float64),
                                           d.get("image_width", d.get("width", 0)),
                                           d.get("image_height", d.get("height", 0)), path), path)
        except (TypeError, ValueError):
            raise FormatError("camera_matrix must hold 9 numbers", path) from None
    import cv2

    try:
        fs = cv2.FileStorage(path, cv2.FILE_STORAGE_READ)
    except (cv2.error, SystemError):  # SystemError: OpenCV's binding on a file it cannot parse
        raise FormatError("not an OpenCV YAML/XML calibration file", path) from None
    try:
        if not fs.isOpened():
            raise FormatError("not an OpenCV YAML/XML calibration file", path)
        k = fs.getNode("camera_matrix").mat()
        dist = fs.getNode("distortion_coefficients").mat()
        width = fs.getNode("image_width").real()
        height = fs.getNode("image_height").real()
    finally:
        fs.release()
    if k is None:
        raise FormatError("calibration file has no camera_matrix", path)
    return Calibration(_from_parts(k, np.zeros(0) if dist is None else dist, width, height, path), path)


def save_calibration(path: str | os.PathLike[str], camera: CameraIntrinsics, rms_px: float | None = None) -> None:
    """Write ``camera`` as OpenCV YAML (``.yaml``/``.yml``/``.xml``) or JSON (``.json``)."""
    path = os.fspath(path)
    k = camera.matrix()
    dist = np.array(camera.distortion if camera.distortion else [0.0] * 5, dtype=np.float64)
    if path.lower().endswith(".json"):
        d = {"image_width": camera.width, "image_height": camera.height, "camera_matrix": k.tolist(),
             "distortion_coefficients": dist.tolist()}
        if rms_px is not None:
            d["rms_reprojection_error_px"] = float(rms_px)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(d, f, indent=1)
        return
    if not path.lower().endswith((".yaml", ".yml", ".xml")):
        raise ConfigError(f"calibration file {path!r} must end in .yaml, .yml, .xml or .json")
    import cv2

    fs = cv2.FileStorage(path, cv2.FILE_STORAGE_WRITE)
    if not fs.isOpened():
        raise FormatError("cannot write calibration file", path)
    try:
        fs.write("image_width", int(camera.width))
        fs.write("image_height", int(camera.height))
        fs.write("camera_matrix", k)
        fs.write("distortion_coefficients", dist.reshape(1, -1))
        if rms_px is not None:
            fs.write("rms_reprojection_error_px", float(rms_px))
    finally:
        fs.release()


class ColorCameraModel:
    """The colour camera of a colour-only source: a calibration file, else an assumed FOV.

    ``describe()`` states which, so a report says whether distances are measured or guessed.
    """

    def __init__(self, calibration_path: str | None, hfov_deg: float | None) -> None:
        if calibration_path and hfov_deg is not None:
            raise ConfigError("give either calibration=FILE or fov=DEGREES, not both")
        self.calibration = load_calibration(calibration_path) if calibration_path else None
        self.hfov_deg = DEFAULT_HFOV_DEG if hfov_deg is None else float(hfov_deg)
        if self.calibration is None:
            fov_intrinsics(2, 2, self.hfov_deg)  # validates the angle now, not at the first frame
        self._cache: dict[tuple[int, int], CameraIntrinsics] = {}

    def for_size(self, width: int, height: int) -> CameraIntrinsics:
        key = (int(width), int(height))
        cam = self._cache.get(key)
        if cam is None:
            if self.calibration is not None:
                cam = self.calibration.for_size(*key)
            else:
                cam = fov_intrinsics(key[0], key[1], self.hfov_deg)
            self._cache[key] = cam
        return cam

    def describe(self) -> dict:
        if self.calibration is not None:
            return {"intrinsics": "calibration file", "calibration": self.calibration.path,
                    "camera": self.calibration.camera.to_dict()}
        return {"intrinsics": f"assumed horizontal field of view {self.hfov_deg:g} degrees "
                              "(no calibration file; distances are estimates)",
                "hfov_deg": self.hfov_deg}


# -- chessboard calibration (the core of ``launch.py calibrate``) ---------------------------
@dataclass(frozen=True)
class ChessboardCalibration:
    """The result of a chessboard calibration."""

    camera: CameraIntrinsics
    rms_px: float  # RMS reprojection error over every corner of every view
    views: int


def find_chessboard(rgb: np.ndarray, board: tuple[int, int]) -> np.ndarray | None:
    """Sub-pixel inner corners (Nx1x2 float32) of a chessboard with ``board`` = (columns, rows)
    inner corners, or None when the whole board is not visible."""
    import cv2

    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_FAST_CHECK
    found, corners = cv2.findChessboardCorners(gray, board, flags=flags)
    if not found:
        return None
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 40, 1e-3)
    return cv2.cornerSubPix(gray, corners, (5, 5), (-1, -1), criteria)


def calibrate_chessboard(corners: list[np.ndarray], image_size: tuple[int, int], board: tuple[int, int],
                         square_mm: float) -> ChessboardCalibration:
    """Calibrate from the corners of several views (``image_size`` = (width, height)).

    Estimates fx, fy, cx, cy and the distortion k1, k2, p1, p2 (k3 fixed at 0: a webcam's few
    views do not pin it down). Needs at least 3 views; 10-20 at varied angles give a good result.
    """
    import cv2

    if len(corners) < 3:
        raise ConfigError(f"a calibration needs at least 3 views of the chessboard, got {len(corners)}")
    cols, rows = board
    grid = np.zeros((rows * cols, 3), np.float32)
    grid[:, :2] = np.mgrid[0:cols, 0:rows].T.reshape(-1, 2) * float(square_mm)
    w, h = image_size
    rms, k, dist, _, _ = cv2.calibrateCamera([grid] * len(corners), [c.astype(np.float32) for c in corners],
                                             (int(w), int(h)), None, None, flags=cv2.CALIB_FIX_K3)
    d = tuple(float(x) for x in np.asarray(dist).ravel()[:5])
    cam = CameraIntrinsics(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), int(w), int(h), d)
    return ChessboardCalibration(cam, float(rms), len(corners))


@dataclass(frozen=True)
class ChessboardConfig:
    """A chessboard calibration from a source: ``views`` views of a board with ``board`` =
    (columns, rows) inner corners and squares of ``square_mm``; a live source takes a view at
    most every ``interval_s`` seconds; reading gives up after ``max_frames`` frames (None: at
    the source's end)."""

    source: str
    board: tuple[int, int] = (9, 6)
    square_mm: float = 25.0
    views: int = 15
    interval_s: float = 1.0
    max_frames: int | None = None


def calibrate_from_source(cfg: ChessboardConfig, on_view: Callable[[int, str], None] | None = None,
                          on_skip: Callable[[str], None] | None = None) -> ChessboardCalibration:
    """Collect chessboard views from ``cfg.source`` and calibrate from them.

    ``on_view(views_found, where)`` is called for each view taken (``where``: the frame's source,
    or its number); ``on_skip(message)`` for each frame left out because it could not be read
    or has another size than the first view. FormatError when fewer than 3 views were found.
    """
    corners: list[np.ndarray] = []
    size: tuple[int, int] | None = None
    read, last_view = 0, -1e9
    with open_source(cfg.source) as src:
        while len(corners) < cfg.views and (cfg.max_frames is None or read < cfg.max_frames):
            try:
                frame = src.read(timeout_s=src.lost_after_s + 1.0 if src.is_live else 10.0)
            except TimeoutError:
                continue
            except EOFError:
                break
            except FormatError as exc:
                if on_skip is not None:
                    on_skip(f"skipped: {exc}")
                continue
            read += 1
            h, w = frame.color.shape[:2]
            if size is not None and size != (w, h):
                if on_skip is not None:
                    on_skip(f"skipped {frame.source}: {w}x{h}, the first view was {size[0]}x{size[1]}")
                continue
            if src.is_live and time.monotonic() - last_view < cfg.interval_s:
                continue
            found = find_chessboard(frame.color, cfg.board)
            if found is None:
                continue
            size = (w, h)
            corners.append(found)
            last_view = time.monotonic()
            if on_view is not None:
                on_view(len(corners), frame.source or "frame " + str(read))
    if len(corners) < 3 or size is None:
        raise FormatError(f"the {cfg.board[0]}x{cfg.board[1]} board was found in {len(corners)} of {read} "
                          "frames; need at least 3 (check --board counts inner corners)", cfg.source)
    return calibrate_chessboard(corners, size, cfg.board, cfg.square_mm)
