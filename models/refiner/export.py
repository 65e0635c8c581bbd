"""Export the head-centre refiner to ONNX with its spec and training provenance in the metadata,
checked against PyTorch (torch; offline only).

The graph takes ``planes`` (N, 2, S, S) uint8 (dynamic N) and returns ``offset`` (N, 4) float32;
the metadata key ``models.refiner.runtime.METADATA_KEY`` holds a JSON object (``spec``,
``training``) read by ``models.refiner.runtime.HeadRefiner``.
"""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch

from models.common.onnx_export import OnnxGraph, export_module
from models.refiner.net import RefinerNet
from models.refiner.runtime import METADATA_KEY

GRAPH = OnnxGraph("planes", "offset", opset=17, dynamo=False)
#: largest allowed |ORT - torch| difference of an output (crop pixels, depth units, logit)
PARITY_TOLERANCE = 1e-3


def export_refiner(net: RefinerNet, path: str | os.PathLike[str], info: dict[str, Any], parity_x: np.ndarray) -> float:
    """Write the ONNX file with ``info`` in its metadata; returns the ONNX-vs-PyTorch max difference
    on ``parity_x`` (N >= 2 planes; ModelError when above :data:`PARITY_TOLERANCE`)."""
    net = net.eval().cpu()
    return export_module(net, torch.from_numpy(parity_x[:2]), path, GRAPH,
                         metadata={METADATA_KEY: json.dumps(info, default=str)},
                         doc_string="facedepth head-centre refiner", parity_input=parity_x,
                         tolerance=PARITY_TOLERANCE, what="refiner")
