"""Point clouds of the current frame as PLY files (the 3D view's export), free of Qt.

One cloud per file: binary little-endian PLY with float32 ``x y z`` in millimetres (colour-camera
coordinates: x right, y down, z forward) and uint8 ``red green blue``, the format Open3D,
MeshLab and CloudCompare read. Points come from :func:`sensors.crop.crop_points`: the true depth
crop as measured, the prediction decoded with :mod:`sensors.encoding`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from app.pipeline import ModelResult
from models.common.files import atomic_path
from sensors.crop import crop_points
from sensors.encoding import decode_depth
from sensors.errors import FormatError

_VERTEX = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])


def model_clouds(model: ModelResult) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The predicted (``"pred"``) and, when the frame has depth, the true (``"true"``) depth of one
    model's crop as (points mm, colours) clouds."""
    crop = model.crop
    pred_mm = decode_depth(model.pred8, crop.distance_mm, crop.config.half_range_mm)
    clouds = {"pred": crop_points(crop, pred_mm)}
    if crop.depth_mm is not None:
        clouds["true"] = crop_points(crop, crop.depth_mm)
    return clouds


def write_ply(path: str | Path, points_mm: np.ndarray, colours: np.ndarray, comment: str = "") -> Path:
    """Write one coloured point cloud (N x 3 mm, N x 3 uint8 RGB) as a binary PLY, atomically."""
    pts = np.asarray(points_mm, dtype=np.float32).reshape(-1, 3)
    rgb = np.asarray(colours, dtype=np.uint8).reshape(-1, 3)
    if len(pts) != len(rgb):
        raise ValueError(f"{len(pts)} points but {len(rgb)} colours")
    vertices = np.empty(len(pts), _VERTEX)
    for i, k in enumerate("xyz"):
        vertices[k] = pts[:, i]
    for i, k in enumerate(("red", "green", "blue")):
        vertices[k] = rgb[:, i]
    lines = ["ply", "format binary_little_endian 1.0",
             "comment units: mm (colour-camera x right, y down, z forward)"]
    lines += [f"comment {c}" for c in comment.splitlines() if c]
    lines += [f"element vertex {len(pts)}", *(f"property {t} {k}" for k, t in
              (("x", "float"), ("y", "float"), ("z", "float"), ("red", "uchar"), ("green", "uchar"),
               ("blue", "uchar"))), "end_header"]
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(("\n".join(lines) + "\n").encode("ascii"))
        f.write(vertices.tobytes())
    return path


def read_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a PLY written by :func:`write_ply` back: (points mm, colours)."""
    data = Path(path).read_bytes()
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise FormatError(f"{path}: not a PLY file")
    header = data[:end].decode("ascii", "replace").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise FormatError(f"{path}: only binary little-endian PLY is read")
    n = next((int(h.split()[2]) for h in header if h.startswith("element vertex ")), None)
    body = data[end + len(b"end_header\n"):]
    if n is None or len(body) != n * _VERTEX.itemsize:
        raise FormatError(f"{path}: the vertex data does not match the header")
    v = np.frombuffer(body, _VERTEX)
    return np.stack([v["x"], v["y"], v["z"]], axis=1), np.stack([v["red"], v["green"], v["blue"]], axis=1)
