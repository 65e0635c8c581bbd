"""Realism of a crop dataset's faces, judged by a face model trained on real people.

MediaPipe Face Mesh (0.10.21) predicts 468 face points from each 100x100 colour crop; its
points' z, rasterised over its own triangles and converted to mm with the crop's scale, is
compared with the crop's true depth over the mesh's coverage after removing the median offset:

    shape L1  = mean |(pred - median pred) - (truth - median truth)|   (mm, covered pixels with
    plane L1  = mean |truth - median truth|                             valid true depth)
    ratio     = sum of shape L1 / sum of plane L1 over the detected crops

On real Kinect v2 faces the ratio is about 0.47-0.57; a ratio near 1 means the real-face model
sees nothing in the colour crops that tells it the face's shape the truth has.

MediaPipe is NOT a dependency of the project: run this module in a side environment that has
it (README, "Virtual Kinect" > "Realism, judged by a real-face model"):

    /tmp/mpvenv/bin/python -m models.evaluation.realism --data crops.npz --report out.json

It needs only numpy, mediapipe (with its cv2) and two numpy-only project modules, the dataset
reader (``models.data.dataset``) and the depth encoding (``sensors.encoding``), so it runs in the
side environment; mediapipe is imported lazily, so the rasteriser and the metric can be tested
without it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from models.data.dataset import SPLITS, load_dataset
from sensors.encoding import decode_depth, encode_depth

#: what a predictions file (``--predictions``) says it holds: ``launch.py evaluate --external``
#: scores it as one more row, by shape alone (MediaPipe's z has no absolute distance)
PREDICTIONS_KIND = "relative depth crops"

#: MediaPipe Face Mesh landmarks used by the nose-relief check: the nose tip and one point on
#: each cheek (below the outer eye corner, beside the nose wing)
NOSE_TIP = 1
CHEEKS = (50, 280)


# ---------------------------------------------------------------------------- pure numpy part

def triangles_from_edges(edges: Iterable[tuple[int, int]]) -> np.ndarray:
    """The triangles (3-cliques) of an undirected edge set, sorted, as an (T, 3) int array."""
    unique = {tuple(sorted((int(a), int(b)))) for a, b in edges if a != b}
    adj: dict[int, set[int]] = {}
    for a, b in unique:
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)
    tris = {tuple(sorted((a, b, c))) for a, b in unique for c in adj[a] & adj[b]}
    return np.array(sorted(tris), dtype=np.int64).reshape(-1, 3)


def rasterise(xy_px: np.ndarray, z: np.ndarray, triangles: np.ndarray, size: int | tuple[int, int]
              ) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric rasterisation of per-vertex ``z`` over ``triangles`` onto a pixel grid.

    ``xy_px`` (V, 2): vertex positions in pixel coordinates, pixel (row i, column j) centred at
    x = j, y = i. A pixel is covered when its centre lies inside (or on an edge of) a triangle;
    where triangles overlap the smallest z wins (MediaPipe: smaller z = nearer the camera).
    Returns (zmap float64 (H, W), NaN where uncovered; covered bool (H, W)).
    """
    h, w = (size, size) if isinstance(size, (int, np.integer)) else size
    zmap = np.full((h, w), np.inf)
    xy = np.asarray(xy_px, dtype=np.float64)
    zz = np.asarray(z, dtype=np.float64)
    eps = 1e-9
    for tri in np.asarray(triangles, dtype=np.int64):
        (x0, y0), (x1, y1), (x2, y2) = xy[tri]
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if abs(area) < 1e-12:
            continue
        j_lo, j_hi = max(int(np.ceil(min(x0, x1, x2))), 0), min(int(np.floor(max(x0, x1, x2))), w - 1)
        i_lo, i_hi = max(int(np.ceil(min(y0, y1, y2))), 0), min(int(np.floor(max(y0, y1, y2))), h - 1)
        if j_lo > j_hi or i_lo > i_hi:
            continue
        jj, ii = np.meshgrid(np.arange(j_lo, j_hi + 1, dtype=np.float64),
                             np.arange(i_lo, i_hi + 1, dtype=np.float64))
        w0 = ((x1 - jj) * (y2 - ii) - (x2 - jj) * (y1 - ii)) / area
        w1 = ((x2 - jj) * (y0 - ii) - (x0 - jj) * (y2 - ii)) / area
        w2 = 1.0 - w0 - w1
        inside = (w0 >= -eps) & (w1 >= -eps) & (w2 >= -eps)
        if not inside.any():
            continue
        zt = w0 * zz[tri[0]] + w1 * zz[tri[1]] + w2 * zz[tri[2]]
        block = zmap[i_lo:i_hi + 1, j_lo:j_hi + 1]
        np.minimum(block, np.where(inside, zt, np.inf), out=block)
    covered = np.isfinite(zmap)
    zmap[~covered] = np.nan
    return zmap, covered


def shape_l1(pred_mm: np.ndarray, truth_mm: np.ndarray, mask: np.ndarray) -> tuple[float, float, int]:
    """(shape L1, flat plane's L1, pixel count) over ``mask``, each side minus its own median.

    NaN L1s when the mask is empty.
    """
    m = np.asarray(mask, bool)
    n = int(m.sum())
    if n == 0:
        return float("nan"), float("nan"), 0
    p = np.asarray(pred_mm, dtype=np.float64)[m]
    t = np.asarray(truth_mm, dtype=np.float64)[m]
    p = p - np.median(p)
    t = t - np.median(t)
    return float(np.mean(np.abs(p - t))), float(np.mean(np.abs(t))), n


def landmarks_to_crop(landmarks: np.ndarray, size_px: int, window_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's normalised (x, y, z) landmarks to crop pixel coordinates and depth in mm.

    x, y are fractions of the image width / height with pixel j spanning [j, j + 1) / S, so pixel
    centre j sits at x = (j + 0.5) / S; z is in units of the image width (S pixels), smaller =
    nearer. One crop pixel is R_x / S mm at the head (sensors/crop.py), so z in mm is
    z * S * R_x / S = z * R_x, growing away from the camera like depth.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    xy = lm[:, :2] * size_px - 0.5
    z_mm = lm[:, 2] * size_px * (window_mm / size_px)
    return xy, z_mm


def crop_metrics(landmarks: np.ndarray, triangles: np.ndarray, truth_mm: np.ndarray, window_mm: float,
                 zmap_out: np.ndarray | None = None) -> dict[str, Any]:
    """Everything measured on one crop from MediaPipe's landmarks and the true depth (mm, 0 = none);
    ``zmap_out``, when given, receives the rasterised z (mm, NaN where the mesh does not cover)."""
    s = truth_mm.shape[0]
    xy, z_mm = landmarks_to_crop(landmarks, s, window_mm)
    zmap, covered = rasterise(xy, z_mm, triangles, truth_mm.shape)
    if zmap_out is not None:
        zmap_out[...] = zmap
    mask = covered & (truth_mm > 0)
    l1, plane, n = shape_l1(zmap, truth_mm, mask)
    out: dict[str, Any] = {"pixels": n, "covered": int(covered.sum()), "l1_mm": l1, "plane_l1_mm": plane,
                           "ratio": l1 / plane if n and plane > 0 else float("nan")}
    if n:
        # diagnostics only (never used in the ratio): the least-squares scale of MediaPipe's z
        # that fits the truth best, and the nose tip's relief over the cheeks on both sides
        p = zmap[mask] - np.median(zmap[mask])
        t = truth_mm[mask] - np.median(truth_mm[mask])
        out["best_scale"] = float(np.dot(p, t) / np.dot(p, p)) if np.dot(p, p) > 0 else float("nan")
    if n and len(z_mm) > max(NOSE_TIP, *CHEEKS):  # Face Mesh's 468 points
        out["nose_relief_pred_mm"] = float(np.mean(z_mm[list(CHEEKS)]) - z_mm[NOSE_TIP])
        ij = np.rint(xy[[NOSE_TIP, *CHEEKS]][:, ::-1]).astype(int)
        tv = truth_mm[ij[:, 0], ij[:, 1]] if np.all((ij >= 0) & (ij < s)) else np.zeros(3)
        out["nose_relief_true_mm"] = float(np.mean(tv[1:]) - tv[0]) if np.all(tv > 0) else None
    return out


# ---------------------------------------------------------------------------- mediapipe part

def _mediapipe():
    try:
        import mediapipe as mp  # noqa: PLC0415 - only in the side environment
    except ImportError as exc:  # pragma: no cover - depends on the side environment
        raise SystemExit("realism: mediapipe is not installed here; run this module with the side environment's "
                         "python (README, 'Realism, judged by a real-face model')") from exc
    return mp


def mediapipe_triangles() -> np.ndarray:
    """Face Mesh's triangles: the 3-cliques of its FACEMESH_TESSELATION edges (the 0.10.21 wheel
    ships no canonical_face_model.obj)."""
    return triangles_from_edges(_mediapipe().solutions.face_mesh.FACEMESH_TESSELATION)


def load_crops(path: str, split: str) -> dict[str, Any]:
    data = load_dataset(path)
    crop = data.meta.get("crop", {})
    sub = data.select_split(split)
    return {
        "color": sub.color, "truth8": sub.target,
        "truth_name": "depth_clean" if sub.depth_clean is not None else "depth",
        "distance_mm": sub.distance_mm, "subject": sub.subject, "frame": sub.frame, "pose_deg": sub.pose_deg,
        "window_mm": float(crop.get("window_x_mm", 240.0)), "half_range_mm": float(crop.get("half_range_mm", 150.0)),
    }


def relative_depth8(zmap_mm: np.ndarray, truth8: np.ndarray, distance_mm: float, half_range_mm: float) -> np.ndarray:
    """A rasterised MediaPipe z map (mm, NaN where uncovered) as an 8-bit depth crop in the
    dataset's encoding, 0 where uncovered. Its z has no absolute distance, so its median is put at
    the true median over the pixels both cover: only shape metrics are meaningful on it."""
    covered = np.isfinite(zmap_mm)
    out = np.zeros(zmap_mm.shape, np.uint8)
    both = covered & (truth8 > 0)
    if not both.any():
        return out
    truth = decode_depth(truth8, distance_mm, half_range_mm)
    z = zmap_mm[covered] - np.median(zmap_mm[both]) + np.median(truth[both])
    # inside the encoding's range, as the generators' outputs are (their tanh saturates)
    z = np.clip(z, distance_mm - half_range_mm, distance_mm + half_range_mm)
    out[covered] = encode_depth(z, distance_mm, half_range_mm)
    return out


def evaluate(data: dict[str, Any], max_crops: int | None = None, min_detection: float = 0.5,
             predictions: np.ndarray | None = None) -> dict[str, Any]:
    """MediaPipe on the first ``max_crops`` crops; ``predictions`` (N, S, S) uint8, when given,
    receives each crop's :func:`relative_depth8` (zeros where no face was found)."""
    mp = _mediapipe()
    tris = mediapipe_triangles()
    n = len(data["color"]) if max_crops is None else min(max_crops, len(data["color"]))
    rows = []
    t0 = time.perf_counter()
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False,
                                         min_detection_confidence=min_detection) as fm:
        for k in range(n):
            row: dict[str, Any] = {"index": k, "subject": int(data["subject"][k]), "frame": int(data["frame"][k]),
                                   "pose_deg": [round(float(v), 2) for v in data["pose_deg"][k]],
                                   "distance_mm": round(float(data["distance_mm"][k]), 1)}
            res = fm.process(np.ascontiguousarray(data["color"][k]))  # the dataset stores RGB, as mediapipe wants
            if not res.multi_face_landmarks:
                row["detected"] = False
                rows.append(row)
                continue
            lm = np.array([(p.x, p.y, p.z) for p in res.multi_face_landmarks[0].landmark])
            truth = decode_depth(data["truth8"][k], float(data["distance_mm"][k]),
                                 data["half_range_mm"]).astype(np.float64)
            row["detected"] = True
            zmap = np.full(truth.shape, np.nan)
            row.update(crop_metrics(lm, tris, truth, data["window_mm"], zmap))
            if predictions is not None:
                predictions[k] = relative_depth8(zmap, data["truth8"][k], float(data["distance_mm"][k]),
                                                 data["half_range_mm"])
            rows.append(row)
    seconds = time.perf_counter() - t0
    ok = [r for r in rows if r.get("detected") and r.get("pixels", 0) > 0]
    l1 = np.array([r["l1_mm"] for r in ok])
    pl = np.array([r["plane_l1_mm"] for r in ok])
    ratios = np.array([r["ratio"] for r in ok])
    scales = np.array([r["best_scale"] for r in ok])
    nose = [(r["nose_relief_pred_mm"], r["nose_relief_true_mm"]) for r in ok if r.get("nose_relief_true_mm") is not None]
    nose_a = np.array(nose, dtype=np.float64).reshape(-1, 2)
    nan = float("nan")
    summary = {
        "crops": n, "detected": len(ok), "detection_rate": len(ok) / n if n else nan,
        "people": len({r["subject"] for r in rows}), "people_detected": len({r["subject"] for r in ok}),
        "ratio_of_means": float(l1.sum() / pl.sum()) if len(ok) else nan,
        "median_ratio": float(np.median(ratios)) if len(ok) else nan,
        "mean_l1_mm": float(l1.mean()) if len(ok) else nan, "mean_plane_l1_mm": float(pl.mean()) if len(ok) else nan,
        "mean_pixels": float(np.mean([r["pixels"] for r in ok])) if ok else nan,
        "median_best_scale": float(np.median(scales)) if len(ok) else nan,
        "median_nose_relief_pred_mm": float(np.median(nose_a[:, 0])) if len(nose_a) else nan,
        "median_nose_relief_true_mm": float(np.median(nose_a[:, 1])) if len(nose_a) else nan,
        "seconds": round(seconds, 1),
    }
    return {"summary": summary, "triangles": int(len(tris)),
            "triangles_from": "3-cliques of mediapipe.solutions.face_mesh.FACEMESH_TESSELATION",
            "truth": data["truth_name"], "window_mm": data["window_mm"], "mediapipe": getattr(mp, "__version__", "?"),
            "crops": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.evaluation.realism", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="crop dataset .npz (launch.py build-dataset)")
    ap.add_argument("--split", default="all", choices=["all", *SPLITS], help="which crops (all)")
    ap.add_argument("--max-crops", type=int, default=None, help="only the first N crops")
    ap.add_argument("--min-detection", type=float, default=0.5, help="Face Mesh's min_detection_confidence (0.5)")
    ap.add_argument("--report", default=None, help="write the JSON report here")
    ap.add_argument("--predictions", default=None, metavar="FILE.npz",
                    help="also write MediaPipe's depth crops here, for launch.py evaluate --external")
    a = ap.parse_args(argv)
    data = load_crops(a.data, a.split)
    n = len(data["color"]) if a.max_crops is None else min(a.max_crops, len(data["color"]))
    preds = np.zeros((n, *data["truth8"].shape[1:]), np.uint8) if a.predictions else None
    rep = evaluate(data, a.max_crops, a.min_detection, preds)
    if a.predictions:
        import hashlib

        mp = _mediapipe()
        with open(a.data, "rb") as f:
            sha = hashlib.file_digest(f, "sha256").hexdigest()
        np.savez_compressed(a.predictions, depth8=preds, kind=PREDICTIONS_KIND, split=a.split, data_sha256=sha,
                            method=f"MediaPipe Face Mesh {getattr(mp, '__version__', '?')}")
    rep["data"] = a.data
    rep["split"] = a.split
    s = rep["summary"]
    print(f"realism: {s['people']} people, {s['crops']} crops, detected {s['detected']} ({s['detection_rate']:.0%}); "
          f"MediaPipe shape L1 {s['mean_l1_mm']:.2f} mm vs flat plane {s['mean_plane_l1_mm']:.2f} mm: "
          f"ratio {s['ratio_of_means']:.3f} (median per crop {s['median_ratio']:.3f}); "
          f"best-fit z scale {s['median_best_scale']:.2f}; nose relief {s['median_nose_relief_pred_mm']:.1f} mm "
          f"predicted vs {s['median_nose_relief_true_mm']:.1f} mm true")
    if a.report:
        with open(a.report, "w") as f:
            json.dump(rep, f, indent=1, allow_nan=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
