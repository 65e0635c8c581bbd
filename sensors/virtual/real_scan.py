"""A real person's head scan (a textured ``.glb`` mesh) as a virtual Kinect person, for evaluation only.

``virtual:person=scan:PATH.glb,texture=PATH.jpg,scale_mm=43`` shows that one scanned person in
every sequence. The mesh (+y up, +z out of the face, ``scale_mm`` millimetres per unit) becomes
a :class:`~sensors.virtual.scan_heads.ScanShape` and goes through the scan heads' path of
:func:`~sensors.virtual.people.build_head`: rasterised into the head's radial grid, its skin
read from the colour map through the mesh's texture coordinates. A bust's shoulders are cut off
below the chin (:data:`NECK_CUT_BELOW_CHIN_MM`); the procedural neck and torso join there. A
scan has no expressions (its channels are zero) and no eye openings (no blinks).

The skull centre follows the scan heads' rule (:data:`~sensors.virtual.scan_heads.
EYES_ABOVE_CENTRE_MM` below the eyes, :data:`~sensors.virtual.scan_heads.EYES_IN_FRONT_MM`
behind their front, on the midline). The eyes are found from the geometry alone, on a fine
radial raster of the face: the inner eye corners are the two mirror-symmetric spots where a
small convexity sits in a deep concavity (the caruncles in the sockets' inner corners), and each
eye's centre is the apex of its lid (the cornea's bulge) on that corner's row, outwards from it.

Scans are never training data: frames carry the subject id ``real:<file name>`` and the source's
``describe()`` carries ``evaluation_only`` and the scan's credit.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from sensors.errors import FormatError
from sensors.virtual.glb import read_glb
from sensors.virtual.scan_heads import (CHANNELS, EYES_ABOVE_CENTRE_MM, EYES_IN_FRONT_MM, PART_FACE, PART_HEAD,
                                        PART_NARROW_FACE, ScanShape, raster_spherical)

#: the mesh is cut this far below the chin (mm): the bust's neck and shoulders go
NECK_CUT_BELOW_CHIN_MM = 25.0
#: the credit of the one scan the project evaluates on (CC BY 3.0)
LEE_PERRY_SMITH_CREDIT = ("'Infinite, 3D Head Scan' by Lee Perry-Smith, based on a work at www.triplegangers.com, "
                          "licensed under CC BY 3.0")


@dataclass(frozen=True)
class RealScan:
    """A loaded scan: its :class:`ScanShape` (model axes, mm, skull centre at the origin), the
    subject id its frames carry, the credit to show, and what was measured on it (mm)."""

    shape: ScanShape
    subject_id: str
    credit: str
    measures_mm: dict[str, float]


def credit_for(path: str) -> str:
    """The credit line of the scan at ``path``: the file's licence text beside it when there is
    one (``*_License.txt``), else the known credit of the Lee Perry-Smith scan, else a generic one."""
    folder, name = os.path.split(os.fspath(path))
    stem = os.path.splitext(name)[0]
    if "leeperrysmith" in stem.lower().replace("-", "").replace("_", ""):
        return LEE_PERRY_SMITH_CREDIT
    return f"head scan {name} (see its licence)"


def load_texture(path: str) -> np.ndarray:
    """An sRGB colour map (JPEG / PNG) as linear RGB float32 (H x W x 3)."""
    import cv2

    img = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FormatError("cannot read the scan's colour map (expected a JPEG or PNG image)", path)
    c = img[..., ::-1].astype(np.float32) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


def load_real_scan(glb_path: str, texture_path: str | None = None, scale_mm: float = 43.0) -> RealScan:
    """The scan at ``glb_path`` (its colour map at ``texture_path``, or none: the identity's skin)."""
    mesh = read_glb(glb_path)
    v = mesh.positions.astype(np.float64) * float(scale_mm)
    tris = mesh.triangles
    texture = load_texture(texture_path) if texture_path else None
    marks = _find_landmarks(v, tris, glb_path)
    # the skull centre by the scan heads' rule
    eyes = marks["eye_centres"]
    centre = np.array([float(eyes[:, 0].mean()), float(eyes[:, 1].mean()) - EYES_ABOVE_CENTRE_MM,
                       marks["eye_front_z"] - EYES_IN_FRONT_MM])
    v = v - centre
    # the neck cut: triangles with a corner below it go (the procedural neck and torso join there)
    cut = marks["chin"][1] - centre[1] - NECK_CUT_BELOW_CHIN_MM
    keep = (v[tris, 1] >= cut).all(axis=1)
    part = np.full(len(v), PART_HEAD, np.uint8)
    rel = {k: np.asarray(p, np.float64) - centre for k, p in marks.items() if k not in ("eye_centres", "eye_front_z")}
    eyes_c = eyes - centre
    face = ((np.abs(v[:, 0] - rel["nose_tip"][0]) < 55.0) & (v[:, 2] > 30.0)
            & (v[:, 1] < rel["brows"][1] + 10.0) & (v[:, 1] > rel["chin"][1]))
    part[face] = PART_NARROW_FACE
    part[(v[:, 2] > 20.0) & ~face & (v[:, 1] > cut)] = PART_FACE
    zeros = np.zeros((len(v), 3), np.float32)
    channels = {name: zeros for name in CHANNELS}
    landmarks = {"eyes": eyes_c.mean(0), **rel}
    half_spacing = 0.5 * float(eyes_c[1, 0] - eyes_c[0, 0])
    measures = {"eye_spacing": half_spacing, "mouth_width": 50.0, "nose_width": 34.0}
    shape = ScanShape(v.astype(np.float32), tris[keep].astype(np.int64), part, channels, eyes_c.astype(np.float32),
                      {k: np.asarray(p, np.float32) for k, p in landmarks.items()}, measures,
                      uv=mesh.uv.astype(np.float32), texture=texture)
    stem = os.path.splitext(os.path.basename(os.fspath(glb_path)))[0]
    tip = rel["nose_tip"]
    measured = {"eye_distance": 2.0 * half_spacing, "nose_tip_to_centre": float(np.linalg.norm(tip)),
                "nose_tip_to_chin": float(np.linalg.norm(tip - rel["chin"])), "scale_mm_per_unit": float(scale_mm)}
    return RealScan(shape, f"real:{stem}", credit_for(glb_path), measured)


def _blur(a: np.ndarray, sigma_cells: float) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(a.astype(np.float32), (0, 0), sigmaX=float(sigma_cells))


def _find_landmarks(v: np.ndarray, tris: np.ndarray, path: str) -> dict:
    """Eyes, nose tip, nasion, brows, subnasale, mouth and chin of a face mesh (mm, +y up, +z
    out of the face), from a fine radial raster of its front."""
    tip_i = int(np.argmax(v[:, 2]))
    tip = v[tip_i]
    # a radial raster of the face seen from a point well behind it, 0.2 degrees (0.7 mm) per cell
    origin = np.array([tip[0], tip[1], tip[2] - 200.0])
    step = np.radians(0.2)
    theta = np.arange(-np.radians(22.0), np.radians(22.0), step)
    phi = np.arange(-np.radians(40.0), np.radians(24.0), step)
    hits = raster_spherical(v - origin, tris, theta, phi)
    T, P = np.meshgrid(theta, phi)
    d = np.stack([np.cos(P) * np.sin(T), np.sin(P), np.cos(P) * np.cos(T)], axis=-1)
    # the nearest surface to the viewpoint is wanted: the raster keeps the farthest, so look
    # from behind towards the face: the face is the farthest surface from a point behind the head
    pts = origin + d * hits.radius_mm[..., None]
    ok = np.isfinite(hits.radius_mm)
    if ok.mean() < 0.5:
        raise FormatError("the mesh does not look like a face seen along +z (no surface in front of the nose tip)", path)
    Z = np.where(ok, pts[..., 2], np.nan)
    zf = np.where(ok, Z, np.nanmin(Z))
    X, Y = pts[..., 0], pts[..., 1]
    cell = 200.0 * step  # mm per cell near the face
    mid_x = float(tip[0])
    # inner eye corners: a small bump in a deep hollow, mirror-symmetric about the nose
    dome = np.clip(zf - _blur(zf, 5.0 / cell), 0, None)
    sock = np.clip(_blur(zf, 12.0 / cell) - zf, 0, None)
    score = _blur(dome * sock, 2.0 / cell) * ok
    lx = np.where(ok, X - mid_x, np.inf)
    region = ok & (np.abs(lx) > 8.0) & (np.abs(lx) < 40.0) & (Y > tip[1] + 8.0) & (Y < tip[1] + 50.0)
    best, corners = -1.0, None
    rows, cols = np.nonzero(region & (lx < 0))
    # the mirror of each left cell: nearest right cell on the same row
    for r, c in zip(rows, cols):
        c2 = int(np.argmin(np.abs(lx[r] + lx[r, c])))
        s = score[r, c] + score[r, c2]
        if s > best and region[r, c2]:
            best, corners = s, ((r, c), (r, c2))
    if corners is None or best <= 0:
        raise FormatError("no eye sockets found on the mesh's face", path)
    centres, fronts = [], []
    for side, (r, c) in zip((-1.0, 1.0), corners):
        band = ok & (np.abs(np.nan_to_num(Y, nan=1e9) - Y[r, c]) < 2.5) & (side * (X - X[r, c]) > 4.0) & (side * (X - X[r, c]) < 25.0)
        if not band.any():
            raise FormatError("no eyelid found beside an eye socket", path)
        top = np.nanmax(np.where(band, Z, np.nan))
        apex = band & (Z > top - 0.4)
        centres.append([float(X[apex].mean()), float(Y[r, c]), float(Z[apex].mean())])
        fronts.append(top)
    eyes = np.array(centres)
    eye_y = float(eyes[:, 1].mean())
    mx = float(eyes[:, 0].mean())
    # the midline profile (front surface near x = mid) from the brows down to the chin
    col = np.abs(X - mx) < 1.5
    prof_y = Y[col & ok]
    prof_z = Z[col & ok]
    order = np.argsort(prof_y)
    prof_y, prof_z = prof_y[order], prof_z[order]

    def at(y: float) -> np.ndarray:
        j = int(np.argmin(np.abs(prof_y - y)))
        return np.array([mx, prof_y[j], prof_z[j]])

    def deepest(lo: float, hi: float) -> np.ndarray:
        s = (prof_y > lo) & (prof_y < hi)
        j = np.flatnonzero(s)[np.argmin(prof_z[s])] if s.any() else int(np.argmin(np.abs(prof_y - lo)))
        return np.array([mx, prof_y[j], prof_z[j]])

    nasion = deepest(eye_y - 6.0, eye_y + 12.0)
    subnasale = deepest(tip[1] - 22.0, tip[1] - 6.0)
    mouth = deepest(subnasale[1] - 30.0, subnasale[1] - 10.0)
    # the chin: below the mouth, where the profile has fallen 25 mm behind the chin's front
    below = prof_y < mouth[1] - 10.0
    front_z = float(prof_z[below].max()) if below.any() else float(mouth[2])
    fallen = np.flatnonzero(below & (prof_z < front_z - 25.0) & (prof_y < mouth[1] - 25.0))
    chin = np.array([mx, prof_y[fallen[-1]], prof_z[fallen[-1]]]) if len(fallen) else at(mouth[1] - 45.0)
    return {"eye_centres": eyes, "eye_front_z": float(np.mean(fronts)), "nose_tip": tip.copy(), "nasion": nasion,
            "brows": at(eye_y + 17.0), "subnasale": subnasale, "mouth": mouth, "chin": chin}
