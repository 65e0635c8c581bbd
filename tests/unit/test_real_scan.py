"""A real head scan as a virtual Kinect person (``person=scan:PATH.glb``): evaluation only.

The scan (LeePerrySmith.glb, CC BY 3.0) is never in the repository: these tests read it through
the ``real_scan_glb`` fixture and are skipped without it; the GLB reader's errors need no scan.
"""
from __future__ import annotations

import numpy as np
import pytest

from sensors.errors import FormatError
from sensors.virtual.glb import parse_glb, read_glb


def _uri(glb, **extra) -> str:
    tex = glb.parent / "Map-COL.jpg"
    opts = {"person": f"scan:{glb}", "pace": "off", "frames": "30", "room": "office"}
    if tex.is_file():
        opts["texture"] = str(tex)
    opts.update(extra)
    return "virtual:" + ",".join(f"{k}={v}" for k, v in opts.items())


def test_a_text_file_named_glb_is_one_line_naming_it(tmp_path):
    p = tmp_path / "head.glb"
    p.write_text("this is not a mesh\n")
    with pytest.raises(FormatError) as e:
        read_glb(p)
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg and "glTF" in msg


def test_a_compressed_or_multi_mesh_glb_is_refused():
    import json
    import struct

    def glb(doc: dict) -> bytes:
        js = json.dumps(doc).encode()
        js += b" " * (-len(js) % 4)
        return b"glTF" + struct.pack("<II", 2, 20 + len(js)) + struct.pack("<II", len(js), 0x4E4F534A) + js

    with pytest.raises(FormatError, match="Draco|draco"):
        parse_glb(glb({"extensionsUsed": ["KHR_draco_mesh_compression"], "meshes": [{}]}), "x.glb")
    with pytest.raises(FormatError, match="2 meshes"):
        parse_glb(glb({"meshes": [{}, {}]}), "x.glb")
    with pytest.raises(FormatError, match="TEXCOORD_0"):
        parse_glb(glb({"meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}]}), "x.glb")


def test_the_scan_loads(real_scan_glb):
    mesh = read_glb(real_scan_glb)
    assert mesh.positions.shape == (9279, 3)
    assert mesh.triangles.shape == (17684, 3)
    assert mesh.uv.shape == (9279, 2) and mesh.normals is not None


def test_the_scan_head_centre_and_measures(real_scan_glb):
    from sensors.virtual.real_scan import load_real_scan

    scan = load_real_scan(str(real_scan_glb), None, 43.0)
    m = scan.measures_mm
    assert 100.0 < m["nose_tip_to_centre"] < 140.0
    assert 40.0 < m["eye_distance"] < 75.0
    eyes = scan.shape.eye_centres_mm
    assert eyes[0, 0] < 0 < eyes[1, 0] and abs(eyes[:, 1].mean() - 8.0) < 0.5
    assert scan.subject_id == "real:LeePerrySmith"
    # the shoulders are cut off: nothing far below the chin stays
    kept = scan.shape.vertices_mm[np.unique(scan.shape.triangles)]
    assert kept[:, 1].min() > scan.shape.landmarks_mm["chin"][1] - 30.0


def test_the_rendered_frame_shows_the_face_at_its_distance(real_scan_glb):
    from sensors.virtual import VirtualKinect

    src = VirtualKinect.from_uri(_uri(real_scan_glb))
    d = src.describe()
    assert "Lee Perry-Smith" in d["credit"] and "CC BY 3.0" in d["credit"] and d["evaluation_only"] is True
    frame = src.render_posed(0, distance_m=0.8)
    assert frame.subject_id == "real:LeePerrySmith"
    c = frame.head_center_mm
    u, v = frame.depth_camera.project_xyz(np.array([c[0]]), np.array([c[1]]), np.array([c[2]]))
    z = frame.depth_clean_mm[int(round(v[0])) - 2:int(round(v[0])) + 3, int(round(u[0])) - 2:int(round(u[0])) + 3]
    z = float(np.median(z[z > 0]))
    assert c[2] - 130.0 <= z <= c[2] - 90.0
    # a stream frame carries the scan's id too
    assert src.render(0).subject_id == "real:LeePerrySmith"


def test_person_option_errors(real_scan_glb, tmp_path):
    from sensors.errors import ConfigError
    from sensors.virtual import VirtualKinect

    with pytest.raises(ConfigError, match="scale_mm"):
        VirtualKinect.from_uri(_uri(real_scan_glb, scale_mm="0"))
    bad = tmp_path / "nope.glb"
    bad.write_text("x")
    with pytest.raises(FormatError, match="nope.glb"):
        VirtualKinect.from_uri(f"virtual:person=scan:{bad},pace=off")


def test_build_dataset_takes_the_scan_only_as_test_data(real_scan_glb):
    from models.data.build import plan_units
    from sensors.errors import ConfigError

    for split in (None, "train", "val"):
        with pytest.raises(ConfigError, match="evaluation only"):
            plan_units([{"uri": _uri(real_scan_glb), "split": split}], 1, 4)
    units, _ = plan_units([{"uri": _uri(real_scan_glb), "split": "test"}], 1, 4)
    assert units
