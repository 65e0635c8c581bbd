"""TUM RGB-D folders: lists by hand, association, depth scale, and the writer's round trip."""
from __future__ import annotations

import json
from decimal import Decimal

import numpy as np
import pytest

from sensors import FormatError, open_source
from sensors.datasets.tum import TumEntry, TumWriter, associate, read_tum_list
from tests.support.formats import write_biwi, write_tum


def test_lists_and_association_by_hand(tmp_path):
    p = tmp_path / "rgb.txt"
    p.write_text("# color images\n# timestamp filename\n1.000 rgb/a.png\n1.033 rgb/b.png\n\n1.066 rgb/c.png\n")
    color = read_tum_list(p)
    assert [(e.timestamp_s, e.timestamp_ns, e.file) for e in color] == [
        (1.0, 1_000_000_000, "rgb/a.png"), (1.033, 1_033_000_000, "rgb/b.png"), (1.066, 1_066_000_000, "rgb/c.png")]
    depth = [TumEntry(t, int(t * 1e9), name) for t, name in
             [(1.030, "d1"), (1.002, "d0"), (1.500, "far"), (1.040, "d2")]]
    # a.png-d0 (2 ms), b.png-d1 (3 ms); c.png's nearest unused is d2 (26 ms) > 20 ms: unpaired
    assert associate(color, depth, 0.02) == [(0, 1), (1, 0)]
    assert associate(color, depth, 0.03) == [(0, 1), (1, 0), (2, 3)]
    p.write_text("1.0\n")
    with pytest.raises(FormatError, match="line 1"):
        read_tum_list(p)


def test_tum_folder_reads_depth_at_5000_per_metre(tmp_path):
    info = write_tum(tmp_path / "tum", n=4)
    with open_source(f"tum:{info.root}") as src:
        frames = list(src)
        d = src.describe()
    assert len(frames) == 4 and d["unpaired"] == {"color": 0, "depth": 1}
    for f, key in zip(frames, info.order):
        w = info.frames[key]
        assert w.extra["stored"].max() > 4000  # the file holds 5 units per mm
        np.testing.assert_array_equal(f.depth_mm, w.depth_mm)
        np.testing.assert_array_equal(f.color, w.color_rgb)
        assert f.timestamp_ns == int(Decimal(f"{w.extra['t_color']:.6f}") * 10**9)  # exact to the ns
    assert frames[0].color_camera.fx == pytest.approx(525.0 * 64 / 640)
    assert frames[0].depth_camera == frames[0].color_camera  # TUM depth is registered to colour


def test_tight_max_dt_pairs_nothing_and_says_so(tmp_path):
    info = write_tum(tmp_path / "tum", n=2, depth_lag_s=0.1)
    with pytest.raises(FormatError, match="within 0.02 s"):
        open_source(f"tum:{info.root}")
    with open_source(f"tum:{info.root},max_dt=0.15") as src:
        assert len(src) == 2


def test_writer_round_trip_is_exact_and_writes_the_scale_down(tmp_path):
    info = write_biwi(tmp_path / "hpdb", {15: [1, 2, 5]})
    out = tmp_path / "export"
    with open_source(f"biwi:{info.root}") as src, TumWriter(out) as w:
        originals = list(src)
        for f in originals:
            w.write(f)
    calib = json.loads((out / "calibration.json").read_text())
    assert calib["depth_scale_per_m"] == 5000
    assert "# depth scale: 5000 per metre" in (out / "depth.txt").read_text()
    with open_source(f"tum:{out}") as back:
        frames = list(back)
    assert len(frames) == 3
    for a, b in zip(originals, frames):
        np.testing.assert_array_equal(a.depth_mm, b.depth_mm)
        np.testing.assert_array_equal(a.color, b.color)
        np.testing.assert_array_equal(a.head_center_mm, b.head_center_mm)
        np.testing.assert_array_equal(a.head_rotation, b.head_rotation)
        assert b.subject_id == 3
        assert a.depth_camera == b.depth_camera and a.color_camera == b.color_camera
        np.testing.assert_array_equal(a.depth_to_color.rotation, b.depth_to_color.rotation)
        assert abs(a.timestamp_ns - b.timestamp_ns) < 1000  # microsecond names


def test_writer_refuses_to_overwrite(tmp_path):
    (tmp_path / "rgb.txt").write_text("")
    from sensors import ConfigError
    with pytest.raises(ConfigError, match="already holds"):
        TumWriter(tmp_path)
