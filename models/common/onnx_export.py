"""The one ONNX exporter of every network (torch; offline only).

``export_module`` traces a PyTorch module with a dynamic batch axis, writes the network's
metadata (``metadata_props``, string values: each network's reader parses its own keys), saves
the file atomically with every weight inside it, and checks ONNX Runtime's output against
PyTorch's on given inputs before the file takes its name. Each network keeps its graph's
settings (``OnnxGraph``: names, opset, exporter) so that a new export reads like the shipped one.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.common.errors import ModelError
from models.common.files import atomic_path

#: the largest batch the dynamic axis of a ``dynamo`` export accepts
MAX_BATCH = 4096


@dataclass(frozen=True)
class OnnxGraph:
    """How a network's graph is exported: its one input and one output (batch first, dynamic),
    the opset, and the exporter (``dynamo``: torch's ``torch.export``-based one; otherwise the
    TorchScript-based one)."""

    input_name: str
    output_name: str
    opset: int
    dynamo: bool


def export_module(module: Any, example: Any, path: str | os.PathLike[str], graph: OnnxGraph, *,
                  metadata: Mapping[str, str], doc_string: str, parity_input: np.ndarray, tolerance: float,
                  reference: Any = None, what: str = "model") -> float:
    """Export ``module`` (eval mode, CPU) traced on ``example`` to ``path``; returns the largest
    |ONNX Runtime - PyTorch| difference on ``parity_input``, compared with ``reference`` (default:
    ``module`` itself). A difference above ``tolerance`` is a ModelError and leaves no file."""
    import onnx

    path = Path(path)
    proto = _trace(module, example, graph)
    _strip_node_metadata(proto)
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "facedepth"
    proto.doc_string = doc_string
    onnx.checker.check_model(proto)
    with atomic_path(path, suffix=".onnx") as tmp:
        onnx.save_model(proto, tmp, save_as_external_data=False)
        diff = parity(tmp, module if reference is None else reference, parity_input, graph)
        if not diff <= tolerance:
            raise ModelError(f"exported {what} differs from PyTorch by {diff:.2e} (> {tolerance:g})", path)
    check_self_contained(path)
    return diff


def _strip_node_metadata(proto: Any) -> None:
    """Drop the exporter's per-node annotations (``pkg.torch.onnx.*``: Python stack traces with
    the exporting machine's source paths, module names): the runtime reads none of them, and a
    shipped file should not carry where it was made."""
    nodes = list(proto.graph.node)
    for function in proto.functions:
        nodes.extend(function.node)
    for node in nodes:
        keep = [(p.key, p.value) for p in node.metadata_props if not p.key.startswith("pkg.torch.onnx.")]
        del node.metadata_props[:]
        for key, value in keep:
            entry = node.metadata_props.add()
            entry.key, entry.value = key, value


def _trace(module: Any, example: Any, graph: OnnxGraph) -> Any:
    import onnx
    import torch

    if graph.dynamo:
        batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
        # torch's exporter warns about torchvision ops it cannot register when torchvision is
        # not installed; the networks use none of them
        quiet = logging.getLogger("torch.onnx._internal.exporter._registration")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                program = torch.onnx.export(
                    module, (example,), input_names=[graph.input_name], output_names=[graph.output_name],
                    opset_version=graph.opset, dynamic_shapes=({0: batch},), dynamo=True, external_data=False,
                    verbose=False,
                )
        finally:
            quiet.setLevel(level)
        return program.model_proto
    buf = io.BytesIO()
    # the TorchScript exporter prints and warns about every traced branch; the graphs are plain chains
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (example,), buf, input_names=[graph.input_name], output_names=[graph.output_name],
            dynamic_axes={graph.input_name: {0: "batch"}, graph.output_name: {0: "batch"}},
            opset_version=graph.opset, dynamo=False,
        )
    return onnx.load_from_string(buf.getvalue())


def parity(onnx_path: str | os.PathLike[str], reference: Any, x: np.ndarray, graph: OnnxGraph) -> float:
    """The largest |ONNX Runtime - PyTorch| difference of the outputs for the input ``x``
    (ONNX Runtime on the CPU, one thread)."""
    import torch

    from models.common.runtime import open_session

    x = np.ascontiguousarray(x)
    got = open_session(onnx_path, provider="cpu", threads=1).session.run(None, {graph.input_name: x})[0]
    with torch.no_grad():
        want = reference(torch.from_numpy(x)).float().numpy()
    return float(np.abs(got - want).max())


def check_self_contained(path: str | os.PathLike[str]) -> None:
    """ModelError unless every initializer of the ONNX file is stored inside it."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    for init in proto.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise ModelError(f"initializer {init.name} is stored in an external data file", path)
