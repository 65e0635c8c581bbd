"""The app's controller without Qt: opening sources, switching models, play/pause/step/seek,
recording and enrolment, and the events a view subscribes to (some from the inference thread)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from app import controller as ctl
from app.controller import Controller, EventHub
from tests.support.fakes import open_fake_or_real, write_tiny_generator, write_tiny_verifier
from tests.support.waits import wait_until
from sensors.source import open_source

ROOT = Path(__file__).resolve().parents[2]


class Events:
    """Every event a controller emits, with the thread it came from."""

    def __init__(self, hub: EventHub) -> None:
        self.seen: list[tuple[object, threading.Thread]] = []
        self._lock = threading.Lock()
        hub.subscribe(self._add)

    def _add(self, event: object) -> None:
        with self._lock:
            self.seen.append((event, threading.current_thread()))

    def of(self, kind: type) -> list:
        with self._lock:
            return [e for e, _ in self.seen if isinstance(e, kind)]

    def threads(self, kind: type) -> list[threading.Thread]:
        with self._lock:
            return [t for e, t in self.seen if isinstance(e, kind)]


@pytest.fixture
def make(tmp_path, tiny_model):
    """A Controller with its events recorded; closed after the test."""
    made: list[Controller] = []

    def build(**kw) -> tuple[Controller, Events]:
        kw.setdefault("output_dir", tmp_path / "out")
        kw.setdefault("verifier_path", tmp_path / "no_verifier.onnx")
        c = Controller(kw.pop("model", tiny_model), source_opener=open_fake_or_real, **kw)
        made.append(c)
        return c, Events(c.events)

    yield build
    for c in made:
        c.close()


def test_the_event_hub_calls_its_subscribers_in_order_until_they_unsubscribe():
    hub, got = EventHub(), []
    hub.subscribe(lambda e: got.append(("a", e)))
    stop_b = hub.subscribe(lambda e: got.append(("b", e)))
    hub.emit(ctl.Seeked(1))
    stop_b()
    hub.emit(ctl.Seeked(2))
    assert got == [("a", ctl.Seeked(1)), ("b", ctl.Seeked(1)), ("a", ctl.Seeked(2))]


def test_opening_a_source_runs_the_pipeline_and_says_so(make):
    c, events = make()
    assert c.open_source("fake:n=50")
    assert events.of(ctl.SourceOpened) == [ctl.SourceOpened("fake:n=50", 50, False)]
    (ready,) = events.of(ctl.PipelineReady)
    assert ready.model_names == ("tiny",) and ready.provider == "CPU" and ready.synthetic_only and ready.playing
    wait_until(lambda: c.log is not None and len(c.log) >= 5)
    result, done_ns = c.last_processed
    assert result is not None and result.models[0].name == "tiny" and done_ns > 0
    assert c.model_files() == [c.model_path]


def test_a_bad_source_is_reported_and_another_can_be_opened(make, tmp_path):
    c, events = make()
    assert not c.open_source(f"replay:{tmp_path / 'missing.mcap'}")
    (notice,) = events.of(ctl.Notice)
    assert notice.kind == "error" and notice.reconnect and notice.text.startswith("Could not open the source")
    assert c.pipeline is None and c.source is None
    assert c.open_source("fake:n=30") and c.pipeline is not None


def test_a_bad_model_is_reported_and_the_old_one_runs_again(make, tmp_path, tiny_model):
    c, events = make()
    c.open_source("fake:n=300,fps=60")
    bad = tmp_path / "random.onnx"
    bad.write_bytes(np.random.default_rng(0).bytes(2000))
    assert not c.set_model(bad)
    assert c.model_path == tiny_model and c.pipeline is not None
    assert "Could not load the model" in events.of(ctl.Notice)[-1].text
    assert events.of(ctl.ModelsChanged)[-1] == ctl.ModelsChanged(tiny_model, None)
    wait_until(lambda: c.pipeline.latest() is not None)
    assert c.pipeline.latest().models[0].name == "tiny"


def test_comparing_runs_the_second_model_beside_the_first(make, tmp_path):
    second = write_tiny_generator(tmp_path / "wide.onnx", weights=(0.3, 0.3, 0.3))
    c, events = make()
    c.open_source("fake:n=300,fps=60")
    c.set_compare(True, second)
    assert c.compare and c.second_path == second
    assert events.of(ctl.PipelineReady)[-1].model_names == ("tiny", "wide")
    wait_until(lambda: c.pipeline.latest() is not None)
    assert [m.name for m in c.pipeline.latest().models] == ["tiny", "wide"]
    c.set_compare(False)
    assert events.of(ctl.PipelineReady)[-1].model_names == ("tiny",)


def test_pause_step_and_seek_on_a_recording(make):
    c, events = make()
    c.open_source("fake:n=100,fps=100")
    wait_until(lambda: c.pipeline.latest() is not None)
    c.set_playing(False)
    assert events.of(ctl.PlayingChanged)[-1] == ctl.PlayingChanged(False)
    time.sleep(0.2)
    index = c.pipeline.latest().index
    c.step()
    wait_until(lambda: c.pipeline.latest().index == index + 1)
    assert c.seek(60) and events.of(ctl.Seeked) == [ctl.Seeked(60)]
    wait_until(lambda: c.pipeline.latest().index == 60)
    c.step()   # paused: one more frame
    wait_until(lambda: c.pipeline.latest().index == 61)


def test_the_end_of_a_recording_then_play_starts_it_again(make):
    c, events = make()
    c.open_source("fake:n=8")
    wait_until(lambda: c.pipeline.finished.is_set())
    c.set_playing(False)
    c.set_playing(True)            # at the end: from the start again
    assert len(events.of(ctl.PipelineRestarted)) == 1
    wait_until(lambda: c.pipeline.finished.is_set() and c.pipeline.latest().index == 7)


def test_recording_starts_stops_and_replays(make, tmp_path):
    c, events = make()
    assert c.start_recording(tmp_path / "none.mcap") is None     # nothing runs yet
    c.open_source("fake:n=400,fps=60")
    path = c.start_recording(tmp_path / "session.mcap")
    assert path is not None and c.recording and events.of(ctl.RecordingStarted) == [ctl.RecordingStarted(path)]
    wait_until(lambda: c.recording_status().frames_written >= 10)
    assert c.stop_recording() == path and not c.recording and c.recording_status() is None
    assert events.of(ctl.RecordingStopped) == [ctl.RecordingStopped(path)]
    assert events.of(ctl.Notice)[-1].kind == "info" and "Recorded" in events.of(ctl.Notice)[-1].text
    replay = open_source(f"replay:{path},pace=off")
    assert len(replay) >= 10 and replay.describe()["complete"]
    replay.close()


def test_a_recording_that_cannot_write_is_reported_from_the_inference_thread(make, tmp_path, monkeypatch):
    import sensors.recording

    class BrokenRecorder:
        frames_written = frames_dropped = 0
        error = None

        def __init__(self, path, source_info=None) -> None:
            self.path = Path(path)

        def write(self, frame, prediction_depth8=None, metrics=None) -> bool:
            raise OSError(28, "No space left on device")

        def close(self) -> None:
            pass

    monkeypatch.setattr(sensors.recording, "Recorder", BrokenRecorder)
    c, events = make()
    c.open_source("fake:n=400,fps=60")
    path = c.start_recording(tmp_path / "full.mcap")
    wait_until(lambda: events.of(ctl.RecordingFailed))
    (failed,) = events.of(ctl.RecordingFailed)        # once, however many frames fail
    assert failed.path == path and "No space left" in failed.error
    assert events.threads(ctl.RecordingFailed)[0].name == "facedepth-inference"
    assert c.stop_recording(failure=failed.error) == path
    notice = events.of(ctl.Notice)[-1]
    assert notice.kind == "error" and notice.text.startswith("Recording failed: No space left")
    assert len(events.of(ctl.RecordingFailed)) == 1


def test_enrolment_collects_on_the_inference_thread_and_finishes_on_the_caller_s(make, tmp_path):
    verifier = write_tiny_verifier(tmp_path / "verifier.onnx")
    c, events = make(verifier_path=verifier)
    assert c.verifier is not None
    assert not c.enrol("Nobody")                                 # no source yet
    c.open_source("fake:n=400,fps=60")
    wait_until(lambda: c.pipeline.latest() is not None)
    assert c.enrol("Alice Smith", frames=5)
    wait_until(lambda: events.of(ctl.EnrolmentCollected))
    assert events.threads(ctl.EnrolmentCollected)[0].name == "facedepth-inference"
    assert c.finish_enrolment() and not c.finish_enrolment()     # once
    (enrolled,) = events.of(ctl.Enrolled)
    assert enrolled.path == tmp_path / "out" / "enrolments" / "Alice_Smith.json" and enrolled.path.is_file()
    assert c.enrolment is enrolled.enrolment and c.pipeline.enrolment is enrolled.enrolment
    assert c.enrolment.kind == "true-depth" and len(c.enrolment.embeddings) == 5
    # a controller made later reloads it for the same verifier
    again, _ = make(verifier_path=verifier)
    again.reload_enrolment(enrolled.path)
    assert again.enrolment is not None and again.enrolment.name == "Alice Smith"


def test_closing_stops_every_thread_and_finishes_the_recording(make, tmp_path):
    c, events = make()
    c.open_source("fake:n=100000,fps=30,live=on")
    path = c.start_recording(tmp_path / "closing.mcap")
    wait_until(lambda: c.recording_status().frames_written >= 5)
    t0 = time.monotonic()
    c.close()
    assert time.monotonic() - t0 < 2.0
    assert not [t for t in threading.enumerate() if t.name.startswith("facedepth-") and t.is_alive()]
    assert events.of(ctl.RecordingStopped) == [ctl.RecordingStopped(path)]
    assert not [n for n in events.of(ctl.Notice) if n.kind == "info"]   # nobody reads news while closing
    assert isinstance(events.of(object)[-1], ctl.SourceClosed)


def test_the_shipped_generator_runs_on_the_virtual_kinect(make):
    model = ROOT / "models" / "weights" / "generator.onnx"  # committed: its absence is a failure
    pytest.importorskip("sensors.virtual")
    c, events = make(model=model)
    assert c.open_source("virtual:pace=off"), events.of(ctl.Notice)
    assert events.of(ctl.SourceOpened)[0].length is None      # live: no seeking
    wait_until(lambda: c.log is not None and len(c.log) >= 3, timeout_s=30.0)
    assert c.pipeline.latest().models[0].name == "generator"


def test_a_source_opened_while_paused_plays(make):
    c, events = make()
    c.open_source("fake:n=400,fps=100")
    wait_until(lambda: c.pipeline.latest() is not None)
    c.set_playing(False)
    assert c.open_source("fake:n=400,fps=100")          # e.g. a webcam picked while paused
    assert c.playing and events.of(ctl.PlayingChanged)[-1] == ctl.PlayingChanged(True)
    assert events.of(ctl.PipelineReady)[-1].playing
    wait_until(lambda: c.pipeline.latest() is not None and c.pipeline.latest().index >= 5)
