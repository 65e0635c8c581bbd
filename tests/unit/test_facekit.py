"""The ICT-FaceKit loader: a tiny generated FaceXModel folder always, the real kit when present.

The real folder is never part of the repository (licence and size): the tests find it through
``FACEDEPTH_FACE_MODEL``, else ``shared/ict-facekit/FaceXModel`` beside the repository root, and
skip without it. Every test points ``FACEDEPTH_CACHE_DIR`` at its own temporary folder.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from sensors.errors import ConfigError, FormatError
from sensors.virtual import facekit
from sensors.virtual.facekit import REQUIRED_EXPRESSIONS, cache_dir, load_face_model

ROOT = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------------------------
# a tiny generated folder: a 6 x 6 vertex grid (cm), 25 faces (24 quads + the last split in two)
# --------------------------------------------------------------------------------------------

G = 6
HEADER = "# tiny generated FaceXModel for the tests\n"


def _grid_cm() -> np.ndarray:
    y, x = np.mgrid[0:G, 0:G].astype(np.float64)
    x = (x - 2.5) * 2.0  # -5 .. 5 cm
    y = (2.5 - y) * 2.0  # +5 .. -5 cm (kit: +y up)
    z = 10.0 - 0.25 * (x * x + y * y) / 2.0  # a dome: +z out of the face, the tip at the centre
    z[2, 3] += 2.0  # the "nose tip": vertex 15, the largest z
    return np.stack([x, y, z], axis=-1).reshape(-1, 3)


def _v_lines(v: np.ndarray) -> str:
    return "".join(f"v {a:.6f} {b:.6f} {c:.6f}\n" for a, b, c in v)


def _topology_lines() -> str:
    uv = "".join(f"vt {i / G:.6f} {j / G:.6f}\n" for j in range(G) for i in range(G))
    faces = []
    for r in range(G - 1):
        for c in range(G - 1):
            a, b, d, e = r * G + c + 1, r * G + c + 2, (r + 1) * G + c + 2, (r + 1) * G + c + 1
            if (r, c) == (G - 2, G - 2):  # the last cell as two triangles
                faces += [f"f {a}/{a} {b}/{b} {d}/{d}", f"f {a}/{a} {d}/{d} {e}/{e}"]
            else:
                faces.append(f"f {a}/{a} {b}/{b} {d}/{d} {e}/{e}")
    return uv + "usemtl M_Face\n" + "\n".join(faces[:10]) + "\nusemtl M_BackHead\n" + "\n".join(faces[10:]) + "\n"


def _mode(k: int) -> np.ndarray:
    r = np.random.default_rng(100 + k)
    return np.round(r.uniform(-1, 1, (G * G, 3)) * 64) / 64  # exact in text


#: expression -> (moved vertices, delta cm)
EXPRESSION_MOVES = {name: ([k, k + 7], np.array([0.0, -0.5 - 0.125 * k, 0.25]))
                    for k, name in enumerate(REQUIRED_EXPRESSIONS + ("cheekPuff_L",))}


def write_tiny_kit(folder: Path, *, n_identities: int = 3, original_format: bool = False) -> np.ndarray:
    """Write a tiny FaceXModel folder; returns the neutral vertices (cm, float64)."""
    folder.mkdir(parents=True, exist_ok=True)
    neutral = _grid_cm()
    extra = _topology_lines() if original_format else ""
    (folder / facekit.NEUTRAL_FILE).write_text(HEADER + "mtllib x.mtl\n" + _v_lines(neutral) + _topology_lines())
    for k in range(n_identities):
        (folder / f"identity{k:03d}.obj").write_text(HEADER + _v_lines(neutral + _mode(k)) + extra)
    for name, (idx, delta) in EXPRESSION_MOVES.items():
        v = neutral.copy()
        v[idx] += delta
        (folder / f"{name}.obj").write_text(HEADER + _v_lines(v) + extra)
    (folder / facekit.INDICES_FILE).write_text(json.dumps({
        "expressions": list(EXPRESSION_MOVES), "idx_to_landmark_verts": [15, 0, 5, 30, 35],
        "idx_to_rigid_landmark_idx": [0, 1]}))
    return neutral


def _turn_mm(v_cm: np.ndarray) -> np.ndarray:
    return np.asarray(v_cm, np.float64) * np.array([10.0, -10.0, -10.0])


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("FACEDEPTH_CACHE_DIR", str(d))
    return d


@pytest.fixture
def kit(tmp_path, cache) -> tuple[Path, np.ndarray]:
    folder = tmp_path / "FaceXModel"
    return folder, write_tiny_kit(folder)


# --------------------------------------------------------------------------------------------
# always: the tiny folder
# --------------------------------------------------------------------------------------------


def test_loads_the_tiny_folder(kit):
    folder, neutral = kit
    m = load_face_model(folder)
    assert (m.n_vertices, m.n_modes) == (G * G, 3)
    assert set(m.expression_names) == set(EXPRESSION_MOVES)
    np.testing.assert_allclose(m.neutral_cm, neutral, atol=1e-6)
    assert m.faces.shape == (26, 4) and m.quads.shape == (24, 4) and (m.faces[-2:, 3] == -1).all()
    assert m.triangles.shape == (24 * 2 + 2, 3) and m.triangles.dtype == np.int32
    np.testing.assert_array_equal(m.triangles[:2], [[0, 1, 7], [0, 7, 6]])  # a quad fans from its first corner
    np.testing.assert_array_equal(np.bincount(m.triangle_faces), [2] * 24 + [1, 1])
    assert m.uvs.shape == (G * G, 2) and m.face_uvs.shape == m.faces.shape
    np.testing.assert_array_equal(m.triangle_uvs, m.triangles)  # the tiny kit's vt k belongs to v k
    assert m.materials == ("M_Face", "M_BackHead") and np.bincount(m.face_materials).tolist() == [10, 16]
    np.testing.assert_array_equal(m.landmarks, [15, 0, 5, 30, 35])
    assert m.expression_lists["expressions"] == tuple(EXPRESSION_MOVES)
    assert m.parts["face"] == slice(0, G * G) and m.parts["teeth"] == slice(G * G, G * G)  # kit ranges, clipped
    with pytest.raises(ValueError):
        m.neutral_cm[0, 0] = 1.0  # read-only


def test_original_files_with_uvs_and_faces_load_the_same(tmp_path, cache):
    a = load_face_model(_folder_with(tmp_path / "a"), use_cache=False)
    folder = tmp_path / "b"
    write_tiny_kit(folder, original_format=True)
    b = load_face_model(folder, use_cache=False)
    np.testing.assert_array_equal(a.identity_modes_cm, b.identity_modes_cm)
    for name in a.expression_names:
        for x, y in zip(a.expression_deltas_cm[name], b.expression_deltas_cm[name], strict=True):
            np.testing.assert_array_equal(x, y)


def _folder_with(folder: Path, **kw) -> Path:
    write_tiny_kit(folder, **kw)
    return folder


def test_zero_weights_give_the_neutral_head_in_head_axes_mm(kit):
    folder, neutral = kit
    m = load_face_model(folder)
    for v in (m.vertices_mm(), m.vertices_mm(np.zeros(3)), m.vertices_mm(m.identity_weights(1, 2) * 0, {})):
        assert v.dtype == np.float32 and v.shape == (G * G, 3)
        np.testing.assert_allclose(v, _turn_mm(neutral), atol=1e-4)
    v = m.vertices_mm()
    assert np.argmin(v[:, 2]) == 15  # the nose tip (largest kit z) is nearest the camera
    assert v[0, 0] < v[5, 0] and v[0, 1] < v[30, 1]  # x keeps its side; kit +y up is head y down


def test_a_unit_weight_adds_exactly_that_mode(kit):
    folder, neutral = kit
    m = load_face_model(folder)
    base = m.vertices_mm().astype(np.float64)
    for i in range(3):
        w = np.zeros(3)
        w[i] = 1.0
        got = m.vertices_mm(w).astype(np.float64) - base
        np.testing.assert_allclose(got, _turn_mm(m.identity_modes_cm[i]), atol=1e-5)
        np.testing.assert_allclose(got, _turn_mm(_mode(i)), atol=1e-3)  # the stored modes: within 0.001 mm
    w = np.array([0.5, -2.0])  # a prefix of the modes
    np.testing.assert_allclose(m.vertices_mm(w).astype(np.float64) - base,
                               _turn_mm(0.5 * _mode(0) - 2.0 * _mode(1)), atol=2e-3)
    with pytest.raises(ConfigError, match="4 identity weights"):
        m.vertices_mm(np.ones(4))


def test_an_expression_moves_only_its_vertices(kit):
    folder, _ = kit
    m = load_face_model(folder)
    base = m.vertices_mm()
    for name, (idx, delta) in EXPRESSION_MOVES.items():
        other = "cheekPuff_L" if name != "cheekPuff_L" else "jawOpen"
        got = m.vertices_mm(None, {other: 0.0, name: 0.5}) - base  # a zero weight is skipped
        want = np.zeros_like(got)
        want[idx] = _turn_mm(0.5 * delta)
        np.testing.assert_allclose(got, want, atol=1e-4)
        np.testing.assert_array_equal(np.sort(m.expression_deltas_cm[name][0]), idx)  # stored sparse
    both = m.vertices_mm(None, {"jawOpen": 1.0, "eyeBlink_L": 1.0}) - base
    np.testing.assert_allclose(both, (m.vertices_mm(None, {"jawOpen": 1.0}) - base)
                               + (m.vertices_mm(None, {"eyeBlink_L": 1.0}) - base), atol=1e-4)
    with pytest.raises(ConfigError, match="unknown expression 'smirk'"):
        m.vertices_mm(None, {"smirk": 1.0})


def test_identity_weights_are_a_pure_function_of_seed_and_subject(kit):
    m = load_face_model(kit[0])
    a = m.identity_weights(7, 3)
    assert a.shape == (3,) and np.array_equal(a, m.identity_weights(7, 3))
    assert not np.array_equal(a, m.identity_weights(7, 4)) and not np.array_equal(a, m.identity_weights(8, 3))
    np.testing.assert_array_equal(m.identity_weights(7, 3, n_modes=2), a[:2])
    with pytest.raises(ConfigError):
        m.identity_weights(7, 3, n_modes=4)


def _same(a, b):
    for name in ("neutral_cm", "identity_modes_cm", "faces", "face_uvs", "triangles", "triangle_uvs", "uvs",
                 "face_materials", "landmarks"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.expression_names == b.expression_names and a.materials == b.materials
    for name in a.expression_names:
        for x, y in zip(a.expression_deltas_cm[name], b.expression_deltas_cm[name], strict=True):
            np.testing.assert_array_equal(x, y)


def test_the_second_load_reads_the_cache(kit, cache, monkeypatch):
    first = load_face_model(kit[0])
    files = list(cache.iterdir())
    assert not first.from_cache and len(files) == 1 and files[0].name.startswith("facekit-")
    assert files[0].suffix == ".npz"  # the temp file was renamed, nothing else left behind

    def boom(*a, **k):
        raise AssertionError("parsed the OBJ files again")

    monkeypatch.setattr(facekit, "_parse_vertices", boom)
    second = load_face_model(kit[0])
    assert second.from_cache
    _same(first, second)


def test_the_cache_file_alone_loads_the_same_model(kit, cache, tmp_path):
    first = load_face_model(kit[0])
    (f,) = cache.iterdir()
    carried = tmp_path / "carried" / "face_model.npz"  # a machine without the kit
    carried.parent.mkdir()
    carried.write_bytes(f.read_bytes())
    shutil.rmtree(kit[0])
    again = load_face_model(carried)
    assert again.from_cache
    _same(first, again)
    bad = tmp_path / "carried" / "other.npz"
    np.savez(bad, x=np.zeros(3))
    with pytest.raises(FormatError, match="not a face-model cache file") as e:
        load_face_model(bad)
    assert e.value.path == str(bad)


def test_a_changed_file_invalidates_the_cache(kit, cache):
    folder, neutral = kit
    load_face_model(folder)
    p = folder / "identity001.obj"
    p.write_text(HEADER + _v_lines(neutral + 2 * _mode(1)))  # new size
    m = load_face_model(folder)
    assert not m.from_cache
    np.testing.assert_allclose(m.identity_modes_cm[1], 2 * _mode(1), atol=1e-4)
    assert load_face_model(folder).from_cache and len(list(cache.iterdir())) == 1  # the stale cache is gone
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # same size, new mtime
    assert not load_face_model(folder).from_cache


def test_a_corrupt_cache_is_rebuilt(kit, cache):
    first = load_face_model(kit[0])
    (f,) = cache.iterdir()
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])  # a half file
    again = load_face_model(kit[0])
    assert not again.from_cache
    _same(first, again)
    assert load_face_model(kit[0]).from_cache
    f.write_bytes(b"not a zip at all")
    assert not load_face_model(kit[0]).from_cache


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FACEDEPTH_CACHE_DIR", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x"
    monkeypatch.delenv("FACEDEPTH_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "facedepth"


def _break(folder: Path, how: str) -> Path:
    """Make ``folder`` bad in one way; returns the file the message must name."""
    neutral_path = folder / facekit.NEUTRAL_FILE
    if how == "missing folder":
        return folder / "nowhere"
    if how == "missing neutral":
        neutral_path.unlink()
        return neutral_path
    if how == "no identities":
        for p in folder.glob("identity*.obj"):
            p.unlink()
        return folder
    if how == "missing expression":
        (folder / "eyeBlink_R.obj").unlink()
        return folder
    if how == "vertex count":
        p = folder / "mouthSmile_L.obj"
        p.write_text(HEADER + _v_lines(_grid_cm()[:-1]))
        return p
    if how == "no faces":
        text = neutral_path.read_text()
        neutral_path.write_text("".join(line + "\n" for line in text.splitlines() if not line.startswith("f ")))
        return neutral_path
    if how == "malformed number":
        p = folder / "identity002.obj"
        lines = p.read_text().splitlines()
        lines[5] = "v 0.1 0.2x 0.3"
        p.write_text("\n".join(lines) + "\n")
        return p
    if how == "two numbers":
        p = folder / "identity000.obj"
        lines = p.read_text().splitlines()
        lines[3] = "v 0.1 0.2"
        p.write_text("\n".join(lines) + "\n")
        return p
    if how == "not finite":
        lines = neutral_path.read_text().splitlines()
        lines[4] = "v 0.1 nan 0.3"
        neutral_path.write_text("\n".join(lines) + "\n")
        return neutral_path
    if how == "face index":
        neutral_path.write_text(neutral_path.read_text() + "f 1/1 2/2 99/3\n")
        return neutral_path
    raise AssertionError(how)


@pytest.mark.parametrize("how, says", [
    ("missing folder", "not a folder"),
    ("missing neutral", "missing: the neutral mesh"),
    ("no identities", "found 0"),
    ("missing expression", "eyeBlink_R.obj"),
    ("vertex count", f"has {G * G - 1} vertices, the neutral mesh generic_neutral_mesh.obj has {G * G}"),
    ("no faces", "no faces"),
    ("malformed number", "line 6: vertex 'v 0.1 0.2x 0.3'"),
    ("two numbers", "line 4: vertex 'v 0.1 0.2'"),
    ("not finite", "line 5: vertex 'v 0.1 nan 0.3'"),
    ("face index", "outside the file's 36"),
])
def test_a_bad_folder_is_one_line_naming_the_file(kit, how, says):
    folder, _ = kit
    named = _break(folder, how)
    with pytest.raises(FormatError) as info:
        load_face_model(folder if how != "missing folder" else named)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{named}: ") and says in msg, msg


# --------------------------------------------------------------------------------------------
# the real kit, when this machine has it
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(tmp_path_factory, face_model_dir):
    folder = face_model_dir
    mp = pytest.MonkeyPatch()
    mp.setenv("FACEDEPTH_CACHE_DIR", str(tmp_path_factory.mktemp("facekit-cache")))
    try:
        t0 = time.perf_counter()
        m = load_face_model(folder)
        t1 = time.perf_counter()
        cached = load_face_model(folder)
        t2 = time.perf_counter()
        size = sum(p.stat().st_size for p in cache_dir().iterdir())
    finally:
        mp.undo()
    print(f"\nICT-FaceKit: uncached load {t1 - t0:.2f} s, cached {t2 - t1:.3f} s, cache {size / 1e6:.1f} MB")
    return m, cached, t2 - t1


def test_real_kit_loads_and_caches(real):
    m, cached, cached_s = real
    assert (m.n_vertices, m.n_modes) == (facekit.KIT_VERTEX_COUNT, 100) and len(m.expression_names) >= 50
    assert not m.from_cache and cached.from_cache and cached_s < 1.0
    _same(m, cached)
    assert m.faces.shape == (26384, 4) and len(m.quads) == 25836 and m.uvs.shape == (28911, 2)
    assert len(m.triangles) == 2 * 25836 + 548 and len(m.landmarks) == 68
    # the parts agree with the materials' faces
    for part, mat in [("teeth", "M_Teeth"), ("iris_left", "M_IrisLeft"), ("eyelashes", "M_EyeLashes")]:
        used = np.unique(m.faces[m.face_materials == m.materials.index(mat)])
        used = used[used >= 0]
        s = m.parts[part]
        assert (used.min(), used.max() + 1) == (s.start, s.stop), part


def test_real_people_have_human_faces(real):
    m = real[0]
    face, lm = m.parts["face"], m.landmarks
    for subject in range(8):
        v = m.vertices_mm(m.identity_weights(0, subject))
        nose = face.start + int(np.argmin(v[face, 2]))
        assert np.linalg.norm(v[nose] - v[lm[30]]) < 8.0  # the nearest face point is the nose tip landmark
        outer_eyes = np.linalg.norm(v[lm[36]] - v[lm[45]])
        assert 75.0 < outer_eyes < 115.0, outer_eyes  # outer canthi: about 90 mm in adults
        eye_l, eye_r = v[m.parts["eyeball_left"]].mean(0), v[m.parts["eyeball_right"]].mean(0)
        assert 50.0 < np.linalg.norm(eye_l - eye_r) < 80.0  # interpupillary distance
        assert eye_l[0] > eye_r[0]  # the subject's left eye is on the image's right
        assert 30.0 < (eye_l[2] + eye_r[2]) / 2 - v[nose, 2] < 65.0  # eyeballs sit behind the nose tip
        assert abs(v[nose, 0]) < 5.0 and eye_l[1] < v[nose, 1]  # nose on the midline, below the eyes (y down)
        width = np.ptp(v[m.parts["narrow_face"], 0])
        assert 110.0 < width < 190.0, width


def test_real_expressions_move_the_right_places(real):
    m = real[0]
    base = m.vertices_mm()
    chin = m.landmarks[8]
    assert (m.vertices_mm(None, {"jawOpen": 1.0}) - base)[chin, 1] > 10.0  # the chin drops (y down)
    for side, sign in (("L", 1), ("R", -1)):
        idx, delta = m.expression_deltas_cm[f"eyeBlink_{side}"]
        big = idx[np.linalg.norm(delta, axis=1) > 0.1]
        assert (np.sign(base[big, 0]) == sign).all()  # the subject's left is +x in head axes
    t = time.perf_counter()
    for _ in range(10):
        m.vertices_mm(m.identity_weights(1, 1), {"jawOpen": 0.3, "mouthSmile_L": 0.5, "eyeBlink_R": 1.0})
    print(f"\nvertices_mm (100 modes, 3 expressions): {(time.perf_counter() - t) * 100:.1f} ms")
