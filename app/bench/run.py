"""One ``launch.py bench`` run: record (or take) a recording, time its stages and the generator,
run the whole pipeline in a separate process, and gather the report."""
from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.bench.generator import bench_generator, bench_torch
from app.bench.pipeline import run_pipeline_process
from app.bench.plan import BENCH_FORMAT, ROOT, VIRTUAL_SOURCE, BenchPlan
from app.bench.recording import load_sample, record_source
from app.bench.report import targets
from app.bench.stages import bench_stages
from app.bench.timing import machine_info, peak_rss_mb, rounded
from sensors.errors import FormatError


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run. ``recording`` None records ``plan.frames`` frames of ``source``; else
    its first ``frames`` frames are replayed (None: all). ``checkpoint`` and ``verifier`` are
    files that exist, or None (not timed); ``soak`` > 0 adds a run over that many frames."""

    plan: BenchPlan
    model: Path
    quick: bool = False
    checkpoint: Path | None = None
    verifier: Path | None = None
    recording: Path | None = None
    frames: int | None = None
    source: str = VIRTUAL_SOURCE
    soak: int = 0


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    """The benchmark report (progress on stderr)."""
    from app.headless import load_verifier, project_commit
    from models.generator.runtime import DepthGenerator

    t_start = time.perf_counter()
    report: dict[str, Any] = {"bench_format": BENCH_FORMAT, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                              "commit": project_commit(), "quick": cfg.quick, "machine": machine_info()}
    phases: dict[str, float] = {}
    clock = [time.perf_counter()]

    def phase(name: str) -> None:
        now = time.perf_counter()
        phases[name] = round(now - clock[0], 2)
        clock[0] = now

    say = _progress
    with tempfile.TemporaryDirectory(prefix="facedepth-bench-") as tmp:
        workdir = Path(tmp)
        if cfg.recording:
            recording = cfg.recording
            if not recording.is_file():
                raise FormatError("recording file does not exist", recording)
            rec_info: dict[str, Any] = {"recorded_from": str(recording)}
            limit = cfg.frames
        else:
            recording = workdir / "bench.mcap"
            say(f"recording {cfg.plan.frames} frames of {cfg.source} ...")
            rec_info = record_source(cfg.source, cfg.plan.frames, recording)
            limit = None
        phase("record")
        sample = load_sample(recording, cfg.plan.sample_frames, limit)
        rec_info.update({"frames": sample.total_frames, "color_size": "x".join(map(str, sample.color_size)),
                         "depth_size": "x".join(map(str, sample.depth_size)) if sample.depth_size else None,
                         "annotated_frames": len(sample.distances_mm)})
        generator = DepthGenerator(cfg.model, threads=1)
        verifier = load_verifier(cfg.verifier)
        report["inputs"] = {"model": _shown(cfg.model), "model_sha256": generator.sha256,
                            "model_kind": generator.info.model_kind, "crop": generator.crop_config_dict,
                            "checkpoint": _shown(cfg.checkpoint), "verifier": _shown(cfg.verifier), "recording": rec_info}
        say("timing the stages ...")
        report["stages"], report["stage_notes"], crops = bench_stages(sample, recording, generator, verifier, cfg.plan,
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
        gen_report = bench_generator(cfg.model, crops_arr, cfg.plan)
        reference = generator.predict_tanh(crops_arr[:1])
        del generator, verifier, sample
        phase("generator")
        say("timing PyTorch eager (separate process) ...")
        gen_report["torch"] = bench_torch(cfg.model, cfg.checkpoint, crops_arr, cfg.plan, workdir, reference)
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
        pipe = run_pipeline_process(recording, cfg.model, cfg.verifier, cfg.plan, limit, cfg.soak, rec_info["frames"])
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
                        "rss_start_mb": pipe["rss_start_mb"], "bench_process_peak_mb": rounded(bench_peak),
                        "soak_frames": pipe["soak"]["frames"] if "soak" in pipe else 0,
                        "soak_growth_mb": pipe["soak"]["rss_growth_mb"] if "soak" in pipe else None}
    if "soak" in pipe:
        report["pipeline"]["soak"] = pipe["soak"]
    report["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report["targets"] = targets(report, cfg.soak)
    report["elapsed_s"] = round(time.perf_counter() - t_start, 1)
    report["phases_s"] = phases
    return report


def run_video_bench(model: Path, verifier: Path | None, seconds: float) -> dict[str, Any]:
    """The ``bench --video`` report (:mod:`app.bench.video`; progress on stderr)."""
    from app.bench.report import video_targets
    from app.bench.video import video_bench
    from app.headless import project_commit

    t_start = time.perf_counter()
    report: dict[str, Any] = {"bench_format": BENCH_FORMAT, "kind": "video",
                              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "commit": project_commit(),
                              "machine": machine_info(), "inputs": {"model": _shown(model), "verifier": _shown(verifier)}}
    with tempfile.TemporaryDirectory(prefix="facedepth-bench-video-") as tmp:
        report["video"] = video_bench(model, verifier, Path(tmp), seconds, _progress)
    report["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report["targets"] = video_targets(report["video"])
    report["elapsed_s"] = round(time.perf_counter() - t_start, 1)
    return report


def _progress(text: str) -> None:
    sys.stderr.write(f"bench: {text}\n")
    sys.stderr.flush()


def _shown(path: str | os.PathLike[str] | None) -> str | None:
    """A file as the report shows it: relative to the repository when inside it, so reports
    committed from any checkout name the same files and no machine's folders."""
    if path is None:
        return None
    p = Path(path).resolve()
    root = ROOT.resolve()
    return str(p.relative_to(root)) if p.is_relative_to(root) else str(path)
