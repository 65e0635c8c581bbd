"""Export the verifier branch to ONNX with its decision threshold and score definition in the
metadata, and check the export against PyTorch (torch; offline only).

The exported graph takes ``depth8`` (N, S, S) uint8 levels (dynamic N) and returns
``embedding`` (N, E) float32 unit vectors; the per-crop normalisation is part of the graph
(``models.verifier.net.normalise_levels``), so the live path feeds the crops as they are.
The metadata key ``facedepth.verifier`` holds a JSON object read by
``models.verifier.runtime.Verifier``: threshold, threshold_rule, score, embedding_dim, size_px,
crop (the crop geometry of the training data), the branch config, validation metrics and
training provenance.
"""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch

from models.common.onnx_export import OnnxGraph, export_module

from models.verifier.runtime import METADATA_KEY, SCORE_DEFINITION
from models.verifier.net import VerifierBranch

#: largest allowed |ORT - torch| difference of an embedding component
PARITY_TOLERANCE = 1e-4
GRAPH = OnnxGraph("depth8", "embedding", opset=17, dynamo=False)


def export_verifier(model: VerifierBranch, path: str | os.PathLike[str], threshold: float,
                    info: dict[str, Any], parity_crops: np.ndarray | None = None) -> dict[str, Any]:
    """Write ``path`` (ONNX) and return the parity check: ``{"max_abs_diff", "crops"}``.

    ``info`` is merged into the metadata (crop config, validation metrics, provenance);
    ``parity_crops`` (N, S, S) uint8 are run through both PyTorch and ONNX Runtime, and a
    difference above :data:`PARITY_TOLERANCE` raises ModelError.
    """
    s = model.config.size_px
    model = model.eval().cpu()
    meta = {
        **info,
        "kind": "verifier",
        "threshold": float(threshold),
        "score": SCORE_DEFINITION,
        "embedding_dim": model.config.embedding_dim,
        "size_px": s,
        "branch": model.config.to_dict(),
        "input": "depth8: (N, S, S) uint8 levels, 255 nearest .. 1 farthest, 0 invalid",
        "output": "embedding: (N, E) float32, unit length",
    }
    crops = parity_crops if parity_crops is not None else \
        np.random.default_rng(0).integers(0, 256, (8, s, s), dtype=np.uint8)
    diff = export_module(model, torch.zeros((2, s, s), dtype=torch.uint8), path, GRAPH,
                         metadata={METADATA_KEY: json.dumps(meta)},
                         doc_string="facedepth face verifier on depth crops (Siamese branch)",
                         parity_input=crops, tolerance=PARITY_TOLERANCE, what="verifier")
    return {"max_abs_diff": diff, "crops": int(len(crops))}
