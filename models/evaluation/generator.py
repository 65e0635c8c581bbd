"""``launch.py evaluate``: score generators and two baselines on a crop dataset.

    python launch.py evaluate --data data/virtual.npz \\
        --models models/weights/generator.onnx,models/weights/generator_ae.onnx \\
        --report eval.json --figure eval.png [--split test] [--verifier models/weights/verifier.onnx]

Rows (methods): every ``--models`` file (run through ``models.generator.runtime.DepthGenerator``;
list the shipped AE, ``models/weights/generator_ae.onnx``, for the AE baseline) and three
baselines that need no learning:

    mean training crop   the per-pixel mean of the TRAINING split's (split 0) ground truth over
                         the crops where that pixel is valid (``--mean-from`` takes it from
                         another dataset file; without training crops the row is left out): the
                         training set's mean face
    flat plane at D      every pixel at level 128, i.e. z = D: a plane through the head centre
    flat plane at the true median
                         every pixel of a crop at the median true level of its face region
                         (of its valid pixels when the region is empty; level 128, z = D, when
                         none is valid): a face without relief, at the right depth

Columns: every metric of ``models.metrics`` (docs/design.md, "Metrics") in the 8-bit domain, in
mm and in the face region, averaged over the frames (a frame with too few valid ground-truth
pixels is skipped and counted). The face region is the dataset's ``face_mask`` where it has one
(virtual data), else ``models.metrics.face_region``'s fallback; the report says which
(``data.face_region``). The ground truth is the dataset's clean depth where it has one (``--truth auto``;
the virtual Kinect), else its sensor depth; ``--truth sensor`` scores against the sensor depth.
The same table is broken down by |yaw| (0-30, 30-60, 60+ degrees; frames without a pose are
counted as "unknown").

The JSON report holds the data's provenance, every method's metrics (overall and by yaw), each
model's error budget (``error_budget``: how much of its whole-crop L1 the face, the rest of the
head and body, and the pixels it marks as background carry; printed under the table), the
indices of the best and worst frames, and the head-centre check (``centre_check``: how far
the annotation's D and the locator's D disagree on the same crops, printed as its own line);
the figure holds bar charts of the main metrics and a grid of the best and worst examples (by
L1 mm of the first model): colour | true | each model's prediction | the first model's error.

External predictions: ``--external NAME=FILE.npz`` adds a row for depth crops made outside the
project, such as MediaPipe Face Mesh's from ``models.evaluation.realism --predictions`` (the
side environment; never a dependency). Such crops have no absolute distance, so that row keeps
the shape metrics only (:data:`EXTERNAL_KEYS`), and every row's face region becomes the pixels
the external crops cover too (frames where one found no face have no face metrics in any row):
all methods are compared on the same crops and the same pixels.

Verification: ``--verifier FILE.onnx`` runs ``models.verifier.runtime.evaluate_verification`` on
the same split with the predictions of every model, adds its results to the report under
``"verification"`` and draws its ROC curves to ``<figure>_verification.png``.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.metrics import DELTA_KEYS, FACE_KEYS, MM_KEYS, TABLE_KEYS
from sensors.errors import ConfigError, FormatError

#: |yaw| bins in degrees: [lo, hi)
YAW_BINS: tuple[tuple[str, float, float], ...] = (("0-30", 0.0, 30.0), ("30-60", 30.0, 60.0), ("60+", 60.0, math.inf))
FLAT_LEVEL = 128  # z = D in the 8-bit encoding: 1 + 254 * H / (2 H) = 128
MEAN_BASELINE = "mean training crop"
FLAT_BASELINE = "flat plane at D"
MEDIAN_PLANE_BASELINE = "flat plane at the true median"
BASELINES = (MEAN_BASELINE, FLAT_BASELINE, MEDIAN_PLANE_BASELINE)
#: the metrics an external row keeps: those a depth known only up to an offset supports
EXTERNAL_KEYS = ("face_shape_l1_mm", "face_relief_mm", "face_coverage")
#: what ``models.evaluation.realism --predictions`` writes (its ``PREDICTIONS_KIND``)
EXTERNAL_KIND = "relative depth crops"


@dataclass(frozen=True, eq=False)
class MethodScores:
    """One row of the evaluation: mean metrics overall and per |yaw| bin, plus per-frame L1 mm."""

    name: str
    kind: str  # "model", "baseline" or "external"
    info: dict[str, Any]
    metrics: dict[str, float]
    by_yaw: dict[str, dict[str, Any]]
    scored: int
    skipped: int
    per_frame_l1_mm: np.ndarray  # NaN where skipped

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, **self.info, "metrics": self.metrics, "by_yaw": self.by_yaw,
                "frames_scored": self.scored, "frames_skipped": self.skipped}


def score_predictions(name: str, kind: str, info: Mapping[str, Any], pred8: np.ndarray, truth8: np.ndarray,
                      distance_mm: np.ndarray, half_range_mm: float, yaw_deg: np.ndarray,
                      face_masks: np.ndarray | None = None) -> MethodScores:
    """Every metric of ``models.metrics`` for (N, S, S) predictions against the truth, overall and by |yaw|
    (the face metrics in ``face_masks`` where given, else in the fallback face region)."""
    from models.metrics import MetricsAggregator, depth_metrics_batch

    per_frame = depth_metrics_batch(pred8, truth8, distance_mm, half_range_mm, face_masks=face_masks)
    overall = MetricsAggregator()
    for m in per_frame:
        overall.add(m)
    by_yaw: dict[str, dict[str, Any]] = {}
    ayaw = np.abs(yaw_deg)
    bins = [(label, (ayaw >= lo) & (ayaw < hi)) for label, lo, hi in YAW_BINS] + [("unknown", ~np.isfinite(ayaw))]
    for label, sel in bins:
        agg = MetricsAggregator()
        for i in np.flatnonzero(sel):
            agg.add(per_frame[i])
        if agg.frames:
            by_yaw[label] = {"frames": agg.scored, "skipped": agg.skipped, "metrics": agg.session_mean()}
    l1 = np.array([np.nan if m is None else m["l1_mm"] for m in per_frame], np.float64)
    return MethodScores(name, kind, dict(info), overall.session_mean(), by_yaw, overall.scored, overall.skipped, l1)


def error_budget(pred8: np.ndarray, truth8: np.ndarray, half_range_mm: float,
                 face: np.ndarray) -> dict[str, float]:
    """Where a model's whole-crop L1 in mm comes from: the ``l1_mm_*`` parts add up to the
    ``l1_mm`` metric (each crop's error summed over one kind of valid true pixel, divided by all
    its valid pixels, then averaged over the scored crops): ``face`` (the face region ``face``),
    ``missed`` (outside the face, predicted as background: scored at the window's far edge) and
    ``rest`` (hair, ears, neck, shoulders, background objects); ``pixels_*`` are each kind's share
    of the valid pixels. The 8-bit output itself costs about a quarter level on average (0.29 mm
    for H = 150 mm): ``l1_mm_rounding``."""
    from models.metrics import MIN_VALID_PIXELS, abs_error_mm
    from sensors.encoding import mm_per_level

    valid = truth8 > 0
    n = len(truth8)
    count = valid.reshape(n, -1).sum(axis=1)
    ok = count >= MIN_VALID_PIXELS
    if not ok.any():
        return {}
    err = abs_error_mm(pred8, truth8, half_range_mm)  # the l1_mm metric's per-pixel error
    face = valid & face
    missed = valid & ~face & (pred8 == 0)
    kinds = {"face": face, "missed": missed, "rest": valid & ~face & ~missed}
    out: dict[str, float] = {}
    for kind, where in kinds.items():
        part = np.where(where, err, 0.0).reshape(n, -1).sum(axis=1)[ok] / count[ok]
        out[f"l1_mm_{kind}"] = float(part.mean())
        out[f"pixels_{kind}"] = float(where.reshape(n, -1)[ok].sum() / count[ok].sum())
    out["l1_mm_rounding"] = mm_per_level(half_range_mm) / 4
    return out


def only_keys(scores: MethodScores, keys: Sequence[str]) -> MethodScores:
    """``scores`` with only the metrics ``keys``, overall and per yaw bin."""
    from dataclasses import replace

    keep = lambda m: {k: v for k, v in m.items() if k in keys}  # noqa: E731
    by_yaw = {b: {**v, "metrics": keep(v["metrics"])} for b, v in scores.by_yaw.items()}
    return replace(scores, metrics=keep(scores.metrics), by_yaw=by_yaw)


def load_external(path: str, data_path: str, split: str, shape: tuple[int, ...]) -> tuple[np.ndarray, dict[str, Any]]:
    """The depth crops of an external predictions file made for this dataset and split, and its info."""
    from models.common.files import file_sha256

    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("depth8", "kind", "split", "data_sha256", "method")}
    except FileNotFoundError:
        raise FormatError("external predictions file does not exist", path) from None
    except KeyError as exc:
        raise FormatError(f"not an external predictions file (no {exc.args[0]} array; "
                          f"models.evaluation.realism --predictions writes them)", path) from None
    except (OSError, ValueError) as exc:
        raise FormatError(f"not a readable .npz file ({exc})", path) from None
    if str(arrays["kind"]) != EXTERNAL_KIND:
        raise FormatError(f"holds {str(arrays['kind'])!r}, not {EXTERNAL_KIND!r}", path)
    if str(arrays["data_sha256"]) != file_sha256(data_path):
        raise FormatError(f"was made for another dataset file than {data_path}", path)
    if str(arrays["split"]) != split:
        raise FormatError(f"holds the {str(arrays['split'])!r} split's crops, not the {split!r} split's "
                          f"(pass --split {str(arrays['split'])})", path)
    depth8 = arrays["depth8"]
    if depth8.dtype != np.uint8 or depth8.shape != tuple(shape):
        raise FormatError(f"holds {depth8.dtype} crops of shape {depth8.shape}; the split has {tuple(shape)} "
                          f"(made with --max-crops?)", path)
    info = {"file": os.path.basename(path), "method": str(arrays["method"]), "relative": True,
            "description": "depth made outside the project, known up to an offset: shape metrics only",
            "frames_with_a_face": int((depth8.reshape(len(depth8), -1) > 0).any(axis=1).sum())}
    return depth8, info


def flat_at_median(truth8: np.ndarray, region: np.ndarray) -> np.ndarray:
    """(N, S, S) crops, each flat at the median true level of its ``region`` (of its valid pixels
    when the region is empty; :data:`FLAT_LEVEL` when none is valid)."""
    out = np.empty_like(truth8)
    for i in range(len(truth8)):
        g = truth8[i]
        levels = g[region[i]]
        if levels.size == 0:
            levels = g[g > 0]
        out[i] = FLAT_LEVEL if levels.size == 0 else int(np.clip(np.rint(np.median(levels)), 1, 255))
    return out


def mean_crop(target8: np.ndarray) -> np.ndarray:
    """Per-pixel mean of the valid (> 0) levels over a stack of crops; 0 where never valid."""
    valid = target8 > 0
    count = valid.sum(axis=0)
    total = np.where(valid, target8, 0).astype(np.float64).sum(axis=0)
    mean = np.divide(total, count, out=np.zeros(count.shape, np.float64), where=count > 0)
    return np.clip(np.rint(mean), 0, 255).astype(np.uint8)


def _data_crop(data: Any, path: str) -> dict[str, Any]:
    from models.generator.train import crop_config_from_meta

    try:
        return crop_config_from_meta(data.meta, data.size_px)
    except FormatError as exc:
        raise FormatError(exc.message, path) from None


def _check_model_crop(gen: Any, crop: Mapping[str, Any]) -> None:
    theirs = gen.crop_config_dict
    for k in ("size_px", "window_x_mm", "window_y_mm", "half_range_mm"):
        if abs(float(theirs[k]) - float(crop[k])) > 1e-6:
            raise ConfigError(f"{gen.path} was trained on crops with {k}={theirs[k]:g} but the data has {crop[k]:g}; "
                              f"build the dataset with the model's crop geometry")


def evaluate(data_path: str, model_paths: Sequence[str], split: str = "test", truth: str = "auto",
             mean_from: str | None = None, threads: int = 0, provider: str = "auto",
             external: Sequence[tuple[str, str]] = ()) -> tuple[dict[str, Any], dict]:
    """Score the models, baselines and ``external`` (name, file) predictions; returns (report,
    arrays for the figure)."""
    from models.data.dataset import load_dataset
    from models.generator.runtime import DepthGenerator
    from models.common.files import file_sha256

    data = load_dataset(data_path)
    crop = _data_crop(data, data_path)
    in_split = data.split_mask(split)
    subset = data if split == "all" else data.subset(in_split)
    if len(subset) == 0:
        raise FormatError(f"the dataset has no {split} crops", data_path)
    if truth == "clean" and subset.depth_clean is None:
        raise ConfigError(f"--truth clean: {data_path} has no clean depth (use --truth sensor or auto)")
    truth8 = subset.depth if truth == "sensor" or subset.depth_clean is None else subset.depth_clean
    truth_name = "depth" if truth8 is subset.depth else "depth_clean"
    h = float(crop["half_range_mm"])
    yaw = subset.pose_deg[:, 0].astype(np.float64)
    from models.metrics import FACE_REGION_RULES, face_region

    face_masks = subset.face_mask  # the renderer's face masks (virtual data), else the fallback region
    region_kind = "fallback" if face_masks is None else "mask"
    region_rule = FACE_REGION_RULES[region_kind]
    outside = [(name, *load_external(path, data_path, split, truth8.shape)) for name, path in external]
    if outside:  # every row on the pixels the external crops cover
        face_masks = face_region(truth8, h, face_masks)
        for _, depth8, _ in outside:
            face_masks &= depth8 > 0
        region_rule += "; only pixels every external prediction covers"
    region = face_region(truth8, h, face_masks)
    methods: list[MethodScores] = []
    predictions: dict[str, np.ndarray] = {}
    for path in model_paths:
        gen = DepthGenerator(path, provider=provider, threads=threads)
        _check_model_crop(gen, crop)
        pred = np.concatenate([gen.predict(subset.color[i:i + 256]) for i in range(0, len(subset), 256)])
        name = _unique(Path(path).stem, predictions)
        predictions[name] = pred
        info = {"file": str(path), "sha256": gen.sha256, "model_kind": gen.info.model_kind,
                "synthetic_only": gen.info.synthetic_only, "provider": gen.provider,
                "error_budget": error_budget(pred, truth8, h, region)}
        methods.append(score_predictions(name, "model", info, pred, truth8, subset.distance_mm, h, yaw, face_masks))
    # baselines
    source = load_dataset(mean_from) if mean_from else data
    if mean_from:
        other = _data_crop(source, mean_from)
        if any(abs(float(other[k]) - float(crop[k])) > 1e-6 for k in ("size_px", "window_x_mm", "window_y_mm", "half_range_mm")):
            raise ConfigError(f"--mean-from {mean_from} has another crop geometry than {data_path}")
    train = source.select_split("train")
    baseline_notes = {}
    if len(train):
        mean8 = mean_crop(train.target)
        pred = np.broadcast_to(mean8, truth8.shape)
        info = {"description": "per-pixel mean of the training split's ground truth (valid pixels)",
                "from": os.path.basename(mean_from or data_path), "training_crops": len(train)}
        methods.append(score_predictions(MEAN_BASELINE, "baseline", info, np.ascontiguousarray(pred), truth8,
                                         subset.distance_mm, h, yaw, face_masks))
        predictions[MEAN_BASELINE] = np.ascontiguousarray(pred)
    else:
        baseline_notes[MEAN_BASELINE] = "left out: no training crops (split 0) to average; see --mean-from"
    methods.append(score_predictions(FLAT_BASELINE, "baseline",
                                     {"description": "every pixel at level 128 (z = D)"},
                                     np.full_like(truth8, FLAT_LEVEL), truth8, subset.distance_mm, h, yaw, face_masks))
    flat = flat_at_median(truth8, region)
    methods.append(score_predictions(MEDIAN_PLANE_BASELINE, "baseline",
                                     {"description": "every pixel of a crop at the median true level of its face region "
                                                     "(of its valid pixels when the region is empty)"},
                                     flat, truth8, subset.distance_mm, h, yaw, face_masks))
    for name, depth8, info in outside:
        scores = score_predictions(_unique(name, predictions), "external", info, depth8, truth8, subset.distance_mm,
                                   h, yaw, face_masks)
        methods.append(only_keys(scores, EXTERNAL_KEYS))
    from models.metrics import ALL_KEYS, HIGHER_IS_BETTER, METRIC_KEYS

    first = methods[0] if methods and methods[0].kind == "model" else None
    order = np.argsort(np.where(np.isfinite(first.per_frame_l1_mm), first.per_frame_l1_mm, np.inf)) if first else None
    n_ok = int(np.isfinite(first.per_frame_l1_mm).sum()) if first else 0
    report: dict[str, Any] = {
        "data": {"file": os.path.basename(data_path), "sha256": file_sha256(data_path), "split": split,
                 "crops": len(subset), "subjects": sorted(int(s) for s in np.unique(subset.subject)),
                 "truth": truth_name, "crop": crop, "synthetic": bool(_synthetic(data.meta)),
                 "face_region": {"kind": region_kind, "rule": region_rule}},
        "metric_keys": list(ALL_KEYS),
        "higher_is_better": sorted(HIGHER_IS_BETTER),
        "domains": {"8-bit": list(METRIC_KEYS), "mm": list(MM_KEYS), "face": list(FACE_KEYS)},
        "yaw_bins_deg": [[lo, None if math.isinf(hi) else hi] for _, lo, hi in YAW_BINS],
        "methods": [m.to_dict() for m in methods],
        "notes": baseline_notes,
        "head_centre_check": centre_check(data.meta, np.flatnonzero(in_split)),
    }
    if first is not None and n_ok:
        report["examples"] = {"ranked_by": f"l1_mm of {first.name}",
                              "best": [int(i) for i in order[:n_ok][:8]],
                              "worst": [int(i) for i in order[:n_ok][::-1][:8]],
                              "index": "position within the evaluated split"}
    arrays = {"subset": subset, "truth8": truth8, "predictions": predictions, "order": order, "n_ok": n_ok,
              "methods": methods}
    return report, arrays


def centre_check(meta: Mapping[str, Any], crops: np.ndarray) -> dict[str, Any]:
    """How far D from the annotation and D from the locator (run without it) disagree on the
    crops ``crops`` (indices into the dataset), from what ``build-dataset --centre-check`` stored:
    a drift between a dataset's head centre and the project's shows here."""
    check = meta.get("head_centre_check")
    if not check:
        return {"measured": False, "why": "the dataset was built without the head-centre check (build-dataset "
                                          "--centre-check K)"}
    wanted = set(int(i) for i in crops)
    rows = [r for r in check.get("rows", []) if int(r[0]) in wanted]
    if not rows:
        return {"measured": False, "why": "no annotated crop of this split was checked"}
    diff = np.array([r[1] - r[2] for r in rows if r[2] is not None], np.float64)
    out: dict[str, Any] = {"measured": True, "frames": len(rows), "located": int(diff.size),
                           "sign": "D annotation - D locator"}
    if diff.size:
        out.update({"median_abs_mm": round(float(np.median(np.abs(diff))), 1),
                    "mean_mm": round(float(diff.mean()), 1),
                    "p90_abs_mm": round(float(np.percentile(np.abs(diff), 90)), 1)})
    return out


def budget_lines(report: Mapping[str, Any]) -> list[str]:
    """One line per model: its whole-crop L1 in mm split as ``error_budget`` splits it."""
    lines = []
    for m in report["methods"]:
        b = m.get("error_budget")
        if b:
            lines.append(f"{m['name']}: whole-crop L1 {m['metrics']['l1_mm']:.2f} mm = face {b['l1_mm_face']:.2f} "
                         f"({b['pixels_face']:.0%} of the pixels) + rest of the head and body {b['l1_mm_rest']:.2f} "
                         f"({b['pixels_rest']:.0%}) + marked as background {b['l1_mm_missed']:.2f} "
                         f"({b['pixels_missed']:.0%})")
    return lines


def centre_check_line(check: Mapping[str, Any]) -> str:
    """The report's head-centre check as one line."""
    if not check["measured"]:
        return f"head centre check: not measured ({check['why']})"
    if not check["located"]:
        return f"head centre check: the locator found no head on any of the {check['frames']} checked crops"
    return (f"head centre check: D annotation - D locator on {check['located']} of {check['frames']} checked crops: "
            f"median |diff| {check['median_abs_mm']} mm, mean {check['mean_mm']:+} mm, 90th percentile "
            f"|diff| {check['p90_abs_mm']} mm")


def _synthetic(meta: Mapping[str, Any]) -> bool:
    from models.generator.train import data_is_synthetic

    return data_is_synthetic(meta)


def _unique(name: str, taken: Mapping[str, Any]) -> str:
    out, k = name, 2
    while out in taken:
        out, k = f"{name}-{k}", k + 1
    return out


def markdown_table(report: Mapping[str, Any], keys: Sequence[str] | None = None) -> str:
    """The methods x metrics table of a report, as Markdown (then the face region the face_* columns used)."""
    keys = list(keys or TABLE_KEYS)
    lines = ["| method | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for m in report["methods"]:
        vals = [m["metrics"].get(k) for k in keys]
        lines.append(f"| {m['name']} | " + " | ".join("-" if v is None else f"{v:.4g}" for v in vals) + " |")
    region = report.get("data", {}).get("face_region")
    if region and any(k in FACE_KEYS for k in keys):
        lines.append(f"\nface region ({region['kind']}): {region['rule']}")
    return "\n".join(lines)


def draw_figure(report: Mapping[str, Any], arrays: Mapping[str, Any], path: str | os.PathLike[str], examples: int = 4) -> None:
    """Bar charts of the main metrics per method and per |yaw| bin, and the best/worst examples."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    methods = report["methods"]
    models = [n for n in arrays["predictions"] if n not in BASELINES]
    n_ok, order = arrays["n_ok"], arrays["order"]
    k = min(examples, n_ok // 2) if n_ok else 0
    cols = 3 + len(models)
    rows_ex = 2 * k
    height_in = 4.2 + 1.9 * rows_ex
    fig = plt.figure(figsize=(max(12, 1.9 * cols), height_in))
    grid = fig.add_gridspec(1 + rows_ex, cols, height_ratios=[4.2] + [1.9] * rows_ex)
    span = max(1, cols // 3)
    panels = [("delta (8-bit)", list(DELTA_KEYS[:4])),
              ("error (mm)", [*MM_KEYS, *(key for key in FACE_KEYS if key.endswith("_mm"))])]
    for j, (title, keys) in enumerate(panels):
        ax = fig.add_subplot(grid[0, j * span:(j + 1) * span])
        width = 0.8 / max(1, len(methods))
        for i, m in enumerate(methods):
            ax.bar(np.arange(len(keys)) + i * width, [m["metrics"].get(key, np.nan) for key in keys], width, label=m["name"])
        ax.set_xticks(np.arange(len(keys)) + 0.4 - width / 2, keys, fontsize=7, rotation=35, ha="right",
                      rotation_mode="anchor")
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    ax = fig.add_subplot(grid[0, 2 * span:])
    bins = [b for b, _, _ in YAW_BINS]
    width = 0.8 / max(1, len(methods))
    for i, m in enumerate(methods):
        ax.bar(np.arange(len(bins)) + i * width, [m["by_yaw"].get(b, {}).get("metrics", {}).get("l1_mm", np.nan) for b in bins],
               width, label=m["name"])
    ax.set_xticks(np.arange(len(bins)) + 0.4 - width / 2, [f"|yaw| {b}" for b in bins], fontsize=7)
    ax.set_title("L1 mm by head yaw", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    if k:
        subset, truth8, preds = arrays["subset"], arrays["truth8"], arrays["predictions"]
        first = models[0]
        picks = [("best", i) for i in order[:k]] + [("worst", i) for i in order[:n_ok][::-1][:k]]
        l1 = arrays["methods"][0].per_frame_l1_mm
        for r, (label, i) in enumerate(picks):
            tiles = [("colour", subset.color[i], None), ("true", truth8[i], "gray")]
            tiles += [(name, preds[name][i], "gray") for name in models]
            err = np.where(truth8[i] > 0, np.abs(truth8[i].astype(np.int16) - preds[first][i].astype(np.int16)), 0)
            tiles.append((f"|error| {first}", err, "inferno"))
            for c, (title, img, cmap) in enumerate(tiles):
                ax = fig.add_subplot(grid[1 + r, c])
                if cmap is None:
                    ax.imshow(img)
                elif cmap == "inferno":
                    ax.imshow(img, cmap=cmap, vmin=0, vmax=32)
                else:
                    ax.imshow(img, cmap=cmap, vmin=0, vmax=255)
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0 or (label == "worst" and r == k):
                    ax.set_title(title, fontsize=7)
                if c == 0:
                    ax.set_ylabel(f"{label}\nL1 {l1[i]:.1f} mm", fontsize=7)
    # title and legend in a band of their own above the plots (in the bars' panels they hid bars)
    fig.suptitle(f"{report['data']['file']} ({report['data']['split']}, {report['data']['crops']} crops, "
                 f"truth: {report['data']['truth']})", fontsize=10, y=1 - 0.08 / height_in)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 6), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.32 / height_in))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.65 / height_in))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def add_verification(report: dict[str, Any], arrays: Mapping[str, Any], data_path: str, verifier: str,
                     figure: str | None, pairs: str | None, split: str) -> None:
    """The hook for face verification: run ``models.verifier.runtime.evaluate_verification`` with every
    model's predictions, store its results as ``report["verification"]`` and plot its ROC curves."""
    from models.data.dataset import load_dataset
    from models.verifier.runtime import default_pairs_file, evaluate_verification

    data = load_dataset(data_path)
    pairs = pairs or str(default_pairs_file(data_path, "test" if split == "all" else split))
    where = np.flatnonzero(data.split_mask(split))
    generators = {}
    for name, pred in arrays["predictions"].items():
        if name in BASELINES:
            continue  # baselines carry no identity
        full = np.zeros(data.depth.shape, np.uint8)
        full[where] = pred
        generators[name] = full
    ev = evaluate_verification(data, verifier, generators=generators, pairs_file=pairs,
                               split="test" if split == "all" else split)
    report["verification"] = ev.to_dict()
    if figure:
        roc = Path(figure).with_name(Path(figure).stem + "_verification.png")
        ev.plot(roc)
        report["verification_figure"] = roc.name
