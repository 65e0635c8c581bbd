"""The dynamic face crop (sensors/crop.py) on hand-built frames with known geometry.

Frames are ray-cast here from first principles (a Kinect v2-like rig: 1920x1080 colour,
512x424 depth with lens distortion, the depth camera 52 mm beside the colour camera), so
every expected value below follows from the geometry, not from the code under test.
"""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from sensors.crop import PAD_GRAY, CropConfig, FaceCrop, crop_face
from sensors.encoding import encode_depth
from sensors.errors import ConfigError, SensorError
from sensors.frame import Frame
from sensors.geometry import CameraIntrinsics, Extrinsics

COLOR = CameraIntrinsics(1081.4, 1081.4, 959.5, 539.5, 1920, 1080)
DEPTH = CameraIntrinsics(365.5, 365.5, 254.9, 205.4, 512, 424, (0.09, -0.27, 0.0, 0.0, 0.09))
_A = np.deg2rad(1.5)
#: depth camera 52 mm to the side, slightly turned and 3 mm behind: a realistic, non-trivial rig
RIG = Extrinsics(
    np.array([[np.cos(_A), 0, np.sin(_A)], [0, 1, 0], [-np.sin(_A), 0, np.cos(_A)]]), [52.0, 1.0, -3.0]
)


def depth_rays(cam: CameraIntrinsics) -> np.ndarray:
    """(H, W, 3) undistorted ray directions (x/z, y/z, 1) of every depth pixel."""
    u, v = np.meshgrid(np.arange(cam.width, dtype=np.float64), np.arange(cam.height, dtype=np.float64))
    pts = np.stack([u.ravel(), v.ravel()], 1).reshape(-1, 1, 2)
    und = cv2.undistortPoints(pts, cam.matrix(), np.array(cam.distortion, dtype=np.float64)).reshape(-1, 2)
    return np.concatenate([und, np.ones((len(und), 1))], 1).reshape(cam.height, cam.width, 3)


def cast_plane(normal_c, point_c, rig=RIG, cam=DEPTH, half_size_mm=None, background_mm=0.0):
    """Depth image (uint16 mm, depth-camera z) of a plane given in colour-camera coordinates.

    With ``half_size_mm`` the plane is a square of that half-size centred at ``point_c``
    (axes along colour x and y); other rays see ``background_mm``.
    """
    rays = depth_rays(cam)
    origin = rig.translation_mm  # the depth camera's centre in colour coordinates
    dirs = rays @ rig.rotation.T
    n = np.asarray(normal_c, float)
    s = ((np.asarray(point_c, float) - origin) @ n) / (dirs @ n)
    hit = origin + s[..., None] * dirs
    z = s * rays[..., 2]
    ok = s > 0
    if half_size_mm is not None:
        off = hit - np.asarray(point_c, float)
        ok &= (np.abs(off[..., 0]) <= half_size_mm) & (np.abs(off[..., 1]) <= half_size_mm)
    out = np.where(ok, z, background_mm)
    return np.clip(np.rint(out), 0, 65535).astype(np.uint16)


def square_color(cam: CameraIntrinsics, z_mm: float, half_size_mm: float) -> np.ndarray:
    """Colour image: a white square of the given half-size on the optical axis at z, dark elsewhere."""
    u = np.arange(cam.width)
    v = np.arange(cam.height)
    inu = np.abs((u - cam.cx) * z_mm / cam.fx) <= half_size_mm
    inv = np.abs((v - cam.cy) * z_mm / cam.fy) <= half_size_mm
    img = np.full((cam.height, cam.width, 3), 20, np.uint8)
    img[np.ix_(inv, inu)] = 230
    return img


def make_frame(color=None, depth=None, rig=RIG, ccam=COLOR, dcam=DEPTH, clean=None) -> Frame:
    if color is None:
        color = np.full((ccam.height, ccam.width, 3), 90, np.uint8)
    return Frame(0, 0, color, ccam, depth, None if depth is None else dcam, rig, depth_clean_mm=clean)


def run_length(mask_1d: np.ndarray) -> tuple[int, int]:
    idx = np.flatnonzero(mask_1d)
    return int(idx[0]), int(idx[-1])


def test_config_validates_and_round_trips():
    c = CropConfig(size_px=64, window_x_mm=220, window_y_mm=260, half_range_mm=120)
    assert CropConfig.from_dict(c.to_dict()) == c
    assert CropConfig.from_dict({}) == CropConfig()
    for bad in (dict(size_px=0), dict(window_x_mm=-1), dict(half_range_mm=float("nan")),
                dict(depth_margin_mm=100.0, half_range_mm=150.0)):
        with pytest.raises(ConfigError):
            CropConfig(**bad)
    with pytest.raises(ConfigError, match="unknown"):
        CropConfig.from_dict({"size": 100})


def test_window_follows_the_formula_and_head_centre_lands_in_the_middle():
    cfg = CropConfig(size_px=100, window_x_mm=240, window_y_mm=200)
    head = np.array([35.0, -20.0, 1250.0])
    c = crop_face(make_frame(), head, cfg)
    x0, y0, w, h = c.window_px
    assert w == pytest.approx(COLOR.fx * 240 / 1250) and h == pytest.approx(COLOR.fy * 200 / 1250)
    u = COLOR.fx * 35 / 1250 + COLOR.cx
    v = COLOR.fy * -20 / 1250 + COLOR.cy
    assert c.center_px == pytest.approx((u, v))
    assert (x0 + w / 2, y0 + h / 2) == pytest.approx((u, v))
    assert c.distance_mm == 1250.0
    np.testing.assert_allclose(c.to_crop_px(head[None]), [[49.5, 49.5]], atol=1e-9)
    assert c.depth_mm is None and c.depth8() is None and c.depth_clean8() is None  # colour-only frame


def test_colour_crop_samples_the_exact_subpixel_window():
    # a linear ramp along u: the area average over a crop pixel equals the ramp at its centre
    ramp = (np.arange(COLOR.width) / 8.0).astype(np.float64)
    img = np.repeat(np.repeat(ramp[None, :, None], COLOR.height, 0), 3, 2)
    frame = make_frame(color=np.rint(img).astype(np.uint8))
    for z in (600.0, 1000.0, 1500.0):
        c = crop_face(frame, np.array([13.7, 4.1, z]), CropConfig())
        x0, _, w, _ = c.window_px
        expect = (x0 + (np.arange(100) + 0.5) * w / 100) / 8.0
        got = c.color[50, :, 0].astype(float)
        assert np.abs(got - expect).max() <= 1.0, z


def test_hand_built_square_fills_the_crop_as_the_formula_predicts_in_colour_and_depth():
    # a 120 mm square at 1 m in a 240 mm window covers the central half: crop pixels 25..74
    z, half = 1000.0, 60.0
    depth = cast_plane([0, 0, 1], [0, 0, z], half_size_mm=half, background_mm=2500)
    frame = make_frame(color=square_color(COLOR, z, half), depth=depth)
    c = crop_face(frame, np.array([0.0, 0.0, z]), CropConfig())
    bright = c.color[..., 0] > 125
    d8 = c.depth8()
    assert d8 is not None
    for mask in (bright, d8 > 0):
        lo, hi = run_length(mask[50])
        assert abs(lo - 25) <= 1 and abs(hi - 74) <= 1, (lo, hi)
        lo, hi = run_length(mask[:, 50])
        assert abs(lo - 25) <= 1 and abs(hi - 74) <= 1, (lo, hi)
    # the depth square is registered onto the colour square (the 52 mm baseline is undone)
    assert (bright != (d8 > 0)).sum() <= 2 * 4 * 50
    inside = c.depth_mm[30:70, 30:70]
    assert np.abs(inside - z).max() <= 1.0  # colour-camera z of the plane, to the sensor's mm


@pytest.mark.parametrize("distance_m", [0.6, 1.0, 1.5])
def test_virtual_kinect_plane_fills_the_crop_as_the_formula_predicts(distance_m):
    """The virtual Kinect's exact test scene: a 120 mm square facing the colour camera, cropped
    around its centre with a 240 mm window, covers the central half of the crop in colour and in
    depth (w = f R / D makes the crop independent of the distance), with no hole inside."""
    from sensors.source import open_source

    uri = f"virtual:scene=plane,distance={distance_m},plane_mm=120,noise=off,pace=off"
    with open_source(uri) as src:
        frame = src.render(0)
    c = crop_face(frame, frame.head_center_color_mm(), CropConfig())
    z = 1000.0 * distance_m
    assert c.distance_mm == pytest.approx(z, abs=0.5)
    d8 = c.depth8()
    lit = np.abs(c.color.astype(int) - 50).max(axis=-1) > 5  # the plane before a plain grey, depthless backdrop
    for mask in (lit, d8 > 0):
        for line in (mask[50], mask[:, 50]):
            lo, hi = run_length(line)
            assert abs(lo - 25) <= 1 and abs(hi - 74) <= 1, (distance_m, lo, hi)
    inside = c.depth_mm[27:73, 27:73]
    assert (inside > 0).all(), f"holes on the plane at {distance_m} m"
    assert np.abs(inside - z).max() <= 1.0  # colour-camera z of a plane facing the colour camera


@pytest.mark.parametrize("z", [600.0, 1000.0, 1500.0, 2500.0])
@pytest.mark.parametrize("tilt_deg", [0.0, 50.0])
def test_flat_surface_gives_a_hole_free_crop(z, tilt_deg):
    t = np.deg2rad(tilt_deg)
    normal = [np.sin(t), 0.2 * np.sin(t), -np.cos(t)]
    depth = cast_plane(normal, [0, 0, z])
    clean = depth.copy()
    c = crop_face(make_frame(depth=depth, clean=clean), np.array([10.0, -5.0, z]), CropConfig())
    assert c.depth_mm is not None and c.depth_clean_mm is not None
    assert (c.depth_mm > 0).all(), f"{(c.depth_mm == 0).sum()} holes at {z} mm, tilt {tilt_deg}"
    np.testing.assert_array_equal(c.depth_mm, c.depth_clean_mm)
    if tilt_deg == 0:
        # colour-camera z of a fronto-parallel plane at z, to the sensor's 1 mm quantisation
        assert np.abs(c.depth_mm - z).max() <= 2.0
    else:
        assert (c.depth8() > 0).mean() > 0.5


def test_depth_holes_stay_holes_and_values_are_never_blended():
    # depth camera offset along x only (R = I, t_z = 0): colour z equals the sensor's z exactly
    rig = Extrinsics(np.eye(3), [52.0, 0.0, 0.0])
    dcam = CameraIntrinsics(365.5, 365.5, 254.9, 205.4, 512, 424)
    rng = np.random.default_rng(3)
    for z in (600.0, 1500.0):
        depth = rng.integers(z - 60, z + 60, size=(dcam.height, dcam.width)).astype(np.uint16)
        depth[rng.random(depth.shape) < 0.3] = 0  # scattered holes
        depth[200:212, 240:252] = 0  # one 12 x 12 hole
        c = crop_face(make_frame(depth=depth, rig=rig, dcam=dcam), np.array([0.0, 0.0, z]), CropConfig())
        vals = c.depth_mm[c.depth_mm > 0]
        assert vals.size > 5000
        real = np.unique(depth[depth > 0]).astype(np.float32)
        assert np.isin(vals, real).all(), "a crop value that the sensor never measured"
    # the 12 x 12 hole seen at 1.5 m is about 12 * 1.71 = 20 crop pixels across: still empty
    centre = np.array([[(245.5 - dcam.cx) / dcam.fx * z + 52, (205.5 - dcam.cy) / dcam.fy * z, z]])
    ci, cj = np.rint(c.to_crop_px(centre)[0, ::-1]).astype(int)
    assert (c.depth_mm[ci - 6:ci + 7, cj - 6:cj + 7] == 0).all()
    assert (c.depth_mm[ci - 20:ci + 21, cj - 20:cj + 21] > 0).mean() > 0.3


def test_nearest_surface_wins():
    # a small box 100 mm in front of a wall: where both map to a crop pixel, the box wins
    z_wall, z_box = 1100.0, 1000.0
    wall = cast_plane([0, 0, 1], [0, 0, z_wall])
    box = cast_plane([0, 0, 1], [0, 0, z_box], half_size_mm=40.0)
    depth = np.where(box > 0, box, wall).astype(np.uint16)
    c = crop_face(make_frame(depth=depth), np.array([0.0, 0.0, 1000.0]), CropConfig())
    # the box spans +-40 mm = crop pixels 33.3 .. 65.7 at 1 m: its inside is all box
    core = c.depth_mm[36:64, 36:64]
    assert np.abs(core - z_box).max() <= 1.0
    assert np.abs(c.depth_mm[5:25, 5:95] - z_wall).max() <= 1.0


def test_window_past_the_image_border_is_padded_not_shifted():
    rng = np.random.default_rng(5)
    small_c = CameraIntrinsics(600.0, 600.0, 319.5, 239.5, 640, 480)
    small_d = CameraIntrinsics(580.0, 580.0, 319.5, 239.5, 640, 480)
    color = rng.integers(0, 256, (480, 640, 3)).astype(np.uint8)
    color = cv2.GaussianBlur(color, (0, 0), 3)
    depth = rng.integers(997, 1004, (480, 640)).astype(np.uint16)
    rig = Extrinsics(np.eye(3), [25.0, 0.0, 0.0])
    frame = make_frame(color, depth, rig, small_c, small_d)
    # the same scene in a larger canvas: grey colour and no depth around the original images
    m = 200
    big_c = CameraIntrinsics(600.0, 600.0, 319.5 + m, 239.5 + m, 640 + 2 * m, 480 + 2 * m)
    big_d = CameraIntrinsics(580.0, 580.0, 319.5 + m, 239.5 + m, 640 + 2 * m, 480 + 2 * m)
    big_color = np.full((480 + 2 * m, 640 + 2 * m, 3), PAD_GRAY, np.uint8)
    big_color[m:-m, m:-m] = color
    big_depth = np.zeros((480 + 2 * m, 640 + 2 * m), np.uint16)
    big_depth[m:-m, m:-m] = depth
    big = make_frame(big_color, big_depth, rig, big_c, big_d)
    head = np.array([-450.0, -320.0, 1000.0])  # window reaches past the top-left corner
    c = crop_face(frame, head, CropConfig())
    ref = crop_face(big, head, CropConfig())
    x0, y0, w, h = c.window_px
    assert w == pytest.approx(600 * 240 / 1000) and h == pytest.approx(w)  # not shrunk
    assert x0 < -0.5 and y0 < -0.5  # not shifted into the image
    assert c.center_px == pytest.approx((600 * -450 / 1000 + 319.5, 600 * -320 / 1000 + 239.5))
    # crop columns / rows whose centres fall left of / above the image are padding
    j_out = int(np.ceil((-0.5 - x0) * 100 / w - 0.5))
    i_out = int(np.ceil((-0.5 - y0) * 100 / h - 0.5))
    assert 5 < j_out < 95 and 5 < i_out < 95
    assert (c.color[:, :j_out] == PAD_GRAY).all() and (c.color[:i_out] == PAD_GRAY).all()
    # depth is 0 left of / above where the depth image ends (its edge seen from the colour camera)
    edge = np.array([[(-0.5 - small_d.cx) / small_d.fx * 1000 + 25, (-0.5 - small_d.cy) / small_d.fy * 1000, 1000]])
    j_d, i_d = np.floor(c.to_crop_px(edge)[0]).astype(int)
    assert 5 < j_d < 95 and 5 < i_d < 95
    assert (c.depth_mm[:, :j_d] == 0).all() and (c.depth_mm[:i_d] == 0).all()
    assert (c.depth_mm[i_d + 2:, j_d + 2:] > 0).all()
    # inside the image the crop is what the larger canvas gives: same window, same content
    inner = (slice(i_out + 2, None), slice(j_out + 2, None))
    assert np.abs(c.color[inner].astype(int) - ref.color[inner]).max() <= 2
    np.testing.assert_array_equal(c.depth_mm, ref.depth_mm)


def test_window_entirely_outside_the_images_is_all_padding():
    depth = cast_plane([0, 0, 1], [0, 0, 1000.0])
    c = crop_face(make_frame(depth=depth), np.array([5000.0, 0.0, 1000.0]), CropConfig())
    assert (c.color == PAD_GRAY).all() and (c.depth_mm == 0).all()


def test_head_behind_the_camera_is_a_clear_error():
    with pytest.raises(SensorError, match="in front"):
        crop_face(make_frame(), np.array([0.0, 0.0, -10.0]), CropConfig())
    with pytest.raises(SensorError, match="finite"):
        crop_face(make_frame(), np.array([0.0, np.nan, 1000.0]), CropConfig())


def test_depth8_uses_the_one_encoding_around_d():
    depth = cast_plane([0.3, 0, -1], [0, 0, 1000.0])
    c = crop_face(make_frame(depth=depth), np.array([0.0, 0.0, 1000.0]), CropConfig(half_range_mm=120))
    assert isinstance(c, FaceCrop)
    np.testing.assert_array_equal(c.depth8(), encode_depth(c.depth_mm, 1000.0, 120.0))


def test_crop_is_fast():
    depth = cast_plane([0.2, 0, -1], [0, 0, 1000.0])
    rng = np.random.default_rng(0)
    frame = make_frame(rng.integers(0, 256, (1080, 1920, 3)).astype(np.uint8), depth)
    head = np.array([0.0, 0.0, 1000.0])
    crop_face(frame, head)
    t0 = time.process_time()
    n = 30
    for _ in range(n):
        crop_face(frame, head)
    cpu_ms = (time.process_time() - t0) / n * 1e3
    assert cpu_ms < 6.0, f"{cpu_ms:.2f} ms CPU per crop"  # about 0.6 ms measured; generous for CI


@pytest.mark.parametrize("label", ["near", "far"])
def test_face_mask_follows_the_winning_depth_sample_through_the_one_splat(label):
    """A square 100 mm in front of a wall: the crop's face mask is the crop pixels whose winning
    (nearest) depth pixel carries the label, so a labelled wall loses what the square hides, and
    the depth crops are bit for bit those of the frame without a mask."""
    far = cast_plane([0, 0, -1], [0, 0, 1100.0])
    near = cast_plane([0, 0, -1], [0, 0, 1000.0], half_size_mm=40.0)
    depth = np.where(near > 0, near, far)
    labels = near > 0 if label == "near" else near == 0
    plain = make_frame(depth=depth, clean=depth.copy())
    masked = Frame(0, 0, plain.color, COLOR, depth, DEPTH, RIG, depth_clean_mm=depth.copy(), face_mask=labels)
    head = np.array([0.0, 0.0, 1000.0])
    c, ref = crop_face(masked, head, CropConfig()), crop_face(plain, head, CropConfig())
    assert ref.face_mask is None and c.face_mask is not None
    assert c.face_mask.shape == (100, 100) and c.face_mask.dtype == bool
    np.testing.assert_array_equal(c.depth_mm, ref.depth_mm)
    np.testing.assert_array_equal(c.depth_clean_mm, ref.depth_clean_mm)
    z = c.depth_clean_mm
    square = (z > 0) & (z < 1050.0)
    assert 0.08 < square.mean() < 0.15  # (80 mm / 240 mm) ** 2
    expected = square if label == "near" else (z >= 1050.0)
    np.testing.assert_array_equal(c.face_mask, expected)
    # without clean depth the mask rides on the sensor depth's splat
    sensor_only = Frame(0, 0, plain.color, COLOR, depth, DEPTH, RIG, face_mask=labels)
    c2 = crop_face(sensor_only, head, CropConfig())
    np.testing.assert_array_equal(c2.depth_mm, ref.depth_mm)
    np.testing.assert_array_equal(c2.face_mask, c.face_mask)
