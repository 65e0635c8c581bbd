"""A minimal reader of binary glTF 2.0 (``.glb``) meshes: one mesh, one triangle primitive.

Reads what a scanned head needs, with numpy and the standard library only: the ``POSITION``
and ``TEXCOORD_0`` attributes and the triangle indices of the file's single mesh primitive
(``NORMAL`` too when present). Accessors may be float32 or, for indices, unsigned
8/16/32-bit integers; interleaved buffer views (``byteStride``) are handled. Anything else
(a text ``.gltf``, external or embedded-URI buffers, Draco or meshopt compression, sparse
accessors, several meshes or primitives, a non-triangle mode) is a one-line
:class:`~sensors.errors.FormatError` naming the file. Node transforms are not applied: the
mesh is returned in its own coordinates.
"""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass

import numpy as np

from sensors.errors import FormatError

_MAGIC = b"glTF"
_CHUNK_JSON = 0x4E4F534A
_CHUNK_BIN = 0x004E4942
_COMPONENTS = {5121: np.uint8, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}


@dataclass(frozen=True)
class GlbMesh:
    """A triangle mesh: ``positions`` (N x 3 float32), ``triangles`` (M x 3 int64),
    ``uv`` (N x 2 float32, glTF convention: v = 0 at the image's top row) and ``normals``
    (N x 3 float32, or None)."""

    positions: np.ndarray
    triangles: np.ndarray
    uv: np.ndarray
    normals: np.ndarray | None
    name: str = ""


def read_glb(path: str | os.PathLike[str]) -> GlbMesh:
    """The single mesh of the ``.glb`` file at ``path``; FormatError when it cannot be read."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise FormatError(f"cannot read the glTF file ({exc.strerror or exc})", path) from None
    return parse_glb(data, path)


def parse_glb(data: bytes, path: str = "<glb>") -> GlbMesh:
    """The single mesh of GLB bytes ``data`` (``path`` names it in errors)."""

    def bad(why: str) -> FormatError:
        return FormatError(f"not a usable glTF binary mesh: {why}", path)

    if len(data) < 20 or data[:4] != _MAGIC:
        raise bad("no GLB header (a binary glTF file starts with 'glTF')")
    version, length = struct.unpack_from("<II", data, 4)
    if version != 2:
        raise bad(f"glTF version {version}, expected 2")
    if length > len(data):
        raise bad(f"truncated: the header says {length} bytes, the file has {len(data)}")
    chunks: dict[int, bytes] = {}
    pos = 12
    while pos + 8 <= length:
        clen, ctype = struct.unpack_from("<II", data, pos)
        if pos + 8 + clen > length:
            raise bad("a chunk runs past the end of the file")
        chunks.setdefault(ctype, data[pos + 8:pos + 8 + clen])
        pos += 8 + clen
    if _CHUNK_JSON not in chunks:
        raise bad("no JSON chunk")
    try:
        doc = json.loads(chunks[_CHUNK_JSON].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise bad("the JSON chunk does not parse") from None
    binary = chunks.get(_CHUNK_BIN, b"")
    used = set(doc.get("extensionsUsed", [])) | set(doc.get("extensionsRequired", []))
    for ext in ("KHR_draco_mesh_compression", "EXT_meshopt_compression", "KHR_mesh_quantization"):
        if ext in used:
            raise bad(f"{ext} is not supported (export the mesh uncompressed)")
    meshes = doc.get("meshes", [])
    if len(meshes) != 1:
        raise bad(f"{len(meshes)} meshes, expected exactly one")
    prims = meshes[0].get("primitives", [])
    if len(prims) != 1:
        raise bad(f"{len(prims)} primitives in the mesh, expected exactly one")
    prim = prims[0]
    if prim.get("mode", 4) != 4:
        raise bad(f"primitive mode {prim.get('mode')}, only triangles (4) are supported")
    attrs = prim.get("attributes", {})
    for need in ("POSITION", "TEXCOORD_0"):
        if need not in attrs:
            raise bad(f"the mesh has no {need} attribute")

    def accessor(index: int, want_type: tuple[str, ...]) -> np.ndarray:
        try:
            acc = doc["accessors"][index]
        except (KeyError, IndexError, TypeError):
            raise bad(f"accessor {index} is missing") from None
        if "sparse" in acc:
            raise bad(f"accessor {index} is sparse (not supported)")
        if acc.get("type") not in want_type:
            raise bad(f"accessor {index} has type {acc.get('type')}, expected {' or '.join(want_type)}")
        dtype = _COMPONENTS.get(acc.get("componentType"))
        if dtype is None or acc.get("normalized"):
            raise bad(f"accessor {index} has an unsupported component type {acc.get('componentType')}")
        width = _WIDTH[acc["type"]]
        count = int(acc["count"])
        if "bufferView" not in acc:
            raise bad(f"accessor {index} has no buffer view")
        view = doc["bufferViews"][acc["bufferView"]]
        if view.get("buffer", 0) != 0 or doc["buffers"][0].get("uri") is not None:
            raise bad("the mesh data is not in the file's binary chunk")
        item = np.dtype(dtype).itemsize * width
        stride = int(view.get("byteStride", item))
        start = int(view.get("byteOffset", 0)) + int(acc.get("byteOffset", 0))
        end = start + stride * (count - 1) + item if count else start
        if end > int(view.get("byteOffset", 0)) + int(view["byteLength"]) or end > len(binary):
            raise bad(f"accessor {index} runs past its buffer")
        if count == 0:
            return np.zeros((0, width), dtype)
        raw = np.frombuffer(binary, np.uint8, count=end - start, offset=start)
        rows = np.lib.stride_tricks.as_strided(raw, shape=(count, item), strides=(stride, 1))
        out = np.ascontiguousarray(rows).view(np.dtype(dtype).newbyteorder("<")).reshape(count, width)
        return out.astype(np.dtype(dtype).newbyteorder("="))

    positions = accessor(attrs["POSITION"], ("VEC3",)).astype(np.float32)
    uv = accessor(attrs["TEXCOORD_0"], ("VEC2",)).astype(np.float32)
    normals = accessor(attrs["NORMAL"], ("VEC3",)).astype(np.float32) if "NORMAL" in attrs else None
    n = len(positions)
    if len(uv) != n or (normals is not None and len(normals) != n):
        raise bad("the attributes have different vertex counts")
    if "indices" in prim:
        idx = accessor(prim["indices"], ("SCALAR",)).ravel()
        if idx.dtype.kind == "f":
            raise bad("the indices are not integers")
    else:
        idx = np.arange(n)
    if len(idx) % 3 or len(idx) == 0:
        raise bad(f"{len(idx)} indices do not make whole triangles")
    tris = idx.astype(np.int64).reshape(-1, 3)
    if tris.max() >= n:
        raise bad(f"an index ({int(tris.max())}) points past the {n} vertices")
    if not np.isfinite(positions).all():
        raise bad("the positions hold NaN or infinity")
    return GlbMesh(positions, tris, uv, normals, str(meshes[0].get("name", "")))
