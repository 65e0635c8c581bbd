"""``launch.py export``: a trained generator checkpoint to one self-contained ONNX file.

    python launch.py export --checkpoint runs/cgan/best.pt --out models/weights/generator.onnx

The graph: input ``color`` float32 (N, 3, S, S), RGB scaled to [-1, 1] (x / 127.5 - 1);
output ``depth`` float32 (N, 1, S, S), the tanh output in [-1, 1], which
``sensors.encoding.tanh_to_levels`` turns into 8-bit levels. N is a dynamic axis. ``--fp16``
stores the weights and computes in float16 (for CUDA / TensorRT; the graph's input and output
stay float32, converted inside).

Everything inference needs is in the file's metadata (``metadata_props``; every value is JSON),
so nothing is repeated as a constant elsewhere:

    facedepth.format    the metadata format version (1)
    input               {"name", "layout": "NCHW", "channels": "RGB", "size_px", "dtype"}
    output              {"name", "layout": "NCHW", "channels": 1, "range": [-1, 1]}
    normalisation       {"input_scale", "input_offset", "output": "tanh", "levels": formula}
    crop                sensors.crop.CropConfig.to_dict() of the training data (S, R_x, R_y, H, margin)
    encoding            the 8-bit depth encoding (sensors.encoding) with its half-range H
    model_kind          "cgan" or "ae"
    synthetic_only      true when every crop it was trained on came from the virtual Kinect
    generator_config    the network's shape (models.generator.net.GeneratorConfig)
    training            data file, its sha256 and subjects, the training command, epochs, init,
                        and the checkpoints it is the mean of (``launch.py average``), if any
    validation_metrics  the checkpoint's validation metrics (models.metrics keys)
    export              torch and opset versions, fp16, the checkpoint's sha256

The exporter (``models.common.onnx_export``) is torch's default (``torch.export`` based,
``dynamo=True``) with a dynamic batch dimension; the graph is a plain chain of Conv /
ConvTranspose / Slice / Add / Relu / Tanh. The file holds every weight, and its output is
checked against PyTorch's before it takes its name (float16: against the float32 network).
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from models.common.errors import ModelError
from models.common.onnx_export import OnnxGraph
from sensors.errors import ConfigError

METADATA_FORMAT = 1
OPSET = 18
INPUT_NAME = "color"
OUTPUT_NAME = "depth"
GRAPH = OnnxGraph(INPUT_NAME, OUTPUT_NAME, OPSET, dynamo=True)
#: largest allowed |ORT - torch| difference of the tanh output (float16: rounding of a deep
#: chain on random inputs reaches ~5e-3; the check is there to catch a broken graph)
PARITY_TOLERANCE = 1e-4
PARITY_TOLERANCE_FP16 = 5e-2


def build_metadata(ckpt: Mapping[str, Any], fp16: bool, checkpoint_sha256: str) -> dict[str, Any]:
    """The metadata of an exported generator (values are JSON-serialisable)."""
    import torch

    crop = dict(ckpt["crop"])
    cfg = ckpt.get("train_config", {})
    data = ckpt.get("data", {})
    return {
        "facedepth.format": METADATA_FORMAT,
        "input": {"name": INPUT_NAME, "layout": "NCHW", "channels": "RGB", "size_px": crop["size_px"], "dtype": "float32"},
        "output": {"name": OUTPUT_NAME, "layout": "NCHW", "channels": 1, "range": [-1.0, 1.0]},
        "normalisation": {
            "input_scale": 1.0 / 127.5, "input_offset": -1.0, "input_formula": "x = rgb_uint8 / 127.5 - 1",
            "output": "tanh", "levels": "level = round((y + 1) * 127.5), clipped to 0..255 (0 = background)",
        },
        "crop": crop,
        "encoding": {
            "name": "facedepth-8bit", "half_range_mm": crop["half_range_mm"],
            "levels": "z in [D - H, D + H] -> 255 (nearest) .. 1 (farthest); 0 = invalid or background",
            "decode": "z_mm = D + H - (level - 1) * 2H / 254",
        },
        "model_kind": ckpt["mode"],
        "synthetic_only": bool(ckpt.get("synthetic_only", False)),
        "generator_config": ckpt["generator_config"],
        "training": {
            "data": data, "command": cfg.get("command", ""), "epochs": ckpt.get("epoch"),
            "best_epoch": ckpt.get("best_epoch"), "adv_weight": cfg.get("adv_weight") if ckpt["mode"] == "cgan" else 0.0,
            "init": ckpt.get("init"), "seed": cfg.get("seed"), "averaged_from": ckpt.get("averaged_from"),
        },
        "validation_metrics": {k: float(v) for k, v in (ckpt.get("val_metrics") or {}).items()},
        "export": {"torch": torch.__version__, "opset": OPSET, "fp16": fp16, "checkpoint_sha256": checkpoint_sha256},
    }


def export_onnx(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], fp16: bool = False) -> dict[str, Any]:
    """Export a checkpoint's generator to ``out``, checked against PyTorch; returns a summary
    (path, bytes, sha256, parity)."""
    import copy

    import numpy as np
    import torch

    from models.common.checkpoint import load_checkpoint
    from models.common.files import file_sha256
    from models.common.onnx_export import export_module
    from models.generator.train import build_generator

    out = Path(out)
    if out.suffix != ".onnx":
        raise ConfigError(f"--out must name a .onnx file, got {out}")
    ckpt = load_checkpoint(checkpoint, "generator")
    try:
        model = build_generator(ckpt).eval()
    except (KeyError, RuntimeError) as exc:
        raise ModelError(f"checkpoint weights do not match its generator config ({type(exc).__name__})", checkpoint) from None
    size = int(ckpt["crop"]["size_px"])
    # the float16 graph is checked against the float32 network it approximates
    module = _half_wrapper(copy.deepcopy(model)) if fp16 else model
    meta = build_metadata(ckpt, fp16, file_sha256(checkpoint))
    parity_input = np.random.default_rng(0).uniform(-1.0, 1.0, (2, 3, size, size)).astype(np.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    diff = export_module(
        module, torch.zeros(1, 3, size, size), out, GRAPH,
        metadata={key: json.dumps(value, sort_keys=True) for key, value in meta.items()},
        doc_string=f"facedepth depth generator ({ckpt['mode']}): colour crop -> 8-bit depth crop",
        parity_input=parity_input, tolerance=PARITY_TOLERANCE_FP16 if fp16 else PARITY_TOLERANCE,
        reference=model, what="generator")
    return {"out": str(out), "bytes": out.stat().st_size, "sha256": file_sha256(out), "model_kind": ckpt["mode"],
            "fp16": fp16, "parity_max_abs_diff": diff}


def _half_wrapper(model):
    """float32 in -> the float16 model -> float32 out, so inference feeds the same input either way."""
    import torch

    class Half(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x.half()).float()

    return Half(model.half()).eval()


def slimmed(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint dict without optimiser and RNG state (generator, discriminator, config, metrics):
    what ``train --init`` needs to fine-tune."""
    slim = {k: v for k, v in ckpt.items() if k not in ("opt_g", "opt_d", "rng")}
    slim["opt_g"] = slim["opt_d"] = None
    return slim


def slim_checkpoint(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str]) -> None:
    """Write :func:`slimmed` of ``checkpoint`` to ``out``."""
    from models.common.checkpoint import load_checkpoint, save_checkpoint

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(slimmed(load_checkpoint(checkpoint, "generator")), out, "generator")
