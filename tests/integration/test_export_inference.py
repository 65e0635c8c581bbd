"""Export to ONNX and inference with ONNX Runtime: parity, metadata, providers, bad files."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

import launch  # noqa: E402
from models.common.checkpoint import load_checkpoint  # noqa: E402
from models.common.onnx_export import check_self_contained  # noqa: E402
from models.generator.export import export_onnx, slim_checkpoint  # noqa: E402
from models.generator.runtime import DepthGenerator, ModelInfo  # noqa: E402
from models.generator.train import build_generator  # noqa: E402
from sensors.encoding import tanh_to_levels  # noqa: E402
from models.common.errors import ModelError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
S = 48


@pytest.fixture(scope="module")
def trained(tiny_cgan_run):
    """A checkpoint of the default generator after one short epoch on 48 px crops, and its ONNX export."""
    return tiny_cgan_run.checkpoint, tiny_cgan_run.onnx


def test_onnx_output_equals_pytorch_output(trained):
    ckpt_path, onnx_path = trained
    model = build_generator(load_checkpoint(ckpt_path, "generator")).eval()
    gen = DepthGenerator(onnx_path, provider="cpu")
    rng = np.random.default_rng(0)
    color = rng.integers(0, 256, (3, S, S, 3), dtype=np.uint8)  # batch 3 through the dynamic batch axis
    with torch.no_grad():
        ref = model(torch.from_numpy(color).permute(0, 3, 1, 2).float() / 127.5 - 1.0)[:, 0].numpy()
    out = gen.predict_tanh(color)
    assert out.shape == (3, S, S)
    assert np.abs(out - ref).max() <= 1e-4
    levels = gen.predict(color)
    assert levels.dtype == np.uint8 and levels.shape == (3, S, S)
    assert np.array_equal(levels, tanh_to_levels(out))
    one = gen.predict(color[1])
    assert one.shape == (S, S) and np.array_equal(one, levels[1])


def test_one_self_contained_file_with_a_dynamic_batch_axis(trained):
    _, onnx_path = trained
    assert sorted(p.name for p in onnx_path.parent.iterdir() if p.suffix != ".npz" and p.is_file()) == ["g.onnx"]
    check_self_contained(onnx_path)
    proto = onnx.load(str(onnx_path))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, S, S]
    assert onnx_path.stat().st_size < 20 * 1024 ** 2


def test_the_file_does_not_carry_the_exporting_machine_s_source_paths(trained):
    _, onnx_path = trained
    data = onnx_path.read_bytes()
    assert str(ROOT).encode() not in data and b"stack_trace" not in data


def test_metadata_round_trip(trained):
    ckpt_path, onnx_path = trained
    ckpt = load_checkpoint(ckpt_path, "generator")
    gen = DepthGenerator(onnx_path, provider="cpu")
    info = gen.info
    assert isinstance(info, ModelInfo)
    assert gen.crop_config_dict == ckpt["crop"]
    assert (info.size_px, info.half_range_mm, info.window_x_mm, info.window_y_mm) == (
        S, ckpt["crop"]["half_range_mm"], ckpt["crop"]["window_x_mm"], ckpt["crop"]["window_y_mm"])
    assert info.model_kind == "cgan" and info.synthetic_only is True
    assert dict(info.validation_metrics) == pytest.approx(ckpt["val_metrics"])
    assert info.training["data"]["sha256"] == ckpt["data"]["sha256"]
    assert info.training["command"].startswith("python launch.py train --data ")
    assert info.input_scale == pytest.approx(1 / 127.5) and info.input_offset == -1.0
    raw = {p.key: json.loads(p.value) for p in onnx.load(str(onnx_path)).metadata_props}
    assert raw["encoding"]["half_range_mm"] == ckpt["crop"]["half_range_mm"]
    assert gen.sha256 == __import__("hashlib").sha256(onnx_path.read_bytes()).hexdigest()
    with pytest.raises(Exception):
        info.size_px = 3  # frozen


def test_fp16_export_runs_and_stays_close(trained, tmp_path):
    ckpt_path, onnx_path = trained
    export_onnx(ckpt_path, tmp_path / "g16.onnx", fp16=True)
    g16 = DepthGenerator(tmp_path / "g16.onnx", provider="cpu")
    g32 = DepthGenerator(onnx_path, provider="cpu")
    color = np.random.default_rng(1).integers(0, 256, (2, S, S, 3), dtype=np.uint8)
    assert np.abs(g16.predict_tanh(color) - g32.predict_tanh(color)).max() < 1e-2
    assert g16.info.export["fp16"] is True
    assert (tmp_path / "g16.onnx").stat().st_size < 0.6 * onnx_path.stat().st_size


def test_slim_checkpoint_keeps_what_fine_tuning_needs(trained, tmp_path):
    ckpt_path, _ = trained
    slim_checkpoint(ckpt_path, tmp_path / "slim.pt")
    full, slim = load_checkpoint(ckpt_path, "generator"), load_checkpoint(tmp_path / "slim.pt", "generator")
    assert slim["opt_g"] is None and "rng" not in slim
    for k in full["generator"]:
        assert torch.equal(full["generator"][k], slim["generator"][k])
    assert slim["discriminator"].keys() == full["discriminator"].keys()
    assert (tmp_path / "slim.pt").stat().st_size < 0.6 * ckpt_path.stat().st_size


def test_gpu_providers_fall_back_to_the_cpu_quietly(trained, capfd):
    _, onnx_path = trained
    for provider in ("auto", "cuda", "tensorrt"):
        gen = DepthGenerator(onnx_path, provider=provider)
        assert gen.provider in ("CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider")
        if gen.provider == "CPUExecutionProvider":
            assert gen.fallback_reason  # says why the GPU provider is not in use
        assert gen.predict(np.zeros((S, S, 3), np.uint8)).shape == (S, S)
    assert DepthGenerator(onnx_path, provider="cpu").fallback_reason is None
    out = capfd.readouterr()
    assert out.out == "" and out.err == ""  # no error spam on a CPU-only machine


def test_a_gpu_provider_whose_library_loads_but_cannot_start_falls_back_quietly(trained, capfd, monkeypatch):
    """onnxruntime-gpu on a machine without a usable GPU: the session comes up on the CPU alone."""
    import models.common.runtime as ort_sessions

    _, onnx_path = trained
    monkeypatch.setattr(ort_sessions, "provider_library_loads", lambda kind: (True, ""))
    gen = DepthGenerator(onnx_path, provider="cuda")
    if gen.provider == "CPUExecutionProvider":
        assert "did not initialise" in gen.fallback_reason
    out = capfd.readouterr()
    assert out.out == "" and out.err == ""


def _one_line(exc: Exception) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the hand-made files use torch's older exporter
def test_bad_model_files_are_one_line_model_errors(trained, tmp_path):
    _, onnx_path = trained
    with pytest.raises(ModelError, match="does not exist") as e:
        DepthGenerator(tmp_path / "missing.onnx")
    assert "missing.onnx" in _one_line(e.value)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(os.urandom(2000))
    with pytest.raises(ModelError, match="not a loadable ONNX model") as e:
        DepthGenerator(junk)
    assert "junk.onnx" in _one_line(e.value)
    # a valid ONNX generator without metadata (exported by hand, not by launch.py export)
    bare = tmp_path / "bare.onnx"
    buf = io.BytesIO()
    torch.onnx.export(build_generator().eval(), (torch.zeros(1, 3, S, S),), buf, input_names=["color"],
                      output_names=["depth"], dynamo=False)
    bare.write_bytes(buf.getvalue())
    with pytest.raises(ModelError, match="metadata lacks") as e:
        DepthGenerator(bare)
    assert "bare.onnx" in _one_line(e.value)
    # metadata promising 48 px crops on a graph that takes 64 px
    proto = onnx.load(str(onnx_path))
    buf = io.BytesIO()
    torch.onnx.export(build_generator().eval(), (torch.zeros(1, 3, 64, 64),), buf, input_names=["color"],
                      output_names=["depth"], dynamo=False)
    wrong = onnx.load_from_string(buf.getvalue())
    wrong.metadata_props.extend(proto.metadata_props)
    onnx.save(wrong, str(tmp_path / "wrong.onnx"))
    with pytest.raises(ModelError, match="input shape") as e:
        DepthGenerator(tmp_path / "wrong.onnx")
    _one_line(e.value)
    # garbled metadata
    for p in proto.metadata_props:
        if p.key == "crop":
            p.value = "{not json"
    onnx.save(proto, str(tmp_path / "garbled.onnx"))
    with pytest.raises(ModelError, match="'crop' is not valid JSON"):
        DepthGenerator(tmp_path / "garbled.onnx")


def test_wrong_input_arrays_are_config_errors(trained):
    from sensors.errors import ConfigError

    gen = DepthGenerator(trained[1], provider="cpu")
    for bad in (np.zeros((S, S, 3), np.float32), np.zeros((S + 1, S, 3), np.uint8), np.zeros((S, S), np.uint8), None):
        with pytest.raises(ConfigError):
            gen.predict(bad)


def test_export_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert launch.main(["export", "--checkpoint", str(tmp_path / "junk.pt"), "--out", str(tmp_path / "x.onnx")]) == 1
    err = capsys.readouterr().err
    assert "junk.pt" in err and err.count("\n") == 1


def test_inference_never_loads_torch():
    code = "import sys, models.generator.runtime; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
