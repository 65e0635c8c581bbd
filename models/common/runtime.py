"""Open an ONNX file in ONNX Runtime: the one session set-up of every network's live class
(never imports torch).

    opened = open_session("models/weights/generator.onnx", provider="auto", threads=1)
    opened.session.run(...); opened.provider, opened.fallback_reason, opened.sha256

Providers: ``"auto"`` tries TensorRT, then CUDA, then the CPU; ``"tensorrt"`` / ``"cuda"``
try that one (TensorRT falls through to CUDA) and fall back to the CPU when it cannot load;
``"cpu"`` uses the CPU. A GPU provider counts only when it really loads: its shared library
is opened quietly first (onnxruntime-gpu lists CUDA and TensorRT as "available" on any
machine; a CPU-only machine lacks the CUDA 13.x / cuDNN 9.x / TensorRT libraries that
onnxruntime-gpu 1.31 is built against), with one silenced ``onnxruntime.preload_dlls()`` for
CUDA libraries installed as pip packages; the session is then created with ONNX Runtime's
logging muted and its own output captured, and kept only if ``get_providers()`` puts that
provider first. ``ModelSession.provider`` says what is in use, ``fallback_reason`` why a
requested GPU provider is not.

Threads: ``threads`` is ONNX Runtime's intra-op thread count, 0 for its own choice. The live
app uses 1, which leaves the other core of a 2-core machine to capture and the GUI; a 1-thread
session runs on the caller's thread, with no thread pool spinning.

A missing, unreadable or non-ONNX file is a one-line ModelError naming it.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.common.errors import ModelError
from sensors.errors import ConfigError
from sensors.filekind import sniff

#: what ``provider`` may ask for
PROVIDERS = ("auto", "cpu", "cuda", "tensorrt")
#: ONNX Runtime's names of those providers
ORT_PROVIDER_NAMES = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider",
                      "cpu": "CPUExecutionProvider"}
_PROVIDER_LIBS = {"tensorrt": "libonnxruntime_providers_tensorrt", "cuda": "libonnxruntime_providers_cuda"}
#: the GPU providers each request tries, best first (the CPU comes after all of them)
_GPU_CHAIN = {"auto": ("tensorrt", "cuda"), "tensorrt": ("tensorrt", "cuda"), "cuda": ("cuda",), "cpu": ()}
#: ONNX Runtime logging severities: 2 warning (its default), 3 error, 4 fatal only
_ORT_DEFAULT_SEVERITY = 2
_ORT_SESSION_SEVERITY = 3
_ORT_SILENT = 4


@dataclass(frozen=True)
class ModelSession:
    """An ONNX Runtime session on a model file, and how it came about."""

    session: Any                    # onnxruntime.InferenceSession
    path: Path
    sha256: str                     # of the file's bytes
    provider: str                   # ONNX Runtime's name of the provider in use
    fallback_reason: str | None     # why a requested GPU provider is not in use; None otherwise

    @property
    def metadata(self) -> dict[str, str]:
        """The file's ``metadata_props``."""
        return dict(self.session.get_modelmeta().custom_metadata_map)


def open_session(path: str | os.PathLike[str], *, provider: str = "auto", threads: int = 1,
                 what: str = "model", missing_hint: str = "") -> ModelSession:
    """A session on the ONNX file at ``path`` on the best provider of ``provider`` that really
    loads, with ``threads`` intra-op threads (0 = ONNX Runtime's choice) and one inter-op thread.

    ``what`` names the file in the error for a missing one ("model file does not exist"), with
    ``missing_hint`` in brackets after it (how to make one). ConfigError for an unknown provider
    or a bad thread count; ModelError (one line, naming the file) for a missing, unreadable or
    non-ONNX file.
    """
    import onnxruntime as ort

    if provider not in PROVIDERS:
        raise ConfigError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}")
    if not isinstance(threads, int) or threads < 0:
        raise ConfigError(f"threads must be a non-negative integer (0 = ONNX Runtime's choice), got {threads!r}")
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{what} file does not exist" + (f" ({missing_hint})" if missing_hint else ""), path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{what} file cannot be read ({exc.strerror or type(exc).__name__})", path) from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = _ORT_SESSION_SEVERITY
    wanted = _GPU_CHAIN[provider]
    reasons: list[str] = []
    session = None
    for kind in wanted:
        ok, why = provider_library_loads(kind)
        if not ok:
            reasons.append(why)
            continue
        chain = [ORT_PROVIDER_NAMES[k] for k in wanted[wanted.index(kind):]] + [ORT_PROVIDER_NAMES["cpu"]]
        with _quiet_ort():
            candidate = _inference_session(data, options, chain, path)
        if candidate.get_providers()[0] == ORT_PROVIDER_NAMES[kind]:
            session = candidate
            break
        reasons.append(f"{ORT_PROVIDER_NAMES[kind]} did not initialise (no usable GPU, or its CUDA/cuDNN libraries)")
    fallback_reason = None
    if session is None:
        session = _inference_session(data, options, [ORT_PROVIDER_NAMES["cpu"]], path)
        if provider != "cpu" and reasons:
            fallback_reason = "; ".join(reasons)
    return ModelSession(session=session, path=path, sha256=hashlib.sha256(data).hexdigest(),
                        provider=session.get_providers()[0], fallback_reason=fallback_reason)


def _inference_session(data: bytes, options: Any, providers: list[str], path: Path) -> Any:
    import onnxruntime as ort
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    ort_errors = tuple(getattr(ort_state, n) for n in ("Fail", "InvalidGraph", "InvalidProtobuf", "InvalidArgument",
                                                       "NoSuchFile", "NotImplemented", "RuntimeException")
                       if hasattr(ort_state, n))
    try:
        return ort.InferenceSession(data, options, providers=providers)
    except (RuntimeError, ValueError, *ort_errors) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        what = sniff(path)  # a photo or a checkpoint given as a model: say so, not the protobuf error
        raise ModelError(f"not a loadable ONNX model ({f'it is {what}' if what else first[:160]})", path) from None


@contextlib.contextmanager
def _quiet_ort():
    """Mute ONNX Runtime's logger and capture what its Python layer prints during a probe."""
    import onnxruntime as ort

    ort.set_default_logger_severity(_ORT_SILENT)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        ort.set_default_logger_severity(_ORT_DEFAULT_SEVERITY)


def provider_library_loads(kind: str) -> tuple[bool, str]:
    """Whether ONNX Runtime's shared library for ``kind`` ("cuda", "tensorrt") and its CUDA
    dependencies can be opened here; (False, reason) without a word on the console otherwise."""
    import onnxruntime as ort

    if ORT_PROVIDER_NAMES[kind] not in ort.get_available_providers():
        return False, f"this onnxruntime build has no {ORT_PROVIDER_NAMES[kind]}"
    capi = Path(ort.__file__).parent / "capi"
    candidates = sorted(capi.glob(_PROVIDER_LIBS[kind] + ".*"))
    if not candidates:
        return False, f"{_PROVIDER_LIBS[kind]} is not installed"
    try:
        ctypes.CDLL(str(candidates[0]))
    except OSError as exc:
        first_error = exc
    else:
        return True, ""
    # CUDA / cuDNN installed as pip packages (onnxruntime-gpu[cuda,cudnn], nvidia-*) are not on
    # the loader's path: onnxruntime's preload_dlls() loads them from site-packages (quietly here)
    if _preload_nvidia_libraries():
        try:
            ctypes.CDLL(str(candidates[0]))
        except OSError:
            pass
        else:
            return True, ""
    return False, f"{candidates[0].name} cannot load ({' '.join(str(first_error).split())})"


_PRELOADED: list[bool] = []


def _preload_nvidia_libraries() -> bool:
    """Run onnxruntime.preload_dlls() once, silenced; False where this build has none."""
    import onnxruntime as ort

    if not _PRELOADED:
        preload = getattr(ort, "preload_dlls", None)
        ok = False
        if preload is not None:
            try:
                with _quiet_ort():
                    preload()
                ok = True
            except (OSError, RuntimeError):
                ok = False
        _PRELOADED.append(ok)
    return _PRELOADED[0]
