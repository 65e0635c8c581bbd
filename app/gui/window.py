"""The main window: views of :class:`app.controller.Controller`, and the wiring between them.

A QTimer polls ``pipeline.latest()`` and pushes the newest result into panels built once;
frames never travel through Qt signals. The controller owns the state (source, models,
recording, enrolment); the window subscribes to its events and updates the widgets, handing
events that come from the pipeline's threads over to the Qt thread through a signal. Errors
(a source that cannot open or stops, an unreadable file, a bad model) are shown in a banner in
plain words; the window keeps running and offers to reconnect or pick another source.
"""
from __future__ import annotations

import collections
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PyQt5 import QtCore, QtGui, QtWidgets

from app import controller as ctl
from app.controller import Controller, plain_words, synthetic_note_text
from app.gui.controls import ModelBar, PlaybackBar, SourceBar, ViewBar
from app.gui.panels import ImagePanels
from app.gui.plots import MetricsPlots
from app.gui.settings import AppSettings
from app.pipeline import FrameResult, Pipeline
from app.session import write_snapshot_data
from models.common.errors import ModelError
from models.generator.runtime import is_generator
from sensors.errors import FacedepthError, FormatError, SensorError
from sensors.source import SeekableSource, Source, open_source

TICK_MS = 8            # display poll interval: well under a 30 Hz frame period
PLOT_PERIOD_S = 0.1    # plots and the numbers table at about 10 Hz
STATUS_PERIOD_S = 0.25
STATUS_KEYS = ("source", "model", "provider", "fps", "latency", "dropped", "recording")
#: the status bar's source at most this long (the whole URI is in its tooltip)
STATUS_SOURCE_CHARS = 48
#: the saved toolbar/dock layout's version: a layout saved with another arrangement of the
#: toolbars is not restored (it would bring back the old rows)
LAYOUT_VERSION = 2


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

    #: a controller event, delivered on the Qt thread (queued when emitted from another thread)
    _event_arrived = QtCore.pyqtSignal(object)

    def __init__(self, model_path: Path, source_uri: str, settings: AppSettings,
                 second_model: Path | None = None, verifier_path: Path | None = None,
                 output_dir: Path | None = None, max_frames: int | None = None,
                 model_dir: Path | None = None,
                 source_opener: Callable[[str], Source] = open_source,
                 enrolment_path: Path | None = None) -> None:
        super().__init__()
        self.setWindowTitle("facedepth")
        self.settings = settings
        self.max_frames = max_frames
        self.controller = Controller(model_path, Path(output_dir) if output_dir else settings.output_dir(),
                                     second_model=second_model, verifier_path=verifier_path,
                                     source_opener=source_opener)
        self.use_recorded = False
        self.last_shown: FrameResult | None = None  # the result on screen
        self._finish_handled = False
        self._show_times: collections.deque[float] = collections.deque(maxlen=60)
        self._latencies_ms: collections.deque[float] = collections.deque(maxlen=60)
        self._next_plot = 0.0
        self._next_status = 0.0
        self._closed = False
        self.results_seen = 0
        #: when the first result was drawn (monotonic s; the newest is _show_times[-1]): the drawn rate over a whole run
        self.first_shown_at: float | None = None

        self._build_central()
        self._build_plots_dock()
        self.view3d = None  # built when first opened (it may probe OpenGL)
        self.view3d_dock = QtWidgets.QDockWidget("3D view", self)
        self.view3d_dock.setObjectName("view3d_dock")
        self.view3d_dock.setFeatures(QtWidgets.QDockWidget.DockWidgetMovable
                                     | QtWidgets.QDockWidget.DockWidgetFloatable
                                     | QtWidgets.QDockWidget.DockWidgetClosable)
        self.addDockWidget(QtCore.Qt.RightDockWidgetArea, self.view3d_dock)
        self.view3d_dock.hide()
        self._build_toolbars()
        self._build_status_bar()
        self.offered_models = _generators_in(model_dir or self.controller.model_path.parent)
        self.model_bar.set_models(self.offered_models, self.controller.model_path, self.controller.second_path)
        self.model_bar.compare.setChecked(self.controller.compare)
        self.source_bar.set_sources(source_uri, settings.recent_sources())
        self._restore_layout()
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self._connect_controls()
        self._subscribe()
        self._show_verifier()
        if enrolment_path is not None:  # run --enrolment FILE: this one, not the last one used
            self.controller.load_enrolment(enrolment_path)
        else:
            self.controller.reload_enrolment(settings.last_enrolment())
        self.open_source(source_uri)
        self.timer.start(TICK_MS)

    # -- building the views ----------------------------------------------------------------------
    def _build_central(self) -> None:
        """The error banner, the synthetic-only note and the image panels."""
        shown_mm, colormap = self.settings.display()
        self.panels = ImagePanels(shown_half_range_mm=shown_mm, colormap=colormap)
        self.banner = ErrorBanner()
        central = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.banner)
        self.synthetic_note = QtWidgets.QLabel()
        self.synthetic_note.setStyleSheet("background: #2a2a30; color: #ffd54f; font-weight: bold; padding: 3px 8px;")
        self.synthetic_note.setWordWrap(True)  # a long note must not widen the window past the screen
        self.synthetic_note.setVisible(False)
        lay.addWidget(self.synthetic_note)
        lay.addWidget(self.panels, 1)
        self.setCentralWidget(central)

    def _build_plots_dock(self) -> None:
        self.plots = MetricsPlots()
        self.plots_dock = QtWidgets.QDockWidget("Metrics over time", self)
        self.plots_dock.setObjectName("metrics_dock")
        self.plots_dock.setWidget(self.plots)
        self.plots_dock.setFeatures(QtWidgets.QDockWidget.DockWidgetMovable | QtWidgets.QDockWidget.DockWidgetFloatable)
        self.addDockWidget(QtCore.Qt.BottomDockWidgetArea, self.plots_dock)

    def _build_toolbars(self) -> None:
        self.source_bar = SourceBar(self)
        self.model_bar = ModelBar(self)
        self.view_bar = ViewBar(self)
        self.view_bar.set_display(self.panels.shown_half_range_mm, self.panels.colormap)
        self.playback = PlaybackBar(self)
        # three rows, none wider than 1440 px: at the default size no control slides into a
        # toolbar's overflow menu (whose popup would cover the playback bar)
        self.addToolBar(QtCore.Qt.TopToolBarArea, self.source_bar)
        self.addToolBarBreak(QtCore.Qt.TopToolBarArea)
        self.addToolBar(QtCore.Qt.TopToolBarArea, self.model_bar)
        self.addToolBar(QtCore.Qt.TopToolBarArea, self.view_bar)
        self.addToolBarBreak(QtCore.Qt.TopToolBarArea)
        self.addToolBar(QtCore.Qt.TopToolBarArea, self.playback)

    def _build_status_bar(self) -> None:
        """Source, model, provider, fps, latency, dropped, recording; verification on the right."""
        sb = self.statusBar()
        self.status_labels: dict[str, QtWidgets.QLabel] = {}
        for key in STATUS_KEYS:
            label = QtWidgets.QLabel("")
            label.setContentsMargins(6, 0, 6, 0)
            self.status_labels[key] = label
            sb.addWidget(label)
        self.status_labels["recording"].setStyleSheet("color: #ff3b30; font-weight: bold;")
        # the depth under the mouse in a crop panel
        self.hover_label = QtWidgets.QLabel("")
        self.hover_label.setObjectName("hover_readout")
        self.hover_label.setContentsMargins(6, 0, 6, 0)
        sb.addPermanentWidget(self.hover_label)
        self.verification_label = QtWidgets.QLabel("")
        sb.addPermanentWidget(self.verification_label)
        # the credit a source asks for (a real person's head scan, CC BY), while it is on screen
        self.credit_label = QtWidgets.QLabel("")
        self.credit_label.setObjectName("source_credit")
        self.credit_label.setContentsMargins(6, 0, 6, 0)
        self.credit_label.setVisible(False)
        sb.addPermanentWidget(self.credit_label)

    def _restore_layout(self) -> None:
        self.resize(1440, 900)
        geometry, state = self.settings.geometry(), self.settings.state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        self._default_layout = state is None
        if state is not None and not self.restoreState(state, LAYOUT_VERSION):
            self._default_layout = True
        # a restored layout keeps the 3D dock's width; a fresh one gives it a third of the window
        self._view3d_sized = not self._default_layout

    def _connect_controls(self) -> None:
        """The controls' intents go to the controller (or to the window's own actions)."""
        c = self.controller
        self.panels.face_clicked.connect(c.select_face)
        self.panels.hover_text.connect(self.hover_label.setText)
        self.view_bar.view3d_action.toggled.connect(self.show_3d)
        self.view3d_dock.visibilityChanged.connect(
            lambda _v: self.view_bar.view3d_action.setChecked(not self.view3d_dock.isHidden()))
        self.view_bar.range_changed.connect(lambda mm: self.set_display(mm, self.panels.colormap))
        self.view_bar.colormap_changed.connect(
            lambda name: self.set_display(self.panels.shown_half_range_mm, name))
        self.banner.reconnect_clicked.connect(self.reconnect)
        self.source_bar.open_requested.connect(self.open_source)
        self.source_bar.reconnect_action.triggered.connect(self.reconnect)
        self.source_bar.face_model_chosen.connect(self.use_face_model)
        self.model_bar.model_chosen.connect(lambda p: c.set_model(Path(p)))
        self.model_bar.second_model_chosen.connect(lambda p: c.set_second_model(Path(p)))
        self.model_bar.compare_toggled.connect(self._compare_toggled)
        self.model_bar.recorded_toggled.connect(self._recorded_toggled)
        self.playback.play_action.triggered.connect(lambda: c.set_playing(not c.playing))
        self.playback.step_action.triggered.connect(c.step)
        self.playback.seek_requested.connect(c.seek)
        self.playback.record_action.triggered.connect(self._record_clicked)
        self.playback.enrol_action.triggered.connect(self._enrol_clicked)
        self.playback.load_enrolment_action.triggered.connect(self._load_enrolment_clicked)
        self.playback.snapshot_action.triggered.connect(self._snapshot_clicked)
        self.playback.export_action.triggered.connect(self._export_clicked)
        self.playback.quit_action.triggered.connect(self.close)  # closeEvent finishes any recording

    def _subscribe(self) -> None:
        """Controller events reach :meth:`_on_event` on the Qt thread: directly when emitted
        there, queued when emitted on the pipeline's inference thread."""
        self._handlers: dict[type, Callable[[Any], None]] = {
            ctl.Notice: self._on_notice,
            ctl.SourceOpened: self._on_source_opened,
            ctl.SourceClosed: self._on_source_closed,
            ctl.PipelineReady: self._on_pipeline_ready,
            ctl.PipelineRestarted: self._on_pipeline_restarted,
            ctl.PlayingChanged: self._on_playing_changed,
            ctl.Seeked: lambda _e: self._hide_info(),
            ctl.ModelsChanged: self._on_models_changed,
            ctl.RecordingStarted: lambda _e: self._show_recording(True),
            ctl.RecordingStopped: lambda _e: self._show_recording(False),
            ctl.RecordingFailed: lambda e: self.controller.stop_recording(failure=e.error),
            ctl.EnrolmentCollected: lambda _e: self.controller.finish_enrolment(),
            ctl.Enrolled: lambda e: self.settings.set_last_enrolment(e.path),
        }
        self._event_arrived.connect(self._on_event)
        self.controller.events.subscribe(self._event_arrived.emit)

    def _show_verifier(self) -> None:
        verifier = self.controller.verifier
        self.playback.enrol_action.setEnabled(verifier is not None)
        self.playback.load_enrolment_action.setEnabled(verifier is not None)
        if verifier is None:
            self.playback.enrol_action.setToolTip("Enrol: no face verifier is loaded")
            self.playback.load_enrolment_action.setToolTip("Load enrolment: no face verifier is loaded")
        self.plots.set_threshold(getattr(verifier, "threshold", None))

    # -- controller events --------------------------------------------------------------------------
    def _on_event(self, event: object) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _on_notice(self, e: ctl.Notice) -> None:
        self.banner.show_message(e.text, e.kind, e.reconnect)

    def _on_source_opened(self, e: ctl.SourceOpened) -> None:
        self.settings.remember_source(e.uri)
        self.source_bar.set_sources(e.uri, self.settings.recent_sources())
        self.playback.set_length(e.length)
        self.model_bar.recorded.setEnabled(e.has_recorded_predictions)
        if not e.has_recorded_predictions:
            self.model_bar.recorded.setChecked(False)
        self._show_credit(self.controller.source)
        self.banner.hide()

    def _show_credit(self, source: Any) -> None:
        """The source's ``credit`` (``describe()``), shown while it is open; hidden without one."""
        try:
            credit = source.describe().get("credit") if source is not None else None
        except Exception:  # noqa: BLE001 - a source that cannot describe itself has no credit to show
            credit = None
        self.credit_label.setText(f"Head scan: {credit}" if credit else "")
        self.credit_label.setToolTip("Shown for evaluation only; never used for training" if credit else "")
        self.credit_label.setVisible(bool(credit))

    def _on_source_closed(self, _e: ctl.SourceClosed) -> None:
        self._show_credit(None)
        self.last_shown = None
        self._finish_handled = False

    def _on_pipeline_ready(self, e: ctl.PipelineReady) -> None:
        self._finish_handled = False
        if self.banner.kind == "error":
            self.banner.hide()  # whatever failed before, this source and model now run
        self.plots.clear()
        self.panels.set_second_visible(len(e.model_names) > 1)
        self.status_labels["model"].setText(f"model: {' vs '.join(e.model_names)}")
        self.status_labels["provider"].setText(f"on {e.provider}")
        self.synthetic_note.setText(synthetic_note_text(e.real_head))
        self.synthetic_note.setVisible(e.synthetic_only)
        self.playback.set_playing(e.playing)

    def _on_pipeline_restarted(self, _e: ctl.PipelineRestarted) -> None:
        self._finish_handled = False
        self._hide_info()

    def _on_playing_changed(self, e: ctl.PlayingChanged) -> None:
        self.playback.set_playing(e.playing)
        if e.playing:
            self._hide_info()

    def _on_models_changed(self, e: ctl.ModelsChanged) -> None:
        self.model_bar.set_models(self.offered_models, e.model_path, e.second_path)

    def _show_recording(self, on: bool) -> None:
        self.panels.set_recording(on)
        self.playback.record_action.setChecked(on)
        self.playback.record_action.setText("\u25a0 Stop recording" if on else "\u25cf Record")
        self._update_status()

    def _show_error(self, text: str, reconnect: bool = False) -> None:
        self.banner.show_message(text, "error", reconnect)

    def _show_info(self, text: str) -> None:
        self.banner.show_message(text, "info", False)

    def _hide_info(self) -> None:
        if self.banner.kind == "info":
            self.banner.hide()

    # -- the controls' own actions ------------------------------------------------------------------
    def open_source(self, uri: str) -> bool:
        """Close the current source and open ``uri``; on failure show why and keep running."""
        self.status_labels["source"].setText(f"source: {_elide_middle(uri, STATUS_SOURCE_CHARS)}")
        self.status_labels["source"].setToolTip(uri)
        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.WaitCursor)
        try:
            return self.controller.open_source(uri)
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()

    def use_face_model(self, folder: str) -> bool:
        """Show the virtual Kinect with scan people of the face model in ``folder``; the folder
        is remembered (and the source, like any other) once it opens."""
        if not self.open_source(f"virtual:heads=scan,face_model={folder}"):
            return False
        self.settings.set_face_model(folder)
        return True

    def reconnect(self) -> bool:
        """Open the current source again (after an unplug, a fixed file, a driver install)."""
        return self.open_source(self.controller.source_uri)

    def set_display(self, shown_half_range_mm: float, colormap: str) -> None:
        """The depth panels' range (± mm) and colour map: shown at once and remembered."""
        self.panels.set_display(shown_half_range_mm, colormap)
        self.view_bar.set_display(self.panels.shown_half_range_mm, self.panels.colormap)
        self.settings.set_display(self.panels.shown_half_range_mm, self.panels.colormap)

    def show_3d(self, on: bool) -> None:
        """Open or close the 3D view (point clouds of the true and predicted depth, PLY export)."""
        if on and self.view3d is None:
            from app.gui.view3d import DepthView3D

            self.view3d = DepthView3D(self.controller.output_dir)
            self.view3d.message.connect(lambda text, kind: self.banner.show_message(text, kind))
            self.view3d_dock.setWidget(self.view3d)
        if on:
            first = not self._view3d_sized
            self._view3d_sized = True
            self.view3d_dock.show()
            if first:  # beside the panels, a third of the window's width (once the window has its size)
                QtCore.QTimer.singleShot(0, lambda: self.resizeDocks(
                    [self.view3d_dock], [max(360, self.width() // 3)], QtCore.Qt.Horizontal))
            self.view3d.show_result(self.last_shown, force=True)
        else:
            self.view3d_dock.hide()

    def _compare_toggled(self, on: bool) -> None:
        chosen = self.model_bar.second_path()
        self.controller.set_compare(on, Path(chosen) if chosen else None)
        self.panels.set_second_visible(self.controller.compare)

    def _recorded_toggled(self, on: bool) -> None:
        """On replay of a recording made by the app: show the recorded prediction."""
        self.use_recorded = bool(on)

    def _record_clicked(self) -> None:
        if self.controller.recording:
            self.controller.stop_recording()
        elif self.controller.start_recording() is not None and not self.controller.playing:
            self.controller.set_playing(True)  # a recording of a paused stream would stay empty
        self.playback.record_action.setChecked(self.controller.recording)

    def _enrol_clicked(self) -> None:
        name, ok = QtWidgets.QInputDialog.getText(self, "Enrol", "Name of the person in view:")
        if ok and name.strip():
            self.controller.enrol(name.strip())

    def _load_enrolment_clicked(self) -> None:
        folder = self.controller.output_dir / "enrolments"
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Load an enrolment",
                                                        str(folder if folder.is_dir() else self.controller.output_dir),
                                                        "Enrolments (*.json);;All files (*)")
        if path:
            self.controller.load_enrolment(Path(path))

    # -- the display timer --------------------------------------------------------------------------
    def _tick(self) -> None:
        c = self.controller
        pipeline = c.pipeline
        now = time.monotonic()
        if pipeline is not None:
            result = pipeline.latest()
            if result is not None and result is not self.last_shown:
                self._display(result)
            if self.max_frames is not None and pipeline.frames_processed >= self.max_frames and c.playing:
                c.set_playing(False)
            if pipeline.finished.is_set() and not self._finish_handled and pipeline.latest() is self.last_shown:
                self._on_finished(pipeline)
        if now >= self._next_plot:
            self._next_plot = now + PLOT_PERIOD_S
            if c.log is not None:
                self.plots.refresh(c.log)
        if now >= self._next_status:
            self._next_status = now + STATUS_PERIOD_S
            self._update_status()

    def _display(self, result: FrameResult) -> None:
        source = self.controller.source
        predictions = None
        if self.use_recorded and source is not None:
            getter = getattr(source, "recorded_prediction", None)
            if getter is not None:
                recorded = getter(result.frame)
                predictions = [recorded]
        labels = [m.name + (" (recorded)" if predictions and i == 0 and predictions[0] is not None else "")
                  for i, m in enumerate(result.models)]
        self.panels.show(result, predictions, labels)
        self.last_shown = result
        if self.view3d is not None and not self.view3d_dock.isHidden():
            self.view3d.show_result(result)
        done, done_ns = self.controller.last_processed
        now_ns = time.monotonic_ns()
        extra_ms = (now_ns - done_ns) / 1e6 if done is result else 0.0
        self._latencies_ms.append(result.latency_ms + extra_ms)
        shown_at = time.monotonic()
        self._show_times.append(shown_at)
        if self.first_shown_at is None:
            self.first_shown_at = shown_at
        self.results_seen += 1
        if isinstance(source, SeekableSource):
            length = len(source)
            self.playback.set_position(min(max(source.position - 1, 0), length - 1), length)

    def stream_done(self) -> bool:
        """True once the stream ended or failed and its last result is on screen."""
        p = self.controller.pipeline
        return p is None or (p.finished.is_set() and p.latest() is self.last_shown)

    def _on_finished(self, pipeline: Pipeline) -> None:
        self._finish_handled = True
        if isinstance(pipeline.error, ModelError):
            self._show_error(f"The model failed: {plain_words(pipeline.error)}. Choose another model, or press "
                             "Reconnect to try again.", reconnect=True)
        elif isinstance(pipeline.error, (SensorError, FormatError)):
            self._show_error(f"The source stopped: {plain_words(pipeline.error)}. Press Reconnect, or pick "
                             "another source.", reconnect=True)
        elif pipeline.error is not None:
            self._show_error(f"Processing stopped: {plain_words(pipeline.error)}. Press Reconnect to start "
                             "again, or pick another source or model.", reconnect=True)
        elif self.single_image():
            self.controller.set_playing(False)  # a photo: shown, nothing more to say
        elif isinstance(self.controller.source, SeekableSource):
            self.controller.set_playing(False)
            self._show_info("End of the recording: seek, or press Play to start again.")
        else:
            self._show_info("The source ended. Pick another source or press Reconnect.")
            self.banner.reconnect.setVisible(True)

    def single_image(self) -> bool:
        """True while the source is one still image (a single photo)."""
        source = self.controller.source
        return isinstance(source, SeekableSource) and len(source) == 1

    def fps(self) -> float:
        """New frames per second shown in the image panels, over the last ~2 s."""
        t = list(self._show_times)
        now = time.monotonic()
        t = [x for x in t if now - x < 2.0]
        if len(t) < 2:
            return 0.0
        return (len(t) - 1) / max(t[-1] - t[0], 1e-6)

    def drawn_span_s(self) -> float | None:
        """Seconds from the first frame drawn to the newest (None: none drawn yet)."""
        return None if self.first_shown_at is None else self._show_times[-1] - self.first_shown_at

    def drawn_fps(self) -> float | None:
        """New frames drawn per second from the first frame drawn to the newest (None: under two drawn)."""
        span = self.drawn_span_s()
        return None if span is None or self.results_seen < 2 else (self.results_seen - 1) / max(span, 1e-6)

    def latency_ms(self) -> float | None:
        """Capture-to-display latency, median over the last 60 frames drawn."""
        return float(np.median(self._latencies_ms)) if self._latencies_ms else None

    def _update_status(self) -> None:
        c = self.controller
        p = c.pipeline
        if self.single_image():
            rate = "still image"
        else:
            rate = f"{self.fps():.1f} fps" + ("" if c.playing else " (paused)")
        self.status_labels["fps"].setText(rate)
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
        rec = c.recording_status()
        if rec is not None:
            self.status_labels["recording"].setText(
                f"\u25cf REC {rec.path.name}: {rec.frames_written} frames"
                + (f", {rec.frames_dropped} dropped" if rec.frames_dropped else ""))
        else:
            self.status_labels["recording"].setText("")
        c.check_recording()
        if c.log is not None and c.verifier is not None:
            self.verification_label.setText(c.log.verification_text())
        elif c.verifier is None:
            self.verification_label.setText("verification: off (no verifier)")
            self.verification_label.setToolTip(c.verifier_error or "no verifier.onnx was found")

    # -- snapshot and export ----------------------------------------------------------------------------
    def _snapshot_clicked(self) -> None:
        paths = self.snapshot()
        if paths:
            self._show_info(f"Snapshot saved: {', '.join(p.name for p in paths.values())} in {paths['panels'].parent}")

    def snapshot(self, out_dir: Path | None = None) -> dict[str, Path] | None:
        """Save the panels as PNG, the predicted and the true depth as 16-bit PNGs in mm, the
        colour crop as PNG and the frame's metrics as JSON; returns the paths by role (None when
        there is nothing to save)."""
        result = self.last_shown
        if result is None:
            self._show_error("Snapshot: no frame shown yet.")
            return None
        out = Path(out_dir) if out_dir else self.controller.output_dir / "snapshots"
        stem = time.strftime("snapshot_%Y%m%d_%H%M%S") + f"_frame{result.index:06d}"
        try:
            out.mkdir(parents=True, exist_ok=True)
            panels_png = out / f"{stem}_panels.png"
            if not self.panels.grab().save(str(panels_png), "PNG"):
                raise OSError(f"could not write {panels_png}")
            files = [str(p) for p in self.controller.model_files()]
            paths = write_snapshot_data(result, out, stem, self.controller.source_uri, files,
                                        extra_files={"panels": panels_png.name})
        except (FacedepthError, OSError) as exc:
            self._show_error(f"Snapshot failed: {plain_words(exc)}")
            return None
        return {"panels": panels_png, **paths}

    def _export_clicked(self) -> None:
        default = str(self.controller.output_dir / time.strftime("metrics_%Y%m%d_%H%M%S.csv"))
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export per-frame metrics", default, "CSV (*.csv)")
        if path:
            self.export_csv(Path(path))

    def export_csv(self, path: Path) -> int | None:
        """Write the session's per-frame metrics; returns the number of rows."""
        log = self.controller.log
        if log is None:
            self._show_error("Export: no session yet.")
            return None
        try:
            n = log.write_csv(path)
        except OSError as exc:
            self._show_error(f"Export failed: {plain_words(exc)}")
            return None
        self._show_info(f"Exported {n} rows to {path}")
        return n

    # -- screenshots and closing ------------------------------------------------------------------------
    def save_screenshot(self, path: Path) -> bool:
        """Render the whole window (plots refreshed first) to a PNG."""
        if self.controller.log is not None:
            self.plots.refresh(self.controller.log)
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
        self.controller.close()
        self.settings.save_layout(self.saveGeometry(), self.saveState(LAYOUT_VERSION))
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


def _elide_middle(text: str, chars: int) -> str:
    """``text`` cut in the middle to at most ``chars`` characters (a long path keeps its start
    and its file name)."""
    if len(text) <= chars:
        return text
    head = (chars - 1) // 3
    return text[:head] + "\u2026" + text[len(text) - (chars - 1 - head):]


def _generators_in(folder: Path) -> list[Path]:
    """The depth generators among a folder's ONNX files (not the verifier nor other models)."""
    return [p for p in sorted(folder.glob("*.onnx")) if is_generator(p)] if folder.is_dir() else []
