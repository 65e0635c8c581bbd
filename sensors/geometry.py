"""Cameras, projection, head pose and head centre: the project's one definition, used by every
source, the locator, the crop, the virtual Kinect, training and evaluation.

Camera axes (every camera): x right, y down, z forward (away from the camera), millimetres.
Pixels: ``u`` to the right, ``v`` down, the centre of the top-left pixel at (0, 0).

The pinhole model lives in :class:`CameraIntrinsics` and nowhere else: :meth:`~CameraIntrinsics.project`
and :meth:`~CameraIntrinsics.project_xyz` (points to pixels), :meth:`~CameraIntrinsics.ray` and
:meth:`~CameraIntrinsics.ray_grid` (pixels to viewing rays, z = 1), :meth:`~CameraIntrinsics.unproject`
(pixels with depth to points), and the lens-distorted variants. :class:`Extrinsics` is a rigid
transform between two cameras.

Head axes: x to the image right, y down, z away from the camera for a head that faces the
camera squarely (the face looks along -z); the origin is the head centre. A head rotation R
(``Frame.head_rotation``) maps head axes to camera axes: a point p in head axes sits at
``centre + R @ p`` in the camera. R = I is a head facing the camera.

Euler angles (degrees): R = R_y(yaw) R_x(-pitch) R_z(roll), intrinsic in that order, with the
elementary right-handed rotations :func:`rot_x`, :func:`rot_y`, :func:`rot_z`. Signs, as the
camera sees a head facing it:

- yaw > 0: the face turns towards the image's left (the person's own right);
- pitch > 0: the face turns up (chin up);
- roll > 0: the head tilts clockwise in the image (its top towards the image's right).

:func:`rotation_from_euler_deg` and :func:`euler_deg_from_rotation` are the only conversions
between the two; pitch is kept in (-90, 90).

The head centre (:data:`HEAD_CENTRE_DEFINITION`): the centre of the skull, about
:data:`FACE_TO_CENTER_MM` behind the face surface along the head's z axis; D, the distance the
crop and the depth encoding are relative to, is its z in colour-camera coordinates. The virtual
Kinect's people are built around it and the generator learned depth relative to it, so every
source hands the pipeline a centre of this definition. Datasets that annotate another point
convert it (``sensors.datasets.biwi``, ``sensors.datasets.pandora``) with :func:`centre_from_anchor`, an offset
in the head's own axes, or refine it from the frame's depth (``sensors.locate.centre.refine_centre``),
and keep their own annotation as ``Frame.head_center_raw_mm``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

#: the tag files written by the project carry for the head centre they store
HEAD_CENTRE_DEFINITION = "skull-centre"
#: the face surface lies this far in front of the head centre (mm)
FACE_TO_CENTER_MM = 90.0


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of one camera, in pixels, with OpenCV-style distortion coefficients.

    The plain methods ignore ``distortion``; the ``*_distorted`` ones apply it (through OpenCV).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    distortion: tuple[float, ...] = ()

    def matrix(self) -> np.ndarray:
        """The 3x3 camera matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def project(self, points_mm: np.ndarray) -> np.ndarray:
        """Project Nx3 camera-coordinate points (z > 0) to Nx2 pixel coordinates (no distortion)."""
        p = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
        return np.stack(self.project_xyz(p[:, 0], p[:, 1], p[:, 2]), axis=1)

    def project_xyz(self, x_mm: np.ndarray, y_mm: np.ndarray, z_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project points given as coordinate arrays (z > 0) to pixel coordinates (u, v), no
        distortion. For hot paths: no copy, and the arrays keep their own dtype (float32 stays
        float32)."""
        return self.fx * x_mm / z_mm + self.cx, self.fy * y_mm / z_mm + self.cy

    def ray(self, u: np.ndarray | float, v: np.ndarray | float) -> np.ndarray:
        """The viewing rays (x/z, y/z, 1) of pixel coordinates ``u``, ``v`` (same shape S, or
        scalars), shape S + (3,), float64; no distortion."""
        u = np.asarray(u, dtype=np.float64)
        v = np.asarray(v, dtype=np.float64)
        if u.shape != v.shape:
            raise ValueError(f"pixel coordinates u {u.shape} and v {v.shape} differ in shape")
        return np.stack([(u - self.cx) / self.fx, (v - self.cy) / self.fy, np.ones_like(u)], axis=-1)

    def ray_grid(self) -> np.ndarray:
        """The viewing ray (x/z, y/z, 1) of every pixel, (height, width, 3) float64; no distortion."""
        u, v = np.meshgrid(np.arange(self.width, dtype=np.float64), np.arange(self.height, dtype=np.float64))
        return self.ray(u, v)

    def unproject(self, u: np.ndarray, v: np.ndarray, z_mm: np.ndarray) -> np.ndarray:
        """Back-project pixel coordinates with depth z (mm) to Nx3 camera-coordinate points."""
        u = np.asarray(u, dtype=np.float64).ravel()
        v = np.asarray(v, dtype=np.float64).ravel()
        z = np.asarray(z_mm, dtype=np.float64).ravel()
        return np.stack([(u - self.cx) * z / self.fx, (v - self.cy) * z / self.fy, z], axis=1)

    def ray_distorted(self, u: np.ndarray | float, v: np.ndarray | float) -> np.ndarray:
        """Like :meth:`ray` for pixel coordinates of the distorted image: the lens distortion
        is removed first."""
        if not any(self.distortion):
            return self.ray(u, v)
        import cv2  # only distorted cameras (calibrated sensors) need OpenCV here

        u = np.asarray(u, dtype=np.float64)
        v = np.asarray(v, dtype=np.float64)
        if u.shape != v.shape:
            raise ValueError(f"pixel coordinates u {u.shape} and v {v.shape} differ in shape")
        pts = np.stack([u.ravel(), v.ravel()], axis=1).reshape(-1, 1, 2)
        und = cv2.undistortPoints(pts, self.matrix(), np.asarray(self.distortion, dtype=np.float64))
        return np.stack([und[:, 0, 0].reshape(u.shape), und[:, 0, 1].reshape(u.shape), np.ones_like(u)], axis=-1)

    def project_distorted(self, points_mm: np.ndarray) -> np.ndarray:
        """Like :meth:`project`, through the camera's lens distortion."""
        if not any(self.distortion):
            return self.project(points_mm)
        import cv2

        uv, _ = cv2.projectPoints(
            np.ascontiguousarray(points_mm, dtype=np.float64).reshape(-1, 1, 3), np.zeros(3), np.zeros(3),
            self.matrix(), np.asarray(self.distortion, dtype=np.float64),
        )
        return uv.reshape(-1, 2)

    def scaled(self, width: int, height: int) -> "CameraIntrinsics":
        """The same camera for an image resized to ``width`` x ``height``."""
        sx, sy = width / self.width, height / self.height
        return replace(
            self,
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
            width=int(width),
            height=int(height),
        )

    def to_dict(self) -> dict:
        return {
            "fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy,
            "width": self.width, "height": self.height, "distortion": list(self.distortion),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "CameraIntrinsics":
        return cls(
            float(d["fx"]), float(d["fy"]), float(d["cx"]), float(d["cy"]),
            int(d["width"]), int(d["height"]), tuple(float(x) for x in d.get("distortion", ())),
        )


@dataclass(frozen=True, eq=False)
class Extrinsics:
    """A rigid transform in mm: a point p maps to ``rotation @ p + translation_mm``."""

    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation_mm: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        r = np.asarray(self.rotation, dtype=np.float64).reshape(3, 3)
        t = np.asarray(self.translation_mm, dtype=np.float64).reshape(3)
        r.setflags(write=False)
        t.setflags(write=False)
        object.__setattr__(self, "rotation", r)
        object.__setattr__(self, "translation_mm", t)

    def apply(self, points_mm: np.ndarray) -> np.ndarray:
        """Transform Nx3 points (or one 3-vector)."""
        p = np.asarray(points_mm, dtype=np.float64)
        return p @ self.rotation.T + self.translation_mm

    def inverse(self) -> "Extrinsics":
        rt = self.rotation.T
        return Extrinsics(rt, -rt @ self.translation_mm)

    def to_dict(self) -> dict:
        return {"rotation": self.rotation.tolist(), "translation_mm": self.translation_mm.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Extrinsics":
        return cls(np.array(d["rotation"], dtype=np.float64), np.array(d["translation_mm"], dtype=np.float64))

    @classmethod
    def identity(cls) -> "Extrinsics":
        return cls()


def rot_x(angle_rad: float) -> np.ndarray:
    """Right-handed rotation about the x axis."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(angle_rad: float) -> np.ndarray:
    """Right-handed rotation about the y axis."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(angle_rad: float) -> np.ndarray:
    """Right-handed rotation about the z axis."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_from_euler_deg(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The head rotation (head axes -> camera) of (yaw, pitch, roll) in degrees: R_y(yaw) R_x(-pitch) R_z(roll)."""
    return rot_y(np.radians(yaw)) @ rot_x(-np.radians(pitch)) @ rot_z(np.radians(roll))


def euler_deg_from_rotation(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a head rotation; the inverse of :func:`rotation_from_euler_deg`."""
    r = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
    pitch = math.asin(max(-1.0, min(1.0, r[1, 2])))
    yaw = math.atan2(r[0, 2], r[2, 2])
    roll = math.atan2(r[1, 0], r[1, 1])
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)


def centre_from_anchor(anchor_mm: np.ndarray, rotation: np.ndarray | None, offset_head_mm: np.ndarray) -> np.ndarray:
    """The head centre of a head whose annotated point (``anchor_mm``, camera mm) lies at
    ``-offset_head_mm`` from the centre in head axes: ``anchor + R @ offset``. Without a
    rotation the head is taken to face the camera (R = I)."""
    r = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64).reshape(3, 3)
    offset = np.asarray(offset_head_mm, dtype=np.float64).reshape(3)
    return np.asarray(anchor_mm, dtype=np.float64).reshape(3) + r @ offset
