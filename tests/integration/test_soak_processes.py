"""Long runs as a user runs them, in child processes (marked slow; minutes each): ``run
--headless`` on 10,000 paced virtual Kinect frames, and the GUI (off-screen) for 10 minutes on
the paced virtual Kinect, both with the shipped generator. The child's resident memory, threads
and open files are sampled every 2 s. Checked: memory levels off (it grows less than
``MAX_RSS_GROWTH_MB`` after the warm-up, the first ``WARMUP_S`` seconds, and less than
``MAX_LATE_GROWTH_MB`` over the second half of the run) and the threads and open files stay
flat. Each test prints its samples' summary (the README's "Performance" quotes them)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
MAX_RSS_GROWTH_MB = 50.0
MAX_LATE_GROWTH_MB = 10.0
#: the virtual Kinect keeps its last 8 people built (about 10-15 MB each) and starts a new
#: sequence every 10 s, some with a person seen before: its cache is full after 2-3 minutes
WARMUP_S = 180.0
SAMPLE_EVERY_S = 2.0


def _launch(home: Path, *args: str) -> subprocess.Popen:
    # the GUI's remembered settings and the user data folder in ``home``, not the user's own
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT),
           "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data")}
    env.pop("FACEDEPTH_FACE_MODEL", None)  # procedural people, as the command line says
    # a terminal's Ctrl-C and default signal handling (a test run started in the background has SIGINT ignored)
    wrapper = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
               f"sys.path.insert(0, {str(ROOT)!r}); import launch; sys.exit(launch.main(sys.argv[1:]))")
    return subprocess.Popen([sys.executable, "-c", wrapper, *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _sample(proc: subprocess.Popen, seconds: float) -> list[dict]:
    """(t, rss MB, threads, fds) of ``proc`` every SAMPLE_EVERY_S until it exits or ``seconds`` pass."""
    ps = psutil.Process(proc.pid)
    t0 = time.monotonic()
    samples = []
    while proc.poll() is None and time.monotonic() - t0 < seconds:
        try:
            with ps.oneshot():
                samples.append({"t_s": round(time.monotonic() - t0, 1), "rss_mb": ps.memory_info().rss / 2**20,
                                "threads": ps.num_threads(), "fds": ps.num_fds()})
        except psutil.NoSuchProcess:
            break
        time.sleep(SAMPLE_EVERY_S)
    return samples


def _summary(samples: list[dict]) -> dict:
    warm = [s for s in samples if s["t_s"] >= WARMUP_S]
    assert len(warm) >= 10, f"too few samples after the warm-up: {samples[-3:]}"
    start = warm[0]["rss_mb"]
    late = [s["rss_mb"] for s in warm[len(warm) // 2:]]
    at_60 = next(s["rss_mb"] for s in samples if s["t_s"] >= 60.0)
    peak = max(samples, key=lambda s: s["rss_mb"])
    return {"samples": len(samples), "seconds": samples[-1]["t_s"], "rss_first_mb": round(samples[0]["rss_mb"], 1),
            "rss_at_60s_mb": round(at_60, 1), "rss_peak_at_s": peak["t_s"],
            "rss_after_warmup_mb": round(start, 1), "rss_max_mb": round(max(s["rss_mb"] for s in warm), 1),
            "rss_end_mb": round(warm[-1]["rss_mb"], 1),
            "growth_after_warmup_mb": round(max(s["rss_mb"] for s in warm) - start, 1),
            "growth_second_half_mb": round(max(late) - late[0], 1),
            "threads": [min(s["threads"] for s in warm), max(s["threads"] for s in warm)],
            "fds": [min(s["fds"] for s in warm), max(s["fds"] for s in warm)]}


def _check(summary: dict) -> None:
    print("soak:", json.dumps(summary))
    assert summary["growth_after_warmup_mb"] < MAX_RSS_GROWTH_MB
    assert summary["growth_second_half_mb"] < MAX_LATE_GROWTH_MB
    assert summary["threads"][1] - summary["threads"][0] <= 2  # a sequence's background build comes and goes
    assert summary["fds"][1] - summary["fds"][0] <= 2


def test_headless_10000_paced_virtual_frames_level_off(tmp_path):
    report = tmp_path / "soak.json"
    proc = _launch(tmp_path, "run", "--headless", "--source", "virtual:heads=procedural,seed=0,frames=10000",
                   "--report", str(report))
    try:
        samples = _sample(proc, seconds=900)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    # paced like a camera: frames the app cannot keep up with are dropped, not queued
    assert json.loads(report.read_text())["complete"] is True
    _check(_summary(samples))


def test_the_gui_for_10_minutes_levels_off(tmp_path):
    proc = _launch(tmp_path, "run", "--source", "virtual:heads=procedural,seed=0")
    try:
        samples = _sample(proc, seconds=600)
        assert proc.poll() is None, proc.communicate(timeout=10)[1]
        proc.send_signal(signal.SIGTERM)  # a clean stop (exit 143)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    _check(_summary(samples))
