"""The app's controller, free of Qt: the pipeline over the open source, the models it runs,
play/pause/step/seek, recording and enrolment.

The window (:mod:`app.gui.window`) is a view of it: it calls the methods below and subscribes
to :attr:`Controller.events`. Events are plain frozen dataclasses. Most are emitted on the
thread that called the controller; :class:`RecordingFailed` and :class:`EnrolmentCollected`
come from the pipeline's inference thread (and the :class:`Notice` of a skipped bad frame from
its capture thread), so a subscriber that touches widgets must hand
them over to its own thread first (the window does it with a Qt signal) and answer them there
(:meth:`Controller.stop_recording`, :meth:`Controller.finish_enrolment`), which keeps slow
work such as writing an enrolment off the inference thread.

Frames never travel through events: a view polls :meth:`app.pipeline.Pipeline.latest`.
"""
from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from app.enrol import ENROLMENT_RULE
from app.pipeline import FrameResult, Pipeline
from app.session import SessionLog
from models.common.shipped import REAL_HEAD_SCORES, RealHeadScore
from sensors.errors import FacedepthError
from sensors.source import SeekableSource, Source, open_source

ENROL_FRAMES = ENROLMENT_RULE.frames
STOP_TIMEOUT_S = 2.0


def plain_words(exc: BaseException) -> str:
    """An exception as one line of plain words (FacedepthError messages already are)."""
    if isinstance(exc, FacedepthError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return f"{where}{exc.strerror or exc}"
    if isinstance(exc, ImportError):
        return f"a module it needs is not installed ({exc})"
    return f"{type(exc).__name__}: {exc}"


def report_unexpected(exc: BaseException) -> None:
    """A failure that is not one of the project's errors is a bug or a missing piece: the user
    sees it in one line, the terminal gets the traceback."""
    if not isinstance(exc, (FacedepthError, OSError, ImportError)):
        traceback.print_exception(exc, file=sys.stderr)


# -- events ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Notice:
    """Something for the user to read, in plain words: a failure or news."""

    text: str
    kind: Literal["error", "info"] = "error"
    reconnect: bool = False     # opening the source again may help


@dataclass(frozen=True)
class SourceOpened:
    uri: str
    length: int | None          # frames of a seekable source; None: live
    has_recorded_predictions: bool


@dataclass(frozen=True)
class SourceClosed:
    """The source and its pipeline are gone (another source comes, or the app closes)."""


def synthetic_note_text(real_head: RealHeadScore | None) -> str:
    """What is known of a model trained on synthetic faces only: its measured score on the real
    scanned head where there is one (shipped models), the shipped model that scores clearly better
    there (at least 1 mm) if any, and that real cameras were not measured."""
    if real_head is None:
        measured = "its accuracy on real faces has not been measured"
    else:
        best = min(REAL_HEAD_SCORES.values(), key=lambda s: s.face_shape_l1_mm)
        better = (f"; the shipped {best.file}: {best.face_shape_l1_mm:.1f} mm"
                  if best.face_shape_l1_mm <= real_head.face_shape_l1_mm - 1.0 else "")
        measured = (f"on one real person's scanned head rendered by the virtual Kinect its face-shape error is "
                    f"{real_head.face_shape_l1_mm:.1f} mm (MediaPipe Face Mesh: "
                    f"{real_head.mediapipe_face_shape_l1_mm:.1f} mm{better}); with real cameras it has not been "
                    f"measured")
    return f"Note: this model was trained on synthetic faces only (the virtual Kinect); {measured}."


@dataclass(frozen=True)
class PipelineReady:
    """A new pipeline runs the open source with these models (its session log is new too)."""

    model_names: tuple[str, ...]
    provider: str               # the first model's ONNX Runtime provider
    synthetic_only: bool        # the first model was trained on synthetic faces only
    playing: bool
    #: the first model's measured score on the real scanned head (``models.common.shipped``), if any
    real_head: RealHeadScore | None = None


@dataclass(frozen=True)
class PipelineRestarted:
    """The pipeline started again after the end of a recording."""


@dataclass(frozen=True)
class PlayingChanged:
    playing: bool


@dataclass(frozen=True)
class Seeked:
    index: int


@dataclass(frozen=True)
class ModelsChanged:
    model_path: Path
    second_path: Path | None


@dataclass(frozen=True)
class RecordingStarted:
    path: Path


@dataclass(frozen=True)
class RecordingStopped:
    path: Path


@dataclass(frozen=True)
class RecordingFailed:
    """The recorder cannot write (emitted once per recording, from the inference thread or the
    caller of :meth:`Controller.check_recording`); answer with ``stop_recording(failure=error)``."""

    path: Path
    error: str


@dataclass(frozen=True)
class EnrolmentCollected:
    """The enrolment's frames are in (from the inference thread); answer with ``finish_enrolment()``."""


@dataclass(frozen=True)
class Enrolled:
    path: Path                  # where the enrolment was saved
    enrolment: Any              # models.verifier.runtime.Enrolment


Event = (Notice | SourceOpened | SourceClosed | PipelineReady | PipelineRestarted | PlayingChanged | Seeked
         | ModelsChanged | RecordingStarted | RecordingStopped | RecordingFailed | EnrolmentCollected | Enrolled)


class EventHub:
    """Subscribers are called in order on the emitting thread; safe to use from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[Event], None]] = []

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` with every event from now on; returns the unsubscribe function."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def emit(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(event)


@dataclass(frozen=True)
class RecordingStatus:
    path: Path
    frames_written: int
    frames_dropped: int


@dataclass
class _Collecting:
    """An enrolment gathering its depth crops (guarded by the controller's enrolment lock)."""

    name: str
    kind: Literal["true-depth", "predicted-depth"]
    target: int
    crops: list[np.ndarray] = field(default_factory=list)
    refused: int = 0  # crops the enrolment rule turned down (too few valid depth pixels)


class Controller:
    """The app's state and actions. ``verifier_path`` is loaded at once (a failure leaves the
    verifier off, with the reason in ``verifier_error``); nothing is opened until
    :meth:`open_source`, so a view can subscribe to :attr:`events` first."""

    def __init__(self, model_path: Path, output_dir: Path, second_model: Path | None = None,
                 verifier_path: Path | None = None,
                 source_opener: Callable[[str], Source] = open_source) -> None:
        self.events = EventHub()
        self.output_dir = Path(output_dir)
        self.model_path = Path(model_path)
        self.second_path: Path | None = Path(second_model) if second_model else None
        self.compare = second_model is not None
        self.source_opener = source_opener
        self.source: Source | None = None
        self.source_uri = ""
        self.pipeline: Pipeline | None = None
        self.log: SessionLog | None = None
        self.playing = True
        self.enrolment: Any = None       # models.verifier.runtime.Enrolment
        #: the newest result and when processing it ended (monotonic ns): capture-to-display latency
        self.last_processed: tuple[FrameResult | None, int] = (None, 0)
        self._generators: dict[str, Any] = {}
        self._rec_lock = threading.Lock()
        self._recorder: Any = None
        self._recording_path: Path | None = None
        self._recording_failed = False
        self._enrol_lock = threading.Lock()
        self._collecting: _Collecting | None = None
        self._closing = False
        self.verifier: Any = None
        self.verifier_error: str | None = None
        self._load_verifier(verifier_path)

    # -- models ----------------------------------------------------------------------------------
    def _load_verifier(self, path: Path | None) -> None:
        from app.headless import load_verifier

        try:
            self.verifier = load_verifier(path)
        except (FacedepthError, OSError) as exc:
            self.verifier = None
            self.verifier_error = plain_words(exc)

    def reload_enrolment(self, path: Path | None) -> None:
        """Reload an earlier enrolment when it belongs to the verifier in use (else leave it)."""
        if self.verifier is None or path is None or not path.is_file():
            return
        from models.verifier.runtime import Enrolment

        try:
            self.enrolment = Enrolment.load(path, self.verifier)
        except FacedepthError as exc:
            self.events.emit(Notice(f"The last enrolment was not reloaded: {plain_words(exc)}", "info"))

    def _generator(self, path: Path) -> Any:
        key = str(Path(path).resolve())
        if key not in self._generators:
            from app.headless import load_generators

            self._generators[key] = load_generators([Path(path)])[0]
        return self._generators[key]

    def _current_generators(self) -> list[Any]:
        gens = [self._generator(self.model_path)]
        if self.compare and self.second_path is not None:
            gens.append(self._generator(self.second_path))
        return gens

    def model_files(self) -> list[Path]:
        """The files of the models running, in the pipeline's order."""
        return [self.model_path] + ([self.second_path] if self.compare and self.second_path else [])

    def set_model(self, path: Path) -> bool:
        """Use another main model; on failure the old model runs again and the failure is reported."""
        old = self.model_path
        self.model_path = Path(path)
        ok = self._switch_back_on_failure(lambda: setattr(self, "model_path", old))
        self.events.emit(ModelsChanged(self.model_path, self.second_path))
        return ok

    def set_second_model(self, path: Path) -> bool:
        """Use another model to compare with (it runs once comparing is on)."""
        old = self.second_path
        self.second_path = Path(path)
        if not self.compare:
            return True
        ok = self._switch_back_on_failure(lambda: setattr(self, "second_path", old))
        self.events.emit(ModelsChanged(self.model_path, self.second_path))
        return ok

    def _switch_back_on_failure(self, undo: Callable[[], None]) -> bool:
        failure = self._try_rebuild()
        if self.pipeline is not None:
            return True
        undo()
        self._try_rebuild()
        if failure:
            self.events.emit(Notice(failure))  # the old models run again; the failure stays in view
        return False

    def set_compare(self, on: bool, second: Path | None = None) -> None:
        """Run a second model beside the first; ``second`` is the one to use when none was chosen yet."""
        if on and self.second_path is None:
            self.second_path = Path(second) if second else None
        self.compare = bool(on) and self.second_path is not None
        if self.source is not None:
            self._rebuild()

    # -- sources ---------------------------------------------------------------------------------
    def open_source(self, uri: str) -> bool:
        """Close the current source and open ``uri``; on failure report why and keep running.
        A newly opened source plays, even when the previous one was paused (a paused live source
        would show one frame and record nothing)."""
        self._teardown()
        self.source_uri = uri
        if not self.playing:
            self.playing = True
            self.events.emit(PlayingChanged(True))
        try:
            self.source = self.source_opener(uri)
        except Exception as exc:  # noqa: BLE001 - whatever a source raises is reported, never a crash
            report_unexpected(exc)
            self.source = None
            self.events.emit(Notice(f"Could not open the source: {plain_words(exc)}. Pick another source, "
                                    "or press Reconnect once it is plugged in or fixed.", reconnect=True))
            return False
        seekable = isinstance(self.source, SeekableSource)
        self.events.emit(SourceOpened(uri, len(self.source) if seekable else None,  # type: ignore[arg-type]
                                      _has_recorded_predictions(self.source)))
        return self._rebuild()

    def reconnect(self) -> bool:
        """Open the current source again (after an unplug, a fixed file, a driver install)."""
        return self.open_source(self.source_uri)

    def close(self) -> None:
        """Stop every thread, finish any recording and close the source."""
        self._closing = True
        self._teardown()

    def _teardown(self) -> None:
        self.stop_recording()
        with self._enrol_lock:
            self._collecting = None
        self._stop_pipeline()
        if self.source is not None:
            try:
                self.source.close()
            except (FacedepthError, OSError) as exc:
                self.events.emit(Notice(f"Closing the source failed: {plain_words(exc)}"))
            self.source = None
        self.events.emit(SourceClosed())

    def _stop_pipeline(self) -> None:
        if self.pipeline is not None:
            self.pipeline.stop(STOP_TIMEOUT_S)
            self.pipeline.on_result.clear()
            self.pipeline = None

    def _rebuild(self) -> bool:
        failure = self._try_rebuild()
        if failure:
            self.events.emit(Notice(failure))
        return self.pipeline is not None

    def _try_rebuild(self) -> str | None:
        """(Re)build the pipeline over the open source with the chosen models; returns why a
        model could not be loaded (None when the pipeline runs or no source is open)."""
        if self.source is None:
            return None
        if self.pipeline is not None:
            self.stop_recording()
            self._stop_pipeline()
        try:
            gens = self._current_generators()
            pipeline = Pipeline(self.source, gens, verifier=self.verifier)
        except Exception as exc:  # noqa: BLE001 - a bad model is reported, never a crash
            report_unexpected(exc)
            return f"Could not load the model: {plain_words(exc)}. Choose another model."
        pipeline.enrolment = self.enrolment
        self.log = SessionLog([g.name for g in gens], threshold=getattr(self.verifier, "threshold", None),
                              enrolment_label=self.enrolment.label if self.enrolment else None)
        pipeline.on_result.append(self._on_result)
        pipeline.on_skipped.append(self._on_skipped)
        self.pipeline = pipeline
        provider = str(getattr(gens[0], "provider", "?")).replace("ExecutionProvider", "")
        info = getattr(gens[0], "info", None)
        if not self.playing:
            pipeline.pause()
            pipeline.request_step()  # paused: still show a frame of the new source or model
        self.events.emit(PipelineReady(tuple(g.name for g in gens), provider,
                                       bool(getattr(info, "synthetic_only", False)), self.playing,
                                       REAL_HEAD_SCORES.get(str(getattr(gens[0], "sha256", "")))))
        pipeline.start()
        return None

    # -- playback --------------------------------------------------------------------------------
    def set_playing(self, playing: bool) -> None:
        """Play or pause; playing a recording that reached its end starts it again."""
        self.playing = bool(playing)
        p = self.pipeline
        if p is not None:
            if self.playing:
                if p.finished.is_set() and p.error is None and isinstance(self.source, SeekableSource):
                    self._restart(0 if self.source.position >= len(self.source) else None)
                p.resume()
            else:
                p.pause()
        self.events.emit(PlayingChanged(self.playing))

    def step(self) -> None:
        """While paused: one more frame (while playing: pause)."""
        if self.playing:
            self.set_playing(False)
            return
        p = self.pipeline
        if p is None:
            return
        if p.finished.is_set() and p.error is None and isinstance(self.source, SeekableSource):
            if self.source.position >= len(self.source):
                return
            self._restart(None)
        p.request_step()

    def seek(self, index: int) -> bool:
        """Jump to frame ``index`` of a recording or dataset (shown even while paused); False
        when the source cannot seek."""
        p = self.pipeline
        if p is None or not isinstance(self.source, SeekableSource):
            return False
        if p.finished.is_set() and p.error is None:
            self._restart(index)
            return True
        p.seek(index)
        self.events.emit(Seeked(int(index)))
        return True

    def _restart(self, seek_to: int | None) -> None:
        """Restart the threads of a pipeline that reached the end of a recording."""
        p = self.pipeline
        assert p is not None
        p.stop(STOP_TIMEOUT_S)
        p.pause()
        if seek_to is not None:
            p.seek(seek_to)
        if self.playing:
            p.resume()
        p.start()
        self.events.emit(PipelineRestarted())

    def select_face(self, u: float, v: float) -> None:
        """Track the face at colour pixel (u, v) when several are in view."""
        p = self.pipeline
        if p is None:
            return
        select = getattr(p.locator, "select", None)
        if select is not None:
            select((u, v))

    # -- the inference thread's hook -------------------------------------------------------------
    def _on_result(self, result: FrameResult) -> None:
        """Runs on the pipeline's inference thread for every processed frame."""
        self.last_processed = (result, time.monotonic_ns())
        log = self.log
        if log is not None:
            log.add(result)
        failed: RecordingFailed | None = None
        with self._rec_lock:
            if self._recorder is not None:
                error = None
                try:
                    m = result.models[0] if result.models else None
                    self._recorder.write(result.frame,
                                         prediction_depth8=None if m is None else m.pred8,
                                         metrics=None if m is None else m.metrics)
                except (FacedepthError, OSError) as exc:
                    error = plain_words(exc)
                failed = self._note_recording_failure(error)
        collected = False
        refused_note: Notice | None = None
        with self._enrol_lock:
            c = self._collecting
            if c is not None and result.models and len(c.crops) < c.target:
                m = result.models[0]
                crop = m.true8 if c.kind == "true-depth" else m.pred8
                if crop is not None and ENROLMENT_RULE.accepts(crop):  # the CLI's rule, not laxer
                    c.crops.append(crop)
                    collected = len(c.crops) == c.target
                elif crop is not None:
                    c.refused += 1
                    if c.refused == c.target:  # said once, while it goes on trying
                        refused_note = Notice(
                            f"Enrolling {c.name}: {c.refused} crops had under "
                            f"{ENROLMENT_RULE.min_valid_fraction:.0%} valid depth pixels and were not used; "
                            "move the face into the sensor's range", "info")
        if failed is not None:
            self.events.emit(failed)
        if refused_note is not None:
            self.events.emit(refused_note)
        if collected:
            self.events.emit(EnrolmentCollected())

    def _on_skipped(self, exc: FacedepthError) -> None:
        """Runs on the capture thread: a bad frame or a lost stretch of a file was stepped over."""
        self.events.emit(Notice(f"Skipped: {plain_words(exc)}", "info"))

    # -- recording -------------------------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self._recorder is not None

    def start_recording(self, path: Path | None = None) -> Path | None:
        """Record the source with predictions and metrics to MCAP (by default in the output
        folder's ``recordings``); None when nothing runs or the file cannot be created."""
        if self.pipeline is None:
            return None
        from sensors.paths import default_recording_path
        from sensors.recording import Recorder

        if path is None:
            path = default_recording_path(self.output_dir / "recordings")
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            recorder = Recorder(path, source_info=self.source.describe() if self.source else None)
        except (FacedepthError, OSError) as exc:
            self.events.emit(Notice(f"Could not start recording: {plain_words(exc)}"))
            return None
        with self._rec_lock:
            self._recorder = recorder
            self._recording_path = path
            self._recording_failed = False
        self.events.emit(RecordingStarted(path))
        return path

    def stop_recording(self, failure: str | None = None) -> Path | None:
        """Finish the recording (every accepted frame is written before this returns);
        ``failure``: why it is stopped early (from :class:`RecordingFailed`)."""
        with self._rec_lock:
            rec, path = self._recorder, self._recording_path
            self._recorder = None
        if rec is None:
            return None
        try:
            rec.close()
        except (FacedepthError, OSError) as exc:
            self.events.emit(Notice(f"Finishing the recording failed: {plain_words(exc)}"))
        self.events.emit(RecordingStopped(path))
        if failure is not None:
            self.events.emit(Notice(f"Recording failed: {failure}. The frames written so far are kept in {path}."))
        elif not self._closing:
            self.events.emit(Notice(f"Recorded {getattr(rec, 'frames_written', None)} frames to {path}", "info"))
        return path

    def recording_status(self) -> RecordingStatus | None:
        """What the recording has written so far (None when not recording)."""
        with self._rec_lock:
            rec, path = self._recorder, self._recording_path
        if rec is None or path is None:
            return None
        return RecordingStatus(path, getattr(rec, "frames_written", 0), getattr(rec, "frames_dropped", 0))

    def check_recording(self) -> None:
        """Report a recorder whose writer thread stopped (e.g. the disk is full) even while no
        frame arrives to notice it (paused)."""
        with self._rec_lock:
            failed = self._note_recording_failure(None)
        if failed is not None:
            self.events.emit(failed)

    def _note_recording_failure(self, error: str | None) -> RecordingFailed | None:
        """With the recording lock held: the first failure of this recording, as an event."""
        rec = self._recorder
        if rec is None or self._recording_failed or self._recording_path is None:
            return None
        if error is None and getattr(rec, "error", None) is not None:
            error = plain_words(rec.error)
        if error is None:
            return None
        self._recording_failed = True
        return RecordingFailed(self._recording_path, error)

    # -- enrolment -------------------------------------------------------------------------------
    def enrol(self, name: str, frames: int = ENROL_FRAMES) -> bool:
        """Collect ``frames`` depth crops of the face in view (true depth when the source has it,
        else the prediction) as the reference for live verification."""
        if self.verifier is None or self.pipeline is None:
            self.events.emit(Notice("Enrol needs a face verifier (models/weights/verifier.onnx) and a running source."))
            return False
        latest = self.pipeline.latest()
        kind: Literal["true-depth", "predicted-depth"] = (
            "true-depth" if latest is not None and latest.frame.has_depth else "predicted-depth")
        with self._enrol_lock:
            self._collecting = _Collecting(name, kind, int(frames))
        self.events.emit(Notice(f"Enrolling {name}: look at the camera ({frames} frames)\u2026", "info"))
        return True

    def finish_enrolment(self) -> bool:
        """Make and save the enrolment once its frames are in (see :class:`EnrolmentCollected`)."""
        with self._enrol_lock:
            c = self._collecting
            if c is None or len(c.crops) < c.target:
                return False
            self._collecting = None
        from models.verifier.runtime import Enrolment

        try:
            enrolment = Enrolment.create(c.name, c.kind, self.verifier, np.stack(c.crops), source=self.source_uri)
            path = self.output_dir / "enrolments" / f"{_safe_name(c.name)}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            enrolment.save(path)
        except (FacedepthError, OSError) as exc:
            self.events.emit(Notice(f"Enrolment failed: {plain_words(exc)}"))
            return False
        self._use_enrolment(path, enrolment)
        self.events.emit(Notice(f"Enrolled {c.name} from {len(c.crops)} frames ({enrolment.label}); "
                                f"saved to {path}", "info"))
        return True

    def load_enrolment(self, path: Path) -> bool:
        """Use an enrolment file (made by ``launch.py enrol`` or an earlier Enrol) as the reference
        for live verification; False, with the reason as a notice, when it cannot be used."""
        if self.verifier is None:
            self.events.emit(Notice("An enrolment needs a face verifier (models/weights/verifier.onnx); none is loaded."))
            return False
        from models.verifier.runtime import Enrolment

        try:
            enrolment = Enrolment.load(Path(path), self.verifier)
        except (FacedepthError, OSError) as exc:
            self.events.emit(Notice(f"Could not load the enrolment: {plain_words(exc)}"))
            return False
        self._use_enrolment(Path(path), enrolment)
        self.events.emit(Notice(f"Loaded the enrolment of {enrolment.name} ({len(enrolment.embeddings)} crops, "
                                f"{enrolment.label}) from {path}", "info"))
        return True

    def _use_enrolment(self, path: Path, enrolment: Any) -> None:
        self.enrolment = enrolment
        if self.pipeline is not None:
            self.pipeline.enrolment = enrolment
        if self.log is not None:
            self.log.set_enrolment_label(enrolment.label)
        self.events.emit(Enrolled(path, enrolment))


def _has_recorded_predictions(source: Source) -> bool:
    """A replay of a recording made by the app, which holds the app's predictions."""
    if not callable(getattr(source, "recorded_prediction", None)):
        return False
    from sensors.recording import TOPIC_PREDICTION

    return TOPIC_PREDICTION in source.describe().get("topics", ())


def _safe_name(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name.strip())
    return keep or "person"
