"""The generator's timings for ``launch.py bench``: ONNX Runtime on every provider that loads,
and PyTorch eager in its own process (``python -m models.generator.bench_torch``), so that the
app process never imports torch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from app.bench.plan import GENERATOR_PROVIDERS, ROOT, BenchPlan
from app.bench.timing import summarize, time_calls, unavailable


def bench_generator(model: Path, crops: np.ndarray, plan: BenchPlan) -> dict[str, Any]:
    """ONNX Runtime on each provider that loads: batch 1 and 32, 1 thread and the default."""
    import onnxruntime as ort

    from models.common.runtime import ORT_PROVIDER_NAMES
    from models.generator.runtime import DepthGenerator

    out: dict[str, Any] = {"providers": {}, "runs": {}}
    batch32 = crops[np.arange(32) % len(crops)]
    available = ort.get_available_providers()
    for kind in GENERATOR_PROVIDERS:
        name = ORT_PROVIDER_NAMES[kind]
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
