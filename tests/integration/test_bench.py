"""``launch.py bench``: the quick run end to end, so the benchmark cannot rot, and its parts.

The quick run records the virtual Kinect, times every stage, the generator (ONNX Runtime and
PyTorch) and the whole pipeline, and the test checks that the numbers hang together: each
timing's p50 <= p95 <= p99, frames per second agree with frames over elapsed time, every frame
of the paced run is either processed or counted as dropped, PyTorch and ONNX Runtime compute
the same output. No speed target is asserted here (the machine is shared).
"""
from __future__ import annotations

import json
import os
import time

import pytest

torch = pytest.importorskip("torch")

import launch  # noqa: E402
from app.bench.pipeline import SensorPacedReplay, run_soak  # noqa: E402
from app.bench.plan import QUICK, STAGES, TARGET_RSS_GROWTH_MB  # noqa: E402
from app.bench.recording import record_source  # noqa: E402
from app.bench.timing import summarize  # noqa: E402
from tests.support.fakes import fake_source, write_tiny_verifier  # noqa: E402
from sensors.source import parse_uri  # noqa: E402

REQUIRED = ("generator.onnx_ms_p50", "generator.torch_ms_p50", "pipeline.fps", "pipeline.latency_ms_p99",
            "pipeline.dropped", "memory.peak_mb", "machine.cpu", "machine.cores", "machine.gpu", "commit", "date")


def _get(report: dict, dotted: str):
    node = report
    for key in dotted.split("."):
        assert key in node, f"{dotted} missing from the report"
        node = node[key]
    return node


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The default generator architecture (random weights: the same cost as trained ones) saved as
    a checkpoint and exported with ``launch.py export``, the .pt beside the .onnx as shipped; and a
    tiny verifier."""
    from models.generator.net import Generator, GeneratorConfig
    from models.common.checkpoint import CHECKPOINT_FORMATS, CHECKPOINT_VERSION
    from sensors.crop import CropConfig

    d = tmp_path_factory.mktemp("bench_models")
    torch.manual_seed(0)
    config = GeneratorConfig()
    ckpt = {"format": CHECKPOINT_FORMATS["generator"], "version": CHECKPOINT_VERSION, "mode": "ae",
            "generator_config": config.to_dict(), "generator": Generator(config).state_dict(),
            "crop": CropConfig().to_dict(), "synthetic_only": True}
    torch.save(ckpt, d / "generator.pt")
    assert launch.main(["export", "--checkpoint", str(d / "generator.pt"), "--out", str(d / "generator.onnx")]) == 0
    return d / "generator.onnx", write_tiny_verifier(d / "verifier.onnx")


@pytest.fixture(scope="module")
def quick_report(exported, tmp_path_factory):
    model, verifier = exported
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    rc = launch.main(["bench", "--quick", "--model", str(model), "--verifier", str(verifier), "--json", str(out)])
    assert rc == 0
    return json.loads(out.read_text())


def _summaries(node, path=""):
    """Every timing summary (a dict with ms_p50) anywhere in the report, with its dotted path."""
    if isinstance(node, dict):
        if "ms_p50" in node:
            yield path, node
        for k, v in node.items():
            yield from _summaries(v, f"{path}.{k}" if path else k)


def test_report_has_the_required_keys_and_the_machine(quick_report):
    for key in REQUIRED:
        _get(quick_report, key)
    m = quick_report["machine"]
    assert m["cores"] == os.cpu_count() and m["cpu"]
    assert len(m["load_average_before"]) == 3 and len(m["load_average_after"]) == 3
    assert quick_report["commit"] != "" and quick_report["quick"] is True
    rec = quick_report["inputs"]["recording"]
    assert (rec["frames"], rec["color_size"], rec["depth_size"]) == (QUICK.frames, "1920x1080", "512x424")
    assert rec["annotated_frames"] == rec["frames"]


def test_every_stage_is_measured(quick_report):
    stages = quick_report["stages"]
    assert list(stages) == list(STAGES)
    for name, s in stages.items():
        assert "ms_p50" in s, f"{name}: {s}"
        assert s["runs"] >= QUICK.min_runs
        assert s["ms_p50"] > 0
    assert set(quick_report["stage_notes"]) <= set(STAGES)


def test_every_timing_is_coherent(quick_report):
    found = list(_summaries(quick_report))
    assert len(found) > 20
    for path, s in found:
        assert 0 <= s["ms_min"] <= s["ms_p50"] <= s["ms_p95"] <= s["ms_p99"] <= s["ms_max"], path
        assert s["ms_min"] <= s["ms_mean"] <= s["ms_max"], path
        assert s["runs"] >= 1, path


def test_pipeline_fps_agrees_with_frames_over_elapsed_time(quick_report):
    pipe = quick_report["pipeline"]
    n = quick_report["inputs"]["recording"]["frames"]
    warm = QUICK.pipeline_warmup
    for run in ("fast", "sync", "paced"):
        r = pipe[run]
        assert r["elapsed_s"] > 0
        assert r["fps"] == pytest.approx(r["frames"] / r["elapsed_s"], rel=2e-3, abs=0.01), run
        assert r["faces"] == r["frames"] == r["scored"], run  # every frame is annotated
        assert r["cpu_ms_per_frame"] > 0
    # the lossless runs process every frame after the warm-up
    assert pipe["fast"]["frames"] == pipe["sync"]["frames"] == n - warm
    assert pipe["fps"] == pipe["fast"]["fps"] and pipe["fps_one_thread"] == pipe["sync"]["fps"]
    # the paced run: each frame processed or counted as dropped, never faster than the sensor
    paced = pipe["paced"]
    assert paced["frames_total"] == n
    assert paced["frames"] + warm + paced["dropped"] == n
    assert paced["dropped"] == paced["dropped_in_mailbox"] + paced["dropped_stale"] == pipe["dropped"]
    assert paced["fps"] <= 30.0 * 1.1
    assert pipe["latency_ms_p99"] == paced["latency_ms_p99"] > 0
    assert paced["latency_ms_p50"] <= paced["latency_ms_p95"] <= paced["latency_ms_p99"]
    assert set(paced["stages"]) == {"read", "locate", "crop", "infer", "score", "total"}


def test_generator_timings_and_torch_parity(quick_report):
    gen = quick_report["generator"]
    live = gen["runs"]["cpu/threads=1/batch=1"]
    assert gen["onnx_ms_p50"] == live["ms_p50"]
    assert {"cpu/threads=1/batch=32", "cpu/threads=default/batch=1", "cpu/threads=default/batch=32"} <= set(gen["runs"])
    assert gen["providers"]["CPUExecutionProvider"] == "loads"
    b32 = gen["runs"]["cpu/threads=1/batch=32"]
    assert b32["crops_per_s"] == pytest.approx(32e3 / b32["ms_p50"], rel=1e-3)
    t = gen["torch"]
    assert t["weights"] == "checkpoint"
    assert gen["torch_ms_p50"] == t["runs"]["threads=default/batch=1"]["ms_p50"] > 0
    assert t["max_abs_diff_vs_onnx"] <= 1e-4  # the same network on the same crops


def test_memory_figures(quick_report):
    mem, pipe = quick_report["memory"], quick_report["pipeline"]
    assert mem["peak_mb"] > 0
    for run in ("fast", "sync", "paced"):
        assert pipe[run]["rss_after_warmup_mb"] <= mem["peak_mb"] + 1.0
    assert mem["rss_growth_mb"] == max(pipe[r]["rss_growth_mb"] for r in ("fast", "sync", "paced"))


def test_targets_are_judged_from_the_values(quick_report):
    t = quick_report["targets"]
    assert t["pipeline_fps>=90"]["met"] == (t["pipeline_fps>=90"]["value"] >= 90)
    assert t["pipeline_fps>=90"]["value"] == quick_report["pipeline"]["fps"]
    assert t["latency_p99_ms<=20"]["met"] == (t["latency_p99_ms<=20"]["value"] <= 20)
    assert t["dropped==0"]["met"] == (quick_report["pipeline"]["dropped"] == 0)
    assert t["generator_ms_p50<=3"]["value"] == quick_report["generator"]["onnx_ms_p50"]
    if quick_report["generator"]["gpu_crops_per_s_batch32"] is None:
        assert t["gpu_crops_per_s_batch32>=5000"]["met"] is None


def test_summarize_uses_linear_percentiles():
    values = list(range(1, 101))  # 1..100 ms
    s = summarize(values[::-1], cpu_s=0.5)
    assert (s["ms_p50"], s["ms_p95"], s["ms_p99"]) == (50.5, 95.05, 99.01)
    assert (s["ms_mean"], s["ms_min"], s["ms_max"], s["runs"], s["cpu_ms_mean"]) == (50.5, 1, 100, 100, 5.0)
    assert summarize([])["available"] is False


def test_sensor_paced_replay_stamps_due_times_and_skips_stale_frames(tmp_path):
    from sensors.recording import Recorder

    path = tmp_path / "fake.mcap"
    with fake_source(n=10) as src, Recorder(path) as rec:
        for frame in src:  # recorded 33.3 ms apart
            assert rec.write(frame, wait_s=10.0)
    replay = SensorPacedReplay(parse_uri(f"replay:{path}"))
    with replay:
        t0 = time.monotonic_ns()
        first = replay.read(1.0)
        second = replay.read(1.0)
        assert time.monotonic_ns() - t0 >= 30_000_000  # waited for frame 1 to be due
        assert first.index == 0 and second.index == 1
        assert second.timestamp_ns - first.timestamp_ns == 33_333_333
        assert abs(first.timestamp_ns - t0) < 20_000_000
        time.sleep(0.2)  # a reader that falls behind gets the newest frame due
        late = replay.read(1.0)
        assert late.index >= 6 and replay.skipped == late.index - 2
        assert late.timestamp_ns == first.timestamp_ns + late.index * 33_333_333
        rest = []
        with pytest.raises(EOFError):
            while True:
                rest.append(replay.read(1.0).index)
        assert 3 + len(rest) + replay.skipped == 10


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert launch.main(["bench", "--quick", "--model", str(tmp_path / "none.onnx")]) == 1
    err = capsys.readouterr().err
    assert "none.onnx" in err and len(err.strip().splitlines()) == 1
    assert launch.main(["bench", "--quick", "--model", str(tmp_path / "none.onnx"), "--frames", "3"]) == 2
    assert launch.main(["bench", "--quick", "--soak", "-1", "--model", str(tmp_path / "x.onnx")]) == 2


def test_phases_add_up(quick_report):
    phases = quick_report["phases_s"]
    assert set(phases) == {"record", "stages", "generator", "torch", "pipeline"}
    assert all(v >= 0 for v in phases.values())
    assert sum(phases.values()) <= quick_report["elapsed_s"] + 0.5


@pytest.mark.slow
def test_memory_stays_flat_over_10000_frames(exported, tmp_path):
    """The flat-memory target: the threaded pipeline over 10,000 frames (a short Kinect v2-sized
    recording looped) grows by less than 50 MB of resident memory after warm-up."""
    from app.headless import load_generators, load_verifier

    model, verifier = exported
    recording = tmp_path / "soak.mcap"
    record_source("virtual:seed=3,pace=off", 60, recording)
    soak = run_soak(recording, load_generators([model]), load_verifier(verifier), frames=10_000, warmup=500)
    assert soak["frames"] == 10_000 - 500 == soak["scored"]
    assert soak["rss_growth_mb"] < TARGET_RSS_GROWTH_MB
