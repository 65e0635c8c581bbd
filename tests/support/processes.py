"""Stopping a child process under test with a signal and timing how long it takes to exit."""
from __future__ import annotations

import subprocess
import time


def stop_process(proc: subprocess.Popen, signo: int, timeout_s: float) -> tuple[float, str, str]:
    """Send ``signo``; seconds until the process exits, and its output (killed after ``timeout_s``)."""
    t0 = time.monotonic()
    proc.send_signal(signo)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return time.monotonic() - t0, out, err
