"""The headless run (``launch.py run --headless``): the JSON report's contract (frames, fps,
latency percentiles, skipped, provenance, metrics with the documented keys, verification,
per_frame) and the crops ``--save`` writes."""
from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import pytest

import launch
from models.metrics import ALL_KEYS
from tests.support.fakes import write_tiny_generator, write_tiny_verifier
from sensors.encoding import decode_depth
from sensors.source import SOURCE_SCHEMES


@pytest.fixture
def fake_scheme(monkeypatch):
    monkeypatch.setitem(SOURCE_SCHEMES, "fake", "tests.support.fakes:FakeRGBDSource")


def test_headless_report_and_saved_crops(tmp_path, fake_scheme):
    model = write_tiny_generator(tmp_path / "gen.onnx")
    verifier = write_tiny_verifier(tmp_path / "ver.onnx", threshold=0.5)
    report_path, save = tmp_path / "r.json", tmp_path / "crops"
    rc = launch.main(["run", "--headless", "--source", "fake:n=12", "--model", str(model), "--verifier",
                      str(verifier), "--max-frames", "8", "--report", str(report_path), "--save", str(save)])
    assert rc == 0
    r = json.loads(report_path.read_text())
    assert r["frames"] == 8 and len(r["per_frame"]) == 8
    assert r["fps"] > 0
    lat = r["latency_ms"]
    assert 0 <= lat["p50"] <= lat["p95"] <= lat["p99"]
    assert r["skipped"]["count"] == 0
    prov = r["provenance"]
    assert hashlib.sha256(model.read_bytes()).hexdigest() in json.dumps(prov)
    assert "commit" in prov and "half_range_mm" in json.dumps(prov) and "window_x_mm" in json.dumps(prov)
    # every metric of docs/design.md, "Metrics", in both domains, averaged over the scored frames
    assert set(ALL_KEYS) <= set(r["metrics"]) and {"l1_mm", "rmse_mm", "delta<1.25^1/4"} <= set(r["metrics"])
    frame_l1 = [f["metrics"]["l1_mm"] for f in r["per_frame"] if f.get("metrics")]
    assert len(frame_l1) == r["metrics_frames"] == 8
    assert r["metrics"]["l1_mm"] == pytest.approx(float(np.mean(frame_l1)))
    v = r["verification"]
    assert v["threshold"] == 0.5 and v["frames"] == 8 and 0 <= v["accept_rate"] <= 1
    assert -1 <= v["score_mean"] <= 1
    # --save: per frame the colour, true and predicted 8-bit crops and the prediction in mm
    for kind in ("color", "true", "pred", "pred_mm"):
        assert len(list(save.glob(f"*_{kind}.png"))) == 8, kind
    pred8 = cv2.imread(str(sorted(save.glob("*_pred.png"))[0]), cv2.IMREAD_UNCHANGED)
    pred_mm = cv2.imread(str(sorted(save.glob("*_pred_mm.png"))[0]), cv2.IMREAD_UNCHANGED)
    assert pred8.dtype == np.uint8 and pred_mm.dtype == np.uint16 and pred8.shape == pred_mm.shape == (100, 100)
    # the mm image is the 8-bit prediction decoded around the head distance (800 mm, H = 150 mm)
    expected = decode_depth(pred8, 800.0, 150.0)
    valid = pred8 > 0
    assert np.abs(pred_mm[valid] - expected[valid]).max() <= 1.0 and (pred_mm[~valid] == 0).all()


def test_a_video_is_tracked_from_frame_to_frame_not_detected_afresh(tmp_path):
    """A video plays through the app's tracking locator: after the first frame, the face is found
    near where it was, far cheaper than searching the whole frame again."""
    from pathlib import Path

    import matplotlib

    photo = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    face = cv2.resize(photo, (256, 300))
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (960, 540))
    for i in range(40):  # the portrait slides 4 px a frame across a 960 x 540 frame, as a head moves
        frame = np.full((540, 960, 3), 70, np.uint8)
        x = 200 + 4 * i
        frame[120:420, x:x + 256] = face
        writer.write(frame)
    writer.release()
    report = tmp_path / "r.json"
    assert launch.main(["run", "--headless", "--source", f"images:{clip},pace=off", "--model",
                        str(write_tiny_generator(tmp_path / "tiny.onnx")), "--report", str(report)]) == 0
    frames = json.loads(report.read_text())["per_frame"]
    assert len(frames) == 40 and sum(f["face"] for f in frames) >= 38
    tracked_ms = np.median([f["timings_ms"]["locate"] for f in frames[5:]])
    # the same frames searched afresh, as dataset building does (about 50 ms against 5 here)
    from models.refiner.runtime import load_refiner
    from sensors.locate.locator import HeadLocator
    from sensors.source import open_source

    fresh = HeadLocator(refiner=load_refiner())
    with open_source(f"images:{clip},pace=off") as src:
        video = [src.read(1.0) for _ in range(12)]
    fresh.locate(video[0])
    fresh_ms = []
    for frame in video[5:]:
        assert fresh.locate(frame) is not None
        fresh_ms.append(fresh.last_detect_ms)
    assert tracked_ms < 0.4 * np.median(fresh_ms), (tracked_ms, fresh_ms)


def test_a_paced_video_plays_at_its_own_rate_headless(tmp_path):
    """``images:CLIP`` paces by default: a 30 fps clip takes its own length to play headless (not
    less: frames are held to the video's clock; not much more: a slow first frame is caught up),
    while ``pace=off`` is not held to that clock."""
    from app.bench.video import write_clip

    clip = tmp_path / "clip.avi"
    info = write_clip(clip, seconds=1.5)
    model = write_tiny_generator(tmp_path / "tiny.onnx")
    duration_s = (info["frames"] - 1) / info["fps"]  # from the first frame's time to the last's
    elapsed = {}
    for name, uri in (("paced", f"images:{clip}"), ("fast", f"images:{clip},pace=off")):
        report = tmp_path / f"{name}.json"
        assert launch.main(["run", "--headless", "--source", uri, "--model", str(model), "--report", str(report)]) == 0
        r = json.loads(report.read_text())
        assert r["frames"] == info["frames"] and r["provenance"]["source"]["paced"] == (name == "paced")
        elapsed[name] = r["elapsed_s"]
    assert duration_s - 0.02 <= elapsed["paced"] <= duration_s + 1.0, elapsed
    assert elapsed["fast"] < elapsed["paced"], elapsed
