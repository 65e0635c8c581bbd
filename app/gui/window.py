"""The main window: a thin view over :class:`app.pipeline.Pipeline`.

A QTimer polls ``pipeline.latest()`` and pushes the newest result into panels built once;
frames never travel through Qt signals. Everything that must see every frame (the metric log,
the recorder, enrolment) hangs on ``Pipeline.on_result`` and runs on the inference thread,
guarded so that nothing it does can stop the pipeline. Errors (a source that cannot open or
stops, an unreadable file, a bad model) are shown in a banner in plain words; the window keeps
running and offers to reconnect or pick another source.
"""
from __future__ import annotations

import collections
import sys
import threading
import time
import traceback
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
from PyQt5 import QtCore, QtGui, QtWidgets

from app.gui.controls import ModelBar, PlaybackBar, SourceBar, is_generator_file
from app.gui.panels import ImagePanels
from app.gui.plots import MetricsPlots
from app.gui.session import SessionLog, write_snapshot_data
from app.gui.settings import AppSettings
from app.pipeline import FrameResult, Pipeline
from sensors.errors import FacedepthError, FormatError, ModelError, SensorError
from sensors.source import SeekableSource, Source, open_source

TICK_MS = 8            # display poll interval: well under a 30 Hz frame period
PLOT_PERIOD_S = 0.1    # plots and the numbers table at about 10 Hz
STATUS_PERIOD_S = 0.25
ENROL_FRAMES = 30
STOP_TIMEOUT_S = 2.0


def _report_unexpected(exc: BaseException) -> None:
    """A failure that is not one of the project's errors is a bug or a missing piece: the
    window shows it in one line, the terminal gets the traceback."""
    if not isinstance(exc, (FacedepthError, OSError, ImportError)):
        traceback.print_exception(exc, file=sys.stderr)


def _plain(exc: BaseException) -> str:
    """An exception as one line of plain words (FacedepthError messages already are)."""
    if isinstance(exc, FacedepthError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return f"{where}{exc.strerror or exc}"
    if isinstance(exc, ImportError):
        return f"a module it needs is not installed ({exc})"
    return f"{type(exc).__name__}: {exc}"


class ErrorBanner(QtWidgets.QFrame):
    """A visible message strip above the panels: what went wrong and what the user can do."""

    reconnect_clicked = QtCore.pyqtSignal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("error_banner")
        self.label = QtWidgets.QLabel("")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        self.reconnect = QtWidgets.QPushButton("Reconnect")
        self.reconnect.clicked.connect(self.reconnect_clicked)
        self.dismiss = QtWidgets.QPushButton("Dismiss")
        self.dismiss.clicked.connect(self.hide)
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 8, 4)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.reconnect)
        lay.addWidget(self.dismiss)
        self._kind = ""
        self.hide()

    def show_message(self, text: str, kind: str = "error", reconnect: bool = False) -> None:
        """kind: "error" (red) or "info" (amber)."""
        colour = "#7f1d1d" if kind == "error" else "#6b4f00"
        self.setStyleSheet(f"#error_banner {{ background: {colour}; }} QLabel {{ color: white; font-weight: bold; }}")
        self.label.setText(text)
        self.reconnect.setVisible(reconnect)
        self._kind = kind
        self.show()

    @property
    def kind(self) -> str:
        """"error" or "info" while a message is shown, else ""."""
        return "" if self.isHidden() else self._kind

    @property
    def text(self) -> str:
        """The message shown ("" when none)."""
        return "" if self.isHidden() else self.label.text()


class MainWindow(QtWidgets.QMainWindow):
    """The app's window. ``source_uri`` is opened at once (a failure is shown, not raised)."""

    def __init__(self, model_path: Path, source_uri: str, settings: AppSettings,
                 second_model: Path | None = None, verifier_path: Path | None = None,
                 output_dir: Path | None = None, max_frames: int | None = None,
                 model_dir: Path | None = None,
                 source_opener: Callable[[str], Source] = open_source) -> None:
        super().__init__()
        self.setWindowTitle("facedepth")
        self.settings = settings
        self.output_dir = Path(output_dir) if output_dir else settings.output_dir()
        self.max_frames = max_frames
        self.model_path = Path(model_path)
        self.second_path: Path | None = Path(second_model) if second_model else None
        self.compare = second_model is not None
        self.use_recorded = False
        self._generators: dict[str, Any] = {}
        self.verifier = None
        self.verifier_error: str | None = None
        self.source: Source | None = None
        self.source_uri = source_uri
        self.source_opener = source_opener
        self.pipeline: Pipeline | None = None
        self.log: SessionLog | None = None
        self.enrolment = None
        self.playing = True
        self.recorder: Any = None
        self.recording_path: Path | None = None
        self._rec_lock = threading.Lock()
        self._rec_error: str | None = None
        self._enrol_lock = threading.Lock()
        self._enrol_crops: list[np.ndarray] | None = None
        self._enrol_name = ""
        self._enrol_kind = ""
        self._enrol_target = ENROL_FRAMES
        self._done: tuple[FrameResult | None, int] = (None, 0)
        self.last_shown: FrameResult | None = None  # the result on screen
        self._finish_handled = False
        self._show_times: collections.deque[float] = collections.deque(maxlen=60)
        self._latencies_ms: collections.deque[float] = collections.deque(maxlen=60)
        self._next_plot = 0.0
        self._next_status = 0.0
        self._closed = False
        self.results_seen = 0

        # -- widgets ------------------------------------------------------------------------
        self.panels = ImagePanels()
        self.panels.face_clicked.connect(self.select_face)
        self.banner = ErrorBanner()
        self.banner.reconnect_clicked.connect(self.reconnect)
        central = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.banner)
        self.synthetic_note = QtWidgets.QLabel(
            "Note: this model was trained on synthetic faces only (the virtual Kinect); "
            "its accuracy on real faces has not been measured.")
        self.synthetic_note.setStyleSheet("background: #2a2a30; color: #ffd54f; font-weight: bold; padding: 3px 8px;")
        self.synthetic_note.setVisible(False)
        lay.addWidget(self.synthetic_note)
        lay.addWidget(self.panels, 1)
        self.setCentralWidget(central)

        self.plots = MetricsPlots()
        self.plots_dock = QtWidgets.QDockWidget("Metrics over time", self)
        self.plots_dock.setObjectName("metrics_dock")
        self.plots_dock.setWidget(self.plots)
        self.plots_dock.setFeatures(QtWidgets.QDockWidget.DockWidgetMovable | QtWidgets.QDockWidget.DockWidgetFloatable)
        self.addDockWidget(QtCore.Qt.BottomDockWidgetArea, self.plots_dock)

        self.source_bar = SourceBar(self)
        self.source_bar.open_requested.connect(self.open_source)
        self.source_bar.reconnect_action.triggered.connect(self.reconnect)
        self.model_bar = ModelBar(self)
        self.model_bar.model_chosen.connect(lambda p: self.set_model(Path(p)))
        self.model_bar.second_model_chosen.connect(lambda p: self.set_second_model(Path(p)))
        self.model_bar.compare_toggled.connect(self.set_compare)
        self.model_bar.recorded_toggled.connect(self.set_use_recorded)
        self.playback = PlaybackBar(self)
        self.playback.play_action.triggered.connect(self.toggle_play)
        self.playback.step_action.triggered.connect(self.step)
        self.playback.seek_requested.connect(self.seek)
        self.playback.record_action.triggered.connect(self._record_clicked)
        self.playback.enrol_action.triggered.connect(self._enrol_clicked)
        self.playback.snapshot_action.triggered.connect(self._snapshot_clicked)
        self.playback.export_action.triggered.connect(self._export_clicked)
        self.addToolBar(QtCore.Qt.TopToolBarArea, self.source_bar)
        self.addToolBar(QtCore.Qt.TopToolBarArea, self.model_bar)
        self.addToolBarBreak(QtCore.Qt.TopToolBarArea)
        self.addToolBar(QtCore.Qt.TopToolBarArea, self.playback)

        # status bar: source, model, provider, fps, latency, dropped, recording, synthetic note
        sb = self.statusBar()
        self.status_labels: dict[str, QtWidgets.QLabel] = {}
        for key in ("source", "model", "provider", "fps", "latency", "dropped", "recording"):
            label = QtWidgets.QLabel("")
            label.setContentsMargins(6, 0, 6, 0)
            self.status_labels[key] = label
            sb.addWidget(label)
        self.status_labels["recording"].setStyleSheet("color: #ff3b30; font-weight: bold;")
        self.verification_label = QtWidgets.QLabel("")
        sb.addPermanentWidget(self.verification_label)

        model_dir = model_dir or self.model_path.parent
        self.offered_models = ([p for p in sorted(model_dir.glob("*.onnx")) if is_generator_file(p)]
                               if model_dir.is_dir() else [])
        self.model_bar.set_models(self.offered_models, self.model_path, self.second_path)
        self.model_bar.compare.setChecked(self.compare)
        self.source_bar.set_sources(source_uri, settings.recent_sources())
        self.resize(1440, 900)
        geometry, state = settings.geometry(), settings.state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        self._default_layout = state is None
        if state is not None:
            self.restoreState(state)

        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.PreciseTimer)
        self.timer.timeout.connect(self._tick)

        self._load_verifier(verifier_path)
        self._reload_enrolment()
        self.open_source(source_uri)
        self.timer.start(TICK_MS)

    # -- models -------------------------------------------------------------------------------
    def _generator(self, path: Path) -> Any:
        key = str(Path(path).resolve())
        if key not in self._generators:
            from app.headless import load_generators

            self._generators[key] = load_generators([Path(path)])[0]
        return self._generators[key]

    def _load_verifier(self, path: Path | None) -> None:
        from app.headless import load_verifier

        try:
            self.verifier = load_verifier(path)
        except (FacedepthError, OSError) as exc:
            self.verifier = None
            self.verifier_error = _plain(exc)
        self.playback.enrol_action.setEnabled(self.verifier is not None)
        if self.verifier is None:
            self.playback.enrol_action.setToolTip("Enrol: no face verifier is loaded")
        self.plots.set_threshold(getattr(self.verifier, "threshold", None))

    def _reload_enrolment(self) -> None:
        """Reload the last enrolment when it belongs to the verifier in use (else leave it)."""
        path = self.settings.last_enrolment()
        if self.verifier is None or path is None or not path.is_file():
            return
        from models.verifier.runtime import Enrolment

        try:
            self.enrolment = Enrolment.load(path, self.verifier)
        except FacedepthError as exc:
            self._show_info(f"The last enrolment was not reloaded: {_plain(exc)}")

    def _current_generators(self) -> list[Any]:
        gens = [self._generator(self.model_path)]
        if self.compare and self.second_path is not None:
            gens.append(self._generator(self.second_path))
        return gens

    def set_model(self, path: Path) -> bool:
        """Use another main model; on failure the message is shown and the old model stays."""
        old = self.model_path
        self.model_path = Path(path)
        ok = self._rebuild()
        if not ok:
            message = self.banner.text
            self.model_path = old
            self._rebuild()
            self._show_error(message)  # the old model runs again; the failure stays in view
        self.model_bar.set_models(self.offered_models, self.model_path, self.second_path)
        return ok

    def set_second_model(self, path: Path) -> bool:
        old = self.second_path
        self.second_path = Path(path)
        if not self.compare:
            return True
        ok = self._rebuild()
        if not ok:
            message = self.banner.text
            self.second_path = old
            self._rebuild()
            self._show_error(message)
        self.model_bar.set_models(self.offered_models, self.model_path, self.second_path)
        return ok

    def set_compare(self, on: bool) -> None:
        """Show a second model's prediction beside the first."""
        if on and self.second_path is None:
            chosen = self.model_bar.second_path()
            self.second_path = Path(chosen) if chosen else None
        self.compare = bool(on) and self.second_path is not None
        self.panels.set_second_visible(self.compare)
        if self.source is not None:
            self._rebuild()

    def set_use_recorded(self, on: bool) -> None:
        """On replay of a recording made by the app: show the recorded prediction."""
        self.use_recorded = bool(on)

    # -- sources -------------------------------------------------------------------------------
    def open_source(self, uri: str) -> bool:
        """Close the current source and open ``uri``; on failure show why and keep running."""
        self._teardown()
        self.source_uri = uri
        self.status_labels["source"].setText(f"source: {uri}")
        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.WaitCursor)
        try:
            self.source = self.source_opener(uri)
        except Exception as exc:  # noqa: BLE001 - whatever a source raises is shown, never a crash
            _report_unexpected(exc)
            self.source = None
            self._show_error(f"Could not open the source: {_plain(exc)}. Pick another source, "
                             "or press Reconnect once it is plugged in or fixed.", reconnect=True)
            return False
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()
        self.settings.remember_source(uri)
        self.source_bar.set_sources(uri, self.settings.recent_sources())
        seekable = isinstance(self.source, SeekableSource)
        self.playback.set_length(len(self.source) if seekable else None)  # type: ignore[arg-type]
        has_recorded = _has_recorded_predictions(self.source)
        self.model_bar.recorded.setEnabled(has_recorded)
        if not has_recorded:
            self.model_bar.recorded.setChecked(False)
        self.banner.hide()
        return self._rebuild()

    def reconnect(self) -> bool:
        """Open the current source again (after an unplug, a fixed file, a driver install)."""
        return self.open_source(self.source_uri)

    def _teardown(self) -> None:
        """Stop the pipeline, finish any recording and close the source."""
        self.stop_recording()
        with self._enrol_lock:
            self._enrol_crops = None
        if self.pipeline is not None:
            self.pipeline.stop(STOP_TIMEOUT_S)
            self.pipeline.on_result.clear()
            self.pipeline = None
        if self.source is not None:
            try:
                self.source.close()
            except (FacedepthError, OSError) as exc:
                self._show_error(f"Closing the source failed: {_plain(exc)}")
            self.source = None
        self.last_shown = None
        self._finish_handled = False

    def _rebuild(self) -> bool:
        """(Re)build the pipeline over the open source with the chosen models."""
        if self.source is None:
            return False
        if self.pipeline is not None:
            self.stop_recording()
            self.pipeline.stop(STOP_TIMEOUT_S)
            self.pipeline.on_result.clear()
            self.pipeline = None
        try:
            gens = self._current_generators()
            pipeline = Pipeline(self.source, gens, verifier=self.verifier)
        except Exception as exc:  # noqa: BLE001 - a bad model is shown, never a crash
            _report_unexpected(exc)
            self._show_error(f"Could not load the model: {_plain(exc)}. Choose another model.")
            return False
        pipeline.enrolment = self.enrolment
        self.log = SessionLog([g.name for g in gens], threshold=getattr(self.verifier, "threshold", None),
                              enrolment_label=self.enrolment.label if self.enrolment else None)
        pipeline.on_result.append(self._on_result)
        self.pipeline = pipeline
        self._finish_handled = False
        if self.banner.kind == "error":
            self.banner.hide()  # whatever failed before, this source and model now run
        self.plots.clear()
        self.panels.set_second_visible(len(gens) > 1)
        names = " vs ".join(g.name for g in gens)
        self.status_labels["model"].setText(f"model: {names}")
        provider = str(getattr(gens[0], "provider", "?")).replace("ExecutionProvider", "")
        self.status_labels["provider"].setText(f"on {provider}")
        info = getattr(gens[0], "info", None)
        self.synthetic_note.setVisible(bool(getattr(info, "synthetic_only", False)))
        if not self.playing:
            pipeline.pause()
            pipeline.request_step()  # paused: still show a frame of the new source or model
        pipeline.start()
        self.playback.set_playing(self.playing)
        return True

    def _show_error(self, text: str, reconnect: bool = False) -> None:
        self.banner.show_message(text, "error", reconnect)

    def _show_info(self, text: str) -> None:
        self.banner.show_message(text, "info", False)

    # -- the inference thread's hook --------------------------------------------------------------
    def _on_result(self, result: FrameResult) -> None:
        """Runs on the pipeline's inference thread for every processed frame."""
        self._done = (result, time.monotonic_ns())
        log = self.log
        if log is not None:
            log.add(result)
        with self._rec_lock:
            if self.recorder is not None:
                try:
                    m = result.models[0] if result.models else None
                    self.recorder.write(result.frame,
                                        prediction_depth8=None if m is None else m.pred8,
                                        metrics=None if m is None else m.metrics)
                except (FacedepthError, OSError) as exc:
                    self._rec_error = _plain(exc)
        with self._enrol_lock:
            if self._enrol_crops is not None and result.models and len(self._enrol_crops) < self._enrol_target:
                m = result.models[0]
                crop = m.true8 if self._enrol_kind == "true-depth" else m.pred8
                if crop is not None:
                    self._enrol_crops.append(crop)

    # -- the display timer --------------------------------------------------------------------------
    def _tick(self) -> None:
        pipeline = self.pipeline
        now = time.monotonic()
        if pipeline is not None:
            result = pipeline.latest()
            if result is not None and result is not self.last_shown:
                self._display(result)
            if self.max_frames is not None and pipeline.frames_processed >= self.max_frames and self.playing:
                self.set_playing(False)
            if pipeline.finished.is_set() and not self._finish_handled and pipeline.latest() is self.last_shown:
                self._on_finished(pipeline)
        self._finish_enrolment_if_ready()
        if now >= self._next_plot:
            self._next_plot = now + PLOT_PERIOD_S
            if self.log is not None:
                self.plots.refresh(self.log)
        if now >= self._next_status:
            self._next_status = now + STATUS_PERIOD_S
            self._update_status()

    def _display(self, result: FrameResult) -> None:
        predictions = None
        if self.use_recorded and self.source is not None:
            getter = getattr(self.source, "recorded_prediction", None)
            if getter is not None:
                recorded = getter(result.frame)
                predictions = [recorded]
        labels = [m.name + (" (recorded)" if predictions and i == 0 and predictions[0] is not None else "")
                  for i, m in enumerate(result.models)]
        self.panels.show(result, predictions, labels)
        self.last_shown = result
        done, done_ns = self._done
        now_ns = time.monotonic_ns()
        extra_ms = (now_ns - done_ns) / 1e6 if done is result else 0.0
        self._latencies_ms.append(result.latency_ms + extra_ms)
        self._show_times.append(time.monotonic())
        self.results_seen += 1
        if isinstance(self.source, SeekableSource):
            length = len(self.source)
            self.playback.set_position(min(max(self.source.position - 1, 0), length - 1), length)

    def stream_done(self) -> bool:
        """True once the stream ended or failed and its last result is on screen."""
        p = self.pipeline
        return p is None or (p.finished.is_set() and p.latest() is self.last_shown)

    def _on_finished(self, pipeline: Pipeline) -> None:
        self._finish_handled = True
        if isinstance(pipeline.error, ModelError):
            self._show_error(f"The model failed: {_plain(pipeline.error)}. Choose another model, or press "
                             "Reconnect to try again.", reconnect=True)
        elif isinstance(pipeline.error, (SensorError, FormatError)):
            self._show_error(f"The source stopped: {_plain(pipeline.error)}. Press Reconnect, or pick "
                             "another source.", reconnect=True)
        elif pipeline.error is not None:
            self._show_error(f"Processing stopped: {_plain(pipeline.error)}. Press Reconnect to start "
                             "again, or pick another source or model.", reconnect=True)
        elif isinstance(self.source, SeekableSource):
            self.playing = False
            self.playback.set_playing(False)
            self._show_info("End of the recording: seek, or press Play to start again.")
        else:
            self._show_info("The source ended. Pick another source or press Reconnect.")
            self.banner.reconnect.setVisible(True)

    def fps(self) -> float:
        """New frames per second shown in the image panels, over the last ~2 s."""
        t = list(self._show_times)
        now = time.monotonic()
        t = [x for x in t if now - x < 2.0]
        if len(t) < 2:
            return 0.0
        return (len(t) - 1) / max(t[-1] - t[0], 1e-6)

    def latency_ms(self) -> float | None:
        """Capture-to-display latency, median over the last 60 frames drawn."""
        return float(np.median(self._latencies_ms)) if self._latencies_ms else None

    def _update_status(self) -> None:
        p = self.pipeline
        self.status_labels["fps"].setText(f"{self.fps():.1f} fps")
        latency = self.latency_ms()
        if latency is not None:
            self.status_labels["latency"].setText(f"latency {latency:.0f} ms")
            self.status_labels["latency"].setToolTip("capture to display, median of the last 60 frames")
        if p is not None:
            not_shown = max(0, p.frames_processed - self.results_seen)
            self.status_labels["dropped"].setText(f"dropped {p.dropped}")
            self.status_labels["dropped"].setToolTip(
                f"{p.dropped} frames replaced by newer ones before inference; {not_shown} processed "
                "but replaced before the display could draw them")
        with self._rec_lock:
            rec, rec_error = self.recorder, self._rec_error
        if rec is not None and rec_error is None and getattr(rec, "error", None) is not None:
            rec_error = _plain(rec.error)  # the writer thread stopped (e.g. the disk is full)
        if rec is not None:
            dropped = getattr(rec, "frames_dropped", 0)
            self.status_labels["recording"].setText(
                f"\u25cf REC {self.recording_path.name if self.recording_path else ''}: "
                f"{getattr(rec, 'frames_written', 0)} frames" + (f", {dropped} dropped" if dropped else ""))
        else:
            self.status_labels["recording"].setText("")
        if rec_error:
            self._rec_error = None
            path = self.stop_recording()
            self._show_error(f"Recording failed: {rec_error}. The frames written so far are kept in {path}.")
        if self.log is not None and self.verifier is not None:
            self.verification_label.setText(self.log.verification_text())
        elif self.verifier is None:
            self.verification_label.setText("verification: off (no verifier)")
            self.verification_label.setToolTip(self.verifier_error or "no verifier.onnx was found")

    # -- playback --------------------------------------------------------------------------------------
    def set_playing(self, playing: bool) -> None:
        self.playing = bool(playing)
        p = self.pipeline
        if p is not None:
            if self.playing:
                if p.finished.is_set() and p.error is None and isinstance(self.source, SeekableSource):
                    self._restart(0 if self.source.position >= len(self.source) else None)
                p = self.pipeline
                p.resume()
            else:
                p.pause()
        self.playback.set_playing(self.playing)
        if self.playing and self.banner.kind == "info":
            self.banner.hide()

    def toggle_play(self) -> None:
        self.set_playing(not self.playing)

    def step(self) -> None:
        """While paused: one more frame."""
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
            p = self.pipeline
        p.request_step()

    def seek(self, index: int) -> None:
        """Jump to frame ``index`` of a recording or dataset (shown even while paused)."""
        p = self.pipeline
        if p is None or not isinstance(self.source, SeekableSource):
            return
        if p.finished.is_set() and p.error is None:
            self._restart(index)
            return
        p.seek(index)
        if self.banner.kind == "info":
            self.banner.hide()

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
        self._finish_handled = False
        p.start()
        if self.banner.kind == "info":
            self.banner.hide()

    def select_face(self, u: float, v: float) -> None:
        """Track the face at colour pixel (u, v) when several are in view."""
        p = self.pipeline
        if p is None:
            return
        select = getattr(p.locator, "select", None)
        if select is not None:
            select((u, v))

    # -- recording ---------------------------------------------------------------------------------------
    def _record_clicked(self) -> None:
        if self.recorder is None:
            self.start_recording()
        else:
            self.stop_recording()

    def start_recording(self, path: Path | None = None) -> Path | None:
        """Record the source with predictions and metrics to MCAP (in the output folder)."""
        if self.pipeline is None:
            self.playback.record_action.setChecked(False)
            return None
        from sensors.recording import Recorder, default_recording_path

        if path is None:
            path = default_recording_path(self.output_dir / "recordings")
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            recorder = Recorder(path, source_info=self.source.describe() if self.source else None)
        except (FacedepthError, OSError) as exc:
            self._show_error(f"Could not start recording: {_plain(exc)}")
            self.playback.record_action.setChecked(False)
            return None
        with self._rec_lock:
            self.recorder = recorder
            self.recording_path = path
        self.panels.set_recording(True)
        self.playback.record_action.setChecked(True)
        self.playback.record_action.setText("\u25a0 Stop recording")
        self._update_status()
        return path

    def stop_recording(self) -> Path | None:
        """Finish the recording (every accepted frame is written before this returns)."""
        with self._rec_lock:
            rec, path = self.recorder, self.recording_path
            self.recorder = None
        if rec is None:
            return None
        try:
            rec.close()
        except (FacedepthError, OSError) as exc:
            self._show_error(f"Finishing the recording failed: {_plain(exc)}")
        self.panels.set_recording(False)
        self.playback.record_action.setChecked(False)
        self.playback.record_action.setText("\u25cf Record")
        written = getattr(rec, "frames_written", None)
        if not self._closed:
            self._show_info(f"Recorded {written} frames to {path}")
        self._update_status()
        return path

    # -- enrolment ------------------------------------------------------------------------------------
    def _enrol_clicked(self) -> None:
        name, ok = QtWidgets.QInputDialog.getText(self, "Enrol", "Name of the person in view:")
        if ok and name.strip():
            self.enrol(name.strip())

    def enrol(self, name: str, frames: int = ENROL_FRAMES) -> bool:
        """Collect ``frames`` depth crops of the face in view (true depth when the source has it,
        else the prediction) as the reference for live verification."""
        if self.verifier is None or self.pipeline is None:
            self._show_error("Enrol needs a face verifier (models/weights/verifier.onnx) and a running source.")
            return False
        kind = "true-depth" if self.source is not None and self._source_has_depth() else "predicted-depth"
        with self._enrol_lock:
            self._enrol_crops = []
            self._enrol_target = int(frames)
            self._enrol_name = name
            self._enrol_kind = kind
        self._show_info(f"Enrolling {name}: look at the camera ({frames} frames)\u2026")
        return True

    def _source_has_depth(self) -> bool:
        r = self.last_shown
        return r is not None and r.frame.has_depth

    def _finish_enrolment_if_ready(self) -> None:
        with self._enrol_lock:
            crops = self._enrol_crops
            if crops is None or len(crops) < self._enrol_target:
                return
            self._enrol_crops = None
            name, kind = self._enrol_name, self._enrol_kind
        from models.verifier.runtime import Enrolment

        try:
            enrolment = Enrolment.create(name, kind, self.verifier, np.stack(crops), source=self.source_uri)
            path = self.output_dir / "enrolments" / f"{_safe_name(name)}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            enrolment.save(path)
        except (FacedepthError, OSError) as exc:
            self._show_error(f"Enrolment failed: {_plain(exc)}")
            return
        self.enrolment = enrolment
        self.settings.set_last_enrolment(path)
        if self.pipeline is not None:
            self.pipeline.enrolment = enrolment
        if self.log is not None:
            self.log.set_enrolment_label(enrolment.label)
        self._show_info(f"Enrolled {name} from {len(crops)} frames ({enrolment.label}); saved to {path}")

    # -- snapshot and export ----------------------------------------------------------------------------
    def _snapshot_clicked(self) -> None:
        paths = self.snapshot()
        if paths:
            self._show_info(f"Snapshot saved: {', '.join(p.name for p in paths.values())} in {paths['panels'].parent}")

    def snapshot(self, out_dir: Path | None = None) -> dict[str, Path] | None:
        """Save the panels as PNG, the predicted depth as a 16-bit PNG in mm and the frame's
        metrics as JSON; returns the paths by role (None when there is nothing to save)."""
        result = self.last_shown
        if result is None:
            self._show_error("Snapshot: no frame shown yet.")
            return None
        out = Path(out_dir) if out_dir else self.output_dir / "snapshots"
        stem = time.strftime("snapshot_%Y%m%d_%H%M%S") + f"_frame{result.index:06d}"
        try:
            out.mkdir(parents=True, exist_ok=True)
            panels_png = out / f"{stem}_panels.png"
            if not self.panels.grab().save(str(panels_png), "PNG"):
                raise OSError(f"could not write {panels_png}")
            files = [str(p) for p in self._model_files()]
            paths = write_snapshot_data(result, out, stem, self.source_uri, files,
                                        extra_files={"panels": panels_png.name})
        except (FacedepthError, OSError) as exc:
            self._show_error(f"Snapshot failed: {_plain(exc)}")
            return None
        return {"panels": panels_png, **paths}

    def _model_files(self) -> list[Path]:
        return [self.model_path] + ([self.second_path] if self.compare and self.second_path else [])

    def _export_clicked(self) -> None:
        default = str(self.output_dir / time.strftime("metrics_%Y%m%d_%H%M%S.csv"))
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export per-frame metrics", default, "CSV (*.csv)")
        if path:
            self.export_csv(Path(path))

    def export_csv(self, path: Path) -> int | None:
        """Write the session's per-frame metrics; returns the number of rows."""
        if self.log is None:
            self._show_error("Export: no session yet.")
            return None
        try:
            n = self.log.write_csv(path)
        except OSError as exc:
            self._show_error(f"Export failed: {_plain(exc)}")
            return None
        self._show_info(f"Exported {n} rows to {path}")
        return n

    # -- screenshots and closing ------------------------------------------------------------------------
    def save_screenshot(self, path: Path) -> bool:
        """Render the whole window (plots refreshed first) to a PNG."""
        if self.log is not None:
            self.plots.refresh(self.log)
        self._update_status()
        QtWidgets.QApplication.processEvents()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return bool(self.grab().save(str(path), "PNG"))

    def shutdown(self) -> None:
        """Stop the timer and every thread, finish any recording, close the source, save the
        layout. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.timer.stop()
        self._teardown()
        self.settings.save_layout(self.saveGeometry(), self.saveState())
        self.settings.sync()

    def showEvent(self, event: QtGui.QShowEvent) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        if self._default_layout:
            self._default_layout = False
            # after the first layout pass: the plots get a third of the height, the panels the rest
            QtCore.QTimer.singleShot(0, lambda: self.resizeDocks(
                [self.plots_dock], [max(240, self.height() // 3)], QtCore.Qt.Vertical))

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        self.shutdown()
        super().closeEvent(event)


def _has_recorded_predictions(source: Source) -> bool:
    """A replay of a recording made by the app, which holds the app's predictions."""
    if not callable(getattr(source, "recorded_prediction", None)):
        return False
    from sensors.recording import TOPIC_PREDICTION

    return TOPIC_PREDICTION in source.describe().get("topics", ())


def _safe_name(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name.strip())
    return keep or "person"
