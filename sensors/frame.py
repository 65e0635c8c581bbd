"""The frame contract: one frame type for every source (live, recorded, dataset, virtual).

Conventions (they hold everywhere in the project; cameras and axes in ``sensors.geometry``):

- Pixels: ``u`` to the right, ``v`` down, the centre of the top-left pixel at (0, 0).
- Camera coordinates in millimetres: x right, y down, z forward (away from the camera).
- ``depth_mm`` holds the depth camera's z in mm; 0 means no reading.
- ``depth_to_color`` maps a depth-camera point p to colour-camera coordinates as R p + t.
- ``head_center_mm`` is in depth-camera coordinates (as the datasets annotate it) and always
  the project's head centre (``sensors.geometry``: the skull's centre); the crop uses its
  colour-camera z as the distance D. A dataset that annotates another point keeps it, as
  written, in ``head_center_raw_mm``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sensors.errors import SensorError
from sensors.geometry import CameraIntrinsics, Extrinsics


def _check_image(name: str, a: np.ndarray, ndim: int, dtype: type, channels: int | None = None) -> None:
    if not isinstance(a, np.ndarray):
        raise SensorError(f"frame field {name} must be a numpy array, got {type(a).__name__}")
    if a.dtype != dtype:
        raise SensorError(f"frame field {name} must be {np.dtype(dtype).name}, got {a.dtype.name}")
    if a.ndim != ndim or (channels is not None and a.shape[-1] != channels):
        want = "HxWx3" if channels else "HxW"
        raise SensorError(f"frame field {name} must be {want}, got shape {a.shape}")


@dataclass(frozen=True, eq=False)
class Frame:
    """One capture from any source.

    ``color`` is HxWx3 uint8 in RGB order. ``depth_mm`` is HxW uint16 (0 = no reading) and
    absent for colour-only sources, which also have no ``depth_camera``. Annotations are
    optional: ``head_center_mm`` (x, y, z in depth-camera coordinates, or colour-camera
    coordinates when the source has no depth camera), ``head_rotation`` (3x3, head axes to the
    same camera), ``subject_id``, ``depth_clean_mm`` (noise-free depth, where known) and
    ``head_center_raw_mm`` (the dataset's own head point as written, in the coordinates of
    ``head_center_mm``, where it defines the head centre otherwise than the project).
    ``timestamp_ns`` is the host's monotonic clock at capture.

    ``face_mask`` (HxW bool, the depth camera's image, same size as ``depth_mm``; only virtual
    frames have it, None elsewhere): the depth pixels whose visible surface is the narrow face
    area (``HeadModel.face_index``), after the z-buffer, so hair, glasses, hands and other
    occluders in front of the face are not in it. It is the noise-free depth's z-buffer (every
    mask pixel has ``depth_clean_mm`` > 0); the sensor's holes in ``depth_mm`` do not change it.
    Recordings do not store it (a replayed frame has None).
    """

    index: int
    timestamp_ns: int
    color: np.ndarray
    color_camera: CameraIntrinsics
    depth_mm: np.ndarray | None = None
    depth_camera: CameraIntrinsics | None = None
    depth_to_color: Extrinsics = field(default_factory=Extrinsics.identity)
    head_center_mm: np.ndarray | None = None
    head_rotation: np.ndarray | None = None
    subject_id: int | str | None = None
    depth_clean_mm: np.ndarray | None = None
    source: str = ""
    head_center_raw_mm: np.ndarray | None = None
    face_mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        _check_image("color", self.color, 3, np.uint8, channels=3)
        cc = self.color_camera
        if self.color.shape[:2] != (cc.height, cc.width):
            raise SensorError(
                f"colour image is {self.color.shape[1]}x{self.color.shape[0]} but its camera "
                f"says {cc.width}x{cc.height}"
            )
        for name in ("depth_mm", "depth_clean_mm"):
            d = getattr(self, name)
            if d is None:
                continue
            _check_image(name, d, 2, np.uint16)
            dc = self.depth_camera
            if dc is None:
                raise SensorError(f"frame has {name} but no depth_camera")
            if d.shape != (dc.height, dc.width):
                raise SensorError(
                    f"{name} is {d.shape[1]}x{d.shape[0]} but its camera says {dc.width}x{dc.height}"
                )
        if self.face_mask is not None:
            _check_image("face_mask", self.face_mask, 2, np.bool_)
            dc = self.depth_camera
            if dc is None:
                raise SensorError("frame has face_mask but no depth_camera")
            if self.face_mask.shape != (dc.height, dc.width):
                raise SensorError(
                    f"face_mask is {self.face_mask.shape[1]}x{self.face_mask.shape[0]} but its camera says "
                    f"{dc.width}x{dc.height}"
                )
        for name in ("head_center_mm", "head_center_raw_mm"):
            if getattr(self, name) is None:
                continue
            hc = np.asarray(getattr(self, name), dtype=np.float64).reshape(-1)
            if hc.shape != (3,) or not np.all(np.isfinite(hc)):
                raise SensorError(f"{name} must be 3 finite numbers, got {getattr(self, name)!r}")
            object.__setattr__(self, name, hc)
        if self.head_rotation is not None:
            r = np.asarray(self.head_rotation, dtype=np.float64)
            if r.shape != (3, 3) or not np.all(np.isfinite(r)):
                raise SensorError(f"head_rotation must be a finite 3x3 matrix, got shape {r.shape}")
            object.__setattr__(self, "head_rotation", r)

    @property
    def has_depth(self) -> bool:
        return self.depth_mm is not None

    def head_center_color_mm(self) -> np.ndarray | None:
        """The annotated head centre in colour-camera coordinates (mm), if annotated."""
        if self.head_center_mm is None:
            return None
        if self.depth_camera is None:
            return self.head_center_mm.copy()
        return self.depth_to_color.apply(self.head_center_mm)
