"""Property-based tests (hypothesis) of the pieces of maths every frame goes through, on random
inputs: only the documented error classes are raised, and the invariants hold.

- the 8-bit depth encoding: round trip within half a level, levels exactly invertible, 0 for no
  reading and outside the window; ConfigError for a bad distance or half-range;
- the crop: shapes and dtypes always, colour pixels are the image's or the padding grey, depth
  values are 0 or a real input z inside the margin; SensorError for an impossible head centre;
- the registration (``register_depth``) on any window and grid;
- the Biwi readers (``depth.bin``, ``.cal``, ``pose.txt``), the TUM list reader and Pandora's
  record parser on random bytes and text: a result of the documented shape, or FormatError.

Example counts are kept modest so the suite stays fast.
"""
from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sensors.datasets.biwi import read_cal, read_depth_bin, read_pose
from sensors.crop import MIN_Z_MM, PAD_GRAY, CropConfig, crop_face, register_depth, window_px_for
from sensors.encoding import LEVELS, decode_depth, encode_depth, levels_to_tanh, mm_per_level, tanh_to_levels
from sensors.errors import ConfigError, FormatError, SensorError
from sensors.frame import Frame
from sensors.geometry import CameraIntrinsics, Extrinsics
from sensors.datasets.pandora import parse_records
from sensors.datasets.tum import read_tum_list
from tests.support.formats import biwi_depth_bin_bytes

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOWER = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

finite = st.floats(allow_nan=False, allow_infinity=False)
#: finite numbers that stay finite in float32 arithmetic (larger ones only add overflow warnings)
moderate = st.floats(min_value=-1e30, max_value=1e30)
distances = st.floats(min_value=100.0, max_value=8000.0)
half_ranges = st.floats(min_value=1.0, max_value=1000.0)


# -- encoding ---------------------------------------------------------------------------------------
@FAST
@given(d=distances, h=half_ranges, data=st.data())
def test_encoding_round_trip_is_within_half_a_level(d, h, data):
    z = data.draw(hnp.arrays(np.float64, st.integers(1, 200),
                             elements=st.floats(min_value=d - 1.2 * h, max_value=d + 1.2 * h)))
    levels = encode_depth(z, d, h)
    assert levels.dtype == np.uint8 and levels.shape == z.shape
    inside = (z >= 1.0) & (z >= d - h + 0.5 * mm_per_level(h)) & (z <= d + h - 0.5 * mm_per_level(h))
    assert np.all(levels[inside] > 0)  # every depth inside the window is encoded
    back = decode_depth(levels, d, h)
    valid = levels > 0
    tol = 0.5 * mm_per_level(h) + 1e-4 * d  # half a level, plus float32 rounding of D
    assert np.all(np.abs(back[valid] - z[valid]) <= tol)
    assert np.all(back[~valid] == 0)
    outside = (z < d - h - 0.5 * mm_per_level(h) - 1e-3 * d) | (z > d + h + 0.5 * mm_per_level(h) + 1e-3 * d)
    assert np.all(levels[outside] == 0)


@FAST
@given(d=distances, h=half_ranges)
def test_every_level_decodes_and_encodes_back_to_itself(d, h):
    assume(d - h > mm_per_level(h))  # the nearest level is a positive depth (z <= 0 is "no reading")
    levels = np.arange(256, dtype=np.uint8)
    back = encode_depth(decode_depth(levels, d, h), d, h)
    np.testing.assert_array_equal(back, levels)
    assert LEVELS == 254


@FAST
@given(z=hnp.arrays(np.float64, st.integers(1, 50),
                    elements=moderate | st.sampled_from([math.nan, math.inf, -math.inf])),
       d=distances, h=half_ranges)
def test_no_reading_and_non_finite_depths_encode_as_invalid(z, d, h):
    levels = encode_depth(z, d, h)
    assert levels.shape == z.shape and levels.dtype == np.uint8
    assert np.all(levels[~np.isfinite(z) | (z <= 0)] == 0)


@FAST
@given(d=st.one_of(moderate, st.just(math.nan), st.just(math.inf)),
       h=st.one_of(moderate.filter(lambda v: v == 0 or abs(v) > 1e-3), st.just(math.nan), st.just(-math.inf),
                   st.just(math.inf)))
def test_bad_distance_or_half_range_is_a_config_error_and_nothing_else(d, h):
    z = np.array([[0.0, 500.0, 1000.0]])
    good = math.isfinite(d) and math.isfinite(h) and h > 0
    for fn in (encode_depth, decode_depth):
        if good:
            fn(z, d, h)
        else:
            with pytest.raises(ConfigError):
                fn(z, d, h)


@FAST
@given(t=hnp.arrays(np.float32, st.integers(1, 100), elements=st.floats(-1.0, 1.0, width=32)))
def test_tanh_levels_round_trip_within_half_a_step(t):
    levels = tanh_to_levels(t)
    assert levels.dtype == np.uint8
    assert np.all(np.abs(levels_to_tanh(levels) - t) <= 0.5 / 127.5 + 1e-6)


# -- the crop and the registration ----------------------------------------------------------------
@st.composite
def cameras(draw, max_side=48):
    w = draw(st.integers(4, max_side))
    h = draw(st.integers(4, max_side))
    f = draw(st.floats(10.0, 200.0))
    return CameraIntrinsics(f, f * draw(st.floats(0.8, 1.25)), draw(st.floats(-2.0, w + 1.0)),
                            draw(st.floats(-2.0, h + 1.0)), w, h)


@st.composite
def rgbd_frames(draw, rigid: bool = False):
    """A small RGB-D frame with random cameras; ``rigid``: depth_to_color translates in x and y only
    (so colour-camera z equals depth-camera z and every crop value must be an input value)."""
    cc, dc = draw(cameras()), draw(cameras())
    color = draw(hnp.arrays(np.uint8, (cc.height, cc.width, 3)))
    depth = draw(hnp.arrays(np.uint16, (dc.height, dc.width),
                            elements=st.one_of(st.just(0), st.integers(300, 3000), st.integers(0, 65535))))
    tx, ty = draw(st.floats(-80, 80)), draw(st.floats(-80, 80))
    if rigid:
        ext = Extrinsics(np.eye(3), [tx, ty, 0.0])
    else:
        a = draw(st.floats(-0.3, 0.3))
        rot = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
        ext = Extrinsics(rot, [tx, ty, draw(st.floats(-30, 30))])
    return Frame(index=0, timestamp_ns=0, color=color, color_camera=cc, depth_mm=depth, depth_camera=dc,
                 depth_to_color=ext)


crop_configs = st.builds(CropConfig, size_px=st.integers(8, 40), window_x_mm=st.floats(20.0, 600.0),
                         window_y_mm=st.floats(20.0, 600.0), half_range_mm=st.floats(10.0, 300.0),
                         depth_margin_mm=st.floats(300.0, 3000.0))
centres = st.tuples(st.floats(-600, 600), st.floats(-600, 600), st.floats(-500.0, 4000.0))


@SLOWER
@given(frame=rgbd_frames(rigid=True), config=crop_configs, centre=centres)
def test_crop_shapes_and_values_are_always_real(frame, config, centre):
    try:
        crop = crop_face(frame, np.array(centre), config)
    except SensorError as exc:
        assert centre[2] < MIN_Z_MM and "not in front of the colour camera" in str(exc)
        return
    s = config.size_px
    assert crop.color.shape == (s, s, 3) and crop.color.dtype == np.uint8
    assert crop.depth_mm.shape == (s, s) and crop.depth_mm.dtype == np.float32
    assert crop.distance_mm == centre[2]
    z = crop.depth_mm[crop.depth_mm > 0]
    real = np.unique(frame.depth_mm[frame.depth_mm > 0]).astype(np.float32)
    assert np.all(np.isin(z, real)), "a depth value in the crop is not one of the frame's"
    lo, hi = max(MIN_Z_MM, centre[2] - config.depth_margin_mm), centre[2] + config.depth_margin_mm
    assert np.all((z >= lo - 1e-3) & (z <= hi + 1e-3))
    assert np.all(crop.depth_mm >= 0)
    d8 = crop.depth8()
    assert d8.shape == (s, s) and d8.dtype == np.uint8 and np.all(d8[crop.depth_mm == 0] == 0)


@SLOWER
@given(cam=cameras(), level=st.integers(0, 255), config=crop_configs, centre=centres)
def test_a_flat_colour_image_crops_to_that_colour_or_the_padding(cam, level, config, centre):
    frame = Frame(index=0, timestamp_ns=0, color=np.full((cam.height, cam.width, 3), level, np.uint8),
                  color_camera=cam)
    assume(centre[2] >= MIN_Z_MM)
    crop = crop_face(frame, np.array(centre), config)
    assert crop.depth_mm is None and crop.depth8() is None
    assert set(np.unique(crop.color)) <= {level, PAD_GRAY}
    x0, y0, w, h = window_px_for(np.array(centre), cam, config)[1]
    if x0 > cam.width + 1 or y0 > cam.height + 1 or x0 + w < -2 or y0 + h < -2:  # window off the image
        assert np.all(crop.color == PAD_GRAY)


@SLOWER
@given(frame=rgbd_frames(), nx=st.integers(1, 40), ny=st.integers(1, 40), x0=st.floats(-100, 100),
       y0=st.floats(-100, 100), w=st.floats(0.5, 200), h=st.floats(0.5, 200), d=st.floats(100, 4000),
       margin=st.floats(1, 3000), clean=st.booleans())
def test_registration_on_any_window_gives_a_grid_of_zero_or_in_range_depths(frame, nx, ny, x0, y0, w, h, d,
                                                                           margin, clean):
    out = register_depth(frame, (x0, y0, w, h), (nx, ny), d, margin, clean=clean)
    assert out.shape == (ny, nx) and out.dtype == np.float32
    if clean:  # the frame has no noise-free depth: nothing to register
        assert np.all(out == 0)
        return
    z = out[out > 0]
    assert np.all(np.isfinite(out))
    assert np.all((z >= max(MIN_Z_MM, d - margin) - 1e-2) & (z <= d + margin + 1e-2))


@SLOWER
@given(frame=rgbd_frames(rigid=True), s=st.integers(1, 30), d=st.floats(300, 3000))
def test_registration_of_a_rigid_rig_only_moves_real_values(frame, s, d):
    cc = frame.color_camera
    out = register_depth(frame, (-0.5, -0.5, float(cc.width), float(cc.height)), s, d, 5000.0)
    real = np.unique(frame.depth_mm[frame.depth_mm > 0]).astype(np.float32)
    assert out.shape == (s, s) and np.all(np.isin(out[out > 0], real))


# -- file readers on random input -------------------------------------------------------------------
@FAST
@given(data=st.binary(max_size=400))
def test_depth_bin_decoder_on_random_bytes_gives_an_image_or_a_format_error(data, tmp_path):
    p = tmp_path / "frame_00000_depth.bin"
    p.write_bytes(data)
    try:
        depth = read_depth_bin(p)
    except FormatError as exc:
        assert exc.path == str(p) and "\n" not in str(exc)
        return
    w, h = struct.unpack_from("<ii", data, 0)
    assert depth.shape == (h, w) and depth.dtype == np.uint16 and depth.size == w * h


@st.composite
def depth_bin_like(draw):
    """A plausible header followed by random runs: the shape a damaged file usually has."""
    w, h = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    runs = draw(st.lists(st.tuples(st.integers(-2, 30), st.integers(-2, 30)), max_size=12))
    body = b"".join(struct.pack("<ii", e, f) + struct.pack(f"<{max(f, 0)}h", *([700] * max(f, 0)))
                    for e, f in runs)
    cut = draw(st.integers(0, len(body)))
    return struct.pack("<ii", w, h) + body[:cut]


@FAST
@given(data=depth_bin_like())
def test_depth_bin_decoder_on_damaged_run_lists(data, tmp_path):
    p = tmp_path / "frame_00001_depth.bin"
    p.write_bytes(data)
    w, h = struct.unpack_from("<ii", data, 0)
    try:
        depth = read_depth_bin(p)
    except FormatError:
        return
    assert depth.shape == (h, w) and set(np.unique(depth)) <= {0, 700}


@FAST
@given(depth=hnp.arrays(np.uint16, st.tuples(st.integers(1, 20), st.integers(1, 20)),
                        elements=st.one_of(st.just(0), st.integers(0, 32767))))
def test_depth_bin_round_trip(depth, tmp_path):
    p = tmp_path / "frame_00002_depth.bin"
    p.write_bytes(biwi_depth_bin_bytes(depth))
    np.testing.assert_array_equal(read_depth_bin(p), depth)


number_words = st.one_of(finite.map(repr), st.integers(-5, 5000).map(str),
                         st.sampled_from(["nan", "inf", "-inf", "1e999", "x", "0", "-1", ""]))
text_lines = st.lists(st.lists(number_words, max_size=5).map(" ".join), max_size=14).map("\n".join)


@FAST
@given(text=st.one_of(text_lines, st.text(max_size=200)))
def test_cal_and_pose_readers_give_a_result_or_a_format_error(text, tmp_path):
    p = tmp_path / "rgb.cal"
    p.write_text(text, encoding="utf-8")
    try:
        cal = read_cal(p)
    except FormatError as exc:
        assert exc.path == str(p) and "\n" not in str(exc)
    else:
        cam = cal.camera
        assert cam.fx > 0 and cam.fy > 0 and cam.width > 0 and cam.height > 0
        assert all(math.isfinite(v) for v in (cam.fx, cam.fy, cam.cx, cam.cy))
        assert np.all(np.isfinite(cal.rotation)) and np.all(np.isfinite(cal.translation_mm))
    p = tmp_path / "frame_00003_pose.txt"
    p.write_text(text, encoding="utf-8")
    try:
        pose = read_pose(p)
    except FormatError as exc:
        assert exc.path == str(p)
    else:
        assert pose.rotation.shape == (3, 3) and pose.center_mm.shape == (3,)
        assert np.all(np.isfinite(pose.rotation)) and np.all(np.isfinite(pose.center_mm))


VALID_CAL = "500 0 320\n0 500 240\n0 0 1\n\n0 0 0 0\n\n1 0 0\n0 1 0\n0 0 1\n\n-24 5.9 -13.2\n\n640 480\n"
VALID_POSE = "1 0 0\n0 1 0\n0 0 1\n\n10.5 -20 900\n"


@st.composite
def damaged_layouts(draw, text: str) -> str:
    """A valid file with a few of its numbers replaced by random words (nan, 1e999, x, ...)."""
    tokens = text.replace("\n", " \n ").split(" ")
    numbers = [i for i, t in enumerate(tokens) if t not in ("", "\n")]
    for i in draw(st.lists(st.sampled_from(numbers), min_size=1, max_size=3)):
        tokens[i] = draw(number_words)
    return " ".join(tokens).replace(" \n ", "\n")


@FAST
@given(cal=damaged_layouts(VALID_CAL), pose=damaged_layouts(VALID_POSE))
def test_cal_and_pose_with_damaged_numbers_give_a_result_or_a_format_error(cal, pose, tmp_path):
    p = tmp_path / "depth.cal"
    p.write_text(cal)
    try:
        c = read_cal(p)
    except FormatError as exc:
        assert exc.path == str(p) and "\n" not in str(exc)
    else:
        assert all(math.isfinite(v) for v in (c.camera.fx, c.camera.fy, c.camera.cx, c.camera.cy))
        assert c.camera.fx > 0 and c.camera.width > 0 and all(math.isfinite(v) for v in c.camera.distortion)
        assert np.all(np.isfinite(c.rotation)) and np.all(np.isfinite(c.translation_mm))
    p = tmp_path / "frame_00004_pose.txt"
    p.write_text(pose)
    try:
        r = read_pose(p)
    except FormatError as exc:
        assert exc.path == str(p)
    else:
        assert np.all(np.isfinite(r.rotation)) and np.all(np.isfinite(r.center_mm))


@FAST
@given(text=st.one_of(st.text(max_size=300),
                      st.lists(st.tuples(number_words, st.text(max_size=12)), max_size=8)
                      .map(lambda rows: "\n".join(f"{a} {b}" for a, b in rows))))
def test_tum_list_reader_gives_entries_or_a_format_error(text, tmp_path):
    p = tmp_path / "rgb.txt"
    p.write_text(text, encoding="utf-8")
    try:
        entries = read_tum_list(p)
    except FormatError as exc:
        assert exc.path == str(p) and "\n" not in str(exc)
        return
    for e in entries:
        assert math.isfinite(e.timestamp_s) and isinstance(e.timestamp_ns, int) and e.file


json_values = st.recursive(st.none() | st.booleans() | finite | st.integers(-10, 10) | st.text(max_size=6),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                               st.sampled_from(["frame_num", "orientation", "euler", "yaw", "pitch", "roll",
                                                "joints", "head", "3D", "color", "x", "y", "z", "name",
                                                "frames"]),
                               inner, max_size=5), max_leaves=25)


@FAST
@given(doc=json_values)
def test_pandora_record_parser_never_raises_on_any_json(doc):
    records, problems = parse_records(json.loads(json.dumps(doc)), "seq")
    assert all(isinstance(p, str) and "\n" not in p for p in problems)
    for num, rec in records.items():
        assert rec.frame_num == num
        if rec.euler_deg is not None:
            assert len(rec.euler_deg) == 3
        if rec.head_kinect_m is not None:
            assert rec.head_kinect_m.shape == (3,) and np.all(np.isfinite(rec.head_kinect_m))
