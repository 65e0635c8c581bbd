"""What ``launch.py bench`` measures and against which targets: the stages, the plans (quick
and full) and the performance targets."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: the project root, where the worker processes run
ROOT = Path(__file__).resolve().parents[2]
BENCH_FORMAT = 1
#: the source recorded when no ``--recording`` is given: the virtual Kinect v2, as fast as it renders
VIRTUAL_SOURCE = "virtual:heads=procedural,seed=0,pace=off"
#: every stage the report times, in table order
STAGES = (
    "decode.jpeg_1080p", "decode.jpeg_reduced2", "read.replay_frame", "register", "locate.annotation", "locate.refine",
    "locate.detect_fresh", "locate.detect_tracking", "crop", "encode", "generator", "metrics", "verifier_pair",
    "record.write",
)
#: the providers the generator is timed on, in report order (ONNX Runtime's names:
#: ``models.common.runtime.ORT_PROVIDER_NAMES``)
GENERATOR_PROVIDERS = ("cpu", "cuda", "tensorrt")
#: the performance targets on a 2-core CPU machine, and one for a GPU machine (docs/design.md, "Targets")
TARGET_FPS = 90.0
TARGET_LATENCY_P99_MS = 20.0
TARGET_GENERATOR_MS = 3.0
TARGET_RSS_GROWTH_MB = 50.0
TARGET_GPU_CROPS_PER_S = 5000.0
#: ``bench --video``: a 960x540 30 fps video plays at its own rate headless (within 1 fps) and the
#: window draws at least 25 new frames per second of it
TARGET_VIDEO_PACED_FPS = 29.0
TARGET_VIDEO_GUI_FPS = 25.0
#: ``bench --video``: the clip's length by default, seconds
VIDEO_SECONDS = 10.0
#: ``--video-seconds`` at most this: the clip and its photos are written to a temporary folder
MAX_VIDEO_SECONDS = 120.0


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
