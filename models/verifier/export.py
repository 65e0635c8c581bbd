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

import io
import json
import os
import warnings
from contextlib import redirect_stdout
from typing import Any

import numpy as np
import torch

from models.common.files import atomic_path
from sensors.errors import ModelError

from models.verifier.runtime import METADATA_KEY, SCORE_DEFINITION
from models.verifier.net import VerifierBranch

#: largest allowed |ORT - torch| difference of an embedding component
PARITY_TOLERANCE = 1e-4


def export_verifier(model: VerifierBranch, path: str | os.PathLike[str], threshold: float,
                    info: dict[str, Any], parity_crops: np.ndarray | None = None) -> dict[str, Any]:
    """Write ``path`` (ONNX) and return the parity check: ``{"max_abs_diff", "crops"}``.

    ``info`` is merged into the metadata (crop config, validation metrics, provenance);
    ``parity_crops`` (N, S, S) uint8 are run through both PyTorch and ONNX Runtime, and a
    difference above :data:`PARITY_TOLERANCE` raises ModelError.
    """
    import onnx
    import onnxruntime as ort

    path = os.fspath(path)
    s = model.config.size_px
    model = model.eval().cpu()
    example = torch.zeros((2, s, s), dtype=torch.uint8)
    with atomic_path(path, suffix=".onnx") as tmp:
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (example,), tmp, input_names=["depth8"], output_names=["embedding"],
                dynamic_axes={"depth8": {0: "batch"}, "embedding": {0: "batch"}}, opset_version=17, dynamo=False,
            )
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
        proto = onnx.load(tmp)
        proto.doc_string = "facedepth face verifier on depth crops (Siamese branch)"
        del proto.metadata_props[:]
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(meta)
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)

        crops = parity_crops if parity_crops is not None else \
            np.random.default_rng(0).integers(0, 256, (8, s, s), dtype=np.uint8)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.log_severity_level = 3
        session = ort.InferenceSession(tmp, so, providers=["CPUExecutionProvider"])
        got = session.run(None, {"depth8": np.ascontiguousarray(crops)})[0]
        with torch.no_grad():
            want = model(torch.from_numpy(np.ascontiguousarray(crops))).numpy()
        diff = float(np.abs(got - want).max())
        if not diff <= PARITY_TOLERANCE:
            raise ModelError(f"exported verifier differs from PyTorch by {diff:.2e} (> {PARITY_TOLERANCE:g})", path)
    return {"max_abs_diff": diff, "crops": int(len(crops))}
