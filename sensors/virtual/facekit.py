"""The ICT-FaceKit face model: a morphable head built from light-stage scans of real people.

:func:`load_face_model` reads a ``FaceXModel`` folder of the public ICT-FaceKit (MIT licence, USC
Institute for Creative Technologies) from a path the user gives. Nothing of it ships with the
project, and the project never looks for it anywhere by itself.

The folder holds
  * ``generic_neutral_mesh.obj``: the neutral head (26,719 vertices in cm, +y up, +z out of the
    face, origin inside the head about level with the nose tip), with UVs (``vt``) and faces
    (``f``, mostly quads, ``v/vt`` indices, grouped by ``usemtl`` material);
  * ``identityNNN.obj``: the identity principal components as full meshes; mode i is
    ``identity_i - neutral`` and a random person is ``neutral + sum_i w_i mode_i`` with
    ``w_i ~ N(0, 1)``;
  * expression meshes named like ARKit blendshapes (``jawOpen``, ``eyeBlink_L``, ...); the
    delta is ``expression - neutral``, weights are usually in [0, 1];
  * ``vertex_indices.json``: landmark (68-point iBUG order) and fitting vertex lists.
Only the neutral mesh's ``vt``/``f`` lines are read; the other files may carry them or not.

Parsing the ~160 text files (112 MB) takes a few seconds, so the parsed model is kept in a
compact cache (``cache_dir()``, one ``.npz`` per folder state, written atomically); the next load
reads it in a fraction of a second. The cache is derived data of the kit: it lives in the user's
cache folder, never in the repository.

Axes: the model keeps the kit's own units and axes (cm, ``K`` = x to the subject's left, y up, z
out of the face). :meth:`FaceModel.vertices_mm` returns millimetres in the project's *head axes*
(see ``people.py``): x to the image right (the subject's left, as in the kit), y down, z away from
the camera, i.e. ``H = 10 * (x, -y, -z)``, a half turn about x, so the nose tip has the smallest z.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from sensors.errors import ConfigError, FormatError
from sensors.virtual._util import rng

NEUTRAL_FILE = "generic_neutral_mesh.obj"
INDICES_FILE = "vertex_indices.json"
_IDENTITY_RE = re.compile(r"identity(\d+)\.obj")

#: the expressions the virtual Kinect's animation uses: a folder without them is refused
REQUIRED_EXPRESSIONS = ("jawOpen", "mouthSmile_L", "mouthSmile_R", "eyeBlink_L", "eyeBlink_R",
                        "browInnerUp_L", "browInnerUp_R")

#: vertex count of the kit's meshes (the loader accepts any count that all files share)
KIT_VERTEX_COUNT = 26719

#: the kit's vertex parts, inclusive ranges as its README gives them (checked against the
#: ``usemtl`` groups of the neutral mesh). Left/right are the subject's (the kit's +x side is the
#: subject's left eye).
_PART_RANGES_INCLUSIVE = {
    "face": (0, 9408),
    "narrow_face": (0, 6705),
    "head_neck": (9409, 11247),
    "mouth_socket": (11248, 13293),
    "eye_sockets": (13294, 14061),
    "gums_tongue": (14062, 17038),
    "teeth": (17039, 21450),
    "eyeballs": (21451, 24590),
    "eyeball_left": (21451, 23020),
    "sclera_left": (21451, 22220),
    "iris_left": (22221, 23020),
    "eyeball_right": (23021, 24590),
    "sclera_right": (23021, 23790),
    "iris_right": (23791, 24590),
    "eye_extras": (24591, 25350),  # lacrimal fluid, eye blend and eye occlusion meshes
    "lacrimal_fluid": (24591, 24998),
    "eye_blend": (24999, 25046),
    "eye_occlusion": (25047, 25350),
    "eyelashes": (25351, 26718),
}

#: an expression keeps only the vertices it moves by more than this (cm): 1e-4 cm = 0.001 mm,
#: the resolution of the kit's six-digit text (smaller deltas are print rounding)
EXPRESSION_EPS_CM = 1e-4

_CACHE_VERSION = 1
_SEED_SALT = "ict-facekit identity"


def cache_dir() -> Path:
    """The project's per-user cache folder: ``$FACEDEPTH_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/facedepth``, else ``~/.cache/facedepth``."""
    if os.environ.get("FACEDEPTH_CACHE_DIR"):
        return Path(os.environ["FACEDEPTH_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "facedepth"


def kit_to_head_mm(points_cm: np.ndarray) -> np.ndarray:
    """Kit points (cm; x left of the subject, y up, z out of the face) in head axes, mm (float32):
    ``10 * (x, -y, -z)``."""
    out = np.asarray(points_cm, dtype=np.float32) * np.float32(10.0)
    out[..., 1:] *= np.float32(-1.0)
    return out


def _readonly(a: np.ndarray | None) -> np.ndarray | None:
    if a is not None:
        a.flags.writeable = False
    return a


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FaceModel:
    """A loaded ICT-FaceKit model, in the kit's units and axes (cm, +y up, +z out of the face).

    Arrays are read-only. ``faces`` holds the polygons as the file lists them, padded with -1 to
    the largest arity (4 for the kit: 25,836 quads and 548 triangles); ``triangles`` splits them
    (fan from the first vertex) and ``triangle_faces`` names each triangle's polygon. ``uvs`` (M x
    2) with ``face_uvs``/``triangle_uvs`` index it (UV seams make M larger than the vertex count);
    they are None when the neutral mesh has no ``vt``. ``face_materials`` indexes ``materials``
    (the ``usemtl`` names; -1 before any). ``parts`` are slices of the vertex array;
    ``landmarks`` the 68 iBUG landmark vertices (None without ``vertex_indices.json``) and
    ``vertex_sets`` every index list of that file.
    """

    path: Path
    neutral_cm: np.ndarray                      # N x 3 float32
    identity_modes_cm: np.ndarray               # K x N x 3 float32
    expression_names: tuple[str, ...]
    expression_deltas_cm: Mapping[str, tuple[np.ndarray, np.ndarray]]  # name -> (indices int32, M x 3 f32)
    faces: np.ndarray                           # F x P int32, -1 padded
    face_uvs: np.ndarray | None                 # F x P int32, -1 padded / where a corner has no vt
    face_materials: np.ndarray                  # F int16
    materials: tuple[str, ...]
    triangles: np.ndarray                       # T x 3 int32
    triangle_uvs: np.ndarray | None             # T x 3 int32
    triangle_faces: np.ndarray                  # T int32
    uvs: np.ndarray | None                      # M x 2 float32
    parts: Mapping[str, slice]
    landmarks: np.ndarray | None                # 68 int32 (iBUG order)
    vertex_sets: Mapping[str, np.ndarray]       # every int list of vertex_indices.json
    expression_lists: Mapping[str, tuple[str, ...]]  # every name list of vertex_indices.json
    from_cache: bool = False

    # -- sizes -------------------------------------------------------------------------------
    @property
    def n_vertices(self) -> int:
        return int(self.neutral_cm.shape[0])

    @property
    def n_modes(self) -> int:
        return int(self.identity_modes_cm.shape[0])

    @property
    def quads(self) -> np.ndarray:
        """The four-sided faces (Q x 4 int32)."""
        if self.faces.shape[1] < 4:
            return np.empty((0, 4), np.int32)
        q = (self.faces[:, 3] >= 0) & ((self.faces[:, 4:] < 0).all(axis=1))
        return self.faces[q, :4]

    # -- sampling ----------------------------------------------------------------------------
    def identity_weights(self, seed: int, subject: int, n_modes: int | None = None) -> np.ndarray:
        """Weights of ``subject``'s identity under ``seed``: ``n_modes`` (default all) draws of
        N(0, 1), a pure function of both numbers; a shorter vector is a prefix of the full one."""
        n = self.n_modes if n_modes is None else int(n_modes)
        if not 0 <= n <= self.n_modes:
            raise ConfigError(f"n_modes={n_modes} must be between 0 and the model's {self.n_modes} modes")
        return rng(int(seed), int(subject), _SEED_SALT).standard_normal(self.n_modes)[:n]

    def vertices_cm(self, weights: np.ndarray | None = None,
                    expressions: Mapping[str, float] | None = None) -> np.ndarray:
        """The mesh (N x 3 float32, kit units and axes) of identity ``weights`` (the first
        ``len(weights)`` modes; None: the neutral head) showing ``expressions`` (name -> weight;
        only nonzero weights cost anything)."""
        v = self.neutral_cm.copy()
        if weights is not None:
            w = np.asarray(weights, dtype=np.float32).reshape(-1)
            if w.size > self.n_modes:
                raise ConfigError(f"{w.size} identity weights for a model of {self.n_modes} modes")
            if w.any():
                flat = self.identity_modes_cm.reshape(self.n_modes, -1)[:w.size]  # a view, no copy
                v += (w @ flat).reshape(v.shape)
        for name, weight in (expressions or {}).items():
            if weight == 0:
                continue
            try:
                idx, delta = self.expression_deltas_cm[name]
            except KeyError:
                raise ConfigError(f"unknown expression {name!r}; the model has "
                                  f"{', '.join(self.expression_names)}") from None
            v[idx] += np.float32(weight) * delta
        return v

    def vertices_mm(self, weights: np.ndarray | None = None,
                    expressions: Mapping[str, float] | None = None) -> np.ndarray:
        """:meth:`vertices_cm` in millimetres and head axes (x image right, y down, z away from
        the camera for a face looking at it): N x 3 float32."""
        return kit_to_head_mm(self.vertices_cm(weights, expressions))


# --------------------------------------------------------------------------------------------
# OBJ parsing
# --------------------------------------------------------------------------------------------


def _float_array(body: bytes) -> np.ndarray:
    """The whitespace-separated numbers of ``body`` (one C pass); a malformed number gives a
    short array (older numpy warns and stops there, newer numpy raises), which callers notice."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.fromstring(body, dtype=np.float64, sep=" ")
    except ValueError:
        return np.empty(0)


def _bad_vertex_line(data: bytes, path: Path) -> FormatError:
    """The error for the first malformed ``v`` line of ``data`` (slow path, only on errors)."""
    for lineno, line in enumerate(data.splitlines(), 1):
        if not line.startswith(b"v "):
            continue
        toks = line.split()[1:]
        try:
            xyz = [float(t) for t in toks]
        except ValueError:
            xyz = []
        if len(xyz) not in (3, 4, 6, 7) or not np.isfinite(xyz).all():
            text = line.decode("utf-8", "replace")[:60]
            return FormatError(f"line {lineno}: vertex {text!r} is not three finite numbers", path)
    return FormatError("malformed vertex lines", path)


def _parse_vertices(data: bytes, path: Path) -> np.ndarray:
    """The ``v`` lines of an OBJ file as N x 3 float64 (fast: one C parse of the vertex block)."""
    first = 0 if data.startswith(b"v ") else data.find(b"\nv ") + 1
    if first == 0 and not data.startswith(b"v "):
        raise FormatError("no vertex ('v') lines", path)
    last = max(first, data.rfind(b"\nv ") + 1)
    end = data.find(b"\n", last)
    block = data[first:] if end < 0 else data[first:end]
    n = block.count(b"\n") + 1
    if block.count(b"\nv ") + 1 == n:  # the usual layout: all vertex lines in one run
        body = block[2:].replace(b"\nv ", b"\n")
    else:
        lines = [line[2:] for line in data.splitlines() if line.startswith(b"v ")]
        n, body = len(lines), b"\n".join(lines)
    arr = _float_array(body)
    if arr.size != 3 * n:
        # vertex colours or w (4, 6 or 7 numbers a line) are legal OBJ; anything else is not
        rows = [line.split()[1:4] for line in data.splitlines() if line.startswith(b"v ")]
        if all(len(r) == 3 for r in rows):
            try:
                arr = np.array([[float(t) for t in r] for r in rows], np.float64).reshape(-1)
            except ValueError:
                raise _bad_vertex_line(data, path) from None
            if not np.isfinite(arr).all():
                raise _bad_vertex_line(data, path)
            return arr.reshape(-1, 3)
        raise _bad_vertex_line(data, path)
    if not np.isfinite(arr).all():
        raise _bad_vertex_line(data, path)
    return arr.reshape(n, 3)


@dataclass
class _Topology:
    faces: np.ndarray
    face_uvs: np.ndarray | None
    face_materials: np.ndarray
    materials: tuple[str, ...]
    uvs: np.ndarray | None


def _parse_topology(data: bytes, path: Path, n_vertices: int) -> _Topology:
    """UVs, faces and materials of the neutral mesh."""
    uv_rows: list[bytes] = []
    polys: list[list[int]] = []
    poly_uvs: list[list[int]] = []
    mats: list[int] = []
    materials: list[str] = []
    current = -1
    nv = 0
    for lineno, line in enumerate(data.splitlines(), 1):
        head = line[:2]
        if head == b"v ":
            nv += 1
        elif head == b"vt":
            toks = line.split()
            if toks[0] == b"vt":
                if len(toks) < 3:
                    raise FormatError(f"line {lineno}: texture coordinate {line[:60].decode('utf-8', 'replace')!r} "
                                      "has fewer than two numbers", path)
                uv_rows.append(b" ".join(toks[1:3]))
        elif head == b"f ":
            toks = line.split()[1:]
            if len(toks) < 3:
                raise FormatError(f"line {lineno}: a face needs at least three vertices", path)
            vi: list[int] = []
            ti: list[int] = []
            try:
                for t in toks:
                    p = t.split(b"/")
                    v = int(p[0])
                    vi.append(v - 1 if v > 0 else nv + v)
                    if len(p) > 1 and p[1]:
                        u = int(p[1])
                        ti.append(u - 1 if u > 0 else len(uv_rows) + u)
                    else:
                        ti.append(-1)
            except ValueError:
                raise FormatError(f"line {lineno}: face {line[:60].decode('utf-8', 'replace')!r} "
                                  "has a malformed index", path) from None
            polys.append(vi)
            poly_uvs.append(ti)
            mats.append(current)
        elif line.startswith(b"usemtl"):
            name = line[6:].strip().decode("utf-8", "replace")
            if name not in materials:
                materials.append(name)
            current = materials.index(name)
    if not polys:
        raise FormatError("the neutral mesh has no faces ('f' lines)", path)
    arity = max(len(p) for p in polys)
    faces = np.full((len(polys), arity), -1, np.int32)
    fuv = np.full((len(polys), arity), -1, np.int32)
    for k, (p, t) in enumerate(zip(polys, poly_uvs, strict=True)):
        faces[k, :len(p)] = p
        fuv[k, :len(t)] = t
    bad = (faces < -1) | (faces >= n_vertices) | ((faces == -1) & (np.arange(arity) < 3))
    if bad.any():
        k = int(np.flatnonzero(bad.any(axis=1))[0])
        raise FormatError(f"face {k + 1} refers to a vertex outside the file's {n_vertices}", path)
    uvs = None
    if uv_rows:
        uvs = _float_array(b"\n".join(uv_rows))
        if uvs.size != 2 * len(uv_rows) or not np.isfinite(uvs).all():
            raise FormatError("malformed texture coordinates ('vt' lines)", path)
        uvs = uvs.reshape(-1, 2).astype(np.float32)
        if ((fuv < -1) | (fuv >= len(uvs))).any():
            raise FormatError(f"a face refers to a texture coordinate outside the file's {len(uvs)}", path)
    else:
        fuv = None
    return _Topology(faces, fuv, np.asarray(mats, np.int16), tuple(materials), uvs)


def _triangulate(faces: np.ndarray, face_uvs: np.ndarray | None):
    """Fan triangles of -1 padded polygons: (triangles, triangle_uvs, triangle_faces)."""
    arity = (faces >= 0).sum(axis=1)
    tris, tuvs, owner = [], [], []
    for j in range(1, faces.shape[1] - 1):
        sel = np.flatnonzero(arity > j + 1)
        if sel.size == 0:
            continue
        tris.append(np.stack([faces[sel, 0], faces[sel, j], faces[sel, j + 1]], axis=1))
        if face_uvs is not None:
            tuvs.append(np.stack([face_uvs[sel, 0], face_uvs[sel, j], face_uvs[sel, j + 1]], axis=1))
        owner.append(sel)
    order = np.argsort(np.concatenate(owner), kind="stable")  # keep the file's face order
    tri = np.concatenate(tris)[order].astype(np.int32)
    tuv = np.concatenate(tuvs)[order].astype(np.int32) if face_uvs is not None else None
    return tri, tuv, np.concatenate(owner)[order].astype(np.int32)


# --------------------------------------------------------------------------------------------
# the folder
# --------------------------------------------------------------------------------------------


def _scan(folder: Path) -> tuple[list[tuple[int, Path]], list[tuple[str, Path]]]:
    """Identity and expression files of ``folder``, checking what must be there."""
    if not folder.is_dir():
        raise FormatError("not a folder (expected the ICT-FaceKit FaceXModel folder)", folder)
    neutral = folder / NEUTRAL_FILE
    if not neutral.is_file():
        raise FormatError("missing: the neutral mesh of the ICT-FaceKit FaceXModel folder", neutral)
    identities: list[tuple[int, Path]] = []
    expressions: list[tuple[str, Path]] = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() != ".obj" or not p.is_file() or p.name == NEUTRAL_FILE:
            continue
        m = _IDENTITY_RE.fullmatch(p.name)
        if m:
            identities.append((int(m.group(1)), p))
        else:
            expressions.append((p.stem, p))
    identities.sort()
    if not identities:
        raise FormatError("no identity files (identityNNN.obj): found 0, need at least 1", folder)
    names = {n for n, _ in expressions}
    missing = [n for n in REQUIRED_EXPRESSIONS if n not in names]
    if missing:
        raise FormatError(f"missing expression files {', '.join(n + '.obj' for n in missing)} "
                          f"(found {len(identities)} identities and {len(expressions)} expressions)", folder)
    return identities, expressions


def _cache_key(folder: Path, files: list[Path]) -> tuple[str, str]:
    """(hash of the folder path, hash of the path and every file's name, size and mtime)."""
    where = hashlib.sha256(str(folder).encode()).hexdigest()[:12]
    h = hashlib.sha256(f"facekit v{_CACHE_VERSION} eps {EXPRESSION_EPS_CM}\n{folder}\n".encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return where, h.hexdigest()[:24]


def _read_indices(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"not valid JSON ({exc})", path) from None
    if not isinstance(d, dict):
        raise FormatError("expected a JSON object of index lists", path)
    return d


def _parse_folder(folder: Path, identities, expressions) -> dict[str, np.ndarray]:
    """Parse the text files into the arrays the cache stores."""
    npath = folder / NEUTRAL_FILE
    try:
        data = npath.read_bytes()
    except OSError as exc:
        raise FormatError(f"unreadable ({exc.strerror})", npath) from None
    neutral = _parse_vertices(data, npath)
    n = len(neutral)
    topo = _parse_topology(data, npath, n)
    del data

    def read(p: Path) -> np.ndarray:
        try:
            v = _parse_vertices(p.read_bytes(), p)
        except OSError as exc:
            raise FormatError(f"unreadable ({exc.strerror})", p) from None
        if len(v) != n:
            raise FormatError(f"has {len(v)} vertices, the neutral mesh {NEUTRAL_FILE} has {n}", p)
        return v

    modes = np.empty((len(identities), n, 3), np.float32)
    for k, (_, p) in enumerate(identities):
        modes[k] = read(p) - neutral
    # int16 with one scale per mode: half the size of float32 and ~25x finer than float16
    scale = (np.abs(modes).reshape(len(modes), -1).max(axis=1) / 32767.0).astype(np.float32)
    scale[scale == 0] = 1.0
    modes_q = np.rint(modes / scale[:, None, None]).astype(np.int16)

    offsets = [0]
    idx_all, delta_all = [], []
    for _, p in expressions:
        d = read(p) - neutral
        moved = np.flatnonzero(np.einsum("ij,ij->i", d, d) > EXPRESSION_EPS_CM ** 2)
        idx_all.append(moved.astype(np.int32))
        delta_all.append(d[moved].astype(np.float32))
        offsets.append(offsets[-1] + moved.size)

    indices = _read_indices(folder / INDICES_FILE)
    for name, v in indices.items():
        if (isinstance(v, list) and name.endswith("_verts") and all(isinstance(x, int) for x in v)
                and any(not 0 <= x < n for x in v)):
            raise FormatError(f"{name} holds a vertex index outside the mesh's {n}", folder / INDICES_FILE)
    return {
        "neutral_cm": neutral.astype(np.float32),
        "modes_q": modes_q,
        "modes_scale": scale,
        "expr_names": np.array([name for name, _ in expressions], dtype=str).reshape(-1),
        "expr_offsets": np.asarray(offsets, np.int64),
        "expr_index": np.concatenate(idx_all) if idx_all else np.empty(0, np.int32),
        "expr_delta": np.concatenate(delta_all) if delta_all else np.empty((0, 3), np.float32),
        "faces": topo.faces,
        "face_uvs": topo.face_uvs if topo.face_uvs is not None else np.empty((0, 0), np.int32),
        "face_materials": topo.face_materials,
        "materials": np.array(topo.materials, dtype=str).reshape(-1),
        "uvs": topo.uvs if topo.uvs is not None else np.empty((0, 2), np.float32),
        "indices_json": np.array(json.dumps(indices)),
    }


def _read_cache(path: Path, key: str | None) -> dict[str, np.ndarray] | None:
    """The arrays of a valid cache file, or None (absent, stale, half written or corrupt);
    ``key`` None takes a cache of any folder state."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        if str(arrays.pop("key")) != key and key is not None:
            return None
        n = arrays["neutral_cm"].shape[0]
        ok = (arrays["neutral_cm"].shape == (n, 3) and arrays["modes_q"].shape[1:] == (n, 3)
              and arrays["modes_scale"].shape == arrays["modes_q"].shape[:1]
              and arrays["expr_offsets"].shape == (len(arrays["expr_names"]) + 1,)
              and arrays["expr_offsets"][-1] == len(arrays["expr_index"]) == len(arrays["expr_delta"]))
        return arrays if ok else None
    except Exception:  # noqa: BLE001 - any unreadable cache is simply rebuilt
        return None


def _write_cache(path: Path, key: str, arrays: dict[str, np.ndarray], where: str) -> None:
    """Write atomically (temp file in the same folder, then rename); drop this folder's older caches."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, key=np.array(key), **arrays)
        os.replace(tmp, path)
        tmp = None
        for old in path.parent.glob(f"facekit-{where}-*.npz"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError as exc:  # a read-only or full cache folder: the model still loads, uncached
        warnings.warn(f"{path.parent}: cannot write the face-model cache ({exc.strerror or exc}); "
                      "every load parses the kit again", stacklevel=3)
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _build(folder: Path, a: dict[str, np.ndarray], from_cache: bool) -> FaceModel:
    n_vertices = a["neutral_cm"].shape[0]
    modes = a["modes_q"].astype(np.float32)
    modes *= a["modes_scale"][:, None, None]
    names = tuple(str(s) for s in a["expr_names"])
    off = a["expr_offsets"]
    deltas = {name: (_readonly(a["expr_index"][off[k]:off[k + 1]]), _readonly(a["expr_delta"][off[k]:off[k + 1]]))
              for k, name in enumerate(names)}
    faces = a["faces"]
    face_uvs = a["face_uvs"] if a["face_uvs"].size else None
    uvs = a["uvs"] if len(a["uvs"]) else None
    tri, tri_uv, tri_face = _triangulate(faces, face_uvs)
    indices = json.loads(str(a["indices_json"]))
    sets = {k: _readonly(np.asarray(v, np.int32)) for k, v in indices.items()
            if isinstance(v, list) and v and all(isinstance(x, int) for x in v)}
    lists = {k: tuple(v) for k, v in indices.items()
             if isinstance(v, list) and v and all(isinstance(x, str) for x in v)}
    landmarks = sets.get("idx_to_landmark_verts")
    parts = {name: slice(min(lo, n_vertices), min(hi + 1, n_vertices))
             for name, (lo, hi) in _PART_RANGES_INCLUSIVE.items()}
    return FaceModel(
        path=folder,
        neutral_cm=_readonly(a["neutral_cm"]),
        identity_modes_cm=_readonly(modes),
        expression_names=names,
        expression_deltas_cm=MappingProxyType(deltas),
        faces=_readonly(faces),
        face_uvs=_readonly(face_uvs),
        face_materials=_readonly(a["face_materials"]),
        materials=tuple(str(s) for s in a["materials"]),
        triangles=_readonly(tri),
        triangle_uvs=_readonly(tri_uv),
        triangle_faces=_readonly(tri_face),
        uvs=_readonly(uvs),
        parts=MappingProxyType(parts),
        landmarks=landmarks,
        vertex_sets=MappingProxyType(sets),
        expression_lists=MappingProxyType(lists),
        from_cache=from_cache,
    )


def load_face_model(path: str | os.PathLike[str], *, use_cache: bool = True) -> FaceModel:
    """Load the ICT-FaceKit ``FaceXModel`` folder at ``path``, or a compact cache file (``.npz``)
    that a load of the folder wrote: the same model, for a machine that has the cache file but
    not the kit (a training machine the file is carried to).

    A wrong folder is a :class:`FormatError` naming the file and the problem (missing neutral
    mesh, no identity file, a required expression missing, a vertex count that differs from the
    neutral mesh's, a neutral mesh without faces, a malformed number). The parsed model is cached
    in ``cache_dir()`` (keyed by the folder's absolute path and each file's name, size and mtime);
    ``use_cache=False`` neither reads nor writes it.
    """
    folder = Path(path).expanduser().absolute()
    if folder.suffix == ".npz" and folder.is_file():
        arrays = _read_cache(folder, None)
        if arrays is None:
            raise FormatError("not a face-model cache file (written by loading the ICT-FaceKit folder)", folder)
        return _build(folder, arrays, from_cache=True)
    identities, expressions = _scan(folder)
    files = [folder / NEUTRAL_FILE] + [p for _, p in identities] + [p for _, p in expressions]
    if (folder / INDICES_FILE).is_file():
        files.append(folder / INDICES_FILE)
    if use_cache:
        where, key = _cache_key(folder, files)
        cache_file = cache_dir() / f"facekit-{where}-{key}.npz"
        arrays = _read_cache(cache_file, key)
        if arrays is not None:
            return _build(folder, arrays, from_cache=True)
    arrays = _parse_folder(folder, identities, expressions)
    if use_cache:
        _write_cache(cache_file, key, arrays, where)
    return _build(folder, arrays, from_cache=False)
