"""The one definition of head rotation and head centre (sensors/geometry.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sensors.geometry import (
    centre_from_anchor, euler_deg_from_rotation, rot_x, rot_y, rot_z, rotation_from_euler_deg,
)


def _rx(deg):  # written out independently of the module
    a = math.radians(deg)
    return np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])


def _ry(deg):
    a = math.radians(deg)
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


def _rz(deg):
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])


def test_elementary_rotations_are_right_handed():
    np.testing.assert_allclose(rot_x(math.radians(30)), _rx(30), atol=1e-12)
    np.testing.assert_allclose(rot_y(math.radians(-40)), _ry(-40), atol=1e-12)
    np.testing.assert_allclose(rot_z(math.radians(75)), _rz(75), atol=1e-12)
    np.testing.assert_allclose(rot_z(math.pi / 2) @ [1, 0, 0], [0, 1, 0], atol=1e-12)  # x -> y


def test_euler_angles_follow_the_documented_convention():
    assert euler_deg_from_rotation(np.eye(3)) == pytest.approx((0, 0, 0))
    # R = Ry(yaw) Rx(-pitch) Rz(roll)
    for yaw, pitch, roll in [(30, 0, 0), (0, 20, 0), (0, 0, -15), (-50, 25, 10)]:
        r = _ry(yaw) @ _rx(-pitch) @ _rz(roll)
        np.testing.assert_allclose(rotation_from_euler_deg(yaw, pitch, roll), r, atol=1e-12)
        assert euler_deg_from_rotation(r) == pytest.approx((yaw, pitch, roll), abs=1e-9)
    rng = np.random.default_rng(0)
    for yaw, pitch, roll in rng.uniform([-170, -80, -170], [170, 80, 170], (50, 3)):
        got = euler_deg_from_rotation(rotation_from_euler_deg(yaw, pitch, roll))
        assert got == pytest.approx((yaw, pitch, roll), abs=1e-9)


def test_signs_as_the_camera_sees_a_head_facing_it():
    nose = np.array([0.0, 0.0, -110.0])  # head axes: the face looks along -z
    top = np.array([0.0, -100.0, 0.0])  # y down
    assert (rotation_from_euler_deg(30, 0, 0) @ nose)[0] < -50  # yaw > 0: the face turns to the image left
    assert (rotation_from_euler_deg(0, 20, 0) @ nose)[1] < -30  # pitch > 0: the face turns up
    assert (rotation_from_euler_deg(0, 0, 20) @ top)[0] > 30  # roll > 0: the top tilts to the image right


def test_centre_from_anchor_follows_the_head_as_it_turns():
    anchor = np.array([10.0, -20.0, 900.0])
    offset = np.array([0.0, 0.0, 66.0])  # the centre 66 mm behind the anchor, in head axes
    np.testing.assert_allclose(centre_from_anchor(anchor, None, offset), [10, -20, 966])
    for yaw in (-45.0, 45.0):
        c = centre_from_anchor(anchor, rotation_from_euler_deg(yaw, 0, 0), offset)
        assert np.linalg.norm(c - anchor) == pytest.approx(66.0)
        # the face turns to the image left for yaw > 0, so the centre behind it lies to the right
        assert np.sign(c[0] - anchor[0]) == np.sign(yaw)
        assert c[2] - anchor[2] == pytest.approx(66.0 * math.cos(math.radians(45)))
