"""``launch.py build-dataset``: any sources -> one crop dataset file (``models.data.dataset`` format).

    python launch.py build-dataset --out data/virtual.npz \\
        --source virtual:heads=procedural,seed=0,subjects=0-79,frames=4000 --split train \\
        --source virtual:heads=procedural,seed=0,subjects=80-89,frames=500 --split val \\
        --source virtual:heads=procedural,seed=0,subjects=90-99,frames=500 --split test

    python launch.py build-dataset --out data/pandora.npz --source pandora:/data/pandora \\
        --val-subjects 9,18,21,22 --test-subjects 10,14,16,20

Every frame is located (the source's annotation when it has one, else colour + depth
detection; never smoothed), cropped with the one crop (``sensors.crop``), and stored as its
colour crop, 8-bit sensor depth, 8-bit clean depth where the source knows it, the crop's face
mask where the frames have one (``Frame.face_mask``: the virtual Kinect's people), D, subject,
frame index, head pose and split. Only crops are held: no full-resolution frame is written.

Splits are by identity, never by frame: ``--split NAME`` after a ``--source`` puts all of that
source in one split; otherwise each subject goes where ``--val-subjects`` / ``--test-subjects``
say (the rest to train), or, with ``--val-fraction`` / ``--test-fraction``, by a fixed hash of
its id. A subject that would land in two splits is an error.

Seekable sources are cut into chunks of frames shared out to ``--workers`` processes; a stream
that cannot seek is read by one worker. Frames without a face, with too few valid depth pixels
in the crop, or unreadable are skipped and counted by reason in the file's metadata, which also
records the command, the crop config, the locator and every source.
"""
from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

SPLIT_NAMES = ("train", "val", "test")
#: frames per work unit handed to a worker
CHUNK_FRAMES = 48
#: a crop needs at least this many valid 8-bit depth pixels (the metrics' guard)
DEFAULT_MIN_VALID = 100


@dataclass(frozen=True)
class BuildConfig:
    """One dataset build. ``sources``: ``{"uri": ..., "split": NAME or None}`` in order; untagged
    sources are split by subject: ``val_subjects`` / ``test_subjects``, else by a fixed hash with
    ``val_fraction`` / ``test_fraction``. Every ``every``-th frame of each source, at most
    ``max_frames`` read; the crop (``size_px``, ``window_mm`` wide, ``window_y_mm`` high (None:
    as wide), ``half_range_mm``); ``locator``: auto, annotation or detect; ``refiner`` a
    head-refiner file, ``"none"`` or None for the shipped one; ``centre_check``: every K-th
    annotated crop also located without the annotation (0: never); ``command`` is stored in
    the file's metadata."""

    sources: tuple[dict[str, Any], ...]
    out: str
    split_by: str = "subject"
    val_subjects: tuple[int, ...] = ()
    test_subjects: tuple[int, ...] = ()
    val_fraction: float = 0.0
    test_fraction: float = 0.0
    max_frames: int | None = None
    every: int = 1
    size_px: int = 100
    window_mm: float = 240.0
    window_y_mm: float | None = None
    half_range_mm: float = 150.0
    locator: str = "auto"
    refiner: str | None = None
    centre_check: int = 10
    min_valid: int = DEFAULT_MIN_VALID
    workers: int = 2
    progress: bool = True
    command: str = "launch.py build-dataset"


# --------------------------------------------------------------------------------------------
# the work


@dataclass(frozen=True)
class BuildSettings:
    """What every worker needs to crop frames (picklable)."""

    crop: dict[str, Any]
    locator_mode: str
    min_valid: int
    refiner: str | None = None
    centre_check: int = 0


@dataclass(frozen=True)
class WorkUnit:
    source_index: int
    uri: str
    start: int | None  # None: read the stream from its start (not seekable)
    stop: int | None   # exclusive; None: to the end
    every: int
    limit: int | None  # frames to read at most (non-seekable streams)


@dataclass
class UnitResult:
    source_index: int
    start: int
    color: list = field(default_factory=list)
    depth: list = field(default_factory=list)
    depth_clean: list = field(default_factory=list)
    face_mask: list = field(default_factory=list)
    distance_mm: list = field(default_factory=list)
    subject: list = field(default_factory=list)
    frame: list = field(default_factory=list)
    pose_deg: list = field(default_factory=list)
    methods: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    read: int = 0
    #: (sample within this unit, D from the annotation, D from the locator or NaN) per checked crop
    centre_check: list = field(default_factory=list)


_WORKER_SOURCES: dict[str, Any] = {}


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)  # one core per worker: the pool is the parallelism


def _pool_worker_init() -> None:
    """A pool worker leaves Ctrl-C to the parent, which stops the pool (the terminal sends SIGINT
    to every process of the group; a worker's own KeyboardInterrupt would print a traceback)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_init()


def _open(uri: str) -> Any:
    """A source per URI per process, kept open across work units."""
    from sensors.source import open_source

    src = _WORKER_SOURCES.get(uri)
    if src is None:
        src = open_source(uri)
        _WORKER_SOURCES[uri] = src
    return src


def _close_all() -> None:
    while _WORKER_SOURCES:
        _, src = _WORKER_SOURCES.popitem()
        src.close()


@functools.lru_cache(maxsize=2)
def _worker_refiner(path: str | None) -> Any:
    """The head refiner at ``path``, loaded once per worker process (not once per work unit)."""
    from models.refiner.runtime import load_refiner

    return load_refiner(path)


def process_unit(unit: WorkUnit, settings: BuildSettings) -> UnitResult:
    """Read, locate and crop the frames of one work unit."""
    import numpy as np

    from sensors.crop import CropConfig, crop_face
    from sensors.errors import FormatError, SensorError
    from sensors.geometry import euler_deg_from_rotation
    from sensors.locate.locator import HeadLocator, LocatorConfig

    config = CropConfig.from_dict(settings.crop)
    refiner = _worker_refiner(settings.refiner) if settings.locator_mode != "annotation" else None
    locator = HeadLocator(LocatorConfig(mode=settings.locator_mode, smoothing=False), live=False, refiner=refiner)
    checker = None
    if settings.centre_check and settings.locator_mode != "detect":
        checker = HeadLocator(LocatorConfig(mode="detect", smoothing=False), live=False,
                              refiner=_worker_refiner(settings.refiner))
    annotated = 0
    src = _open(unit.uri)
    res = UnitResult(unit.source_index, unit.start or 0)

    def skip(reason: str) -> None:
        res.skipped[reason] = res.skipped.get(reason, 0) + 1

    if unit.start is not None:
        assert unit.stop is not None
        positions: Any = range(unit.start, unit.stop, unit.every)
    else:
        positions = iter(int, 1)  # forever: read until the stream ends or the limit
    count = 0
    passed = 0  # frames of a stream that cannot seek, read through to keep every K-th
    for pos in positions:
        if unit.limit is not None and count >= unit.limit:
            break
        try:
            if unit.start is not None and (pos == unit.start or unit.every > 1):
                src.seek(pos)
            frame = src.read(timeout_s=10.0)
            if unit.start is None:
                passed += 1
                if (passed - 1) % unit.every:
                    continue
        except EOFError:
            break
        except FormatError:
            count += 1
            res.read += 1
            skip("unreadable")
            continue
        count += 1
        res.read += 1
        loc = locator.locate(frame)
        if loc is None:
            skip("no_face")
            continue
        try:
            crop = crop_face(frame, loc.center_color_mm, config)
        except SensorError:
            skip("head_behind_camera")
            continue
        d8 = crop.depth8()
        if d8 is None:
            skip("no_depth")
            continue
        if int(np.count_nonzero(d8)) < settings.min_valid:
            skip("too_few_valid_depth")
            continue
        res.methods[loc.method] = res.methods.get(loc.method, 0) + 1
        if checker is not None and loc.method == "annotation":
            if annotated % settings.centre_check == 0:
                found = checker.locate(frame)
                res.centre_check.append((len(res.color), crop.distance_mm,
                                         math.nan if found is None else found.distance_mm))
            annotated += 1
        res.color.append(crop.color)
        res.depth.append(d8)
        clean8 = crop.depth_clean8()
        res.depth_clean.append(clean8)
        face = crop.face_mask
        if face is not None:  # only pixels that keep a valid 8-bit depth (the metrics' pixels)
            face = face & ((clean8 if clean8 is not None else d8) > 0)
        res.face_mask.append(face)
        res.distance_mm.append(crop.distance_mm)
        res.subject.append(frame.subject_id)
        res.frame.append(int(frame.index))
        if frame.head_rotation is not None:
            r = frame.head_rotation
            if frame.depth_camera is not None:
                r = frame.depth_to_color.rotation @ r  # pose as the colour camera sees it
            res.pose_deg.append(euler_deg_from_rotation(r))
        else:
            res.pose_deg.append((math.nan, math.nan, math.nan))
    return res


def _process_unit_star(args: tuple[WorkUnit, BuildSettings]) -> UnitResult:
    return process_unit(*args)


def plan_units(sources: list[dict], every: int, max_frames: int | None) -> tuple[list[WorkUnit], list[int | None]]:
    """Work units for every source, and each source's number of frames to read (None: unknown)."""
    from sensors.errors import ConfigError
    from sensors.source import open_source, seekable_length

    units: list[WorkUnit] = []
    totals: list[int | None] = []
    for i, s in enumerate(sources):
        s["uri"] = unpaced_uri(s["uri"])
        src = open_source(s["uri"])
        try:
            if src.is_live and max_frames is None:
                raise ConfigError(f"source {s['uri']} is live: give --max-frames to bound it")
            s["describe"] = src.describe()
            if s["describe"].get("evaluation_only") and s.get("split") != "test": raise ConfigError(f"source {s['uri']} is a real person's scan for evaluation only: give it --split test")  # noqa: E501,E701
            n = seekable_length(src)
            if n is not None:
                stop = n
                if max_frames is not None:
                    stop = min(n, max_frames * every)
                totals.append(len(range(0, stop, every)))
                step = CHUNK_FRAMES * every
                for start in range(0, stop, step):
                    units.append(WorkUnit(i, s["uri"], start, min(stop, start + step), every, None))
            else:
                totals.append(max_frames)
                units.append(WorkUnit(i, s["uri"], None, None, every, max_frames))
        finally:
            src.close()
    return units, totals


def unpaced_uri(uri: str) -> str:
    """The URI with ``pace=off`` added when its source knows that option and the user left it out:
    a dataset is built as fast as frames can be read, not in real time."""
    from sensors.errors import ConfigError
    from sensors.source import parse_uri, source_class

    parsed = parse_uri(uri)
    if "pace" in parsed.options:
        return uri
    candidate = type(parsed)(parsed.scheme, parsed.target, {**parsed.options, "pace": "off"})
    try:
        source_class(parsed.scheme)(candidate)  # constructing reads the options; nothing opens
    except ConfigError as exc:
        if "pace" in str(exc):
            return uri
        raise
    return str(candidate)


def subject_split(subject: int, val: set[int], test: set[int], val_fraction: float, test_fraction: float) -> str:
    """Split of one identity: the explicit lists first, else a fixed hash of the id."""
    if subject in test:
        return "test"
    if subject in val:
        return "val"
    if val or test or (val_fraction == 0 and test_fraction == 0):
        return "train"
    h = zlib.crc32(str(subject).encode()) / 2 ** 32
    if h < test_fraction:
        return "test"
    if h < test_fraction + val_fraction:
        return "val"
    return "train"


def build_dataset(cfg: BuildConfig) -> int:
    """Build the dataset file ``cfg.out``; prints what it holds and what was skipped."""
    from models.data.dataset import SPLITS, CropDataset
    from sensors.crop import CropConfig
    from sensors.errors import ConfigError, FormatError

    if not cfg.sources:
        raise ConfigError("give at least one --source")
    if cfg.val_fraction + cfg.test_fraction >= 1.0:
        raise ConfigError("--val-fraction plus --test-fraction must stay below 1")
    if (cfg.val_subjects or cfg.test_subjects) and (cfg.val_fraction or cfg.test_fraction):
        raise ConfigError("give subject lists or fractions, not both")
    both = set(cfg.val_subjects) & set(cfg.test_subjects)
    if both:
        raise ConfigError(f"subjects {sorted(both)} are in both --val-subjects and --test-subjects")
    out_dir = os.path.dirname(os.path.abspath(cfg.out))
    if not os.path.isdir(out_dir):
        raise FormatError("output folder does not exist", out_dir)
    config = CropConfig(size_px=cfg.size_px, window_x_mm=cfg.window_mm,
                        window_y_mm=cfg.window_y_mm or cfg.window_mm, half_range_mm=cfg.half_range_mm)
    from models.refiner.runtime import DEFAULT_PATH

    if cfg.locator != "annotation":
        _worker_refiner(cfg.refiner or DEFAULT_PATH)  # a bad file fails here, named, before any work
    settings = BuildSettings(config.to_dict(), cfg.locator, cfg.min_valid, cfg.refiner or DEFAULT_PATH,
                             cfg.centre_check)
    sources = [dict(s) for s in cfg.sources]
    units, totals = plan_units(sources, cfg.every, cfg.max_frames)
    t0 = time.monotonic()
    results = _run_units(units, settings, cfg.workers, totals, quiet=not cfg.progress)
    dataset, summary = assemble(results, sources, cfg, config)
    meta = {
        "command": cfg.command,
        "crop": config.to_dict(),
        "locator": cfg.locator,
        "refiner": None if cfg.locator == "annotation" else (cfg.refiner or "models/weights/head_refiner.onnx"),
        "min_valid_pixels": cfg.min_valid,
        "split_by": "source" if all(s["split"] for s in sources) else cfg.split_by,
        "val_subjects": list(cfg.val_subjects),
        "test_subjects": list(cfg.test_subjects),
        "val_fraction": cfg.val_fraction,
        "test_fraction": cfg.test_fraction,
        "pose": "yaw, pitch, roll in degrees in colour-camera axes: R = Ry(yaw) Rx(-pitch) Rz(roll), "
                "identity = facing the camera (sensors.geometry.euler_deg_from_rotation)",
        "build_seconds": round(time.monotonic() - t0, 1),
        **summary,
    }
    meta = json.loads(json.dumps(meta, default=str))  # plain JSON types only
    dataset = CropDataset(**{**dataset, "meta": meta})
    dataset.save(cfg.out)
    counts = {name: int((dataset.split == code).sum()) for name, code in SPLITS.items()}
    skipped = summary["skipped"]
    print(f"wrote {cfg.out}: {len(dataset)} crops ({', '.join(f'{k} {v}' for k, v in counts.items())}); "
          f"skipped {sum(skipped.values())} ({json.dumps(skipped) if skipped else 'none'})")
    return 0


def _run_units(units: list[WorkUnit], settings: BuildSettings, workers: int, totals: list[int | None],
               quiet: bool) -> list[UnitResult]:
    import multiprocessing as mp

    from tqdm import tqdm

    total = sum(t for t in totals if t is not None) if all(t is not None for t in totals) else None
    bar = tqdm(total=total, unit="frame", desc="build-dataset", disable=quiet, file=sys.stderr)
    results: list[UnitResult] = []
    try:
        if workers <= 1 or len(units) <= 1:
            _worker_init()
            try:
                for u in units:
                    r = process_unit(u, settings)
                    results.append(r)
                    bar.update(r.read)
            finally:
                _close_all()
        else:
            ctx = mp.get_context("spawn")
            with ctx.Pool(min(workers, len(units)), initializer=_pool_worker_init) as pool:
                for r in pool.imap_unordered(_process_unit_star, [(u, settings) for u in units]):
                    results.append(r)
                    bar.update(r.read)
    finally:
        bar.close()
    results.sort(key=lambda r: (r.source_index, r.start))
    return results


def assemble(results: list[UnitResult], sources: list[dict], cfg: BuildConfig,
             config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Stack the unit results into dataset arrays, assign splits, and summarise."""
    import numpy as np

    from models.data.dataset import SPLITS
    from sensors.errors import ConfigError

    s = config.size_px
    names: dict[str, int] = {}  # string subject ids -> stable integer ids

    def subject_int(sub: Any) -> int:
        if sub is None:
            return -1
        if isinstance(sub, (int, np.integer)):
            return int(sub)
        text = str(sub)
        if text.lstrip("-").isdigit():
            return int(text)
        if text not in names:
            names[text] = 1_000_000 + len(names)
        return names[text]

    cols: dict[str, list] = {k: [] for k in ("color", "depth", "depth_clean", "face_mask", "distance_mm",
                                             "subject", "frame", "pose_deg", "split")}
    per_source = [{"uri": src["uri"], "split": src["split"], "read": 0, "samples": 0, "skipped": {},
                   "methods": {}, "describe": src.get("describe", {})} for src in sources]
    val, test = set(cfg.val_subjects), set(cfg.test_subjects)
    subject_splits: dict[int, set[str]] = {}
    checks: list[list[float]] = []
    for r in results:
        checks += [[len(cols["color"]) + i, round(float(d_ann), 2),
                    None if math.isnan(d_loc) else round(float(d_loc), 2)] for i, d_ann, d_loc in r.centre_check]
        info = per_source[r.source_index]
        info["read"] += r.read
        info["samples"] += len(r.color)
        for k, v in r.skipped.items():
            info["skipped"][k] = info["skipped"].get(k, 0) + v
        for k, v in r.methods.items():
            info["methods"][k] = info["methods"].get(k, 0) + v
        fixed = sources[r.source_index]["split"]
        for i in range(len(r.color)):
            sub = subject_int(r.subject[i])
            split = fixed or subject_split(sub, val, test, cfg.val_fraction, cfg.test_fraction)
            if sub >= 0:
                subject_splits.setdefault(sub, set()).add(split)
            cols["color"].append(r.color[i])
            cols["depth"].append(r.depth[i])
            cols["depth_clean"].append(r.depth_clean[i])
            cols["face_mask"].append(r.face_mask[i])
            cols["distance_mm"].append(r.distance_mm[i])
            cols["subject"].append(sub)
            cols["frame"].append(r.frame[i])
            cols["pose_deg"].append(r.pose_deg[i])
            cols["split"].append(SPLITS[split])
    leaks = sorted(k for k, v in subject_splits.items() if len(v) > 1)
    if leaks:
        raise ConfigError(
            f"subjects {leaks[:10]} would be in more than one split (splits are by identity): give the "
            f"sources disjoint subject ranges"
        )
    n = len(cols["color"])
    clean = cols["depth_clean"]
    # clean depth is stored only when every sample has it (a file's target is uniform)
    has_clean = n > 0 and all(c is not None for c in clean)
    # likewise the face mask: only when every sample's frame had one
    has_face = n > 0 and all(m is not None for m in cols["face_mask"])
    data = {
        "color": np.stack(cols["color"]) if n else np.zeros((0, s, s, 3), np.uint8),
        "depth": np.stack(cols["depth"]) if n else np.zeros((0, s, s), np.uint8),
        "depth_clean": np.stack(clean) if has_clean else None,
        "face_mask": np.stack(cols["face_mask"]) if has_face else None,
        "distance_mm": np.asarray(cols["distance_mm"], np.float32),
        "subject": np.asarray(cols["subject"], np.int32),
        "frame": np.asarray(cols["frame"], np.int64),
        "pose_deg": np.asarray(cols["pose_deg"], np.float32).reshape(n, 3),
        "split": np.asarray(cols["split"], np.uint8),
    }
    skipped: dict[str, int] = {}
    for info in per_source:
        for k, v in info["skipped"].items():
            skipped[k] = skipped.get(k, 0) + v
    summary = {
        "sources": per_source,
        "samples": n,
        "frames_read": sum(i["read"] for i in per_source),
        "skipped": skipped,
        "clean_depth": bool(has_clean),
        "face_mask": bool(has_face),
        "subjects": {name: sorted({int(sb) for sb, sp in zip(cols["subject"], cols["split"]) if sp == code})
                     for name, code in SPLITS.items()},
        "subject_names": {v: k for k, v in names.items()},
        "head_centre_check": {
            "every": cfg.centre_check,
            "what": "D from the annotation and from the locator without it (colour + depth with the refiner), "
                    "on every K-th annotated crop: [crop index, D annotation mm, D locator mm or null]",
            "rows": checks},
    }
    return data, summary
