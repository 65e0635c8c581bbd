"""The head in a depth image: candidates from a head-and-shoulders template
(:func:`find_head_candidates`), then the head's silhouette measured around a candidate
(:func:`measure_head`), which places the head centre."""
from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sensors.errors import FormatError
from sensors.geometry import CameraIntrinsics

#: the fitted head-shape constants the locator uses (:class:`HeadShapeModel`); fitted data, kept
#: out of the code so that ``launch.py evaluate-locator --fit-shape --out FILE`` can replace them
HEAD_SHAPE_FILE = Path(__file__).with_name("head_shape.json")
#: what the row model's coefficients multiply, in order (all but the constant in mm)
V_FEATURES = ("1", "widest_row_below_top_mm", "neck_row_below_top_mm", "widest_width_mm", "neck_width_mm")


@dataclass(frozen=True, eq=False)
class HeadShapeModel:
    """Where the head centre sits in a measured silhouette.

    ``v_coef``: the centre below the top of the silhouette (mm) = ``v_coef`` . (1, widest-row
    depth below the top, neck-row depth below the top, widest width, neck width), all in mm (a
    robust linear fit to annotated skull centres); ``z_behind_front_mm``: the centre behind the
    nearest part of the face (mm, the median of the same frames).
    """

    v_coef: np.ndarray
    z_behind_front_mm: float


def load_head_shape(path: str | os.PathLike[str] = HEAD_SHAPE_FILE) -> HeadShapeModel:
    """Read a head-shape file; FormatError naming it when it is missing or malformed."""
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        coef = np.array(d["v_coef"], dtype=np.float64)
        z_behind = float(d["z_behind_front_mm"])
    except OSError as exc:
        raise FormatError(f"cannot read the head-shape constants ({exc.strerror})", path) from None
    except KeyError as exc:
        raise FormatError(f"the head-shape constants have no {exc.args[0]!r}", path) from None
    except (ValueError, TypeError) as exc:
        raise FormatError(f"malformed head-shape constants ({type(exc).__name__}: {exc})", path) from None
    if coef.shape != (len(V_FEATURES),) or not np.all(np.isfinite(coef)) or not math.isfinite(z_behind):
        raise FormatError(f"head-shape constants need v_coef ({len(V_FEATURES)} finite numbers) and a finite "
                          "z_behind_front_mm", path)
    return HeadShapeModel(coef, z_behind)


def save_head_shape(path: str | os.PathLike[str], model: HeadShapeModel, made_by: str) -> None:
    """Write ``model`` as a head-shape file, with ``made_by``: the command that fitted it."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(head_shape_json(model, made_by))


def head_shape_json(model: HeadShapeModel, made_by: str) -> str:
    """The text of a head-shape file holding ``model``."""
    d = {"made_by": made_by, "v_features": list(V_FEATURES), "v_coef": [float(c) for c in model.v_coef],
         "z_behind_front_mm": float(model.z_behind_front_mm)}
    return json.dumps(d, indent=1) + "\n"


@functools.cache
def _head_shape() -> HeadShapeModel:
    """The locator's constants, read once from :data:`HEAD_SHAPE_FILE`."""
    return load_head_shape(HEAD_SHAPE_FILE)


@dataclass(frozen=True, eq=False)
class HeadShape:
    """A head measured in a depth image (depth-camera pixels and mm).

    ``center_depth_mm`` the estimated head centre (depth-camera coordinates); ``plausible``
    whether the measurements fit a human head; ``score`` how well (0..1); ``features`` (1,
    widest-row depth below the top, neck-row depth below the top, widest width, neck width) in
    mm, the inputs of the row model (:class:`HeadShapeModel`); ``top_v_px`` the top's row in the depth
    image; ``z_front_mm`` the nearest face depth (both for fitting the model).
    """

    center_depth_mm: np.ndarray
    plausible: bool
    score: float
    features: np.ndarray
    top_v_px: float
    z_front_mm: float

    @property
    def width_mm(self) -> float:
        """The widest part of the head."""
        return float(self.features[3])

    @property
    def neck_width_mm(self) -> float:
        """The narrowest part below it (the widest width again when no neck was seen)."""
        return float(self.features[4])


def _runs_through(comp: np.ndarray, col: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: is ``col`` set, and the first and last column of the run containing it."""
    h, w = comp.shape
    on = comp[:, col]
    idx = np.arange(w)
    left_gap = np.where(~comp[:, :col], idx[:col], -1).max(axis=1) if col > 0 else np.full(h, -1)
    right_gap = np.where(~comp[:, col:], idx[col:], w).min(axis=1)
    return on, left_gap + 1, right_gap - 1


def measure_head(depth_mm: np.ndarray, cam: CameraIntrinsics, u: float, v: float) -> HeadShape | None:
    """Measure the head whose face covers depth pixel (u, v); None when there is no surface there.

    The head is the connected surface within -150..+160 mm of the depth at (u, v); its
    silhouette gives the centre: the midpoint of the upper head's left and right edges
    (independent of yaw for a head that is roughly an ellipsoid), the height from the top of
    the head, the widest row, the neck and the widths (a linear fit), and the depth from the
    nearest part of the face (both fitted: :data:`HEAD_SHAPE_FILE`).
    """
    import cv2

    hgt, wid = depth_mm.shape
    ui, vi = int(round(u)), int(round(v))
    if not (0 <= ui < wid and 0 <= vi < hgt):
        return None
    patch = depth_mm[max(0, vi - 2):vi + 3, max(0, ui - 2):ui + 3]
    vals = patch[patch > 0]
    if vals.size == 0:
        return None
    z0 = float(np.median(vals))
    s = cam.fx / z0  # pixels per mm near the face
    x0, x1 = max(0, int(ui - 260 * s)), min(wid, int(ui + 260 * s) + 1)
    y0, y1 = max(0, int(vi - 330 * s)), min(hgt, int(vi + 330 * s) + 1)
    d = depth_mm[y0:y1, x0:x1]
    mask = ((d > z0 - 150.0) & (d < z0 + 160.0)).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    _, lab = cv2.connectedComponents(mask, connectivity=4)
    cu, cv_ = ui - x0, vi - y0
    label = lab[cv_, cu]
    if label == 0:
        return None
    comp = lab == label
    # the top of the head above the face, then the column through the middle of the upper head
    band = comp[:, max(0, cu - int(35 * s)):cu + int(35 * s) + 1]
    rows = np.flatnonzero(band.any(axis=1))
    if rows.size == 0:
        return None
    top = int(rows[0])
    col = cu
    for _ in range(2):
        on, left, right = _runs_through(comp, col)
        rr = np.arange(comp.shape[0])
        upper = on & (rr >= top + 15 * s) & (rr <= top + 95 * s)
        if upper.sum() < 3:
            return None
        mid = float(np.median((left[upper] + right[upper]) / 2.0))
        col = int(round(mid))
        top_rows = np.flatnonzero(comp[:, col])
        if top_rows.size:
            top = min(top, int(top_rows[0])) if abs(col - cu) < 35 * s else int(top_rows[0])
    on, left, right = _runs_through(comp, col)
    rr = np.arange(comp.shape[0])
    width_px = np.where(on, right - left + 1, 0).astype(np.float64)
    rows_mm = (rr - top) / s
    upper = on & (rows_mm >= 0) & (rows_mm <= 180)
    if upper.sum() < 5:
        return None
    iw = int(np.argmax(np.where(upper, width_px, -1)))
    below = on & (rows_mm > rows_mm[iw] + 40) & (rows_mm < rows_mm[iw] + 200)
    if below.sum() >= 3:
        ineck = int(np.argmin(np.where(below, width_px, np.inf)))
        neck_row_mm, neck_w = float(rows_mm[ineck]), float(width_px[ineck] / s)
    else:  # the head's surface ends (occluded or out of view): no neck measured
        neck_row_mm, neck_w = float(rows_mm[iw] + 120.0), float(width_px[iw] / s)
    width_mm = float(width_px[iw] / s)
    # the front of the face: the nearer depths of the head between its top and the neck
    head_rows = comp[top:max(top + 1, int(top + neck_row_mm * s))]
    head_depth = d[top:top + head_rows.shape[0]][head_rows]
    head_depth = head_depth[head_depth > 0]  # the closing above also takes in holes of the reading
    if head_depth.size < 10:
        return None
    z_front = float(np.percentile(head_depth, 10))
    model = _head_shape()
    z_c = z_front + model.z_behind_front_mm
    feats = np.array([1.0, rows_mm[iw], neck_row_mm, width_mm, neck_w])
    v_c = y0 + top + float(feats @ model.v_coef) * cam.fy / z_c
    u_c = x0 + mid
    center = cam.ray_distorted(u_c, v_c) * z_c
    plausible = 95.0 <= width_mm <= 280.0 and neck_w < 0.95 * width_mm and (rows_mm[on].max() >= 150.0)
    score = float(np.exp(-(((width_mm - 150.0) / 45.0) ** 2)) * (1.0 - min(1.0, neck_w / max(width_mm, 1.0))))
    return HeadShape(center, bool(plausible), score, feats, float(y0 + top), z_front)


#: the head-and-shoulders template's boxes around a pixel: (plane, x0, x1, y0, y1), offsets in
#: units of half a face's width; planes 0: near surface, 1: background, 2: body, 3: near surface
#: times its depth. In order: face, left and right of the head, above it, middle of the face (near,
#: depth), its left and right sides (near, near, depth, depth), left and right shoulder, neck.
_TEMPLATE = np.array([
    (0, -0.6, 0.6, -1.0, 0.5),
    (1, -2.4, -1.7, -1.9, -0.6), (1, 1.7, 2.4, -1.9, -0.6), (1, -0.7, 0.7, -3.2, -2.6),
    (0, -0.3, 0.3, -0.5, 0.2), (3, -0.3, 0.3, -0.5, 0.2),
    (0, -1.05, -0.75, -0.8, 0.2), (0, 0.75, 1.05, -0.8, 0.2), (3, -1.05, -0.75, -0.8, 0.2), (3, 0.75, 1.05, -0.8, 0.2),
    (2, -2.2, -1.2, 2.2, 3.2), (2, 1.2, 2.2, 2.2, 3.2), (2, -0.4, 0.4, 1.5, 2.2),
])


def _template_means(planes: np.ndarray, rows: np.ndarray, cols: np.ndarray, r: float) -> np.ndarray:
    """(len(_TEMPLATE), N): the mean of each template box's plane around each pixel (``rows``,
    ``cols``) of ``planes`` (H, W, 4); box offsets scaled by ``r`` pixels, rounded, at least one
    pixel wide. One integral image of the planes, zero-padded so that every box stays inside."""
    import cv2

    pad = int(round(3.6 * r)) + 2
    integ = cv2.integral(cv2.copyMakeBorder(planes, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0),
                         sdepth=cv2.CV_64F)
    wp = integ.shape[1]
    plane = _TEMPLATE[:, 0].astype(np.intp)
    x0, y0 = np.round(_TEMPLATE[:, 1] * r).astype(np.intp), np.round(_TEMPLATE[:, 3] * r).astype(np.intp)
    x1 = np.maximum(np.round(_TEMPLATE[:, 2] * r).astype(np.intp), x0 + 1)
    y1 = np.maximum(np.round(_TEMPLATE[:, 4] * r).astype(np.intp), y0 + 1)
    flat = integ.reshape(-1)

    def at(dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
        return flat[((rows[None] + (pad + dy)[:, None]) * wp + cols[None] + (pad + dx)[:, None]) * 4 + plane[:, None]]

    total = at(y1, x1) - at(y0, x1) - at(y1, x0) + at(y0, x0)
    return total / ((x1 - x0) * (y1 - y0)).astype(np.float64)[:, None]


def find_head_candidates(depth_mm: np.ndarray, cam: CameraIntrinsics, max_candidates: int = 6,
                         z_range_mm: tuple[float, float] = (450.0, 2000.0)) -> list[tuple[float, float, float, float]]:
    """Places that look like a face on a head and shoulders, best first: (u, v, z_mm, score).

    A template on a quarter-resolution depth image, for each 70 mm slice of distance: the face
    box is surface, the head's sides and the space above it are background (or no reading),
    the middle of the face is nearer than its sides, and a neck and shoulders are below.
    """
    import cv2

    sub = 4 if cam.width >= 400 else 2
    d = depth_mm[::sub, ::sub].astype(np.float32)
    f = cam.fx / sub
    h, w = d.shape
    acc = np.zeros((h, w), np.float32)
    zacc = np.zeros((h, w), np.float32)
    step = 70.0
    for zk in np.arange(z_range_mm[0], z_range_mm[1], step):
        inbin = np.abs(d - zk) <= step / 2
        if np.count_nonzero(inbin) < 4:
            continue
        r = f * 75.0 / zk  # pixels per 75 mm (half a face's width) at this distance
        near = ((d >= zk - 100) & (d <= zk + 170)).astype(np.float32)
        far = (d > zk + 180).astype(np.float32) + np.float32(0.5) * (d == 0)
        body = ((d >= zk - 250) & (d <= zk + 300)).astype(np.float32)
        # the score only counts at this slice's own pixels: evaluated there alone (a pixel is in
        # one or two slices), which is what keeps the search to a few ms
        rows, cols = np.nonzero(inbin)
        (fg, side_l, side_r, top, cn, cnd, ln, rn, lnd, rnd, sh_l, sh_r, neck) = _template_means(
            np.dstack([near, far, body, near * d]), rows, cols, r)
        side = np.sqrt(side_l * side_r)
        cd = cnd / np.maximum(cn, 1e-6)
        sn = ln + rn
        sd = (lnd + rnd) / np.maximum(sn, 1e-6)
        relief = np.where((cn > 0.1) & (sn > 0.1), sd - cd, 0.0)
        shoulders = 0.5 * (sh_l + sh_r)
        score = (fg * side * top * np.clip(relief / 50.0, 0, 1) * np.clip(1.5 * shoulders, 0, 1) * neck)
        score = score.astype(np.float32)
        better = score > acc[rows, cols]
        acc[rows[better], cols[better]] = score[better]
        zacc[rows[better], cols[better]] = zk
    smooth = cv2.GaussianBlur(acc, (0, 0), 1.5 if sub == 4 else 3.0)
    # local maxima, best first, at least a head apart
    dil = cv2.dilate(smooth, np.ones((5, 5), np.uint8))
    peaks = np.argwhere((smooth >= dil) & (smooth > 0.02))
    order = np.argsort(-smooth[peaks[:, 0], peaks[:, 1]])
    out: list[tuple[float, float, float, float]] = []
    for i in order:
        py, px = peaks[i]
        u, v = float(px * sub + (sub - 1) / 2), float(py * sub + (sub - 1) / 2)
        z = float(zacc[py, px])
        if z <= 0:  # a peak of the blurred score where no distance slice scored
            continue
        if any(math.hypot(u - a, v - b) < 0.6 * cam.fx * 150.0 / z for a, b, _, _ in out):
            continue
        out.append((u, v, z, float(smooth[py, px])))
        if len(out) >= max_candidates:
            break
    return out
