"""Long runs: the threaded pipeline with a recorder attached shows no growth in threads, open
files or memory, and loses no frame.

The slow soak runs 10,000 frames of the virtual Kinect (``virtual:seed=0,pace=off,frames=10000``,
Kinect v2-sized frames) through the threaded pipeline and a real ONNX generator, with a recorder
attached for 2,500 of them; the default run does the same with 300 frames of a small fake RGB-D
source. Checked: every frame is processed (a file-like source is processed losslessly), the
number of threads and of open file descriptors is back to where it started once everything is
closed and stays flat while running, resident memory grows less than 50 MB after warm-up, and
every frame the recorder accepted is in the file (then deleted).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from app.pipeline import FrameResult, Pipeline
from sensors.recording import Recorder
from sensors.source import Source, open_source
from tests.support.fakes import fake_source, write_tiny_generator

#: allowed growth of resident memory after warm-up
MAX_RSS_GROWTH_MB = 50.0


@dataclass
class SoakResult:
    frames: int
    processed: int
    dropped: int
    wall_s: float
    cpu_s: float
    rss_warm_mb: float
    rss_end_mb: float
    rss_max_mb: float
    threads: dict = field(default_factory=dict)   # before / running (min, max after warm-up) / after
    fds: dict = field(default_factory=dict)
    accepted: int = 0
    written: int = 0
    replayed: int = 0


def _threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.is_alive())


def soak(source: Source, generator_path: Path, recording: Path, record_from: int, record_to: int,
         warmup: int) -> SoakResult:
    """Run ``source`` to its end through the threaded pipeline, recording frames [record_from,
    record_to) from the inference thread; sample memory, threads and descriptors as it goes."""
    from models.generator.runtime import DepthGenerator

    proc = psutil.Process()
    generator = DepthGenerator(generator_path, provider="cpu")
    threads_before, fds_before = _threads(), proc.num_fds()
    rec = Recorder(recording, source_info=source.describe())
    accepted: list[int] = []  # timestamps of the frames the recorder took

    def record(r: FrameResult) -> None:
        if record_from <= r.index < record_to:
            main = r.models[0] if r.models else None
            pred8, metrics = (None, None) if main is None else (main.pred8, main.metrics)
            if rec.write(r.frame, pred8, metrics, wait_s=10.0):
                accepted.append(r.frame.timestamp_ns)

    pipeline = Pipeline(source, [generator])
    pipeline.on_result.append(record)
    samples: list[tuple[int, int, int, int]] = []  # (processed, rss, fds, threads)
    cpu0, t0 = time.process_time(), time.monotonic()
    pipeline.start()
    try:
        while True:
            try:
                pipeline.next_result(timeout_s=60.0)
            except EOFError:
                break
            n = pipeline.frames_processed
            if n >= warmup and (not samples or n - samples[-1][0] >= max(warmup // 4, 10)):
                sample = (n, proc.memory_info().rss, proc.num_fds(), threading.active_count())
                # kept only while the stream runs: results read after its end (the capture and
                # inference threads gone) say nothing about growth while running
                if not pipeline.finished.is_set():
                    samples.append(sample)
    finally:
        pipeline.stop()
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    rss_end = proc.memory_info().rss
    source.close()
    stats = rec.close()
    assert pipeline.error is None, pipeline.error
    with open_source(f"replay:{recording},pace=off") as replay:
        stamps = replay.timestamps_ns
        assert stamps == accepted  # every accepted frame is in the file, in order
        for pos in (0, len(replay) // 2, len(replay) - 1):  # and decodes
            replay.seek(pos)
            assert replay.read().timestamp_ns == accepted[pos]
    recording.unlink()
    warm = samples[0]
    running = samples[1:] or samples
    return SoakResult(
        frames=pipeline.frames_read, processed=pipeline.frames_processed, dropped=pipeline.dropped,
        wall_s=round(wall, 1), cpu_s=round(cpu, 1), rss_warm_mb=round(warm[1] / 2**20, 1),
        rss_end_mb=round(rss_end / 2**20, 1), rss_max_mb=round(max(s[1] for s in samples) / 2**20, 1),
        threads={"before": threads_before, "after": _threads(),
                 "running": (min(s[3] for s in running), max(s[3] for s in running))},
        fds={"before": fds_before, "running": (min(s[2] for s in running), max(s[2] for s in running)),
             "after": proc.num_fds()},
        accepted=len(accepted), written=stats.frames_written, replayed=len(stamps))


def check(result: SoakResult, frames: int, recorded: int) -> None:
    print("soak:", result)
    assert result.frames == result.processed == frames and result.dropped == 0  # lossless: nothing lost
    assert result.accepted == result.written == result.replayed == recorded
    assert result.rss_end_mb - result.rss_warm_mb < MAX_RSS_GROWTH_MB
    assert result.rss_max_mb - result.rss_warm_mb < MAX_RSS_GROWTH_MB
    lo, hi = result.threads["running"]
    assert hi - lo <= 1  # flat while running (the recorder's thread ends when it is closed at the end)
    assert result.threads["after"] == result.threads["before"]
    lo, hi = result.fds["running"]
    assert hi - lo <= 1
    assert result.fds["after"] <= result.fds["before"]


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> Path:
    return write_tiny_generator(tmp_path_factory.mktemp("models") / "generator.onnx")


def test_short_soak_no_growth_and_no_lost_frames(tmp_path, generator):
    source = fake_source(n=300)
    result = soak(source, generator, tmp_path / "soak.mcap", record_from=100, record_to=250, warmup=60)
    check(result, frames=300, recorded=150)


@pytest.mark.slow
def test_soak_10000_virtual_kinect_frames_with_2500_recorded(tmp_path, generator):
    source = open_source("virtual:seed=0,pace=off,frames=10000")
    result = soak(source, generator, tmp_path / "soak.mcap", record_from=2000, record_to=4500, warmup=500)
    check(result, frames=10_000, recorded=2_500)
