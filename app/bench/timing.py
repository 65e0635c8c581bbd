"""Timing and memory measurement for ``launch.py bench``: percentiles of repeated calls, the
machine, and this process's resident memory."""
from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from models.metrics import PERCENTILES


def summarize(times_ms: Sequence[float], cpu_s: float | None = None) -> dict[str, Any]:
    """p50 / p95 / p99 / mean / min / max (ms) of per-run times, and the mean CPU time per run
    when the total process CPU time ``cpu_s`` of the runs is given."""
    a = np.asarray(times_ms, dtype=np.float64)
    if a.size == 0:
        return {"available": False, "reason": "no runs", "runs": 0}
    p50, p95, p99 = np.percentile(a, PERCENTILES)
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


def rounded(v: float | None, nd: int = 2) -> float | None:
    """``v`` rounded to ``nd`` decimals, None kept."""
    return None if v is None else round(float(v), nd)
