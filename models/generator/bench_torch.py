"""PyTorch-eager timing of a depth generator, for ``launch.py bench`` (offline; imports torch).

    python -m models.generator.bench_torch --onnx generator.onnx --input crops.npy \
        [--checkpoint generator.pt] [--batch 1 --batch 32] [--runs 200] [--warmup 20] [--max-seconds S]
        [--output out.npy]

``launch.py bench`` runs this in its own process, so torch never enters the measured
process (the live path never imports torch, and torch's memory would distort the app's peak
memory). It times the generator's forward pass at PyTorch's default settings (its default
intra-op thread count, float32, ``torch.inference_mode``) on the crops in ``--input``
((N, S, S, 3) uint8 RGB, the same crops the ONNX Runtime timing uses), normalised the way the
exported graph expects (the ONNX file's metadata ``normalisation``).

The network: the checkpoint's weights when one is given (the ``.pt`` beside the ``.onnx``,
which is what ``launch.py export --slim-checkpoint`` ships); else the same architecture built
from the ONNX metadata's ``generator_config`` with random weights (the same cost; the output
is then meaningless and not saved); else nothing is timed and the report says why.

Prints ONE JSON object on stdout:

    {"available": true, "weights": "checkpoint" | "random (architecture from the ONNX metadata)",
     "torch": "2.x", "threads": 2, "device": "cpu",
     "runs": {"threads=default/batch=1": {"times_ms": [...], "cpu_s": 0.4, "batch": 1}, ...}}

(``--threads 1`` adds ``threads=1/...`` runs: the thread setting the live app gives ONNX Runtime.)

or ``{"available": false, "reason": "..."}``. Raw per-run times are reported (not percentiles):
the caller summarises them with its one implementation. ``--output`` saves the raw tanh output
of the first crop at batch 1 ((1, S, S) float32), for a parity check against ONNX Runtime.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _metadata(onnx_path: Path) -> dict[str, Any]:
    """The ONNX file's metadata (JSON values parsed; unparsable values kept as text)."""
    import onnx

    proto = onnx.load(str(onnx_path), load_external_data=False)
    meta: dict[str, Any] = {}
    for entry in proto.metadata_props:
        try:
            meta[entry.key] = json.loads(entry.value)
        except ValueError:
            meta[entry.key] = entry.value
    return meta


def build_model(onnx_path: Path, checkpoint: Path | None) -> tuple[Any, str] | tuple[None, str]:
    """(model in eval mode, where its weights came from), or (None, why not)."""
    from models.generator.net import Generator, GeneratorConfig

    if checkpoint is not None:
        from models.common.checkpoint import load_checkpoint
        from models.generator.train import build_generator

        return build_generator(load_checkpoint(checkpoint, "generator")).eval(), "checkpoint"
    meta = _metadata(onnx_path)
    cfg = meta.get("generator_config")
    if not isinstance(cfg, dict):
        return None, ("no PyTorch checkpoint beside the ONNX file and no generator_config in its metadata, "
                      "so the PyTorch model cannot be rebuilt")
    try:
        config = GeneratorConfig.from_dict(cfg)
    except (KeyError, TypeError, ValueError) as exc:
        return None, f"the ONNX metadata's generator_config is unusable ({type(exc).__name__}: {exc})"
    return Generator(config).eval(), "random (architecture from the ONNX metadata)"


def time_forward(model: Any, crops: np.ndarray, scale: float, offset: float, batch: int, runs: int,
                 warmup: int, max_s: float | None = None, min_runs: int = 10) -> tuple[list[float], float, np.ndarray]:
    """Per-run wall times (ms), total process CPU time (s) and the last output, at one batch size;
    stops before ``runs`` once ``max_s`` seconds have passed (after at least ``min_runs`` runs)."""
    import torch

    n = crops.shape[0]
    idx = np.arange(batch) % n
    x = torch.from_numpy(np.ascontiguousarray(crops[idx].transpose(0, 3, 1, 2))).float() * scale + offset
    times: list[float] = []
    with torch.inference_mode():
        for _ in range(warmup):
            y = model(x)
        cpu0 = time.process_time()
        start = time.perf_counter()
        for _ in range(runs):
            t0 = time.perf_counter()
            y = model(x)
            t1 = time.perf_counter()
            times.append((t1 - t0) * 1e3)
            if max_s is not None and len(times) >= min_runs and t1 - start > max_s:
                break
        cpu = time.process_time() - cpu0
    return times, cpu, y[:, 0].numpy()


def run(args: argparse.Namespace) -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {"available": False, "reason": "torch is not installed"}
    onnx_path = Path(args.onnx)
    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    try:
        model, weights = build_model(onnx_path, checkpoint)
    except (KeyError, RuntimeError) as exc:  # a checkpoint whose weights do not fit its config
        return {"available": False, "reason": f"the checkpoint does not load ({type(exc).__name__})"}
    if model is None:
        return {"available": False, "reason": weights}
    meta = _metadata(onnx_path)
    norm = meta.get("normalisation", {})
    scale = float(norm.get("input_scale", 1.0 / 127.5))
    offset = float(norm.get("input_offset", -1.0))
    crops = np.load(args.input)
    if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[-1] != 3:
        return {"available": False, "reason": f"input crops must be (N, S, S, 3) uint8, got {crops.shape} {crops.dtype}"}
    default_threads = torch.get_num_threads()
    out: dict[str, Any] = {"available": True, "weights": weights, "torch": torch.__version__,
                           "threads": default_threads, "device": "cpu", "runs": {}}
    for threads in ("default", *(str(t) for t in args.threads if t != default_threads)):
        torch.set_num_threads(default_threads if threads == "default" else int(threads))
        for batch in args.batch:
            times, cpu, y = time_forward(model, crops, scale, offset, batch,
                                         args.runs if batch == 1 else args.batch_runs,
                                         args.warmup if batch == 1 else max(1, args.warmup // 4), args.max_seconds,
                                         args.min_runs)
            out["runs"][f"threads={threads}/batch={batch}"] = {"times_ms": [round(t, 4) for t in times],
                                                               "cpu_s": round(cpu, 4), "batch": batch}
            if threads == "default" and batch == 1 and args.output and weights == "checkpoint":
                np.save(args.output, y[:1].astype(np.float32))
    torch.set_num_threads(default_threads)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.generator.bench_torch", description=__doc__.splitlines()[0])
    p.add_argument("--onnx", required=True, help="the exported generator (its metadata gives normalisation and shape)")
    p.add_argument("--checkpoint", default=None, help="the PyTorch checkpoint with the same weights (.pt)")
    p.add_argument("--input", required=True, help="crops to run, (N, S, S, 3) uint8 RGB in a .npy file")
    p.add_argument("--batch", type=int, action="append", default=None, help="batch size (repeatable; default 1 and 32)")
    p.add_argument("--threads", type=int, action="append", default=None,
                   help="also time with this many intra-op threads (repeatable; PyTorch's default is always timed)")
    p.add_argument("--runs", type=int, default=200, help="timed runs at batch 1")
    p.add_argument("--batch-runs", type=int, default=20, help="timed runs at larger batches")
    p.add_argument("--warmup", type=int, default=20, help="untimed runs first")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="stop one timing after this long (once --min-runs runs are done)")
    p.add_argument("--min-runs", type=int, default=10, help="fewest timed runs, whatever --max-seconds says")
    p.add_argument("--output", default=None, help="save the batch-1 output here (.npy) for a parity check")
    args = p.parse_args(argv)
    args.batch = args.batch or [1, 32]
    args.threads = args.threads or []
    from sensors.errors import FacedepthError

    try:
        result = run(args)
    except FacedepthError as exc:
        result = {"available": False, "reason": str(exc)}
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
