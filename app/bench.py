"""``launch.py bench``: how fast the app is on this machine, in a form anyone can rerun.

    python launch.py bench                       # the full run (a few minutes)
    python launch.py bench --quick --json b.json # the short run the test suite uses
    python launch.py bench --model my.onnx --recording my_session.mcap --soak 10000

Everything is measured after warm-up, as p50 / p95 / p99 and the mean of many runs, with the
process CPU time beside the wall time (on a shared machine other jobs disturb wall-clock
timings; CPU time shows what the work itself cost):

1. **A Kinect v2-sized recording with annotations.** The virtual Kinect (1920x1080 colour,
   512x424 depth, head centres) is recorded to a temporary MCAP file (``--frames``; 100 with
   ``--quick``, 3000 otherwise), the way ``launch.py record`` records a sensor: no noise-free
   depth, JPEG colour. ``--recording FILE.mcap`` benchmarks a recording of your own instead.
2. **Each stage** on frames of that recording: decoding a recorded colour frame (full 1080p,
   and OpenCV's reduced-resolution decoding at half size, with the head distances at which
   the crop would lose nothing by it), reading a whole frame from the recording, registering
   the depth of the crop window, head localisation (annotation; face detection afresh; live
   tracking), the crop, the 8-bit encoding, the generator, the metrics, a verifier pair and
   writing a frame to a recording (the recorder thread's cost per frame).
3. **The generator**: ONNX Runtime on every provider that really loads, batch 1 and 32, with
   the live app's setting (1 intra-op thread) and ONNX Runtime's default; PyTorch eager at
   its default settings (and with 1 thread) on the same crops, batch 1 and 32 (1 only with
   ``--quick``), run by ``python -m models.generator.bench_torch`` in its own process (the app never
   imports torch) from the ``.pt`` checkpoint beside the ``.onnx`` file (or ``--checkpoint``;
   its output is compared with ONNX Runtime's), else from the architecture in the ONNX
   metadata with random weights (same cost), else reported as not available.
4. **The whole headless pipeline** (``app.pipeline.Pipeline``: capture thread, inference
   thread, the generator, metrics and the verifier when there is one) in a separate process,
   so that its memory is the app's alone: the recording replayed as fast as possible (frames
   per second on the wall clock; the threaded pipeline, and ``step()`` on one thread), and
   replayed the way a sensor delivers frames at the recorded 30 fps: each frame is stamped
   when it is due (the moment a sensor would capture it), reading and decoding it count as
   the app's work, and capture-to-result latency and dropped frames (frames the pipeline
   never processed: overwritten in its mailbox or already stale when read) are reported.
5. **Memory**: the pipeline process's peak resident memory (:func:`peak_rss_mb`) and how much
   its resident memory grew after warm-up; ``--soak N`` adds an N-frame run (the recording
   looped) for the flat-memory target.

Wall-clock timings of a stage stop early after ``BenchPlan.max_s`` seconds, so a busy machine
cannot stretch a run without bound; the run counts are in the report.

The JSON report (``--json``) holds, among the rest, ``generator.onnx_ms_p50`` (CPU, batch 1,
1 thread), ``generator.torch_ms_p50``, ``pipeline.fps``, ``pipeline.latency_ms_p99``,
``pipeline.dropped``, ``memory.peak_mb``, ``memory.rss_growth_mb``, per-stage
``stages.<name>.ms_p50`` / ``ms_p95`` / ``ms_p99`` / ``ms_mean`` / ``cpu_ms_mean`` / ``runs``,
``targets`` (each with its value and whether it is met), ``machine`` (CPU model, cores, GPU,
load average before and after), ``commit`` and ``date``.
"""
from __future__ import annotations

import argparse
import bisect
import dataclasses
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sensors.errors import ConfigError, FacedepthError, FormatError, ModelError
from sensors.frame import Frame
from sensors.source import Source, SourceURI, open_source, parse_uri

ROOT = Path(__file__).resolve().parents[1]
BENCH_FORMAT = 1
#: the source recorded when no ``--recording`` is given: the virtual Kinect v2, as fast as it renders
VIRTUAL_SOURCE = "virtual:seed=0,pace=off"
#: every stage the report times, in table order
STAGES = (
    "decode.jpeg_1080p", "decode.jpeg_reduced2", "read.replay_frame", "register", "locate.annotation", "locate.refine",
    "locate.detect_fresh", "locate.detect_tracking", "crop", "encode", "generator", "metrics", "verifier_pair",
    "record.write",
)
#: ONNX Runtime's names of the providers ``models.generator.runtime.DepthGenerator`` can ask for
ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                 "tensorrt": "TensorrtExecutionProvider"}
#: the targets of issue 9 on a 2-core CPU machine (and one for a GPU machine)
TARGET_FPS = 90.0
TARGET_LATENCY_P99_MS = 20.0
TARGET_GENERATOR_MS = 3.0
TARGET_RSS_GROWTH_MB = 50.0
TARGET_GPU_CROPS_PER_S = 5000.0


@dataclass(frozen=True)
class BenchPlan:
    """How much of everything a run measures.

    ``frames`` recorded frames (the pipeline runs replay all of them); ``sample_frames``
    consecutive frames held in memory for the stage timings; ``stage_runs`` / ``warmup``
    timed and untimed calls per stage; ``generator_runs`` / ``batch_runs`` timed generator
    calls at batch 1 / batch 32; ``max_s``: a timing stops early after this many seconds
    (with at least ``min_runs`` runs), so a slow stage on a busy machine cannot stretch a run
    without bound; ``pipeline_warmup`` results of each pipeline run left out of its figures;
    ``torch_batches`` the batch sizes PyTorch is timed at.
    """

    frames: int
    sample_frames: int
    stage_runs: int
    warmup: int
    generator_runs: int
    batch_runs: int
    max_s: float
    min_runs: int
    pipeline_warmup: int
    torch_batches: tuple[int, ...]


QUICK = BenchPlan(frames=100, sample_frames=12, stage_runs=30, warmup=3, generator_runs=200, batch_runs=6,
                  max_s=1.0, min_runs=5, pipeline_warmup=10, torch_batches=(1,))
FULL = BenchPlan(frames=3000, sample_frames=60, stage_runs=300, warmup=20, generator_runs=2000, batch_runs=60,
                 max_s=30.0, min_runs=20, pipeline_warmup=60, torch_batches=(1, 32))
#: the frame period of the recordings the virtual Kinect makes here (Kinect v2: 30 Hz)
FRAME_PERIOD_NS = 33_333_333


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", default=None, metavar="FILE", help="write the full report here as JSON")
    p.add_argument("--quick", action="store_true",
                   help=f"a short run ({QUICK.frames} frames, fewer repetitions: about half a minute)")
    p.add_argument("--model", default=None, metavar="FILE.onnx",
                   help="the depth generator (default: the shipped models/weights/generator.onnx)")
    p.add_argument("--checkpoint", default=None, metavar="FILE.pt",
                   help="its PyTorch checkpoint for the PyTorch timing (default: the .pt beside the model, if any)")
    p.add_argument("--verifier", default=None, metavar="FILE.onnx",
                   help="the face verifier (default: the shipped models/weights/verifier.onnx when present)")
    p.add_argument("--frames", type=int, default=None, metavar="N",
                   help=f"frames to record and replay (default {FULL.frames}, {QUICK.frames} with --quick)")
    p.add_argument("--recording", default=None, metavar="FILE.mcap",
                   help="replay this recording instead of recording the virtual Kinect (its first --frames frames)")
    p.add_argument("--source", default=VIRTUAL_SOURCE, metavar="URI",
                   help="the source recorded when no --recording is given (default: %(default)s)")
    p.add_argument("--soak", type=int, default=0, metavar="N",
                   help="also run the pipeline over N frames (the recording looped) for memory growth, e.g. 10000")


# -- timing ----------------------------------------------------------------------------------
def summarize(times_ms: Sequence[float], cpu_s: float | None = None) -> dict[str, Any]:
    """p50 / p95 / p99 / mean / min / max (ms) of per-run times, and the mean CPU time per run
    when the total process CPU time ``cpu_s`` of the runs is given."""
    a = np.asarray(times_ms, dtype=np.float64)
    if a.size == 0:
        return {"available": False, "reason": "no runs", "runs": 0}
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    out: dict[str, Any] = {"ms_p50": round(float(p50), 4), "ms_p95": round(float(p95), 4),
                           "ms_p99": round(float(p99), 4), "ms_mean": round(float(a.mean()), 4),
                           "ms_min": round(float(a.min()), 4), "ms_max": round(float(a.max()), 4), "runs": int(a.size)}
    if cpu_s is not None:
        out["cpu_ms_mean"] = round(cpu_s * 1e3 / a.size, 4)
    return out


def time_calls(fn: Callable[[int], Any], runs: int, warmup: int, max_s: float | None = None,
               min_runs: int = 10) -> dict[str, Any]:
    """Call ``fn(i)`` ``warmup`` times untimed, then ``runs`` times timed (fewer, but at least
    ``min_runs``, once ``max_s`` seconds have passed); :func:`summarize` it."""
    for i in range(warmup):
        fn(i)
    times = []
    cpu0 = time.process_time()
    start = time.perf_counter()
    for i in range(runs):
        t0 = time.perf_counter()
        fn(warmup + i)
        t1 = time.perf_counter()
        times.append((t1 - t0) * 1e3)
        if max_s is not None and len(times) >= min_runs and t1 - start > max_s:
            break
    return summarize(times, time.process_time() - cpu0)


def unavailable(reason: str) -> dict[str, Any]:
    return {"available": False, "reason": reason}


# -- the machine -----------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, GPU (when nvidia-smi finds one) and library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    mem_mb = None
    try:
        mem_mb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 20)
    except (ValueError, OSError, AttributeError):
        pass
    gpus: list[str] = []
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name,memory.total", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=10)
            gpus = [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []
        except (OSError, subprocess.SubprocessError):
            gpus = []
    import cv2
    import onnxruntime as ort

    return {"cpu": cpu, "cores": os.cpu_count(), "cores_usable": usable, "memory_mb": mem_mb,
            "gpu": gpus or None, "os": platform.platform(), "python": platform.python_version(),
            "numpy": np.__version__, "opencv": cv2.__version__, "onnxruntime": ort.__version__,
            "load_average_before": [round(x, 2) for x in os.getloadavg()]}


def rss_mb() -> float | None:
    """This process's resident memory now (MB), from /proc; None where there is no /proc."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB).

    ``ru_maxrss`` (kB on Linux, bytes on macOS), except where /proc gives ``VmHWM``: on Linux a
    process started by fork + exec inherits its parent's ``ru_maxrss``, so a child of a larger
    process would report the parent's peak; ``VmHWM`` belongs to the process's own memory map.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 1024


# -- the recording -----------------------------------------------------------------------------
def record_source(uri: str, frames: int, path: Path) -> dict[str, Any]:
    """Record ``frames`` frames of ``uri`` to ``path`` as ``launch.py record`` would, as a Kinect v2
    delivers them: without the virtual Kinect's noise-free depth (no sensor has it) and stamped
    at 30 Hz (rendering as fast as possible stamps frames at the renderer's pace)."""
    from sensors.recording import Recorder

    t0 = time.perf_counter()
    written = 0
    with open_source(uri) as src:
        info = src.describe()
        with Recorder(path, source_info=info) as rec:
            for frame in src:
                if written >= frames:
                    break
                if written == 0:
                    t_first = frame.timestamp_ns
                stamped = dataclasses.replace(frame, depth_clean_mm=None,
                                              timestamp_ns=t_first + written * FRAME_PERIOD_NS)
                if not rec.write(stamped, wait_s=60.0):
                    raise FormatError(f"the recorder refused frame {frame.index} ({rec.error or 'queue full'})", path)
                written += 1
        stats = rec.close()
    if stats.error:
        raise FormatError(stats.error, path)
    return {"recorded_from": uri, "frames": stats.frames_written, "bytes": stats.bytes,
            "seconds": round(time.perf_counter() - t0, 2)}


@dataclass
class RecordingSample:
    """What the stage timings use: consecutive frames, their recorded JPEG colour, and the head
    distance (colour-camera z, mm) of every annotated frame in the recording."""

    frames: list[Frame]
    jpegs: list[bytes]
    distances_mm: list[float]
    color_size: tuple[int, int]
    depth_size: tuple[int, int] | None
    total_frames: int


def load_sample(path: Path, count: int, limit: int | None) -> RecordingSample:
    """The first ``count`` frames of a recording, their JPEG bytes and every frame's head distance."""
    from mcap.exceptions import McapError
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    from sensors.frame import Extrinsics
    from sensors.recording import TOPIC_COLOR, TOPIC_FRAME

    jpegs: list[bytes] = []
    distances: list[float] = []
    records = 0
    try:
        with open(path, "rb") as f:
            reader = make_reader(f, decoder_factories=[DecoderFactory()])
            for _, channel, _, msg in reader.iter_decoded_messages(topics=[TOPIC_COLOR, TOPIC_FRAME]):
                if channel.topic == TOPIC_COLOR:
                    if len(jpegs) < count and msg.format in ("jpeg", "jpg"):
                        jpegs.append(bytes(msg.data))
                    continue
                records += 1
                meta = json.loads(msg.data)
                head = meta.get("head_center_mm")
                if head is not None:
                    ext = (Extrinsics.from_dict(meta["depth_to_color"]) if meta.get("depth_camera")
                           else Extrinsics.identity())
                    distances.append(float(ext.apply(np.asarray(head, dtype=np.float64))[2]))
                if limit is not None and records >= limit:
                    break
    except (McapError, ValueError, KeyError, TypeError) as exc:
        raise FormatError(f"the recording cannot be read for the benchmark ({type(exc).__name__}: {exc})", path) from None
    frames: list[Frame] = []
    with open_source(f"replay:{path},pace=off") as src:
        total = len(src)  # type: ignore[arg-type]
        for frame in src:
            frames.append(frame)
            if len(frames) >= count:
                break
    if not frames:
        raise FormatError("the recording holds no frame", path)
    f0 = frames[0]
    return RecordingSample(frames, jpegs, distances, (f0.color.shape[1], f0.color.shape[0]),
                           None if f0.depth_mm is None else (f0.depth_mm.shape[1], f0.depth_mm.shape[0]),
                           min(total, limit) if limit else total)


# -- stage timings -----------------------------------------------------------------------------
def bench_stages(sample: RecordingSample, recording: Path, generator: Any, verifier: Any, plan: BenchPlan,
                 workdir: Path) -> tuple[dict[str, Any], dict[str, Any], list[np.ndarray]]:
    """Every stage of :data:`STAGES` timed on the sample frames; returns (stages, notes, the colour
    crops of the annotated sample frames)."""
    import cv2

    from models.metrics import depth_metrics
    from sensors.crop import CropConfig, crop_face, register_depth, window_px_for
    from sensors.locate.locator import HeadLocator, LocatorConfig

    def timed(fn: Callable[[int], Any]) -> dict[str, Any]:
        return time_calls(fn, plan.stage_runs, plan.warmup, plan.max_s, plan.min_runs)

    frames = sample.frames
    k = len(frames)
    cfg = CropConfig.from_dict(dict(generator.crop_config_dict))
    stages: dict[str, Any] = {}
    notes: dict[str, Any] = {}

    # decoding the recorded colour, and reading whole frames from the recording
    if sample.jpegs:
        jp = [np.frombuffer(b, np.uint8) for b in sample.jpegs]
        half_rgb = (cv2.IMREAD_REDUCED_COLOR_2 & ~cv2.IMREAD_COLOR) | cv2.IMREAD_COLOR_RGB
        stages["decode.jpeg_1080p"] = timed(lambda i: cv2.imdecode(jp[i % len(jp)], cv2.IMREAD_COLOR_RGB))
        stages["decode.jpeg_reduced2"] = timed(lambda i: cv2.imdecode(jp[i % len(jp)], half_rgb))
        notes["decode.jpeg_1080p"] = (f"{sample.color_size[0]}x{sample.color_size[1]} JPEG as recorded, straight to "
                                      "RGB (as the replay decodes it)")
        notes["decode.jpeg_reduced2"] = reduced_decode_note(frames[0], cfg, sample.distances_mm)
    else:
        stages["decode.jpeg_1080p"] = stages["decode.jpeg_reduced2"] = unavailable("the recording's colour is not JPEG")
    with open_source(f"replay:{recording},pace=off") as replay:
        n_rec = min(len(replay), k)  # type: ignore[arg-type]

        def read(i: int) -> None:
            replay.seek(i % n_rec)  # type: ignore[attr-defined]
            replay.read(5.0)

        stages["read.replay_frame"] = timed(read)
        notes["read.replay_frame"] = "one whole frame from the MCAP file: chunk, messages, JPEG colour, raw depth"

    # the annotated head of each frame, its crop window, the crop
    annot = HeadLocator(LocatorConfig(mode="annotation"))
    heads = [annot.locate(f) for f in frames]
    idx = [i for i, h in enumerate(heads) if h is not None]
    crops = []
    if idx:
        def pick(i: int) -> int:
            return idx[i % len(idx)]

        stages["locate.annotation"] = timed(lambda i: annot.locate(frames[pick(i)]))
        notes["locate.annotation"] = "the recorded head centre, moved to colour-camera coordinates"
        windows = {i: window_px_for(heads[i].center_color_mm, frames[i].color_camera, cfg)[1] for i in idx}
        if frames[0].depth_mm is not None:
            stages["register"] = timed(lambda i: register_depth(
                frames[pick(i)], windows[pick(i)], cfg.size_px, heads[pick(i)].distance_mm, cfg.depth_margin_mm))
            notes["register"] = "the depth points inside the crop window only, onto the S x S grid (z-buffered splats)"
        else:
            stages["register"] = unavailable("the recording has no depth")
        stages["crop"] = timed(lambda i: crop_face(frames[pick(i)], heads[pick(i)].center_color_mm, cfg))
        notes["crop"] = "colour (area-filtered resampling) and depth registration of one window"
        crops = [crop_face(frames[i], heads[i].center_color_mm, cfg) for i in idx]
    else:
        for s in ("locate.annotation", "register", "crop"):
            stages[s] = unavailable("the recording has no head annotations")

    # face detection, with the shipped head refiner as the app uses it: afresh on every frame
    # (offline use), and tracking consecutive frames (live)
    from models.refiner.runtime import load_refiner

    refiner = load_refiner() if frames[0].depth_mm is not None else None
    if refiner is not None and idx:
        stages["locate.refine"] = timed(lambda i: refiner(frames[pick(i)], heads[pick(i)].center_color_mm))
        notes["locate.refine"] = f"the head refiner's {refiner.spec.iterations} steps from a head centre (crop and network each)"
    else:
        stages["locate.refine"] = unavailable("no depth, no annotated heads, or no shipped head refiner")
    for name, live in (("locate.detect_fresh", False), ("locate.detect_tracking", True)):
        locator = HeadLocator(LocatorConfig(mode="detect"), live=live, refiner=refiner)
        found = [0, 0]

        def detect(i: int, locator: HeadLocator = locator, found: list[int] = found) -> None:
            found[0] += locator.locate(frames[i % k]) is not None
            found[1] += 1

        stages[name] = timed(detect)
        notes[name] = f"face found in {found[0]} of {found[1]} calls"
    notes["locate.detect_fresh"] += "; the whole frame searched every time"
    for name in ("locate.detect_fresh", "locate.detect_tracking"):
        notes[name] += "; with the head refiner" if refiner is not None else "; without a head refiner"
    notes["locate.detect_tracking"] += (f"; the {k} sample frames in order, cycled; the search region follows the "
                                        "last face once there is one")

    # encoding, generator, metrics and verifier on the crops
    with_depth = [c for c in crops if c.depth_mm is not None]
    if with_depth:
        stages["encode"] = timed(lambda i: with_depth[i % len(with_depth)].depth8())
        notes["encode"] = "the depth crop (mm) to 8-bit levels around D"
    else:
        stages["encode"] = unavailable("no depth crops")
    preds = []
    if crops:
        stages["generator"] = timed(lambda i: generator.predict(crops[i % len(crops)].color))
        notes["generator"] = f"{generator.provider}, 1 intra-op thread, batch 1 (the live call, predict)"
        preds = [generator.predict(c.color) for c in crops]
    else:
        stages["generator"] = unavailable("no crops")
    pairs = [(p, c.depth8(), c) for p, c in zip(preds, crops) if c.depth_mm is not None]
    if pairs:
        def pair(i: int) -> tuple[Any, Any, Any]:
            return pairs[i % len(pairs)]

        stages["metrics"] = timed(lambda i: depth_metrics(pair(i)[0], pair(i)[1], pair(i)[2].distance_mm,
                                                          cfg.half_range_mm))
        notes["metrics"] = "every 8-bit and millimetre metric of one frame"
        if verifier is not None:
            stages["verifier_pair"] = timed(lambda i: verifier.score(pair(i)[0], pair(i)[1]))
            notes["verifier_pair"] = "predicted vs true depth crop, embedded as one batch of two"
        else:
            stages["verifier_pair"] = unavailable("no verifier (pass --verifier FILE.onnx)")
    else:
        stages["metrics"] = unavailable("no depth crops")
        stages["verifier_pair"] = unavailable("no depth crops" if verifier is not None else "no verifier")
    stages["record.write"] = bench_record_write(frames, preds, pairs, workdir / "stage_record.mcap", plan)
    notes["record.write"] = ("the recorder thread's time per frame (JPEG colour, raw depth, prediction, metrics, "
                             "one flushed chunk); its CPU time is the process's while the caller only waits")
    return {s: stages[s] for s in STAGES}, notes, [c.color for c in crops]


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


# -- the generator -----------------------------------------------------------------------------
def bench_generator(model: Path, crops: np.ndarray, plan: BenchPlan) -> dict[str, Any]:
    """ONNX Runtime on each provider that loads: batch 1 and 32, 1 thread and the default."""
    import onnxruntime as ort

    from models.generator.runtime import DepthGenerator

    out: dict[str, Any] = {"providers": {}, "runs": {}}
    batch32 = crops[np.arange(32) % len(crops)]
    available = ort.get_available_providers()
    for kind, name in ORT_PROVIDERS.items():
        if name not in available:
            continue
        for threads in (1, 0):
            gen = DepthGenerator(model, provider=kind, threads=threads)
            if gen.provider != name:
                out["providers"][name] = f"does not load here: {gen.fallback_reason or gen.provider + ' was used'}"
                break
            out["providers"][name] = "loads"
            label = "1" if threads == 1 else "default"
            one = time_calls(lambda i, g=gen: g.predict(crops[i % len(crops)]), plan.generator_runs, plan.warmup * 5,
                             plan.max_s, plan.min_runs)
            many = time_calls(lambda i, g=gen: g.predict(batch32), plan.batch_runs, max(2, plan.warmup // 2), plan.max_s,
                              plan.min_runs)
            many["crop_ms_p50"] = round(many["ms_p50"] / 32, 4)
            many["crops_per_s"] = round(32e3 / many["ms_p50"], 1)
            one["crops_per_s"] = round(1e3 / one["ms_p50"], 1)
            out["runs"][f"{kind}/threads={label}/batch=1"] = one
            out["runs"][f"{kind}/threads={label}/batch=32"] = many
    live = out["runs"].get("cpu/threads=1/batch=1")
    out["onnx_ms_p50"] = live["ms_p50"] if live else None
    out["onnx_ms_p99"] = live["ms_p99"] if live else None
    gpu = [v["crops_per_s"] for key, v in out["runs"].items() if not key.startswith("cpu/") and key.endswith("batch=32")]
    out["gpu_crops_per_s_batch32"] = max(gpu) if gpu else None
    return out


def bench_torch(model: Path, checkpoint: Path | None, crops: np.ndarray, plan: BenchPlan, workdir: Path,
                onnx_reference: np.ndarray) -> dict[str, Any]:
    """PyTorch eager in its own process (``python -m models.generator.bench_torch``) on the same crops."""
    inp = workdir / "torch_input.npy"
    out_path = workdir / "torch_output.npy"
    np.save(inp, crops)
    cmd = [sys.executable, "-m", "models.generator.bench_torch", "--onnx", str(model), "--input", str(inp),
           "--runs", str(max(20, plan.generator_runs // 4)), "--batch-runs", str(plan.batch_runs),
           "--warmup", str(plan.warmup), "--max-seconds", str(plan.max_s), "--min-runs", str(plan.min_runs),
           "--threads", "1", "--output", str(out_path)]
    for batch in plan.torch_batches:
        cmd += ["--batch", str(batch)]
    if checkpoint is not None:
        cmd += ["--checkpoint", str(checkpoint)]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return unavailable("the PyTorch timing did not finish within 600 s")
    lines = proc.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if proc.returncode == 0 and lines else None
    except ValueError:
        result = None
    if result is None:
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return unavailable(f"the PyTorch timing failed (exit {proc.returncode}: {err[:200]})")
    if not result.get("available"):
        return unavailable(result.get("reason", "unknown"))
    out: dict[str, Any] = {"weights": result["weights"], "torch": result["torch"], "threads": result["threads"],
                           "device": result["device"], "runs": {}}
    for key, r in result["runs"].items():
        stats = summarize(r["times_ms"], r["cpu_s"])
        stats["crops_per_s"] = round(int(r["batch"]) * 1e3 / stats["ms_p50"], 1)
        out["runs"][key] = stats
    if out_path.exists():
        ref = np.load(out_path)
        out["max_abs_diff_vs_onnx"] = float(np.abs(ref - onnx_reference).max())
    return out


# -- the whole pipeline (in a separate process) ---------------------------------------------------
class SensorPacedReplay(Source):
    """A recording delivered the way a sensor delivers frames, for latency measurements.

    Frame i becomes due at the first read's time plus its recorded offset; ``read`` waits for
    it and returns it with ``timestamp_ns`` set to that moment on the monotonic clock (a live
    source's capture stamp), so reading and decoding it count as the app's work. A reader that
    falls behind gets the newest frame already due; the frames passed over are counted in
    ``skipped`` (a sensor overwrites them). ``uri``: ``replay:FILE.mcap`` (read unpaced inside).
    """

    is_live = True

    def __init__(self, uri: SourceURI, max_frames: int | None = None) -> None:
        super().__init__(uri)
        self._inner: Any = None
        self._offsets_ns: list[int] = []
        self._t0_ns: int | None = None
        self._next = 0
        self._max = max_frames
        self.skipped = 0

    def _open(self) -> None:
        self._inner = open_source(f"replay:{self.uri.target},pace=off")
        stamps = self._inner.timestamps_ns
        if self._max is not None:
            stamps = stamps[:self._max]
        self._offsets_ns = [t - stamps[0] for t in stamps] if stamps else []

    def _read(self, timeout_s: float) -> Frame:
        n = len(self._offsets_ns)
        if self._next >= n:
            raise EOFError(f"end of {self.uri}")
        now = time.monotonic_ns()
        if self._t0_ns is None:
            self._t0_ns = now
        i = self._next
        due = self._t0_ns + self._offsets_ns[i]
        if due > now:
            if (due - now) / 1e9 > timeout_s:
                time.sleep(max(timeout_s, 0.0))
                raise TimeoutError("next frame not due within the timeout")
            time.sleep((due - now) / 1e9)
        else:
            newest = bisect.bisect_right(self._offsets_ns, now - self._t0_ns) - 1
            if newest > i:
                self.skipped += newest - i
                i = newest
                due = self._t0_ns + self._offsets_ns[i]
        self._next = i + 1
        if self._inner.position != i:
            self._inner.seek(i)
        frame = self._inner.read(timeout_s)
        return dataclasses.replace(frame, timestamp_ns=due)

    def _close(self) -> None:
        if self._inner is not None:
            self._inner.close()


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds (user + system) of each live thread of this process, by thread name, read from
    /proc (empty where there is none)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for th in threading.enumerate():
        try:
            with open(f"/proc/self/task/{th.native_id}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[th.name] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, ValueError, IndexError, TypeError):
            continue
    return out


@dataclass
class RunFigures:
    """What one pipeline run measured after its warm-up results: frames, wall time, faces and
    scored frames, per-frame latencies and stage timings, process and per-thread CPU time per
    frame, and resident memory (after warm-up, at the end, the largest sample)."""

    frames: int = 0
    elapsed_s: float = 0.0
    faces: int = 0
    scored: int = 0
    latencies_ms: list[float] = dataclasses.field(default_factory=list)
    stage_ms: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    cpu_s: float = 0.0
    thread_cpu_s: dict[str, float] = dataclasses.field(default_factory=dict)
    thread_frames: dict[str, int] = dataclasses.field(default_factory=dict)
    rss_after_warmup_mb: float | None = None
    rss_end_mb: float | None = None
    rss_max_mb: float | None = None

    def to_dict(self, dropped: int | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {"frames": self.frames, "elapsed_s": round(self.elapsed_s, 4),
                             "fps": round(self.frames / self.elapsed_s, 2) if self.elapsed_s > 0 else None,
                             "faces": self.faces, "scored": self.scored,
                             "cpu_ms_per_frame": round(self.cpu_s * 1e3 / self.frames, 3) if self.frames else None,
                             "thread_cpu_ms_per_frame": {k: round(v * 1e3 / self.thread_frames[k], 3)
                                                         for k, v in self.thread_cpu_s.items()
                                                         if self.thread_frames.get(k)}}
        if self.latencies_ms:
            lat = summarize(self.latencies_ms)
            d.update({f"latency_{k}": v for k, v in lat.items() if k.startswith("ms_")})
        d["stages"] = {k: summarize(v) for k, v in self.stage_ms.items()}
        if dropped is not None:
            d["dropped"] = dropped
        d["rss_after_warmup_mb"] = _r(self.rss_after_warmup_mb)
        d["rss_end_mb"] = _r(self.rss_end_mb)
        d["rss_max_after_warmup_mb"] = _r(self.rss_max_mb)
        d["rss_growth_mb"] = (_r(self.rss_end_mb - self.rss_after_warmup_mb)
                              if self.rss_end_mb is not None and self.rss_after_warmup_mb is not None else None)
        return d


def _r(v: float | None, nd: int = 2) -> float | None:
    return None if v is None else round(float(v), nd)


class _Run:
    """Collects the results of one run: ``warmup`` results first (left out), then figures.

    Memory is sampled every ``rss_every`` results, the pipeline threads' CPU time every
    ``cpu_every``; ``keep_values=False`` keeps no per-frame lists (a soak run measures its
    own memory, so it must not grow lists itself); results past ``limit`` are ignored.
    """

    def __init__(self, warmup: int, rss_every: int = 50, cpu_every: int = 10, keep_values: bool = True,
                 limit: int | None = None) -> None:
        self.warmup = max(1, warmup)
        self.limit = limit
        self.rss_every = rss_every
        self.cpu_every = cpu_every
        self.keep = keep_values
        self.count = 0
        self.t_warm: float | None = None
        self.cpu_warm = 0.0
        self.threads_warm: dict[str, float] = {}
        self.fig = RunFigures()

    def add(self, r: Any) -> None:
        if self.limit is not None and self.count >= self.limit:
            return
        self.count += 1
        now = time.perf_counter()
        if self.count == self.warmup:
            self.t_warm = now
            self.cpu_warm = time.process_time()
            self.threads_warm = thread_cpu_s()
            self.fig.rss_after_warmup_mb = self.fig.rss_max_mb = rss_mb()
            return
        if self.count < self.warmup:
            return
        fig = self.fig
        fig.frames += 1
        fig.elapsed_s = now - (self.t_warm or now)
        fig.cpu_s = time.process_time() - self.cpu_warm
        fig.faces += r.has_face
        fig.scored += bool(r.models and r.models[0].metrics is not None)
        if self.keep:
            fig.latencies_ms.append(r.latency_ms)
            for key, v in r.timings_ms.items():
                fig.stage_ms.setdefault(key, []).append(v)
        if fig.frames % self.cpu_every == 0:
            self._sample_threads()
        if fig.frames % self.rss_every == 0:
            self._sample_rss()

    def _sample_threads(self) -> None:
        for name, cpu in thread_cpu_s().items():
            if name in self.threads_warm and name.startswith("facedepth-"):
                self.fig.thread_cpu_s[name] = cpu - self.threads_warm[name]
                self.fig.thread_frames[name] = self.fig.frames

    def _sample_rss(self) -> None:
        m = rss_mb()
        if m is not None:
            self.fig.rss_end_mb = m
            self.fig.rss_max_mb = max(self.fig.rss_max_mb or m, m)

    def finish(self) -> RunFigures:
        self._sample_threads()
        self._sample_rss()
        return self.fig


def _drain_threaded(pipeline: Any, run: _Run, max_frames: int | None) -> None:
    """Run the pipeline's threads until the end of the source (or ``max_frames`` results).

    Every result is taken on the inference thread (``Pipeline.on_result``): the pipeline hands
    results to a reader through a one-slot mailbox, so a reader that is busy now and then would
    miss some, and the figures must count every frame processed.
    """
    pipeline.on_result.append(run.add)
    pipeline.start()
    try:
        last, last_change = -1, time.monotonic()
        while not pipeline.finished.wait(0.2):
            if max_frames is not None and run.count >= max_frames:
                break
            if run.count != last:
                last, last_change = run.count, time.monotonic()
            elif time.monotonic() - last_change > 30.0:
                raise FacedepthError(f"the pipeline produced no result for 30 s (after {run.count} frames)")
    finally:
        pipeline.stop()
        pipeline.on_result.remove(run.add)
    if pipeline.error is not None:
        raise pipeline.error


def run_fast(recording: Path, generators: list[Any], verifier: Any, warmup: int,
             max_frames: int | None = None) -> dict[str, Any]:
    """The threaded pipeline (capture thread + inference thread, lossless for a recording) on the
    recording replayed as fast as possible."""
    from app.pipeline import Pipeline

    with open_source(f"replay:{recording},pace=off") as src:
        run = _Run(warmup, limit=max_frames)
        _drain_threaded(Pipeline(src, generators, verifier=verifier), run, max_frames)
        return run.finish().to_dict()


def run_sync(recording: Path, generators: list[Any], verifier: Any, warmup: int,
             max_frames: int | None = None) -> dict[str, Any]:
    """``Pipeline.step()`` on one thread, as ``run --headless`` processes a recording."""
    from app.pipeline import Pipeline

    with open_source(f"replay:{recording},pace=off") as src:
        pipeline = Pipeline(src, generators, verifier=verifier)
        run = _Run(warmup)
        while max_frames is None or run.count < max_frames:
            try:
                run.add(pipeline.step(timeout_s=5.0))
            except EOFError:
                break
        return run.finish().to_dict()


def run_paced(recording: Path, generators: list[Any], verifier: Any, warmup: int,
              max_frames: int | None = None) -> dict[str, Any]:
    """The threaded pipeline with the live app's lossy mailboxes, fed at the recorded 30 fps the
    way a sensor delivers frames (:class:`SensorPacedReplay`): latency and dropped frames."""
    from app.pipeline import Pipeline, PipelineConfig

    with SensorPacedReplay(parse_uri(f"replay:{recording}"), max_frames=max_frames) as src:
        pipeline = Pipeline(src, generators, verifier=verifier, config=PipelineConfig(lossless=False))
        run = _Run(warmup)
        _drain_threaded(pipeline, run, None)
        mailbox = pipeline.dropped
        out = run.finish().to_dict(dropped=mailbox + src.skipped)
        out.update({"dropped_in_mailbox": mailbox, "dropped_stale": src.skipped,
                    "frames_total": run.count + mailbox + src.skipped})
        return out


def run_soak(recording: Path, generators: list[Any], verifier: Any, frames: int, warmup: int) -> dict[str, Any]:
    """The threaded pipeline over ``frames`` frames of the recording played in a loop, resident
    memory sampled every 100 frames after ``warmup`` frames (no per-frame lists kept)."""
    from app.pipeline import Pipeline

    with open_source(f"replay:{recording},pace=off,loop=on") as src:
        run = _Run(warmup, rss_every=100, keep_values=False, limit=frames)
        _drain_threaded(Pipeline(src, generators, verifier=verifier), run, frames)
        return run.finish().to_dict()


def pipeline_worker(recording: Path, model: Path, verifier_path: Path | None, warmup: int,
                    max_frames: int | None, soak: int) -> dict[str, Any]:
    """Every pipeline run (see the module docstring) in this process, with the live app's
    generator settings (1 intra-op thread, the best provider that loads); returns the figures."""
    from app.headless import load_generators, load_verifier

    generators = load_generators([model])
    verifier = load_verifier(verifier_path)
    out: dict[str, Any] = {"provider": generators[0].provider, "verifier": verifier is not None,
                           "rss_start_mb": _r(rss_mb())}
    out["fast"] = run_fast(recording, generators, verifier, warmup, max_frames)
    out["sync"] = run_sync(recording, generators, verifier, warmup, max_frames)
    out["paced"] = run_paced(recording, generators, verifier, warmup, max_frames)
    if soak > 0:
        out["soak"] = run_soak(recording, generators, verifier, soak, min(warmup * 5, max(1, soak // 10)))
    out["peak_mb"] = _r(peak_rss_mb())
    return out


def run_pipeline_process(recording: Path, model: Path, verifier: Path | None, plan: BenchPlan,
                         max_frames: int | None, soak: int, frames: int) -> dict[str, Any]:
    """:func:`pipeline_worker` in a fresh interpreter (``python -m app.bench ...``), so that its
    memory figures are the pipeline's alone."""
    cmd = [sys.executable, "-m", "app.bench", "--recording", str(recording), "--model", str(model),
           "--warmup", str(plan.pipeline_warmup), "--soak", str(soak)]
    if verifier is not None:
        cmd += ["--verifier", str(verifier)]
    if max_frames is not None:
        cmd += ["--max-frames", str(max_frames)]
    # three runs of every frame (one paced at 30 fps) and the soak, with a generous margin for a busy machine
    timeout = 300 + frames * 0.5 + soak * 0.2
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FacedepthError(f"the pipeline runs did not finish within {timeout:.0f} s") from None
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise FacedepthError(f"the pipeline runs failed (exit {proc.returncode}): {err[:300]}")
    return json.loads(lines[-1])


def _worker_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m app.bench", description="the pipeline runs of launch.py bench")
    p.add_argument("--recording", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--verifier", default=None)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--soak", type=int, default=0)
    a = p.parse_args(argv)
    try:
        result = pipeline_worker(Path(a.recording), Path(a.model), Path(a.verifier) if a.verifier else None,
                                 a.warmup, a.max_frames, a.soak)
    except FacedepthError as exc:
        sys.stderr.write(f"bench pipeline: error: {exc}\n")
        return 1
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


# -- the report --------------------------------------------------------------------------------
def targets(report: dict[str, Any], soak: int) -> dict[str, Any]:
    """Each target of the issue with the measured value and whether it is met (None: not measured)."""
    import operator

    pipe, gen, mem = report["pipeline"], report["generator"], report["memory"]
    paced = f"30 fps pacing over {pipe.get('paced_frames_total')} frames (the target asks for 3000)"
    soaked = f" and a {soak}-frame soak" if soak else " (the target asks for 10,000 frames: --soak 10000)"

    def entry(value: Any, compare: Callable[[Any, Any], bool], target: float, note: str) -> dict[str, Any]:
        return {"value": value, "target": target, "met": None if value is None else bool(compare(value, target)),
                "note": note}

    return {
        "pipeline_fps>=90": entry(pipe["fps"], operator.ge, TARGET_FPS,
                                  "threaded pipeline, recording replayed as fast as possible"),
        "latency_p99_ms<=20": entry(pipe["latency_ms_p99"], operator.le, TARGET_LATENCY_P99_MS, paced),
        "dropped==0": entry(pipe["dropped"], operator.eq, 0, paced),
        "generator_ms_p50<=3": entry(gen["onnx_ms_p50"], operator.le, TARGET_GENERATOR_MS,
                                     "ONNX Runtime, CPU, 1 thread, batch 1"),
        "rss_growth_mb<50": entry(mem["rss_growth_mb"], operator.lt, TARGET_RSS_GROWTH_MB,
                                  "largest growth after warm-up over the pipeline runs" + soaked),
        "gpu_crops_per_s_batch32>=5000": entry(gen.get("gpu_crops_per_s_batch32"), operator.ge, TARGET_GPU_CROPS_PER_S,
                                               "only on a machine where a GPU provider loads"),
    }


def format_table(report: dict[str, Any]) -> str:
    """The report as plain-text tables."""
    m = report["machine"]
    lines = [
        f"facedepth bench{' (quick)' if report['quick'] else ''}: {report['date']}, commit {report['commit']}",
        f"machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), "
        f"{'GPU: ' + ', '.join(m['gpu']) if m['gpu'] else 'no GPU'}; load average "
        f"{'/'.join(str(x) for x in m['load_average_before'])} before, "
        f"{'/'.join(str(x) for x in m['load_average_after'])} after",
    ]
    rec = report["inputs"]["recording"]
    lines.append(f"recording: {rec['frames']} frames, colour {rec['color_size']}, depth {rec['depth_size']}, "
                 f"{rec['annotated_frames']} annotated ({rec['recorded_from']})")
    lines.append(f"model: {report['inputs']['model']} ({report['inputs']['model_kind']}, crop "
                 f"{report['inputs']['crop']['size_px']} px); verifier: {report['inputs']['verifier'] or 'none'}")
    lines.append("")
    head = f"{'stage':<24} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'cpu ms':>8} {'runs':>6}"
    lines += [head, "-" * len(head)]

    def row(name: str, s: dict[str, Any]) -> str:
        if not s.get("ms_p50") and s.get("available") is False:
            return f"{name:<24} {'n/a: ' + s['reason']}"
        cpu = s.get("cpu_ms_mean")
        return (f"{name:<24} {s['ms_p50']:>8.3f} {s['ms_p95']:>8.3f} {s['ms_p99']:>8.3f} {s['ms_mean']:>8.3f} "
                f"{'-' if cpu is None else f'{cpu:.3f}':>8} {s['runs']:>6}")

    for name, s in report["stages"].items():
        lines.append(row(name, s))
    lines.append("")
    lines.append(f"{'generator':<34} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'cpu ms':>8} {'crops/s':>9}")
    gen = report["generator"]
    for key, s in gen["runs"].items():
        lines.append(f"{'onnx ' + key:<34} {s['ms_p50']:>8.3f} {s['ms_p95']:>8.3f} {s['ms_p99']:>8.3f} "
                     f"{s.get('cpu_ms_mean', 0):>8.3f} {s['crops_per_s']:>9.0f}")
    t = gen["torch"]
    if t.get("available") is False:
        lines.append(f"{'torch eager':<34} n/a: {t['reason']}")
    else:
        for key, s in t["runs"].items():
            lines.append(f"{'torch eager ' + key.replace('default', 'default=' + str(t['threads'])):<34} {s['ms_p50']:>8.3f} "
                         f"{s['ms_p95']:>8.3f} {s['ms_p99']:>8.3f} {s.get('cpu_ms_mean', 0):>8.3f} {s['crops_per_s']:>9.0f}")
        if "max_abs_diff_vs_onnx" in t:
            lines.append(f"  torch vs onnx output: max |difference| {t['max_abs_diff_vs_onnx']:.2e} ({t['weights']} weights)")
        else:
            lines.append(f"  torch weights: {t['weights']}")
    for name, state in gen["providers"].items():
        lines.append(f"  {name}: {state}")
    lines.append("")
    p = report["pipeline"]
    lines.append("pipeline (separate process, provider " + str(p["provider"]) + ")")
    lines.append(f"  as fast as possible, threaded: {p['fps']} fps ({p['fast']['frames']} frames in "
                 f"{p['fast']['elapsed_s']:.2f} s, {p['fast']['faces']} with a face)")
    th = p["fast"]["thread_cpu_ms_per_frame"]
    lines.append(f"    CPU per frame {p['fast']['cpu_ms_per_frame']} ms"
                 + (" (" + ", ".join(f"{k.removeprefix('facedepth-')} thread {v}" for k, v in th.items()) + ")"
                    if th else ""))
    lines.append(f"  as fast as possible, one thread (step): {p['sync']['fps']} fps, CPU per frame "
                 f"{p['sync']['cpu_ms_per_frame']} ms")
    pc = p["paced"]
    lines.append(f"  30 fps, as a sensor delivers: latency p50/p95/p99 {pc.get('latency_ms_p50', 0):.1f} / "
                 f"{pc.get('latency_ms_p95', 0):.1f} / {pc.get('latency_ms_p99', 0):.1f} ms, dropped {pc['dropped']} of "
                 f"{pc['frames_total']}")
    for stage, s in p["fast"]["stages"].items():
        if "ms_p50" in s:
            lines.append(f"    in the pipeline {stage:<8} p50 {s['ms_p50']:.2f} ms, p99 {s['ms_p99']:.2f} ms")
    mem = report["memory"]
    lines.append(f"memory: peak {mem['peak_mb']} MB (pipeline process), growth after warm-up {mem['rss_growth_mb']} MB"
                 + (f", soak {mem['soak_frames']} frames: {mem['soak_growth_mb']} MB" if mem.get("soak_frames") else ""))
    lines.append("")
    lines.append("targets")
    for name, tg in report["targets"].items():
        state = {True: "met", False: "MISSED", None: "not measured"}[tg["met"]]
        lines.append(f"  {name:<32} {str(tg['value']):>10}  {state}  ({tg['note']})")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    from app.headless import load_verifier, project_commit
    from app.run_command import DEFAULT_MODEL, DEFAULT_VERIFIER
    from models.generator.runtime import DepthGenerator

    plan = QUICK if args.quick else FULL
    if args.frames is not None:
        if args.frames < plan.pipeline_warmup + 10:
            raise ConfigError(f"--frames must be at least {plan.pipeline_warmup + 10}, got {args.frames}")
        plan = dataclasses.replace(plan, frames=args.frames)
    if args.soak < 0:
        raise ConfigError(f"--soak must not be negative, got {args.soak}")
    model = Path(args.model) if args.model else DEFAULT_MODEL
    if not model.is_file():
        raise ModelError("model file does not exist" if args.model else
                         "no shipped generator yet: pass --model FILE.onnx", model)
    checkpoint = Path(args.checkpoint) if args.checkpoint else model.with_suffix(".pt")
    if args.checkpoint and not checkpoint.is_file():
        raise ModelError("checkpoint file does not exist", checkpoint)
    checkpoint = checkpoint if checkpoint.is_file() else None
    verifier_path = Path(args.verifier) if args.verifier else DEFAULT_VERIFIER
    if args.verifier and not verifier_path.is_file():
        raise ModelError("verifier file does not exist", verifier_path)
    verifier_path = verifier_path if verifier_path.is_file() else None

    t_start = time.perf_counter()
    report: dict[str, Any] = {"bench_format": BENCH_FORMAT, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                              "commit": project_commit(), "quick": bool(args.quick), "machine": machine_info()}
    phases: dict[str, float] = {}
    clock = [time.perf_counter()]

    def phase(name: str) -> None:
        now = time.perf_counter()
        phases[name] = round(now - clock[0], 2)
        clock[0] = now

    say = _progress
    with tempfile.TemporaryDirectory(prefix="facedepth-bench-") as tmp:
        workdir = Path(tmp)
        if args.recording:
            recording = Path(args.recording)
            if not recording.is_file():
                raise FormatError("recording file does not exist", recording)
            rec_info: dict[str, Any] = {"recorded_from": str(recording)}
            limit = args.frames
        else:
            recording = workdir / "bench.mcap"
            say(f"recording {plan.frames} frames of {args.source} ...")
            rec_info = record_source(args.source, plan.frames, recording)
            limit = None
        phase("record")
        sample = load_sample(recording, plan.sample_frames, limit)
        rec_info.update({"frames": sample.total_frames, "color_size": "x".join(map(str, sample.color_size)),
                         "depth_size": "x".join(map(str, sample.depth_size)) if sample.depth_size else None,
                         "annotated_frames": len(sample.distances_mm)})
        generator = DepthGenerator(model, threads=1)
        verifier = load_verifier(verifier_path)
        report["inputs"] = {"model": str(model), "model_sha256": generator.sha256, "model_kind": generator.info.model_kind,
                            "crop": generator.crop_config_dict, "checkpoint": None if checkpoint is None else str(checkpoint),
                            "verifier": None if verifier_path is None else str(verifier_path), "recording": rec_info}
        say("timing the stages ...")
        report["stages"], report["stage_notes"], crops = bench_stages(sample, recording, generator, verifier, plan,
                                                                      workdir)
        phase("stages")
        say("timing the generator ...")
        if not crops:  # no annotations: time the generator on the middle of each frame instead
            s = generator.info.size_px
            crops = []
            for f in sample.frames:
                top, left = max(0, f.color.shape[0] // 2 - s // 2), max(0, f.color.shape[1] // 2 - s // 2)
                crops.append(np.ascontiguousarray(f.color[top:top + s, left:left + s]))
        crops_arr = np.stack(crops)
        gen_report = bench_generator(model, crops_arr, plan)
        reference = generator.predict_tanh(crops_arr[:1])
        del generator, verifier, sample
        phase("generator")
        say("timing PyTorch eager (separate process) ...")
        gen_report["torch"] = bench_torch(model, checkpoint, crops_arr, plan, workdir, reference)
        phase("torch")
        torch_runs = gen_report["torch"].get("runs", {})
        gen_report["torch_ms_p50"] = torch_runs["threads=default/batch=1"]["ms_p50"] if torch_runs else None
        one = torch_runs.get("threads=1/batch=1")
        if one is None and gen_report["torch"].get("threads") == 1:  # PyTorch's default is 1 thread here
            one = torch_runs.get("threads=default/batch=1")
        gen_report["torch_1thread_ms_p50"] = one["ms_p50"] if one else None
        report["generator"] = gen_report
        paced_s = rec_info["frames"] / 30
        say(f"running the whole pipeline (separate process; about {paced_s:.0f} s of it paced at 30 fps) ...")
        pipe = run_pipeline_process(recording, model, verifier_path, plan, limit, args.soak, rec_info["frames"])
        phase("pipeline")
    bench_peak = peak_rss_mb()
    report["pipeline"] = {
        "fps": pipe["fast"]["fps"], "latency_ms_p50": pipe["paced"].get("latency_ms_p50"),
        "latency_ms_p95": pipe["paced"].get("latency_ms_p95"), "latency_ms_p99": pipe["paced"].get("latency_ms_p99"),
        "dropped": pipe["paced"]["dropped"], "paced_frames_total": pipe["paced"]["frames_total"],
        "fps_one_thread": pipe["sync"]["fps"], "provider": pipe["provider"], "verifier": pipe["verifier"],
        "fast": pipe["fast"], "sync": pipe["sync"], "paced": pipe["paced"],
    }
    growths = [pipe[k]["rss_growth_mb"] for k in ("fast", "sync", "paced", "soak") if k in pipe
               and pipe[k]["rss_growth_mb"] is not None]
    report["memory"] = {"peak_mb": pipe["peak_mb"], "rss_growth_mb": max(growths) if growths else None,
                        "rss_start_mb": pipe["rss_start_mb"], "bench_process_peak_mb": _r(bench_peak),
                        "soak_frames": pipe["soak"]["frames"] if "soak" in pipe else 0,
                        "soak_growth_mb": pipe["soak"]["rss_growth_mb"] if "soak" in pipe else None}
    if "soak" in pipe:
        report["pipeline"]["soak"] = pipe["soak"]
    report["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report["targets"] = targets(report, args.soak)
    report["elapsed_s"] = round(time.perf_counter() - t_start, 1)
    report["phases_s"] = phases
    if args.json:
        from models.common.files import write_json

        write_json(args.json, report)
    print(format_table(report))
    return 0


def _progress(text: str) -> None:
    sys.stderr.write(f"bench: {text}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
