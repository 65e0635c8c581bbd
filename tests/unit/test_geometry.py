"""The one definition of cameras, head rotation and head centre (sensors/geometry.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sensors.geometry import (
    CameraIntrinsics, centre_from_anchor, euler_deg_from_rotation, rot_x, rot_y, rot_z, rotation_from_euler_deg,
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


CAM = CameraIntrinsics(365.5, 366.0, 254.9, 205.4, 512, 424)
CAM_DISTORTED = CameraIntrinsics(365.5, 366.0, 254.9, 205.4, 512, 424, (0.09, -0.27, 0.001, -0.002, 0.1))


def test_rays_project_back_to_their_pixels():
    u, v = np.meshgrid([0.0, 100.5, 511.0], [3.0, 423.0])
    rays = CAM.ray(u, v)
    assert rays.shape == (2, 3, 3) and np.all(rays[..., 2] == 1.0)
    np.testing.assert_allclose(CAM.project(rays.reshape(-1, 3) * 850.0), np.stack([u.ravel(), v.ravel()], 1),
                               atol=1e-9)
    assert CAM.ray(10.0, 20.0).shape == (3,)
    np.testing.assert_allclose(CAM.unproject(u, v, np.full(u.size, 700.0)), rays.reshape(-1, 3) * 700.0, atol=1e-9)


def test_ray_grid_is_the_ray_of_every_pixel():
    grid = CAM.scaled(64, 53).ray_grid()
    assert grid.shape == (53, 64, 3)
    cam = CAM.scaled(64, 53)
    np.testing.assert_array_equal(grid[7, 11], cam.ray(11.0, 7.0))


def test_ray_rejects_pixel_arrays_of_different_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        CAM.ray(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="differ in shape"):
        CAM_DISTORTED.ray_distorted(np.zeros(3), np.zeros(4))


def test_project_xyz_keeps_the_dtype_and_matches_project():
    p = np.array([[10.0, -20.0, 800.0], [-150.0, 60.0, 1200.0]])
    u, v = CAM.project_xyz(p[:, 0], p[:, 1], p[:, 2])
    np.testing.assert_array_equal(np.stack([u, v], 1), CAM.project(p))
    p32 = p.astype(np.float32)
    assert CAM.project_xyz(p32[:, 0], p32[:, 1], p32[:, 2])[0].dtype == np.float32


def test_distorted_rays_and_projection_invert_each_other():
    p = np.array([[10.0, -20.0, 800.0], [-250.0, 160.0, 900.0]])
    uv = CAM_DISTORTED.project_distorted(p)
    assert not np.allclose(uv, CAM.project(p), atol=0.5)  # the lens moves these points
    rays = CAM_DISTORTED.ray_distorted(uv[:, 0], uv[:, 1])
    np.testing.assert_allclose(rays * p[:, 2:], p, atol=0.05)
    np.testing.assert_array_equal(CAM.ray_distorted(3.0, 4.0), CAM.ray(3.0, 4.0))  # no distortion: the plain ray
