"""``launch.py evaluate-locator``: how well head localisation centres the crop, against ground truth.

For frames of a source with annotated head centres (the virtual Kinect by default; Biwi and
Pandora work too), the head is located WITHOUT the annotation (``LocatorConfig(mode="detect")``:
face detector + depth, or the detector alone for colour-only frames), the crop window is cut
around the located centre exactly as the live app does (``sensors.crop.window_px_for``), and the
annotated centre is projected into that crop. The error is its distance from the crop centre in
crop pixels (S = 100 by default); a frame where no face is found counts as a miss. Results are
binned by the annotated head yaw (15-degree bins of |yaw|)::

    python launch.py evaluate-locator --source virtual:heads=procedural,seed=21,subjects=500-539,sequence=free,frames=3000 \\
        --every 3 --report locate.json

Offline detection (``--live off``, the default) locates every frame afresh, as dataset building
does; ``--live on`` runs the live tracker (search near the last face, causal smoothing).
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sensors.locate.silhouette import HeadShapeModel

#: crop-pixel radius the localisation target is stated in (docs/design.md, "Targets")
RADIUS_PX = 5.0
BIN_DEG = 15.0
#: the annotated source scored when none is given
DEFAULT_SOURCE = "virtual:heads=procedural,seed=21,subjects=500-539,sequence=free,frames=3000"


@dataclass(frozen=True)
class LocatorEvalConfig:
    """What to score: every ``every``-th frame of ``source`` (at most ``max_frames`` read), located
    afresh (``live`` False) or by the live tracker, cropped at ``size_px`` pixels over
    ``window_mm``; ``refiner`` a head-refiner file, ``"none"``, or None for the shipped one."""

    source: str = DEFAULT_SOURCE
    every: int = 3
    max_frames: int | None = None
    live: bool = False
    window_mm: float = 240.0
    size_px: int = 100
    refiner: str | None = None
    progress: bool = True


@dataclass(frozen=True)
class LocatedFrame:
    """One scored frame: annotated yaw, the error in crop pixels (inf: no face found), the
    distance error (mm, NaN without a face) and the method that found it."""

    index: int
    yaw_deg: float
    error_px: float
    distance_error_mm: float
    method: str


def score_frame(frame, locator, crop_config) -> LocatedFrame | None:
    """Locate the head in ``frame`` without its annotation and score the crop it gives."""
    from sensors.crop import window_px_for, window_to_crop
    from sensors.geometry import euler_deg_from_rotation

    truth = frame.head_center_color_mm()
    if truth is None or frame.head_rotation is None:
        return None
    yaw = euler_deg_from_rotation(frame.head_rotation)[0]
    found = locator.locate(frame)
    if found is None:
        return LocatedFrame(frame.index, yaw, math.inf, math.nan, "none")
    _, window = window_px_for(found.center_color_mm, frame.color_camera, crop_config)
    true_uv = frame.color_camera.project(np.asarray(truth, dtype=np.float64)[None])
    xy = window_to_crop(true_uv, window, crop_config.size_px)[0]
    centre = (crop_config.size_px - 1) / 2.0
    err = float(math.hypot(xy[0] - centre, xy[1] - centre))
    return LocatedFrame(frame.index, yaw, err, float(found.distance_mm - truth[2]), found.method)


def summarise(rows: list[LocatedFrame], radius_px: float = RADIUS_PX) -> dict:
    """Rates within ``radius_px`` overall, for |yaw| <= 30 and per 15-degree |yaw| bin."""

    def stats(sel: list[LocatedFrame]) -> dict:
        if not sel:
            return {"frames": 0}
        err = np.array([r.error_px for r in sel])
        found = np.isfinite(err)
        dz = np.array([abs(r.distance_error_mm) for r in sel if math.isfinite(r.error_px)])
        return {
            "frames": len(sel),
            "within_rate": float(np.mean(err <= radius_px)),
            "found_rate": float(np.mean(found)),
            "error_px_median": float(np.median(err[found])) if found.any() else None,
            "error_px_p95_found": float(np.percentile(err[found], 95)) if found.any() else None,
            "distance_error_mm_median": float(np.median(dz)) if dz.size else None,
        }

    bins = {}
    top = max([abs(r.yaw_deg) for r in rows], default=0.0)
    for lo in np.arange(0.0, top + BIN_DEG, BIN_DEG):
        sel = [r for r in rows if lo <= abs(r.yaw_deg) < lo + BIN_DEG]
        if sel:
            bins[f"{lo:g}-{lo + BIN_DEG:g}"] = stats(sel)
    methods: dict[str, int] = {}
    for r in rows:
        methods[r.method] = methods.get(r.method, 0) + 1
    return {
        "radius_px": radius_px,
        "all": stats(rows),
        "yaw_le_30": stats([r for r in rows if abs(r.yaw_deg) <= 30.0]),
        "by_abs_yaw_deg": bins,
        "methods": methods,
    }


def evaluate_locator(cfg: LocatorEvalConfig) -> dict[str, Any]:
    """The report: localisation error per |yaw| bin, and the sources, crop and refiner used."""
    from sensors.crop import CropConfig
    from sensors.errors import ConfigError
    from sensors.locate.locator import HeadLocator, LocatorConfig

    if cfg.every < 1:
        raise ConfigError(f"--every must be at least 1, got {cfg.every}")
    crop_config = CropConfig(size_px=cfg.size_px, window_x_mm=cfg.window_mm, window_y_mm=cfg.window_mm)
    from models.refiner.runtime import DEFAULT_PATH, load_refiner

    refiner = load_refiner(cfg.refiner or DEFAULT_PATH)
    locator = HeadLocator(LocatorConfig(mode="detect"), live=cfg.live, refiner=refiner)
    rows: list[LocatedFrame] = []
    with _frames(cfg, live=cfg.live, desc="evaluate-locator") as (src, frames):
        for scored, frame in frames:
            if scored or cfg.live:  # the live tracker sees every frame
                row = score_frame(frame, locator, crop_config)
                if scored and row is not None:
                    rows.append(row)
        described = src.describe()
    if not rows:
        raise ConfigError(f"{cfg.source}: no frame with an annotated head centre and rotation to score")
    report = {"source": cfg.source, "live": cfg.live, "every": cfg.every,
              "refiner": None if refiner is None else os.path.relpath(refiner.path),
              "crop": crop_config.to_dict(), "source_describe": described, **summarise(rows)}
    return report


def format_table(report: dict) -> str:
    """The README's table: frames, share within the radius, median error, per |yaw| bin."""
    r = report["radius_px"]
    lines = [f"| abs(yaw), degrees | frames | within {r:g} crop px | face found | median error (crop px) "
             f"| median abs(D error) (mm) |", "|---|---|---|---|---|---|"]

    def row(name: str, s: dict) -> str:
        if not s.get("frames"):
            return f"| {name} | 0 | | | | |"
        med = "-" if s["error_px_median"] is None else f"{s['error_px_median']:.1f}"
        dz = "-" if s["distance_error_mm_median"] is None else f"{s['distance_error_mm_median']:.0f}"
        return (f"| {name} | {s['frames']} | {100 * s['within_rate']:.1f} % | {100 * s['found_rate']:.1f} % "
                f"| {med} | {dz} |")

    for name, s in report["by_abs_yaw_deg"].items():
        lines.append(row(name, s))
    lines.append(row("**0-30**", report["yaw_le_30"]))
    lines.append(row("**all**", report["all"]))
    return "\n".join(lines)


@dataclass(frozen=True)
class HeadShapeFit:
    """A fitted head-shape model (rounded as the file stores it) and how well its row model fits:
    ``heads`` measured, the median row residual and the share within 12 mm."""

    model: HeadShapeModel
    heads: int
    residual_median_mm: float
    within_12mm_rate: float


def fit_shape(cfg: LocatorEvalConfig) -> HeadShapeFit:
    """Fit the head-shape model of ``sensors.locate.silhouette`` (``v_coef``, ``z_behind_front_mm``)
    to annotated frames.

    Each head is measured from a point on its face (the annotated centre moved 90 mm towards the
    camera), so the fit sees the silhouette measurement, not the candidate search. The row model
    is a least-squares fit, refitted twice without residuals beyond 2.5 median absolute
    residuals; the depth offset is the median of (annotated z - nearest face depth). The
    coefficients are rounded to 0.001 and the offset to 0.1 mm.
    """
    from sensors.locate.silhouette import HeadShapeModel, measure_head

    feats, rows_mm, behind = [], [], []
    with _frames(cfg, live=False, desc="fit-shape") as (_, frames):
        for scored, frame in frames:
            if not scored or frame.head_center_mm is None or frame.depth_mm is None:
                continue
            cam, centre = frame.depth_camera, np.asarray(frame.head_center_mm, dtype=np.float64)
            u, v = cam.project((centre - 90.0 * centre / np.linalg.norm(centre))[None])[0]
            shape = measure_head(frame.depth_mm, cam, u, v)
            if shape is None or not shape.plausible:
                continue
            tv = cam.project(centre[None])[0][1]
            feats.append(shape.features)
            behind.append(centre[2] - shape.z_front_mm)
            rows_mm.append((tv, shape.top_v_px, shape.z_front_mm, cam.fy))
    if len(feats) < 20:
        from sensors.errors import ConfigError

        raise ConfigError(f"{cfg.source}: only {len(feats)} measurable annotated heads; need at least 20")
    z_behind = float(np.median(behind))
    x = np.array(feats)
    tv, top, z_front, fy = np.array(rows_mm).T
    y = (tv - top) * (z_front + z_behind) / fy  # the centre's row below the top of the head, mm
    keep = np.ones(len(y), bool)
    for _ in range(3):
        coef = np.linalg.lstsq(x[keep], y[keep], rcond=None)[0]
        resid = y - x @ coef
        keep = np.abs(resid) < 2.5 * np.median(np.abs(resid[keep]))
    # rounded through their decimal text, so the file holds the numbers it shows
    model = HeadShapeModel(np.array([float(f"{c:.3f}") for c in coef]), float(f"{z_behind:.1f}"))
    return HeadShapeFit(model, len(y), float(np.median(resid)), float(np.mean(np.abs(resid) < 12)))


@contextmanager
def _frames(cfg: LocatorEvalConfig, live: bool, desc: str) -> Iterator[tuple[Any, Iterator[tuple[bool, Any]]]]:
    """The open source and its frames as (scored, frame): every ``every``-th is scored,
    reading stops after ``max_frames``. Offline (``live`` False) the source runs unpaced, every
    frame as fast as it can be read; live, paced as it comes."""
    from tqdm import tqdm

    from models.data.build import unpaced_uri
    from sensors.source import open_source

    def frames(src: Any) -> Iterator[tuple[bool, Any]]:
        for read, frame in enumerate(tqdm(src, desc=desc, unit="frame", disable=not cfg.progress)):
            yield read % cfg.every == 0, frame
            if cfg.max_frames is not None and read + 1 >= cfg.max_frames:
                return

    with open_source(cfg.source if live else unpaced_uri(cfg.source)) as src:
        yield src, frames(src)
