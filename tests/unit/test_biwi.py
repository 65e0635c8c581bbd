"""Biwi Kinect Head Pose reader: depth.bin, .cal, pose.txt from hand-packed bytes, and the source."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from sensors import ConfigError, FormatError, open_source
from sensors.datasets.biwi import (
    BIWI_SUBJECT_OF_SEQUENCE, biwi_subject, depth_to_color_from_cal, read_cal, read_depth_bin, read_pose,
)
from tests.support.formats import BIWI_R, BIWI_T, biwi_depth_bin_bytes, write_biwi

DEPTH_CAL = """575.816 0 320
0 575.816 240
0 0 1

0 0 0 0

1 0 0
0 1 0
0 0 1

0 0 0

640 480
"""

RGB_CAL = """517.679 0 320
0 517.679 240.5
0 0 1

0.01 -0.02 0.001 0.002

0.999947 0.00432361 0.00929419
-0.00446314 0.999877 0.0150443
-0.009228 -0.015085 0.999843

-24.0198 5.8896 -13.2308

640 480
"""


def test_depth_bin_2x2_packed_by_hand(tmp_path):
    # 2x2 image: one empty pixel, then 2 filled (1000, 1200), then one empty pixel
    data = struct.pack("<ii", 2, 2) + struct.pack("<ii", 1, 2) + struct.pack("<hh", 1000, 1200)
    data += struct.pack("<ii", 1, 0)
    p = tmp_path / "frame_00000_depth.bin"
    p.write_bytes(data)
    depth = read_depth_bin(p)
    assert depth.dtype == np.uint16 and depth.shape == (2, 2)
    assert depth.tolist() == [[0, 1000], [1200, 0]]


def test_depth_bin_rows_are_width_long_and_negative_depths_are_no_reading(tmp_path):
    # 3 wide, 2 high: full first row, then -5 (invalid) 7 and one empty
    data = struct.pack("<ii", 3, 2) + struct.pack("<ii", 0, 5) + struct.pack("<5h", 1, 2, 3, -5, 7)
    data += struct.pack("<ii", 1, 0)
    p = tmp_path / "d.bin"
    p.write_bytes(data)
    assert read_depth_bin(p).tolist() == [[1, 2, 3], [0, 7, 0]]


@pytest.mark.parametrize("data, words", [
    (b"\x01\x00", "too short"),
    (struct.pack("<ii", 0, 5), "implausible image size"),
    (struct.pack("<ii", 2, 2) + struct.pack("<ii", 1, 2) + struct.pack("<h", 1000), "ends inside a run"),
    (struct.pack("<ii", 2, 2) + struct.pack("<ii", 1, 2) + struct.pack("<hh", 1, 2), "ends after 3 of 4"),
    (struct.pack("<ii", 2, 2) + struct.pack("<ii", 3, 2) + struct.pack("<hh", 1, 2), "past the end of the image"),
    (struct.pack("<ii", 2, 2) + struct.pack("<ii", -1, 2), "negative run length"),
])
def test_depth_bin_malformed_files_raise_a_clear_format_error(tmp_path, data, words):
    p = tmp_path / "bad_depth.bin"
    p.write_bytes(data)
    with pytest.raises(FormatError, match=words) as info:
        read_depth_bin(p)
    assert "bad_depth.bin" in str(info.value) and "\n" not in str(info.value)


def test_depth_bin_round_trips_a_realistic_frame_fast(tmp_path):
    rng = np.random.default_rng(1)
    depth = rng.integers(500, 2000, size=(480, 640)).astype(np.uint16)
    depth[rng.random(depth.shape) < 0.3] = 0
    depth[:, :100] = 0
    p = tmp_path / "big.bin"
    p.write_bytes(biwi_depth_bin_bytes(depth))
    import time
    t0 = time.process_time()
    back = read_depth_bin(p)
    cpu = time.process_time() - t0
    np.testing.assert_array_equal(back, depth)
    assert cpu < 2.0  # a per-run (not per-pixel) loop; ~64k runs here, far more than Biwi frames hold


def test_cal_files_from_text(tmp_path):
    (tmp_path / "depth.cal").write_text(DEPTH_CAL)
    (tmp_path / "rgb.cal").write_text(RGB_CAL)
    d = read_cal(tmp_path / "depth.cal")
    c = read_cal(tmp_path / "rgb.cal")
    assert (d.camera.fx, d.camera.fy, d.camera.cx, d.camera.cy) == (575.816, 575.816, 320.0, 240.0)
    assert (c.camera.fx, c.camera.cx, c.camera.cy, c.camera.width, c.camera.height) == (517.679, 320.0, 240.5, 640, 480)
    assert c.camera.distortion == (0.01, -0.02, 0.001, 0.002)
    ext = depth_to_color_from_cal(d, c)
    np.testing.assert_allclose(ext.translation_mm, [-24.0198, 5.8896, -13.2308])
    np.testing.assert_allclose(ext.rotation[0], [0.999947, 0.00432361, 0.00929419])
    # a depth point p lands at R p + T in the colour camera
    p = np.array([100.0, -50.0, 1000.0])
    np.testing.assert_allclose(ext.apply(p), ext.rotation @ p + [-24.0198, 5.8896, -13.2308])


def test_cal_with_missing_block_is_a_format_error(tmp_path):
    p = tmp_path / "rgb.cal"
    p.write_text(RGB_CAL.replace("-24.0198 5.8896 -13.2308\n\n", ""))
    with pytest.raises(FormatError, match="expected lines of"):
        read_cal(p)


def test_pose_file(tmp_path):
    p = tmp_path / "frame_00004_pose.txt"
    p.write_text("0.98 0.01 -0.2\n-0.02 0.99 -0.05\n0.2 0.05 0.98\n\n35.1 -12.5 980.25\n")
    pose = read_pose(p)
    np.testing.assert_array_equal(pose.center_mm, [35.1, -12.5, 980.25])
    np.testing.assert_array_equal(pose.rotation[2], [0.2, 0.05, 0.98])
    p.write_text("1 0 0\n0 1 0\n\n1 2 3\n")
    with pytest.raises(FormatError, match="3 rotation lines"):
        read_pose(p)


def test_subject_table_merges_the_four_repeated_people():
    assert biwi_subject(15) == 3 and biwi_subject(18) == 5 and biwi_subject(21) == 2 and biwi_subject(22) == 7
    assert biwi_subject(1) == 1 and biwi_subject(24) == 24
    assert len(set(BIWI_SUBJECT_OF_SEQUENCE.values())) == 20


def test_source_reads_frames_in_order_with_gaps_and_annotations(tmp_path):
    info = write_biwi(tmp_path / "hpdb", {1: [3, 4, 7], 15: [10, 12]})
    with open_source(f"biwi:{info.root}") as src:
        assert len(src) == 5
        frames = list(src)
    assert [f.source for f in frames] == ["biwi:01/frame_00003", "biwi:01/frame_00004", "biwi:01/frame_00007",
                                          "biwi:15/frame_00010", "biwi:15/frame_00012"]
    assert [f.subject_id for f in frames] == [1, 1, 1, 3, 3]
    for f, key in zip(frames, info.order):
        w = info.frames[key]
        np.testing.assert_array_equal(f.depth_mm, w.depth_mm)
        np.testing.assert_array_equal(f.color, w.color_rgb)
        # the file's template centre is kept as written and converted to the skull centre
        np.testing.assert_allclose(f.head_center_raw_mm, w.extra["pose_center_mm"])
        np.testing.assert_allclose(f.head_center_mm, w.head_center_mm, atol=1e-4)
        np.testing.assert_allclose(f.head_rotation, w.head_rotation)
        np.testing.assert_allclose(f.depth_to_color.translation_mm, BIWI_T)
        np.testing.assert_allclose(f.depth_to_color.rotation, BIWI_R)
    assert frames[0].depth_camera.fx == pytest.approx(575.816 * 64 / 640)
    assert frames[0].color[0, 0].tolist() == [255, 0, 0]  # RGB order
    stamps = [f.timestamp_ns for f in frames]
    assert stamps == sorted(stamps) and len(set(stamps)) == 5
    assert stamps[1] - stamps[0] == 33_333_333 and stamps[2] - stamps[1] == 3 * 33_333_333  # the gap shows


def test_source_head_centre_projects_onto_the_head_in_depth(tmp_path):
    info = write_biwi(tmp_path / "hpdb", {2: [0]}, width=128, height=96)
    with open_source(f"biwi:{info.root / '02'}") as src:
        f = src.read()
    u, v = f.depth_camera.project(f.head_center_mm)[0]
    z = f.depth_mm[int(round(v)), int(round(u))]
    assert abs(float(z) - (f.head_center_mm[2] - 90.0)) < 3.0  # the sphere's front surface


def test_subject_filter_and_seek(tmp_path):
    info = write_biwi(tmp_path / "hpdb", {3: [1, 2], 5: [1], 15: [5, 6]})
    with open_source(f"biwi:{info.root},subjects=3") as src:
        assert len(src) == 4
        assert {f.subject_id for f in src} == {3}
    with open_source(f"biwi:{info.root},sequences=5") as src:
        assert [f.source for f in src] == ["biwi:05/frame_00001"]
    with open_source(f"biwi:{info.root}") as src:
        src.seek(3)
        assert src.position == 3
        assert src.read().source == "biwi:15/frame_00005"
        t = src.timestamps_ns[1]
        assert src.seek_time_ns(t + 1) == 2
        assert src.read().source == "biwi:05/frame_00001"
        with pytest.raises(ConfigError, match="out of range"):
            src.seek(5)


def test_missing_depth_is_reported_and_a_corrupt_frame_is_skipped_once(tmp_path):
    info = write_biwi(tmp_path / "hpdb", {1: [0, 1, 2, 3]})
    (info.root / "01" / "frame_00001_depth.bin").unlink()
    p = info.root / "01" / "frame_00002_depth.bin"
    p.write_bytes(p.read_bytes()[:40])
    with open_source(f"biwi:{info.root}") as src:
        assert len(src) == 3
        assert src.describe()["problems"]["count"] == 1
        assert src.read().source.endswith("frame_00000")
        with pytest.raises(FormatError, match="frame_00002_depth.bin"):
            src.read()
        assert src.read().source.endswith("frame_00003")


def test_empty_or_wrong_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FormatError, match="no Biwi sequences"):
        open_source(f"biwi:{tmp_path}")
    info = write_biwi(tmp_path / "hpdb", {1: [0]})
    with pytest.raises(FormatError, match="no Biwi frames with these filters"):
        open_source(f"biwi:{info.root},subjects=9")
    with pytest.raises(ConfigError, match="unknown option"):
        open_source(f"biwi:{info.root},colour=yes")
