"""The whole headless pipeline under ``launch.py bench``, run in a separate process
(``python -m app.bench``) so that its memory figures are the pipeline's alone."""
from __future__ import annotations

import bisect
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.bench.plan import ROOT, BenchPlan
from app.bench.timing import peak_rss_mb, rounded, rss_mb, summarize
from sensors.errors import FacedepthError
from sensors.frame import Frame
from sensors.source import Source, SourceURI, open_source, parse_uri


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
        d["rss_after_warmup_mb"] = rounded(self.rss_after_warmup_mb)
        d["rss_end_mb"] = rounded(self.rss_end_mb)
        d["rss_max_after_warmup_mb"] = rounded(self.rss_max_mb)
        d["rss_growth_mb"] = (rounded(self.rss_end_mb - self.rss_after_warmup_mb)
                              if self.rss_end_mb is not None and self.rss_after_warmup_mb is not None else None)
        return d


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
                           "rss_start_mb": rounded(rss_mb())}
    out["fast"] = run_fast(recording, generators, verifier, warmup, max_frames)
    out["sync"] = run_sync(recording, generators, verifier, warmup, max_frames)
    out["paced"] = run_paced(recording, generators, verifier, warmup, max_frames)
    if soak > 0:
        out["soak"] = run_soak(recording, generators, verifier, soak, min(warmup * 5, max(1, soak // 10)))
    out["peak_mb"] = rounded(peak_rss_mb())
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
