"""Scan heads: the virtual Kinect's people shaped by a morphable model of real scans.

A scan person is the face model's mean head plus its identity modes weighted by draws from
``(identity_seed, subject)`` (:meth:`FaceModel.identity_weights`): size and proportions come
from the model alone. The person's mesh becomes the same star-shaped surface the procedural
heads are made of (:mod:`sensors.virtual.people`): the mesh is rasterised in the head's
longitude x latitude grid around the skull centre, keeping the outermost surface per direction,
so appearance, hair, eyes, shading and the renderer stay one implementation for both kinds.

The skull centre of a scan head follows the rule the procedural heads are built by: on the
midline, :data:`EYES_ABOVE_CENTRE_MM` below the eyes and :data:`EYES_IN_FRONT_MM` behind the
front of the eyes (both the mean over procedural people).

Model axes while building, as in :mod:`sensors.virtual.people`: X to the image right when the
head faces the camera, Y up, Z out of the face, millimetres, origin at the skull centre.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensors.virtual.facekit import FaceModel

#: the eyes' centres lie this far above the skull centre (mm; procedural heads' ``eye_height``)
EYES_ABOVE_CENTRE_MM = 8.0
#: the front of the eyes lies this far in front of the skull centre (mm; the procedural heads'
#: mean eye surface, 84 +- 4 mm over 12 people)
EYES_IN_FRONT_MM = 84.0
#: the expressions that drive the animation's channels, with their weights at channel weight 1
#: (summed within a channel; a folder without one of them leaves it out). A smile narrows the
#: eyes and lifts the cheeks as real smiles do, so the smile channel carries the squints.
CHANNELS: dict[str, dict[str, float]] = {
    "jaw": {"jawOpen": 1.0},
    "smile": {"mouthSmile_L": 1.0, "mouthSmile_R": 1.0, "cheekSquint_L": 0.6, "cheekSquint_R": 0.6,
              "eyeSquint_L": 0.4, "eyeSquint_R": 0.4},
    "brows": {"browInnerUp_L": 1.0, "browInnerUp_R": 1.0, "browOuterUp_L": 1.0, "browOuterUp_R": 1.0},
    "blink": {"eyeBlink_L": 1.0, "eyeBlink_R": 1.0},
}

# per-vertex part codes of a ScanShape
PART_OTHER, PART_FACE, PART_NARROW_FACE, PART_HEAD, PART_EYE = range(5)


@dataclass(frozen=True, eq=False)
class ScanShape:
    """One scan person's surface in model axes, centred on the skull centre.

    ``vertices_mm`` (N x 3), ``triangles`` (M x 3, only the surface parts), ``part`` (N, the
    ``PART_*`` codes), ``channels`` name -> N x 3 displacement at weight 1 (model axes), and the
    landmarks the appearance is placed by (model axes, mm).
    """

    vertices_mm: np.ndarray
    triangles: np.ndarray
    part: np.ndarray
    channels: dict[str, np.ndarray]
    eye_centres_mm: np.ndarray  # 2 x 3, right eye (image left, X < 0) first
    landmarks_mm: dict[str, np.ndarray]  # eyes, brows, nasion, nose_tip, subnasale, mouth, chin
    measures_mm: dict[str, float]  # eye_spacing (half the eyes' distance), mouth_width, nose_width
    #: a textured scan's own skin: per-vertex texture coordinates (N x 2, u right, v up from the
    #: image's bottom row) and its colour map (H x W x 3, linear RGB); None: the identity's skin
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None


def _to_model_axes(v: np.ndarray) -> np.ndarray:
    """Head axes (x right, y down, z away from the camera) to model axes (Y up, Z out of the face)."""
    return (v * np.array([1.0, -1.0, -1.0], np.float32)).astype(np.float32)


def scan_shape(model: FaceModel, seed: int, subject: int) -> ScanShape:
    """The scan person of ``subject`` under ``seed``: a pure function of both numbers."""
    w = model.identity_weights(seed, subject)
    verts = _to_model_axes(model.vertices_mm(w))
    n = len(verts)
    part = np.full(n, PART_OTHER, np.uint8)
    # the outer surface: the mouth interior, teeth, eye extras and lashes lie inside it or are too
    # thin for the depth camera (the procedural mouth interior serves an open mouth)
    codes = {"face": PART_FACE, "head_neck": PART_HEAD, "eyeballs": PART_EYE, "narrow_face": PART_NARROW_FACE}
    for name, code in codes.items():
        part[model.parts[name]] = code
    surface = part != PART_OTHER
    tris = model.triangles[surface[model.triangles].all(axis=1)]

    ev = verts[model.parts["eyeballs"]]
    left = ev[:, 0] > 0
    centres = np.stack([ev[~left].mean(0), ev[left].mean(0)])
    front_z = float(np.mean([ev[~left][:, 2].max(), ev[left][:, 2].max()]))
    centre = np.array([0.0, float(centres[:, 1].mean()) - EYES_ABOVE_CENTRE_MM, front_z - EYES_IN_FRONT_MM],
                      np.float32)
    verts = verts - centre
    centres = centres - centre

    channels = {}
    zero = np.zeros(model.n_modes, np.float32)
    base = model.vertices_mm(zero)
    for channel, weights in CHANNELS.items():
        present = {name: w for name, w in weights.items() if name in model.expression_names}
        channels[channel] = _to_model_axes(model.vertices_mm(zero, present) - base)

    lm = verts[np.asarray(model.landmarks, np.int64)]  # the 68-point landmark order
    face = verts[part == PART_NARROW_FACE]
    landmarks = {
        "eyes": centres.mean(0), "brows": lm[17:27].mean(0), "nasion": lm[27],
        "nose_tip": face[np.argmax(face[:, 2])], "subnasale": lm[33],
        "mouth": 0.5 * (lm[62] + lm[66]), "chin": lm[8],
    }
    measures = {"eye_spacing": 0.5 * float(centres[1, 0] - centres[0, 0]),
                "mouth_width": float(np.linalg.norm(lm[54] - lm[48])),
                "nose_width": float(np.linalg.norm(lm[35] - lm[31]))}
    return ScanShape(verts, tris.astype(np.int64), part, channels, centres.astype(np.float32),
                     {k: np.asarray(v, np.float32) for k, v in landmarks.items()}, measures)


@dataclass(frozen=True, eq=False)
class SphericalHits:
    """The outermost surface along each grid direction: ``radius_mm`` (NaN where the mesh
    leaves a hole), the ``triangle`` hit (-1 where none), the hit's barycentric weights and
    the mesh's ``triangles``."""

    radius_mm: np.ndarray
    triangle: np.ndarray
    bary: np.ndarray
    triangles: np.ndarray

    def interpolate(self, values: np.ndarray) -> np.ndarray:
        """Per-vertex ``values`` (N x ...) at the hits (grid x ...; zero where none)."""
        t = np.maximum(self.triangle, 0)
        corners = values[self.triangles[t]]  # grid x 3 x ...
        w = self.bary.reshape(self.bary.shape + (1,) * (corners.ndim - self.bary.ndim))
        out = (corners * w).sum(axis=self.bary.ndim - 1)
        out[self.triangle < 0] = 0
        return out

    def interpolate_part(self, part: np.ndarray) -> np.ndarray:
        """Per-vertex codes at the hits: the code of the hit's nearest corner (-1 where none)."""
        corner = np.argmax(self.bary, axis=-1)
        return np.where(self.triangle >= 0, part[self.triangles[np.maximum(self.triangle, 0), corner]], -1)


def raster_spherical(vertices: np.ndarray, triangles: np.ndarray, theta: np.ndarray,
                     phi: np.ndarray) -> SphericalHits:
    """Rasterise a mesh around the origin into the grid of longitudes ``theta`` (columns,
    ascending, radians, 0 = towards +Z, positive towards +X) and latitudes ``phi`` (rows,
    ascending), keeping per cell the hit farthest from the origin.

    Triangles are interpolated linearly in (longitude, latitude), which is exact enough for
    the mesh's millimetre-sized triangles at a head's radius; those that straddle the seam
    behind the head (longitude +-180 degrees) are skipped, the hair covers it.
    """
    v = vertices.astype(np.float64)
    r = np.linalg.norm(v, axis=1)
    lon = np.arctan2(v[:, 0], v[:, 2])
    lat = np.arcsin(np.clip(v[:, 1] / np.maximum(r, 1e-9), -1.0, 1.0))
    # fractional grid coordinates (the grid is non-uniform)
    gx = np.interp(lon, theta, np.arange(len(theta), dtype=np.float64), left=-1e9, right=1e9)
    gy = np.interp(lat, phi, np.arange(len(phi), dtype=np.float64), left=-1e9, right=1e9)
    tx, ty, tr = gx[triangles], gy[triangles], r[triangles]
    ok = (np.ptp(lon[triangles], axis=1) < np.pi) & (np.abs(tx) < 1e8).all(1) & (np.abs(ty) < 1e8).all(1)
    tx, ty, tr, tid = tx[ok], ty[ok], tr[ok], np.flatnonzero(ok)
    x0 = np.ceil(tx.min(1)).astype(np.int64)
    x1 = np.floor(tx.max(1)).astype(np.int64)
    y0 = np.ceil(ty.min(1)).astype(np.int64)
    y1 = np.floor(ty.max(1)).astype(np.int64)
    w = np.maximum(x1 - x0 + 1, 0)
    h = np.maximum(y1 - y0 + 1, 0)
    count = w * h
    has = count > 0
    # every (triangle, cell) candidate of the triangles' bounding boxes
    k = np.repeat(np.flatnonzero(has), count[has])
    start = np.repeat(np.cumsum(count[has]) - count[has], count[has])
    local = np.arange(len(k)) - start
    cx = x0[k] + local % w[k]
    cy = y0[k] + local // w[k]
    ax, ay = tx[k, 0], ty[k, 0]
    bx, by = tx[k, 1] - ax, ty[k, 1] - ay
    qx, qy = tx[k, 2] - ax, ty[k, 2] - ay
    px, py = cx - ax, cy - ay
    det = bx * qy - by * qx
    with np.errstate(divide="ignore", invalid="ignore"):
        l1 = (px * qy - py * qx) / det
        l2 = (bx * py - by * px) / det
    l0 = 1.0 - l1 - l2
    eps = -1e-6
    inside = (l0 >= eps) & (l1 >= eps) & (l2 >= eps) & (np.abs(det) > 1e-12)
    inside &= (cx >= 0) & (cx < len(theta)) & (cy >= 0) & (cy < len(phi))
    k, cx, cy, l0, l1, l2 = k[inside], cx[inside], cy[inside], l0[inside], l1[inside], l2[inside]
    rad = l0 * tr[k, 0] + l1 * tr[k, 1] + l2 * tr[k, 2]
    cell = cy * len(theta) + cx
    # the farthest hit per cell: sort by (cell, radius) and keep each cell's last
    order = np.lexsort((rad, cell))
    last = np.r_[cell[order][1:] != cell[order][:-1], True]
    pick = order[last]
    shape = (len(phi), len(theta))
    radius = np.full(shape, np.nan)
    tri = np.full(shape, -1, np.int64)
    bary = np.zeros(shape + (3,))
    radius.flat[cell[pick]] = rad[pick]
    tri.flat[cell[pick]] = tid[k[pick]]
    bary.reshape(-1, 3)[cell[pick]] = np.stack([l0[pick], l1[pick], l2[pick]], axis=1)
    return SphericalHits(radius, tri, bary, triangles)


def fill_holes(radius: np.ndarray) -> np.ndarray:
    """NaN cells filled from their nearest filled neighbours along each latitude row (the
    longitude wraps round), then along columns; a grid without any hit stays NaN."""
    out = radius.copy()
    for axis, wrap in ((1, True), (0, False)):
        bad = np.isnan(out)
        if not bad.any():
            break
        moved = np.moveaxis(out, axis, -1)
        m = np.moveaxis(bad, axis, -1)
        n = moved.shape[-1]
        idx = np.arange(n)
        for row in range(moved.shape[0]):
            good = ~m[row]
            if good.sum() == 0 or good.all():
                continue
            xs, ys = idx[good], moved[row, good]
            if wrap:
                xs = np.r_[xs - n, xs, xs + n]
                ys = np.r_[ys, ys, ys]
            moved[row, ~good] = np.interp(idx[~good], xs, ys)
    return out
