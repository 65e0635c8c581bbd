"""Pandora reader: data.json records by hand, the split, problems reported by name and count."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sensors import ConfigError, FormatError, open_source
from sensors.geometry import rotation_from_euler_deg
from sensors.datasets.pandora import PANDORA_SPLITS, pandora_split, parse_records
from tests.support.formats import write_pandora

HAND_WRITTEN = """[
 {"frame_num": 0, "orientation": {"euler": {"yaw": 12.5, "pitch": -3.0, "roll": 1.5}},
  "joints": {"head": {"3D": [0.05, 0.2, 1.1], "color": [1010.0, 330.0]},
             "neck": {"3D": [0.05, 0.05, 1.1], "color": [1010.0, 480.0]}}},
 {"frame_num": "1", "orientation": {"euler": {"yaw": 0, "pitch": 0, "roll": 0}},
  "joints": [{"name": "SpineBase", "3D": {"x": 0, "y": -0.5, "z": 1.2}},
             {"name": "Head", "3D": {"x": -0.1, "y": 0.25, "z": 1.3}, "2D": {"x": 800, "y": 300}}]},
 {"frame_num": 2, "orientation": {"quaternion": [1, 0, 0, 0]}, "joints": {"head": {"3D": [0, 0, 1]}}},
 {"orientation": {"euler": {"yaw": 1, "pitch": 2, "roll": 3}}},
 {"frame_num": 4, "orientation": {"euler": {"yaw": "left", "pitch": 0, "roll": 0}}, "joints": {}}
]"""


def test_records_parsed_from_hand_written_json_with_every_problem_named():
    records, problems = parse_records(json.loads(HAND_WRITTEN), "base_1_ID03")
    assert sorted(records) == [0, 1, 2, 4]
    r0 = records[0]
    assert r0.euler_deg == (12.5, -3.0, 1.5)
    np.testing.assert_array_equal(r0.head_kinect_m, [0.05, 0.2, 1.1])
    np.testing.assert_array_equal(r0.head_color_px, [1010.0, 330.0])
    np.testing.assert_array_equal(records[1].head_kinect_m, [-0.1, 0.25, 1.3])  # list of named joints, x/y/z keys
    np.testing.assert_array_equal(records[1].head_color_px, [800, 300])
    assert records[2].euler_deg is None
    assert len(problems) == 3
    assert problems[0] == "base_1_ID03: record 2 (frame 2): no orientation.euler yaw/pitch/roll"
    assert problems[1] == "base_1_ID03: record 3: no frame_num"
    assert "record 4 (frame 4)" in problems[2] and "not numeric" in problems[2] and "no head joint" in problems[2]


def test_not_a_list_is_one_named_problem():
    records, problems = parse_records({"subject": 3}, "seq")
    assert records == {} and problems == ["seq: data.json is not a list of frame records (dict)"]


def test_split_definition():
    assert PANDORA_SPLITS["val"] == {9, 18, 21, 22} and PANDORA_SPLITS["test"] == {10, 14, 16, 20}
    assert [pandora_split(s) for s in (9, 10, 1, 22, 14)] == ["val", "test", "train", "val", "test"]


def test_orientation_is_read_through_the_one_convention(tmp_path):
    # Pandora's convention is not documented anywhere we could find; the reader states one
    # assumption (Pandora's angles are the project's, sensors.geometry) instead of a second
    # Euler conversion. The old reader flipped pitch's sign against the project's, also unverified.
    info = write_pandora(tmp_path / "p", {10: ["base_1_ID10"]}, frames=2)
    with open_source(f"pandora:{info.root}") as src:
        f = src.read()
        f = src.read()
        d = src.describe()
    np.testing.assert_allclose(f.head_rotation, rotation_from_euler_deg(5.0, -5.0, 2.0), atol=1e-12)
    assert "unverified" in d["orientation"]


def test_source_delivers_images_depth_and_head_centre(tmp_path):
    info = write_pandora(tmp_path / "pandora", {10: ["base_1_ID10"]}, frames=6)
    with open_source(f"pandora:{info.root}") as src:
        frames = list(src)
        d = src.describe()
    assert len(frames) == 6
    for f, key in zip(frames, info.order):
        w = info.frames[key]
        np.testing.assert_array_equal(f.color, w.color_rgb)
        np.testing.assert_array_equal(f.depth_mm, w.depth_mm)
        np.testing.assert_allclose(f.head_center_mm, w.head_center_mm, atol=1e-9)
        assert f.subject_id == 10
    assert frames[0].depth_camera.fx == pytest.approx(365.5 * 64 / 512)
    assert frames[0].color_camera.fx == pytest.approx(1081.4 * 96 / 1920)
    # the colour joints decide the geometry: offset (52, 0, 0) found, joints reproject exactly
    np.testing.assert_allclose(frames[0].depth_to_color.translation_mm, [52.0, 0.0, 0.0], atol=1e-6)
    assert list(d["head_joint_reprojection_px"].values())[0] < 0.01
    assert d["problems"]["count"] == 0
    # the head centre lies on the sphere drawn in the depth image (1 depth pixel of tolerance)
    f = frames[2]
    u, v = f.depth_camera.project(f.head_center_mm)[0]
    assert abs(float(f.depth_mm[int(round(v)), int(round(u))]) - (f.head_center_mm[2] - 90)) < 4
    # orientation: the raw angles are kept
    assert src.orientation_deg(3) == {"yaw": 15.0, "pitch": -5.0, "roll": 2.0}
    np.testing.assert_allclose(frames[3].head_rotation, rotation_from_euler_deg(15.0, -5.0, 2.0))


def test_split_option_and_one_sequence_folder(tmp_path):
    info = write_pandora(tmp_path / "p", {9: ["base_1_ID09"], 10: ["free_2_ID10"], 3: ["base_1_ID03"]}, frames=2)
    with open_source(f"pandora:{info.root},split=val") as src:
        assert {f.subject_id for f in src} == {9}
    with open_source(f"pandora:{info.root},split=test") as src:
        assert {f.subject_id for f in src} == {10}
    with open_source(f"pandora:{info.root},split=train") as src:
        assert {f.subject_id for f in src} == {3}
    with open_source(f"pandora:{info.root / '10' / 'free_2_ID10'}") as src:
        assert len(src) == 2 and src.read().source == "pandora:free_2_ID10/000000"
    with pytest.raises(ConfigError, match="train, val or test"):
        open_source(f"pandora:{info.root},split=dev")


def test_unparseable_records_are_counted_and_named_not_skipped(tmp_path):
    info = write_pandora(tmp_path / "p", {10: ["base_1_ID10"]}, frames=3, bad_records=2)
    seq = info.root / "10" / "base_1_ID10"
    (seq / "DEPTH" / "000001_DEPTH.png").unlink()
    with open_source(f"pandora:{info.root}") as src:
        d = src.describe()
        assert len(src) == 2
    items = d["problems"]["items"]
    assert d["problems"]["count"] == 3
    assert any("record 3 (frame 3)" in p and "no head joint" in p for p in items)
    assert any("record 4 (frame 4)" in p for p in items)
    assert any("frame 000001 has no DEPTH/000001_DEPTH.png" in p for p in items)


def test_frames_without_records_play_without_annotations_and_are_reported(tmp_path):
    info = write_pandora(tmp_path / "p", {10: ["base_1_ID10"]}, frames=2)
    seq = info.root / "10" / "base_1_ID10"
    (seq / "data.json").write_text(json.dumps(json.loads((seq / "data.json").read_text())[1:]))
    with open_source(f"pandora:{info.root}") as src:
        f = src.read()
        d = src.describe()
    assert f.head_center_mm is None and f.depth_mm is not None
    assert d["problems"]["count"] == 1 and "frame 000000 has no data.json record" in d["problems"]["items"][0]
    (seq / "data.json").write_text("{not json")  # a corrupt annotation file is an error, not ignored
    with pytest.raises(FormatError, match="data.json: not valid JSON"):
        open_source(f"pandora:{info.root}")


def test_no_sequences_is_a_format_error(tmp_path):
    with pytest.raises(FormatError, match="no Pandora sequences"):
        open_source(f"pandora:{tmp_path}")
