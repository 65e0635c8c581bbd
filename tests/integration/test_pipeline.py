"""The headless pipeline without Qt: synchronous step() results, per-model crops, backpressure
(a slow model drops frames while latency stays bounded), pause/step/seek in threaded mode,
errors, and clean shutdown."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from app.pipeline import STAGES, Pipeline
from models.metrics import ALL_KEYS, depth_metrics
from tests.support.fakes import (
    COLOR_CAM,
    CROP,
    HEAD_RADIUS_MM,
    FailingGenerator,
    SlowGenerator,
    fake_source,
    write_tiny_generator,
)
from sensors.encoding import encode_depth
from models.common.errors import ModelError
from sensors.errors import SourceLostError


def _pipeline_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("facedepth-") and t.is_alive()]


def test_step_gives_a_full_result_with_true_depth_prediction_metrics_and_timings():
    src = fake_source(n=5)
    gen = SlowGenerator()
    p = Pipeline(src, [gen])
    r = p.step()
    assert r.index == 0 and r.has_face and r.head.method == "annotation"
    # the annotation (depth camera) moved 52 mm into the colour camera: the head is straight ahead at 800 mm
    np.testing.assert_allclose(r.head.center_color_mm, [0.0, 0.0, 800.0], atol=1e-9)
    (m,) = r.models
    assert m.name == "slow" and m.pred8.shape == (100, 100) and m.pred8.dtype == np.uint8
    assert m.crop.distance_mm == pytest.approx(800.0)
    # the sphere's front is 90 mm nearer than its centre: level 1 + 254 (800 + 150 - 710) / 300
    front = encode_depth(np.array([800.0 - HEAD_RADIUS_MM]), 800.0, 150.0)[0]
    assert abs(int(m.true8[49:51, 49:51].mean().round()) - int(front)) <= 1
    # the window is w = fx R / D wide, centred on the head
    x0, y0, w, h = m.crop.window_px
    assert w == pytest.approx(COLOR_CAM.fx * CROP["window_x_mm"] / 800.0)
    assert x0 + w / 2 == pytest.approx(COLOR_CAM.cx)
    # the metrics are those of this prediction against this frame's true crop
    expected = depth_metrics(m.pred8, m.true8, 800.0, 150.0)
    assert set(m.metrics) == set(ALL_KEYS)
    for k in ALL_KEYS:
        assert m.metrics[k] == pytest.approx(expected[k])
    assert m.verification is None and m.enrolled is None  # no verifier
    assert set(STAGES) <= set(r.timings_ms) and r.timings_ms["total"] >= r.timings_ms["infer"] >= 0
    assert r.latency_ms >= 0 and r.dropped == 0
    assert p.step().index == 1


def test_each_model_gets_the_crop_its_own_metadata_asks_for():
    src = fake_source(n=3)
    wide = SlowGenerator(name="wide")
    wide.crop_config_dict = {"size_px": 64, "window_x_mm": 300.0, "window_y_mm": 300.0, "half_range_mm": 200.0}
    p = Pipeline(src, [SlowGenerator(name="a"), wide])
    a, b = p.step().models
    assert a.pred8.shape == (100, 100) and b.pred8.shape == (64, 64)
    assert b.crop.window_px[2] == pytest.approx(COLOR_CAM.fx * 300.0 / 800.0)
    assert b.crop.config.half_range_mm == 200.0
    # the same front surface, encoded with each model's half-range
    assert abs(int(b.true8[31:33, 31:33].mean().round()) - int(encode_depth(np.array([710.0]), 800.0, 200.0)[0])) <= 1


def test_the_verifier_scores_only_crops_of_the_geometry_it_was_trained_on():
    class Verifier:
        threshold = 0.5
        crop_config_dict = dict(CROP)

        def __init__(self):
            self.calls = 0

        def score(self, a, b):
            self.calls += 1
            return 0.9

    wide = SlowGenerator(name="wide")
    wide.crop_config_dict = {**CROP, "window_x_mm": 300.0, "window_y_mm": 300.0}
    v = Verifier()
    a, b = Pipeline(fake_source(n=3), [SlowGenerator(name="a"), wide], verifier=v).step().models
    assert a.verification == 0.9 and b.verification is None and v.calls == 1


def test_a_real_onnx_generator_runs_in_the_pipeline(tmp_path):
    from models.generator.runtime import DepthGenerator

    gen = DepthGenerator(write_tiny_generator(tmp_path / "tiny.onnx"))
    r = Pipeline(fake_source(n=2), [gen]).step()
    (m,) = r.models
    # the tiny model maps brighter pixels nearer: the lit skin disc comes out nearer than the background
    centre, corner = m.pred8[45:55, 45:55].mean(), m.pred8[:5, :5].mean()
    assert centre > corner
    assert m.metrics is not None and 0.0 <= m.metrics["delta<1.25"] <= 1.0


def test_no_face_is_a_result_not_an_exception():
    p = Pipeline(fake_source(n=2, annotate="off"), [SlowGenerator()])
    r = p.step()
    assert not r.has_face and r.models == ()


def test_step_raises_eof_at_the_end_of_a_recording():
    p = Pipeline(fake_source(n=2), [SlowGenerator()])
    p.step()
    p.step()
    with pytest.raises(EOFError):
        p.step()


def test_backpressure_a_slow_model_drops_frames_and_latency_stays_bounded():
    period_s, infer_s = 0.01, 0.06          # a 100 Hz source, a model 6x slower
    src = fake_source(n=100_000, fps=1 / period_s, live="on")
    p = Pipeline(src, [SlowGenerator(delay_s=infer_s)])
    p.start()
    latencies = []
    try:
        t_end = time.monotonic() + 2.0
        while time.monotonic() < t_end:
            latencies.append(p.next_result(timeout_s=2.0).latency_ms)
        dropped_running = p.dropped
    finally:
        p.stop()
    assert len(latencies) >= 10
    assert dropped_running > 0 and p.dropped >= dropped_running   # the count survives stop()
    # every frame read was either processed or dropped (one may be in flight at stop)
    assert p.frames_read - 2 <= p.frames_processed + p.dropped <= p.frames_read
    # the newest frame is always the one processed: latency is bounded by about one inference plus
    # one frame period (plus scheduling on a shared machine), never a growing queue
    bound_ms = 1e3 * (2 * infer_s + 2 * period_s) + 150
    assert max(latencies) < bound_ms, latencies
    assert np.median(latencies[-5:]) < bound_ms


def test_recordings_and_datasets_lose_no_frame_in_threaded_mode():
    p = Pipeline(fake_source(n=25), [SlowGenerator(delay_s=0.01)])   # not live: lossless by default
    p.start()
    indices = []
    try:
        while True:
            indices.append(p.next_result(timeout_s=2.0).index)
    except EOFError:
        pass
    finally:
        p.stop()
    assert indices == list(range(25)) and p.dropped == 0


def test_stop_ends_every_thread_within_two_seconds_even_while_a_read_waits():
    src = fake_source(n=100_000, fps=0.5, live="on")   # the next frame is due in 2 s
    p = Pipeline(src, [SlowGenerator()])
    p.start()
    p.next_result(timeout_s=2.0)
    time.sleep(0.1)                                      # the capture thread is now inside read()
    assert len(_pipeline_threads()) == 2
    t0 = time.monotonic()
    p.stop(timeout_s=2.0)
    assert time.monotonic() - t0 < 2.0
    assert not p.running and _pipeline_threads() == []
    src.close()


def test_pause_step_and_seek_in_threaded_mode():
    src = fake_source(n=100)
    p = Pipeline(src, [SlowGenerator()])
    p.pause()
    p.start()
    try:
        with pytest.raises(TimeoutError):
            p.next_result(timeout_s=0.2)          # paused: nothing is read
        p.request_step()
        assert p.next_result(timeout_s=2.0).index == 0
        p.request_step()
        assert p.next_result(timeout_s=2.0).index == 1
        with pytest.raises(TimeoutError):
            p.next_result(timeout_s=0.2)
        p.seek(60)                                 # while paused, the frame sought to is shown
        assert p.next_result(timeout_s=2.0).index == 60
        assert p.latest().index == 60
        p.resume()
        assert p.next_result(timeout_s=2.0).index > 60
    finally:
        p.stop()


def test_a_lost_source_ends_the_stream_with_its_error():
    p = Pipeline(fake_source(n=100, lost_at=3), [SlowGenerator()])
    p.start()
    indices = []
    try:
        while True:
            indices.append(p.next_result(timeout_s=2.0).index)
    except EOFError:
        pass
    finally:
        p.stop()
    assert p.finished.is_set() and isinstance(p.error, SourceLostError)
    assert indices[-1] <= 2 and "unplugged" in str(p.error)


def test_a_model_failing_at_run_time_ends_the_stream_with_its_error():
    p = Pipeline(fake_source(n=100_000), [FailingGenerator(fail_at=3)])
    p.start()
    try:
        assert p.finished.wait(3.0)
    finally:
        p.stop()
    assert isinstance(p.error, ModelError) and _pipeline_threads() == []


class _BuggyGenerator(SlowGenerator):
    def predict(self, color: np.ndarray) -> np.ndarray:
        raise RuntimeError("onnxruntime run failed")


def test_an_unexpected_exception_ends_the_stream_with_a_one_line_error(capsys):
    from sensors.errors import FacedepthError

    p = Pipeline(fake_source(n=100_000), [_BuggyGenerator()])
    p.start()
    try:
        assert p.finished.wait(3.0)
    finally:
        p.stop()
    assert isinstance(p.error, FacedepthError) and "RuntimeError: onnxruntime run failed" in str(p.error)
    assert "\n" not in str(p.error) and "Traceback" in capsys.readouterr().err
    assert _pipeline_threads() == []
