"""Head pose and head centre: the project's one definition, used by every source, the locator,
the crop, the virtual Kinect, training and evaluation.

Camera axes (every camera): x right, y down, z forward (away from the camera), millimetres.

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
in the head's own axes, or refine it from the frame's depth (``sensors.locate.locator.refine_centre``),
and keep their own annotation as ``Frame.head_center_raw_mm``.
"""
from __future__ import annotations

import math

import numpy as np

#: the tag files written by the project carry for the head centre they store
HEAD_CENTRE_DEFINITION = "skull-centre"
#: the face surface lies this far in front of the head centre (mm)
FACE_TO_CENTER_MM = 90.0


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
