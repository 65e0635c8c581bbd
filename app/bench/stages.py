"""The stage timings of ``launch.py bench``: every stage of :data:`~app.bench.plan.STAGES`, one
function per group of stages, timed on the sample frames of the recording."""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.bench.plan import STAGES, BenchPlan
from app.bench.recording import RecordingSample
from app.bench.timing import summarize, time_calls, unavailable
from sensors.errors import FormatError
from sensors.frame import Frame
from sensors.source import open_source

#: times one call ``fn(i)`` the plan's number of times (:func:`~app.bench.timing.time_calls`)
Timer = Callable[[Callable[[int], Any]], dict[str, Any]]


@dataclass
class StageTimes:
    """The timings of the stages measured so far, and a note on what each one measured."""

    stages: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, timing: dict[str, Any], note: str | None = None) -> None:
        self.stages[name] = timing
        if note is not None:
            self.notes[name] = note


@dataclass(frozen=True)
class AnnotatedCrops:
    """The annotated head of each sample frame (None: none), the indices of the frames with one,
    and their crops."""

    heads: list[Any]
    indices: list[int]
    crops: list[Any]

    def pick(self, i: int) -> int:
        """The ``i``-th annotated frame, cycling."""
        return self.indices[i % len(self.indices)]


def bench_stages(sample: RecordingSample, recording: Path, generator: Any, verifier: Any, plan: BenchPlan,
                 workdir: Path) -> tuple[dict[str, Any], dict[str, Any], list[np.ndarray]]:
    """Every stage of :data:`STAGES` timed on the sample frames; returns (stages, notes, the colour
    crops of the annotated sample frames)."""
    from sensors.crop import CropConfig

    def timed(fn: Callable[[int], Any]) -> dict[str, Any]:
        return time_calls(fn, plan.stage_runs, plan.warmup, plan.max_s, plan.min_runs)

    cfg = CropConfig.from_dict(dict(generator.crop_config_dict))
    out = StageTimes()
    bench_decode(out, sample, cfg, timed)
    bench_replay_read(out, recording, len(sample.frames), timed)
    annotated = bench_annotation_and_crop(out, sample.frames, cfg, timed)
    bench_detection(out, sample.frames, annotated, timed)
    preds, pairs = bench_inference(out, annotated.crops, generator, verifier, cfg, timed)
    out.add("record.write", bench_record_write(sample.frames, preds, pairs, workdir / "stage_record.mcap", plan),
            "the recorder thread's time per frame (JPEG colour, raw depth, prediction, metrics, "
            "one flushed chunk); its CPU time is the process's while the caller only waits")
    return {s: out.stages[s] for s in STAGES}, out.notes, [c.color for c in annotated.crops]


def bench_decode(out: StageTimes, sample: RecordingSample, cfg: Any, timed: Timer) -> None:
    """Decoding the recorded JPEG colour, at full and at half size."""
    import cv2

    if not sample.jpegs:
        out.add("decode.jpeg_1080p", unavailable("the recording's colour is not JPEG"))
        out.add("decode.jpeg_reduced2", unavailable("the recording's colour is not JPEG"))
        return
    jp = [np.frombuffer(b, np.uint8) for b in sample.jpegs]
    half_rgb = (cv2.IMREAD_REDUCED_COLOR_2 & ~cv2.IMREAD_COLOR) | cv2.IMREAD_COLOR_RGB
    out.add("decode.jpeg_1080p", timed(lambda i: cv2.imdecode(jp[i % len(jp)], cv2.IMREAD_COLOR_RGB)),
            f"{sample.color_size[0]}x{sample.color_size[1]} JPEG as recorded, straight to RGB (as the replay "
            "decodes it)")
    out.add("decode.jpeg_reduced2", timed(lambda i: cv2.imdecode(jp[i % len(jp)], half_rgb)),
            reduced_decode_note(sample.frames[0], cfg, sample.distances_mm))


def bench_replay_read(out: StageTimes, recording: Path, frames: int, timed: Timer) -> None:
    """Reading a whole frame from the recording (of its first ``frames`` frames)."""
    with open_source(f"replay:{recording},pace=off") as replay:
        n_rec = min(len(replay), frames)  # type: ignore[arg-type]

        def read(i: int) -> None:
            replay.seek(i % n_rec)  # type: ignore[attr-defined]
            replay.read(5.0)

        out.add("read.replay_frame", timed(read),
                "one whole frame from the MCAP file: chunk, messages, JPEG colour, raw depth")


def bench_annotation_and_crop(out: StageTimes, frames: list[Frame], cfg: Any, timed: Timer) -> AnnotatedCrops:
    """The annotated head of each frame, the depth registration of its crop window, the crop."""
    from sensors.crop import crop_face, register_depth, window_px_for
    from sensors.locate.locator import HeadLocator, LocatorConfig

    annot = HeadLocator(LocatorConfig(mode="annotation"))
    heads = [annot.locate(f) for f in frames]
    idx = [i for i, h in enumerate(heads) if h is not None]
    if not idx:
        for s in ("locate.annotation", "register", "crop"):
            out.add(s, unavailable("the recording has no head annotations"))
        return AnnotatedCrops(heads, idx, [])
    pick = AnnotatedCrops(heads, idx, []).pick
    out.add("locate.annotation", timed(lambda i: annot.locate(frames[pick(i)])),
            "the recorded head centre, moved to colour-camera coordinates")
    windows = {i: window_px_for(heads[i].center_color_mm, frames[i].color_camera, cfg)[1] for i in idx}
    if frames[0].depth_mm is not None:
        out.add("register", timed(lambda i: register_depth(
                frames[pick(i)], windows[pick(i)], cfg.size_px, heads[pick(i)].distance_mm, cfg.depth_margin_mm)),
                "the depth points inside the crop window only, onto the S x S grid (z-buffered splats)")
    else:
        out.add("register", unavailable("the recording has no depth"))
    out.add("crop", timed(lambda i: crop_face(frames[pick(i)], heads[pick(i)].center_color_mm, cfg)),
            "colour (area-filtered resampling) and depth registration of one window")
    return AnnotatedCrops(heads, idx, [crop_face(frames[i], heads[i].center_color_mm, cfg) for i in idx])


def bench_detection(out: StageTimes, frames: list[Frame], annotated: AnnotatedCrops, timed: Timer) -> None:
    """Face detection with the shipped head refiner as the app uses it: afresh on every frame
    (offline use), and tracking consecutive frames (live); and the refiner alone."""
    from models.refiner.runtime import load_refiner
    from sensors.locate.locator import HeadLocator, LocatorConfig

    k = len(frames)
    heads, pick = annotated.heads, annotated.pick
    refiner = load_refiner() if frames[0].depth_mm is not None else None
    if refiner is not None and annotated.indices:
        out.add("locate.refine", timed(lambda i: refiner(frames[pick(i)], heads[pick(i)].center_color_mm)),
                f"the head refiner's {refiner.spec.iterations} steps from a head centre (crop and network each)")
    else:
        out.add("locate.refine", unavailable("no depth, no annotated heads, or no shipped head refiner"))
    with_refiner = "; with the head refiner" if refiner is not None else "; without a head refiner"
    extra = {"locate.detect_fresh": "; every frame searched afresh (no track): with depth, the depth image's head "
                                    "candidates and the cascades near them, the whole frame only when neither finds "
                                    "a head" + with_refiner,
             "locate.detect_tracking": with_refiner + f"; the {k} sample frames in order, cycled; the search region "
                                                      "follows the last face once there is one"}
    for name, live in (("locate.detect_fresh", False), ("locate.detect_tracking", True)):
        locator = HeadLocator(LocatorConfig(mode="detect"), live=live, refiner=refiner)
        found = [0, 0]

        def detect(i: int, locator: HeadLocator = locator, found: list[int] = found) -> None:
            found[0] += locator.locate(frames[i % k]) is not None
            found[1] += 1

        timing = timed(detect)
        out.add(name, timing, f"face found in {found[0]} of {found[1]} calls" + extra[name])


def bench_inference(out: StageTimes, crops: list[Any], generator: Any, verifier: Any, cfg: Any,
                    timed: Timer) -> tuple[list[np.ndarray], list[Any]]:
    """Encoding, the generator, the metrics and a verifier pair on the crops; returns the
    predictions and the (prediction, true depth, crop) pairs of the crops with depth."""
    from models.metrics import depth_metrics

    with_depth = [c for c in crops if c.depth_mm is not None]
    if with_depth:
        out.add("encode", timed(lambda i: with_depth[i % len(with_depth)].depth8()),
                "the depth crop (mm) to 8-bit levels around D")
    else:
        out.add("encode", unavailable("no depth crops"))
    preds = []
    if crops:
        out.add("generator", timed(lambda i: generator.predict(crops[i % len(crops)].color)),
                f"{generator.provider}, 1 intra-op thread, batch 1 (the live call, predict)")
        preds = [generator.predict(c.color) for c in crops]
    else:
        out.add("generator", unavailable("no crops"))
    pairs = [(p, c.depth8(), c) for p, c in zip(preds, crops) if c.depth_mm is not None]
    if not pairs:
        out.add("metrics", unavailable("no depth crops"))
        out.add("verifier_pair", unavailable("no depth crops" if verifier is not None else "no verifier"))
        return preds, pairs

    def pair(i: int) -> tuple[Any, Any, Any]:
        return pairs[i % len(pairs)]

    out.add("metrics", timed(lambda i: depth_metrics(pair(i)[0], pair(i)[1], pair(i)[2].distance_mm,
                                                     cfg.half_range_mm)),
            "every 8-bit and millimetre metric of one frame")
    if verifier is not None:
        out.add("verifier_pair", timed(lambda i: verifier.score(pair(i)[0], pair(i)[1])),
                "predicted vs true depth crop, embedded as one batch of two")
    else:
        out.add("verifier_pair", unavailable("no verifier (pass --verifier FILE.onnx)"))
    return preds, pairs


def reduced_decode_note(frame: Frame, cfg: Any, distances_mm: Sequence[float]) -> str:
    """Whether half-size JPEG decoding would keep every detail the crop uses: the window spans
    w = f_x R_x / D colour pixels, which is at least 2 S (so S at half size) while D <= f_x R_x / (2 S)."""
    fx = frame.color_camera.fx
    d_max = fx * min(cfg.window_x_mm, cfg.window_y_mm * frame.color_camera.fy / fx) / (2 * cfg.size_px)
    text = (f"{frame.color_camera.width // 2}x{frame.color_camera.height // 2} (IMREAD_REDUCED_COLOR_2); the crop "
            f"loses nothing by it while the head is within {d_max:.0f} mm (window >= {2 * cfg.size_px} px)")
    if distances_mm:
        share = float(np.mean(np.asarray(distances_mm) <= d_max))
        text += (f": {share:.0%} of this recording's frames (heads at {min(distances_mm):.0f}-{max(distances_mm):.0f} "
                 "mm); the replay decodes at full size")
    return text


def bench_record_write(frames: list[Frame], preds: list[np.ndarray], pairs: list[Any], path: Path,
                       plan: BenchPlan) -> dict[str, Any]:
    """The recorder thread's per-frame cost on the sample frames (prediction and metrics attached):
    its own wall time per frame, and the process CPU time while this thread only waits."""
    from models.metrics import depth_metrics
    from sensors.recording import Recorder

    metrics = None
    if pairs:
        p, t, c = pairs[0]
        metrics = dict(depth_metrics(p, t, c.distance_mm, c.config.half_range_mm))
    pred = preds[0] if preds else None

    def wait_written(rec: Recorder, n: int) -> None:
        deadline = time.monotonic() + 60.0
        while rec.frames_written < n and rec.error is None and time.monotonic() < deadline:
            time.sleep(0.002)

    def put(rec: Recorder, i: int) -> None:
        if not rec.write(frames[i % len(frames)], pred, metrics, wait_s=30.0):
            raise FormatError(f"the recorder refused a frame ({rec.error or 'queue full'})", path)

    with Recorder(path, source_info={"uri": "bench"}) as rec:
        for i in range(plan.warmup):
            put(rec, i)
        wait_written(rec, plan.warmup)
        cpu0 = time.process_time()
        start = time.perf_counter()
        n = 0
        while n < plan.stage_runs and not (n >= plan.min_runs and time.perf_counter() - start > plan.max_s):
            put(rec, plan.warmup + n)
            n += 1
        wait_written(rec, plan.warmup + n)
        cpu = time.process_time() - cpu0
        times = rec.encode_ms[plan.warmup:plan.warmup + n]
    path.unlink(missing_ok=True)
    if rec.error is not None:
        return unavailable(f"the recorder failed: {rec.error}")
    return summarize(times, cpu * len(times) / max(n, 1))
