"""Scan heads (sensors/virtual/scan_heads.py): the spherical rasteriser on exact meshes always;
people from the ICT-FaceKit face model when a FaceXModel folder is present (else skipped)."""
from __future__ import annotations

import numpy as np
import pytest

from sensors import ConfigError, FormatError, open_source
from sensors.virtual.people import build_head, sample_identity
from sensors.virtual.scan_heads import EYES_IN_FRONT_MM, fill_holes, raster_spherical, scan_shape
from sensors.virtual.source import VirtualKinect


def uv_sphere(radius: float, rows: int = 60, cols: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """A closed sphere mesh (model axes) and its triangles."""
    lat = np.linspace(-np.pi / 2, np.pi / 2, rows + 1)[1:-1]
    lon = np.linspace(-np.pi, np.pi, cols, endpoint=False)
    LA, LO = np.meshgrid(lat, lon, indexing="ij")
    v = np.stack([np.cos(LA) * np.sin(LO), np.sin(LA), np.cos(LA) * np.cos(LO)], -1).reshape(-1, 3) * radius
    v = np.vstack([v, [[0, -radius, 0], [0, radius, 0]]])
    tris = []
    n = rows - 1
    for r in range(n - 1):
        for c in range(cols):
            a, b = r * cols + c, r * cols + (c + 1) % cols
            tris += [[a, b, a + cols], [b, b + cols, a + cols]]
    south, north = len(v) - 2, len(v) - 1
    for c in range(cols):
        tris += [[south, (c + 1) % cols, c], [north, (n - 1) * cols + c, (n - 1) * cols + (c + 1) % cols]]
    return v, np.array(tris)


THETA = np.radians(np.arange(-179.0, 179.0, 1.0))
PHI = np.radians(np.arange(-80.0, 80.0, 1.0))


def test_a_sphere_rasterises_to_its_radius_and_interpolates_vertex_values():
    v, t = uv_sphere(100.0)
    hits = raster_spherical(v, t, THETA, PHI)
    covered = hits.triangle >= 0
    assert covered.mean() > 0.97  # only the seam behind the head is skipped
    # flat triangles sit inside the sphere by at most the chord's sagitta
    assert np.nanmax(hits.radius_mm) <= 100.0 + 1e-6 and np.nanmin(hits.radius_mm) > 99.5
    x = hits.interpolate(v[:, 0])
    T, P = np.meshgrid(THETA, PHI)
    assert np.abs(x - 100 * np.cos(P) * np.sin(T))[covered].max() < 1.0


def test_the_outermost_surface_wins_and_holes_are_filled():
    v1, t1 = uv_sphere(90.0)
    v2, t2 = uv_sphere(100.0)
    hits = raster_spherical(np.vstack([v1, v2]), np.vstack([t1, t2 + len(v1)]), THETA, PHI)
    assert np.nanmin(hits.radius_mm) > 99.5
    holed = hits.radius_mm.copy()
    holed[40:45, 100:110] = np.nan
    filled = fill_holes(holed)
    assert not np.isnan(filled).any() and np.abs(filled - 100.0).max() < 0.5


# --------------------------------------------------------------------------------------------
# people from the real face model
# --------------------------------------------------------------------------------------------

def test_a_scan_person_is_a_pure_function_of_seed_and_subject(face_model):
    a, b = scan_shape(face_model, 3, 7), scan_shape(face_model, 3, 7)
    assert np.array_equal(a.vertices_mm, b.vertices_mm)
    assert not np.allclose(a.vertices_mm, scan_shape(face_model, 3, 8).vertices_mm, atol=1.0)
    assert not np.allclose(a.vertices_mm, scan_shape(face_model, 4, 7).vertices_mm, atol=1.0)
    h1 = build_head(sample_identity(3, 7), a)
    h2 = build_head(sample_identity(3, 7), b)
    assert np.array_equal(h1.points, h2.points) and np.array_equal(h1.albedo, h2.albedo)


def test_scan_heads_have_human_proportions_and_the_same_centre_rule(face_model):
    rows = []
    for subject in range(8):
        s = scan_shape(face_model, 0, subject)
        eyes = s.eye_centres_mm
        rows.append([np.linalg.norm(s.landmarks_mm["nose_tip"]), eyes[1, 0] - eyes[0, 0],
                     s.landmarks_mm["eyes"][1] - s.landmarks_mm["chin"][1], s.measures_mm["mouth_width"]])
    nose, ipd, eye_to_chin, mouth = np.array(rows).T
    print(f"\nscan heads: nose tip to centre {nose.mean():.1f} +- {nose.std():.1f} mm, eye centres "
          f"{ipd.mean():.1f} mm apart, eyes to chin {eye_to_chin.mean():.1f} mm, mouth {mouth.mean():.1f} mm")
    # the procedural heads' nose tip lies 127 +- 5 mm from the centre (same rule, same place)
    assert 110.0 < nose.mean() < 140.0
    assert ((ipd > 52) & (ipd < 75)).all() and ((eye_to_chin > 90) & (eye_to_chin < 140)).all()
    assert ((mouth > 38) & (mouth < 65)).all()


def test_expression_channels_move_the_right_parts_by_human_amounts(face_model):
    s = scan_shape(face_model, 0, 0)
    chin = s.landmarks_mm["chin"]
    near_chin = np.linalg.norm(s.vertices_mm - chin, axis=1) < 10.0
    jaw = s.channels["jaw"]
    assert 8.0 < -jaw[near_chin, 1].mean() < 40.0  # the chin drops
    brows = s.channels["brows"]
    assert 1.0 < np.abs(brows).max() < 20.0 and brows[:, 1].max() > 1.0  # they rise
    assert np.abs(brows[near_chin]).max() < 0.5
    smile = s.channels["smile"]
    assert 2.0 < np.abs(smile).max() < 25.0
    blink = s.channels["blink"]  # the upper lids come down over the eyes
    lids = np.linalg.norm(blink, axis=1) > 2.0
    assert 4.0 < np.abs(blink).max() < 20.0 and blink[lids, 1].mean() < -2.0
    assert np.abs(s.vertices_mm[lids, 1] - s.landmarks_mm["eyes"][1]).max() < 20.0
    assert np.abs(blink[near_chin]).max() < 0.5


def test_the_virtual_kinect_renders_scan_people(face_model_dir, facekit_cache_dir, monkeypatch):
    monkeypatch.setenv("FACEDEPTH_CACHE_DIR", str(facekit_cache_dir))
    uri = f"virtual:seed=2,pace=off,frames=2,sequence=calm,occluders=off,heads=scan,face_model={face_model_dir}"
    with open_source(uri) as src:
        assert src.describe()["heads"] == "scan" and src.describe()["face_model"] == face_model_dir.name
        f = next(iter(src))
    u, v = f.depth_camera.project(f.head_center_mm[None])[0]
    window = f.depth_clean_mm[int(v) - 15:int(v) + 15, int(u) - 15:int(u) + 15]
    face = window[window > 0]
    # the face lies in front of the skull centre by about the eyes' distance from it
    gap = f.head_center_mm[2] - np.median(face)
    assert face.size > 400 and 0.6 * EYES_IN_FRONT_MM < gap < 1.4 * EYES_IN_FRONT_MM, gap


def test_mixed_heads_are_drawn_per_person_and_the_kind_is_reported(face_model_dir, facekit_cache_dir,
                                                                   monkeypatch):
    monkeypatch.setenv("FACEDEPTH_CACHE_DIR", str(facekit_cache_dir))
    src = VirtualKinect.from_uri(f"virtual:pace=off,heads=mixed,face_model={face_model_dir}")
    kinds = [src.head_kind(s) for s in range(40)]
    assert kinds == [VirtualKinect.from_uri(f"virtual:heads=mixed,face_model={face_model_dir}").head_kind(s)
                     for s in range(40)]
    assert 8 < kinds.count("scan") < 32


def test_the_face_model_option_and_environment_variable(face_model_dir, facekit_cache_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("FACEDEPTH_FACE_MODEL", raising=False)
    monkeypatch.setenv("FACEDEPTH_CACHE_DIR", str(facekit_cache_dir))
    assert VirtualKinect.from_uri("virtual:").options.heads == "procedural"  # a fresh install: as before
    with pytest.raises(ConfigError, match="needs a face model"):
        VirtualKinect.from_uri("virtual:heads=scan")
    with pytest.raises(FormatError) as e:
        VirtualKinect.from_uri(f"virtual:face_model={tmp_path / 'nowhere'}")
    assert "nowhere" in str(e.value) and "\n" not in str(e.value)
    monkeypatch.setenv("FACEDEPTH_FACE_MODEL", str(face_model_dir))
    assert VirtualKinect.from_uri("virtual:").options.heads == "scan"
    assert VirtualKinect.from_uri("virtual:heads=procedural").options.face_model is None
