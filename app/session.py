"""The app's per-session bookkeeping, free of Qt: per-frame metric log, snapshots, CSV export.

:class:`SessionLog` is fed from the pipeline's inference thread (``Pipeline.on_result``), so it
sees every processed frame even when the display skips some; the GUI thread reads plot series
and means from it under the same lock. Storage is a column array per model that grows by
doubling, so an hour at 30 fps costs a few MB, not a dict per frame.
"""
from __future__ import annotations

import csv
import json
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.pipeline import FrameResult, ModelResult
from models.common.files import atomic_path
from models.metrics import ALL_KEYS

#: the verification scores logged per frame: predicted vs true depth, predicted vs enrolled,
#: and their causal smoothing (models.verifier.runtime.LiveScore)
SCORE_KEYS = ("verification", "enrolled", "verification_smoothed", "enrolled_smoothed")
#: leading columns of every log row
BASE_KEYS = ("frame_index", "timestamp_ns", "face", "distance_mm", "latency_ms")


class _Columns:
    """A float64 table that grows by doubling; NaN marks a missing value."""

    def __init__(self, columns: Sequence[str], capacity: int = 1024) -> None:
        self.columns = tuple(columns)
        self.index = {c: i for i, c in enumerate(self.columns)}
        self._data = np.full((capacity, len(self.columns)), np.nan)
        self.n = 0

    def append(self, values: Mapping[str, float | None]) -> None:
        if self.n == len(self._data):
            grown = np.full((2 * len(self._data), len(self.columns)), np.nan)
            grown[: self.n] = self._data
            self._data = grown
        row = self._data[self.n]
        for k, v in values.items():
            i = self.index.get(k)
            if i is not None and v is not None:
                row[i] = float(v)
        self.n += 1

    def column(self, key: str, last: int | None = None) -> np.ndarray:
        start = 0 if last is None else max(0, self.n - last)
        return self._data[start: self.n, self.index[key]].copy()

    def rows(self) -> np.ndarray:
        return self._data[: self.n]


@dataclass(frozen=True)
class Means:
    """Session mean and sliding-window mean of each logged quantity (None: nothing scored yet)."""

    session: Mapping[str, float | None]
    window: Mapping[str, float | None]
    latest: Mapping[str, float | None]
    frames: int          # frames logged for this model
    scored: int          # frames whose metrics counted (a face and enough valid depth)


class SessionLog:
    """Per-frame metrics and verification scores of every model over one session."""

    def __init__(self, model_names: Sequence[str], window: int = 30, threshold: float | None = None,
                 enrolment_label: str | None = None) -> None:
        from models.metrics import MetricsAggregator

        self.model_names = tuple(model_names)
        self.threshold = threshold
        self._live: list[dict[str, Any]] = []
        self._readings: list[dict[str, Any]] = [{} for _ in self.model_names]
        if threshold is not None:
            from models.verifier.runtime import LiveScore

            self._live = [{"verification": LiveScore(threshold, "same frame"),
                           "enrolled": LiveScore(threshold, enrolment_label or "enrolled")}
                          for _ in self.model_names]
        self.window = int(window)
        self.metric_keys = ALL_KEYS
        self.columns = BASE_KEYS + self.metric_keys + SCORE_KEYS
        self._lock = threading.Lock()
        self._tables = [_Columns(self.columns) for _ in self.model_names]
        self._aggregators = [MetricsAggregator(window=self.window) for _ in self.model_names]
        self.frames = 0
        self.started_s = time.time()

    def add(self, result: FrameResult) -> None:
        """Log one processed frame (called on the pipeline's inference thread)."""
        base: dict[str, float | None] = {
            "frame_index": result.index, "timestamp_ns": result.frame.timestamp_ns,
            "face": 1.0 if result.has_face else 0.0, "latency_ms": result.latency_ms,
        }
        with self._lock:
            self.frames += 1
            for i, table in enumerate(self._tables):
                row = dict(base)
                m: ModelResult | None = result.models[i] if i < len(result.models) else None
                if m is not None:
                    row["distance_mm"] = m.crop.distance_mm
                    if m.metrics is not None:
                        row.update({k: float(v) for k, v in m.metrics.items()})
                    row["verification"] = m.verification
                    row["enrolled"] = m.enrolled
                    self._aggregators[i].add(m.metrics)
                if self._live:
                    for kind, live in self._live[i].items():
                        reading = live.update(row.get(kind))
                        self._readings[i][kind] = reading
                        row[f"{kind}_smoothed"] = reading.smoothed
                table.append(row)

    def __len__(self) -> int:
        return self.frames

    def set_enrolment_label(self, label: str) -> None:
        """A new enrolment: its scores start afresh under its label (identity / self-consistency)."""
        if not self._live:
            return
        from models.verifier.runtime import LiveScore

        with self._lock:
            for i, live in enumerate(self._live):
                live["enrolled"] = LiveScore(live["enrolled"].threshold, label)
                self._readings[i].pop("enrolled", None)

    def readings(self, model: int = 0) -> dict[str, Any]:
        """The latest models.verifier.runtime.VerificationReading of each score kind."""
        with self._lock:
            return dict(self._readings[model]) if model < len(self._readings) else {}

    def verification_text(self, model: int = 0) -> str:
        """One line for the status bar: each score (smoothed) with its decision."""
        parts = []
        for kind, what in (("verification", "pred vs true"), ("enrolled", "vs enrolled")):
            r = self.readings(model).get(kind)
            if r is None or r.smoothed is None:
                continue
            label = "" if kind == "verification" else f" ({r.label})"
            parts.append(f"{what}{label}: {r.smoothed:.2f} {r.decision}")
        return "verification: " + (" | ".join(parts) if parts else "-")

    def series(self, model: int, keys: Sequence[str], last: int) -> dict[str, np.ndarray]:
        """The last ``last`` values of each key for one model, plus ``"seq"``: the frame's
        position in the session (the plots' x axis)."""
        with self._lock:
            t = self._tables[model]
            out = {k: t.column(k, last) for k in keys}
            n = t.n
        out["seq"] = np.arange(max(0, n - last), n, dtype=np.float64)
        return out

    def means(self, model: int) -> Means:
        """Session and sliding-window means: metrics through models.metrics.MetricsAggregator,
        scores as the mean over the frames that have one."""
        with self._lock:
            agg = self._aggregators[model]
            session = dict(agg.session_mean()) if agg.scored else {}
            window = dict(agg.window_mean()) if agg.scored else {}
            scored = agg.scored
            t = self._tables[model]
            latest: dict[str, float | None] = {}
            if t.n:
                last_row = t.rows()[t.n - 1]
                latest = {k: _none_if_nan(last_row[t.index[k]]) for k in self.metric_keys + SCORE_KEYS}
            for k in SCORE_KEYS:
                col = t.column(k)
                session[k] = _nanmean(col)
                window[k] = _nanmean(col[-self.window:])
            n = t.n
        return Means(session=session, window=window, latest=latest, frames=n, scored=scored)

    def write_csv(self, path: str | Path) -> int:
        """Write every logged frame of every model (one row per frame and model); returns the
        number of data rows. Missing values are empty cells."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            snapshots = [(name, t.rows().copy()) for name, t in zip(self.model_names, self._tables)]
        header = ["seq", "model", *self.columns]
        n = 0
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            ints = {"frame_index", "timestamp_ns", "face"}
            for name, rows in snapshots:
                for seq, row in enumerate(rows):
                    cells: list[Any] = [seq, name]
                    for c, v in zip(self.columns, row):
                        if math.isnan(v):
                            cells.append("")
                        elif c in ints:
                            cells.append(int(v))
                        else:
                            cells.append(f"{v:.6g}")
                    w.writerow(cells)
                    n += 1
        return n


def _nanmean(a: np.ndarray) -> float | None:
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else None


def _none_if_nan(v: float) -> float | None:
    return None if math.isnan(v) else float(v)


def predicted_depth_mm16(model: ModelResult) -> np.ndarray:
    """The prediction decoded to millimetres (colour-camera z), as uint16; 0 = background."""
    from sensors.encoding import decode_depth

    mm = decode_depth(model.pred8, model.crop.distance_mm, model.crop.config.half_range_mm)
    return np.clip(np.rint(mm), 0, 65535).astype(np.uint16)


def frame_record(result: FrameResult, source: str, model_files: Sequence[str] = ()) -> dict[str, Any]:
    """A JSON-ready description of one frame's result: what a snapshot's JSON holds."""
    rec: dict[str, Any] = {
        "frame_index": result.index,
        "timestamp_ns": result.frame.timestamp_ns,
        "source": source,
        "face": result.has_face,
        "latency_ms": round(result.latency_ms, 3),
        "timings_ms": {k: round(v, 3) for k, v in result.timings_ms.items()},
        "models": [],
    }
    if result.head is not None:
        rec["head_method"] = getattr(result.head, "method", None)
    for i, m in enumerate(result.models):
        rec["models"].append({
            "name": m.name,
            "file": model_files[i] if i < len(model_files) else None,
            "distance_mm": round(float(m.crop.distance_mm), 3),
            "half_range_mm": m.crop.config.half_range_mm,
            "window_px": [round(float(x), 2) for x in m.crop.window_px],
            "metrics": None if m.metrics is None else {k: float(v) for k, v in m.metrics.items()},
            "verification": m.verification,
            "enrolled": m.enrolled,
        })
    return rec


def write_snapshot_data(result: FrameResult, out_dir: str | Path, stem: str, source: str,
                        model_files: Sequence[str] = (),
                        extra_files: Mapping[str, str] | None = None) -> dict[str, Path]:
    """Write the Qt-free parts of a snapshot: for each model its predicted depth and the true
    depth of its crop as 16-bit PNGs in mm (colour-camera z, 0 = none) and its colour crop as a
    PNG, then the frame's JSON record (which lists ``extra_files``, e.g. the panels PNG the
    window wrote). Returns the paths written, by role ("pred_mm", "true_mm", "crop"; "pred2_mm"
    ... for the second model)."""
    import cv2

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for i, m in enumerate(result.models):
        n = "" if i == 0 else str(i + 1)
        images = {f"pred{n}_mm": predicted_depth_mm16(m),
                  f"crop{n}": cv2.cvtColor(m.crop.color, cv2.COLOR_RGB2BGR)}
        if m.crop.depth_mm is not None:
            images[f"true{n}_mm"] = np.clip(np.rint(m.crop.depth_mm), 0, 65535).astype(np.uint16)
        for role, image in images.items():
            p = out / f"{stem}_{role}.png"
            if not cv2.imwrite(str(p), image):
                raise OSError(f"could not write {p}")
            paths[role] = p
    record = frame_record(result, source, model_files)
    record["files"] = {**(extra_files or {}), **{k: v.name for k, v in paths.items()}}
    jp = out / f"{stem}_metrics.json"
    with open(jp, "w") as f:
        json.dump(record, f, indent=1)
    paths["json"] = jp
    return paths
