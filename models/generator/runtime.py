"""Run an exported depth generator with ONNX Runtime: the live path (never imports torch).

    gen = DepthGenerator("models/weights/generator.onnx")          # provider="auto", threads=1
    depth8 = gen.predict(color_crop)        # (S, S, 3) uint8 RGB -> (S, S) uint8 levels, 0 = background
    depth8s = gen.predict(color_crops)      # (N, S, S, 3) -> (N, S, S)
    gen.info.half_range_mm, gen.crop_config_dict, gen.provider, gen.sha256

Everything the model needs is read from the file's metadata (written by ``launch.py export``:
crop geometry, encoding, normalisation, training provenance), never repeated here; a file
without it, or with an input that does not match it, is a ModelError naming the file.

Providers and threads: ``models.common.runtime.open_session`` (``provider`` says what is in use,
``fallback_reason`` why a requested GPU provider is not).

One instance serves one thread at a time (batch-1 calls reuse one input buffer); the live app
calls it from its inference thread only.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from models.common.errors import ModelError
from models.common.runtime import open_session
from sensors.encoding import tanh_to_levels
from sensors.errors import ConfigError

#: metadata keys a generator file must carry
REQUIRED_METADATA = ("facedepth.format", "input", "output", "normalisation", "crop", "encoding", "model_kind")
SUPPORTED_FORMAT = 1


@dataclass(frozen=True)
class ModelInfo:
    """What an exported generator's metadata says (``launch.py export`` writes it)."""

    size_px: int
    window_x_mm: float
    window_y_mm: float
    half_range_mm: float
    model_kind: str
    synthetic_only: bool
    input_name: str
    output_name: str
    input_scale: float
    input_offset: float
    crop: Mapping[str, Any]
    encoding: Mapping[str, Any]
    normalisation: Mapping[str, Any]
    training: Mapping[str, Any]
    validation_metrics: Mapping[str, float]
    generator_config: Mapping[str, Any]
    export: Mapping[str, Any]

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str], path: str | os.PathLike[str]) -> ModelInfo:
        """Parse the ``metadata_props`` map (JSON values); ModelError naming ``path`` if it is not one."""
        missing = [k for k in REQUIRED_METADATA if k not in meta]
        if missing:
            raise ModelError(f"not a facedepth generator: metadata lacks {', '.join(missing)} (export it with "
                             f"`launch.py export`)", path)
        parsed: dict[str, Any] = {}
        for key, text in meta.items():
            try:
                parsed[key] = json.loads(text)
            except (json.JSONDecodeError, TypeError):
                if key in REQUIRED_METADATA or key in ("training", "validation_metrics", "generator_config", "export",
                                                       "synthetic_only"):
                    raise ModelError(f"model metadata {key!r} is not valid JSON", path) from None
        if parsed["facedepth.format"] != SUPPORTED_FORMAT:
            raise ModelError(f"model metadata format {parsed['facedepth.format']!r} is not {SUPPORTED_FORMAT}", path)
        try:
            crop, inp, out, norm = parsed["crop"], parsed["input"], parsed["output"], parsed["normalisation"]
            return cls(
                size_px=int(crop["size_px"]), window_x_mm=float(crop["window_x_mm"]),
                window_y_mm=float(crop["window_y_mm"]), half_range_mm=float(crop["half_range_mm"]),
                model_kind=str(parsed["model_kind"]), synthetic_only=bool(parsed.get("synthetic_only", False)),
                input_name=str(inp["name"]), output_name=str(out["name"]),
                input_scale=float(norm["input_scale"]), input_offset=float(norm["input_offset"]),
                crop=_frozen(crop), encoding=_frozen(parsed["encoding"]), normalisation=_frozen(norm),
                training=_frozen(parsed.get("training", {})),
                validation_metrics=_frozen(parsed.get("validation_metrics", {})),
                generator_config=_frozen(parsed.get("generator_config", {})), export=_frozen(parsed.get("export", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"model metadata is incomplete or malformed ({type(exc).__name__}: {exc})", path) from None


def _frozen(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


class DepthGenerator:
    """An exported depth generator on the best provider that really loads.

    ``path`` an ONNX file written by ``launch.py export``; ``provider`` one of
    :data:`models.common.runtime.PROVIDERS`; ``threads`` ONNX Runtime's intra-op threads (1 for the live app).
    Raises ModelError (one line, naming the file) for a missing, unreadable or incompatible file.
    """

    def __init__(self, path: str | os.PathLike[str], provider: str = "auto", threads: int = 1) -> None:
        opened = open_session(path, provider=provider, threads=threads)
        self.path = opened.path
        self.name = self.path.stem
        self.sha256 = opened.sha256
        self.provider: str = opened.provider
        self.fallback_reason: str | None = opened.fallback_reason
        session = self._session_ = opened.session
        self.info = ModelInfo.from_metadata(opened.metadata, self.path)
        self._check_io(session)
        s = self.info.size_px
        self._input_dtype = np.float16 if session.get_inputs()[0].type == "tensor(float16)" else np.float32
        self._one = np.empty((1, 3, s, s), self._input_dtype)  # batch-1 input buffer, reused

    def _check_io(self, session: Any) -> None:
        s = self.info.size_px
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"a generator has one input and one output, this model has {len(inputs)} and {len(outputs)}",
                             self.path)
        inp, out = inputs[0], outputs[0]
        if inp.name != self.info.input_name or out.name != self.info.output_name:
            raise ModelError(f"model inputs/outputs ({inp.name}, {out.name}) differ from its metadata "
                             f"({self.info.input_name}, {self.info.output_name})", self.path)
        if inp.type not in ("tensor(float)", "tensor(float16)"):
            raise ModelError(f"model input is {inp.type}, expected float", self.path)
        if len(inp.shape) != 4 or list(inp.shape[1:]) != [3, s, s]:
            raise ModelError(f"model input shape {inp.shape} does not match (N, 3, {s}, {s}) from its metadata", self.path)
        if len(out.shape) != 4 or list(out.shape[1:]) != [1, s, s]:
            raise ModelError(f"model output shape {out.shape} does not match (N, 1, {s}, {s}) from its metadata",
                             self.path)

    @property
    def crop_config_dict(self) -> dict[str, Any]:
        """The crop geometry the model was trained with (``sensors.crop.CropConfig.from_dict`` input)."""
        return _thaw(self.info.crop)

    def predict_tanh(self, color: np.ndarray) -> np.ndarray:
        """The raw network output, float32 (N, S, S) in [-1, 1], for (N, S, S, 3) uint8 RGB crops."""
        color = self._check_input(color, batch=True)
        n = color.shape[0]
        buf = self._one if n == 1 else np.empty((n, 3, self.info.size_px, self.info.size_px), self._input_dtype)
        np.multiply(color.transpose(0, 3, 1, 2), self.info.input_scale, out=buf, casting="unsafe")
        buf += self.info.input_offset
        (y,) = self._session_.run([self.info.output_name], {self.info.input_name: buf})
        return y[:, 0]

    def predict(self, color: np.ndarray) -> np.ndarray:
        """8-bit depth levels (``sensors.encoding``; 0 = background) for uint8 RGB crops:
        (S, S, 3) -> (S, S) and (N, S, S, 3) -> (N, S, S)."""
        single = isinstance(color, np.ndarray) and color.ndim == 3
        out = tanh_to_levels(self.predict_tanh(color[None] if single else color))
        return out[0] if single else out

    def _check_input(self, color: Any, batch: bool) -> np.ndarray:
        s = self.info.size_px
        if not isinstance(color, np.ndarray) or color.dtype != np.uint8 or color.ndim != 4 or color.shape[1:] != (s, s, 3):
            got = f"{color.shape} {color.dtype}" if isinstance(color, np.ndarray) else type(color).__name__
            raise ConfigError(f"{self.path.name} needs uint8 RGB crops of ({s}, {s}, 3) or (N, {s}, {s}, 3), got {got}")
        return color

    def __repr__(self) -> str:
        return f"DepthGenerator({str(self.path)!r}, kind={self.info.model_kind}, provider={self.provider})"


def is_generator(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an ONNX file whose metadata marks it as a depth generator (the
    verifier and other ONNX files beside the generators are not)."""
    try:
        opened = open_session(path, provider="cpu", threads=1)
    except ModelError:
        return False
    return "facedepth.format" in opened.metadata
