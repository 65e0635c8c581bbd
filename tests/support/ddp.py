"""Two-process CPU training runs under torchrun (gloo), as the tests start them."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start_torchrun_train(data: Path, out: Path, epochs: int, batch_size: int, cwd: Path) -> subprocess.Popen:
    """``launch.py train`` (a tiny cGAN) in 2 CPU processes under torchrun, in a session of its own
    (so a test can signal the whole group); stdout and stderr are pipes."""
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
           str(ROOT / "launch.py"), "train", "--data", str(data), "--out", str(out), "--mode", "cgan",
           "--epochs", str(epochs), "--batch-size", str(batch_size), "--widths", "8,16", "--no-progress",
           "--device", "cpu"]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
