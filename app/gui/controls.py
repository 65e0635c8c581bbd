"""The window's controls: source and model selection, playback, and the action buttons.

Built as toolbars of QActions, so every control has a keyboard shortcut where it makes sense
and the toolbars' placement is saved with the window layout. The controls only emit intents;
:class:`app.gui.window.MainWindow` passes them to :class:`app.controller.Controller`.
"""
from __future__ import annotations

from pathlib import Path

from PyQt5 import QtCore, QtGui, QtWidgets

from app.gui import display
from sensors.source import SourceURI

#: sources offered in the source box, before the recently used ones
BUILTIN_SOURCES = ("virtual:", "kinect:", "webcam:0")
#: keyboard shortcuts, by action (also listed in the README)
SHORTCUTS = {
    "play": "Space",
    "step": "Right",
    "snapshot": "Ctrl+S",
    "record": "Ctrl+R",
    "enrol": "Ctrl+E",
    "load_enrolment": "Ctrl+L",
    "export": "Ctrl+T",
    "open_file": "Ctrl+O",
    "reconnect": "F5",
    "quit": "Ctrl+Q",
    "view3d": "Ctrl+3",
}
#: the source box's width in characters (a longer URI scrolls inside it)
SOURCE_BOX_CHARS = 36
SOURCE_LIST_MIN_WIDTH_PX = 560
VIDEO_OR_IMAGE = ("*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.webp *.mp4 *.avi *.mov *.mkv *.webm")


def guess_uri(path: str | Path) -> str:
    """The source URI for a file or folder the user picked: a recording (.mcap) replays; a TUM
    RGB-D folder, a Biwi hpdb folder or sequence, or a Pandora root or sequence opens with its
    own reader; anything else opens as photos or a video."""
    p = Path(path)

    def uri(scheme: str) -> str:  # escapes a comma in the path (sensors.source)
        return str(SourceURI(scheme, str(p)))

    if p.is_file():
        return uri("replay") if p.suffix.lower() == ".mcap" else uri("images")
    if (p / "rgb.txt").is_file() and (p / "depth.txt").is_file():
        return uri("tum")
    if p.name == "hpdb" or (p / "depth.cal").is_file() or any(p.glob("*/depth.cal")) \
            or any(p.glob("frame_*_rgb.png")):
        return uri("biwi")
    if (p / "data.json").is_file() or (p / "RGB").is_dir() or any(p.glob("*/data.json")) \
            or any(p.glob("*/*/data.json")):
        return uri("pandora")
    return uri("images")


def _action(parent: QtWidgets.QWidget, text: str, tip: str, key: str | None = None,
            checkable: bool = False) -> QtWidgets.QAction:
    a = QtWidgets.QAction(text, parent)
    a.setCheckable(checkable)
    if key:
        a.setShortcut(QtGui.QKeySequence(SHORTCUTS[key]))
        a.setShortcutContext(QtCore.Qt.WindowShortcut)
        tip = f"{tip} ({SHORTCUTS[key]})"
    a.setToolTip(tip)
    a.setStatusTip(tip)
    return a


class SourceBar(QtWidgets.QToolBar):
    """Source selection: a box with built-in and recent URIs (editable), Open, file and
    folder pickers, Reconnect."""

    open_requested = QtCore.pyqtSignal(str)
    #: a FaceXModel folder chosen for the virtual Kinect's scan people
    face_model_chosen = QtCore.pyqtSignal(str)

    def __init__(self, parent: QtWidgets.QWidget) -> None:
        super().__init__("Source", parent)
        self.setObjectName("source_bar")
        self.addWidget(QtWidgets.QLabel(" Source "))
        self.combo = QtWidgets.QComboBox()
        self.combo.setEditable(True)
        self.combo.setInsertPolicy(QtWidgets.QComboBox.NoInsert)
        # a fixed width whatever the path: a long one must not push the other toolbars' controls
        # into an overflow menu (the full URI is in the tooltip and the status bar)
        self.combo.setSizeAdjustPolicy(QtWidgets.QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(SOURCE_BOX_CHARS)
        self.combo.setSizePolicy(QtWidgets.QSizePolicy.Fixed, QtWidgets.QSizePolicy.Fixed)
        # its list is wider than the box, and cuts a long URI in the middle (start and file name show)
        self.combo.view().setTextElideMode(QtCore.Qt.ElideMiddle)
        self.combo.view().setMinimumWidth(SOURCE_LIST_MIN_WIDTH_PX)
        self.combo.setToolTip("a source URI: virtual:, kinect:, webcam:0, replay:FILE.mcap, images:PATH, "
                              "biwi:PATH, pandora:PATH, tum:PATH (Enter opens it)")
        self.combo.lineEdit().returnPressed.connect(self._open_current)
        self.combo.activated.connect(lambda _i: self._open_current())
        self.addWidget(self.combo)
        self.open_action = _action(self, "Open", "open the source in the box")
        self.open_action.triggered.connect(self._open_current)
        self.file_action = _action(self, "File\u2026", "open a recording (.mcap), a photo or a video", "open_file")
        self.file_action.triggered.connect(self._pick_file)
        self.folder_action = _action(self, "Folder\u2026", "open a dataset folder (Biwi, Pandora, TUM) or a folder of photos")
        self.folder_action.triggered.connect(self._pick_folder)
        self.reconnect_action = _action(self, "Reconnect", "open the current source again", "reconnect")
        self.face_model_action = _action(
            self, "Face model\u2026", "the virtual Kinect with people shaped by a face model: pick an "
            "ICT-FaceKit FaceXModel folder (opens virtual:heads=scan and is remembered)")
        self.face_model_action.triggered.connect(self._pick_face_model)
        for a in (self.open_action, self.file_action, self.folder_action, self.reconnect_action,
                  self.face_model_action):
            self.addAction(a)

    def set_sources(self, current: str, recent: list[str]) -> None:
        self.combo.blockSignals(True)
        self.combo.clear()
        items = list(dict.fromkeys([current, *BUILTIN_SOURCES, *recent]))
        self.combo.addItems(items)
        for i, uri in enumerate(items):
            self.combo.setItemData(i, uri, QtCore.Qt.ToolTipRole)
        self.combo.setCurrentIndex(0)
        self.combo.blockSignals(False)

    def _open_current(self) -> None:
        text = self.combo.currentText().strip()
        if text:
            self.open_requested.emit(text)

    def _pick_file(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open a recording, a photo or a video", "",
            f"Recordings and media (*.mcap {VIDEO_OR_IMAGE});;Recordings (*.mcap);;All files (*)")
        if path:
            self.open_requested.emit(guess_uri(path))

    def _pick_face_model(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Pick an ICT-FaceKit FaceXModel folder")
        if path:
            self.face_model_chosen.emit(path)

    def _pick_folder(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Open a dataset folder or a folder of photos")
        if path:
            self.open_requested.emit(guess_uri(path))


class ModelBar(QtWidgets.QToolBar):
    """Model selection: the main model, an optional second one shown beside it, and (on replay
    of a recording made by the app) recorded vs live prediction."""

    model_chosen = QtCore.pyqtSignal(str)
    second_model_chosen = QtCore.pyqtSignal(str)
    compare_toggled = QtCore.pyqtSignal(bool)
    recorded_toggled = QtCore.pyqtSignal(bool)

    BROWSE = "Browse\u2026"

    def __init__(self, parent: QtWidgets.QWidget) -> None:
        super().__init__("Model", parent)
        self.setObjectName("model_bar")
        self.addWidget(QtWidgets.QLabel(" Model "))
        self.combo = QtWidgets.QComboBox()
        self.combo.setMinimumWidth(170)
        self.combo.setToolTip("the depth generator (ONNX)")
        self.combo.activated.connect(lambda i: self._chosen(self.combo, i, self.model_chosen))
        self.addWidget(self.combo)
        self.compare = QtWidgets.QCheckBox("Compare with")
        self.compare.setToolTip("show a second model's prediction beside the first (e.g. the AE baseline)")
        self.compare.toggled.connect(self.compare_toggled)
        self.addWidget(self.compare)
        self.second = QtWidgets.QComboBox()
        self.second.setMinimumWidth(170)
        self.second.activated.connect(lambda i: self._chosen(self.second, i, self.second_model_chosen))
        self.addWidget(self.second)
        self.recorded = QtWidgets.QCheckBox("Recorded prediction")
        self.recorded.setToolTip("on replay of a recording made by the app: show the prediction stored in "
                                 "the recording instead of the live one")
        self.recorded.setEnabled(False)
        self.recorded.toggled.connect(self.recorded_toggled)
        self.addWidget(self.recorded)

    def set_models(self, models: list[Path], current: Path, second: Path | None) -> None:
        for combo, chosen in ((self.combo, current), (self.second, second)):
            combo.blockSignals(True)
            combo.clear()
            paths = list(dict.fromkeys([*(p.resolve() for p in models), current.resolve()]
                                       + ([second.resolve()] if second else [])))
            for p in paths:
                combo.addItem(p.stem, str(p))
            combo.addItem(self.BROWSE, "")
            if chosen is not None:
                combo.setCurrentIndex(combo.findData(str(chosen.resolve())))
            elif combo is self.second:
                others = [i for i, p in enumerate(paths) if p != current.resolve()]
                combo.setCurrentIndex(others[0] if others else 0)
            combo.blockSignals(False)

    def _chosen(self, combo: QtWidgets.QComboBox, index: int, signal: QtCore.pyqtBoundSignal) -> None:
        path = combo.itemData(index)
        if not path:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Choose a depth generator", "",
                                                            "ONNX models (*.onnx);;All files (*)")
            if not path:
                return
        signal.emit(str(path))

    def second_path(self) -> str | None:
        return self.second.currentData() or None


class PlaybackBar(QtWidgets.QToolBar):
    """Play/pause, step, the seek slider with a frame counter, and the session's actions:
    Record, Enrol, Load enrolment, Snapshot, Export CSV, Quit."""

    seek_requested = QtCore.pyqtSignal(int)

    def __init__(self, parent: QtWidgets.QWidget) -> None:
        super().__init__("Playback", parent)
        self.setObjectName("playback_bar")
        self.play_action = _action(self, "Pause", "play or pause", "play")
        self.step_action = _action(self, "Step", "while paused: one more frame", "step")
        self.addAction(self.play_action)
        self.addAction(self.step_action)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Horizontal)
        self.slider.setMinimumWidth(220)
        self.slider.setToolTip("seek (recordings and datasets)")
        self.slider.setEnabled(False)
        self.slider.valueChanged.connect(self._slider_moved)
        self.addWidget(self.slider)
        self.counter = QtWidgets.QLabel(" frame - ")
        self.counter.setMinimumWidth(130)
        self.addWidget(self.counter)
        self.addSeparator()
        self.record_action = _action(self, "\u25cf Record", "record to MCAP with predictions and metrics",
                                     "record", checkable=True)
        self.enrol_action = _action(self, "Enrol", "enrol the person in view as the verification reference", "enrol")
        self.snapshot_action = _action(self, "Snapshot", "save the panels (PNG), the predicted and true "
                                       "depth (16-bit PNGs, mm), the colour crop (PNG) and this frame's "
                                       "metrics (JSON)", "snapshot")
        self.export_action = _action(self, "Export CSV", "write the session's per-frame metrics to CSV", "export")
        self.load_enrolment_action = _action(self, "Load enrolment\u2026", "use an enrolment file (from "
                                             "`launch.py enrol` or an earlier Enrol) as the verification reference",
                                             "load_enrolment")
        self.quit_action = _action(self, "Quit", "finish any recording and close the app", "quit")
        for a in (self.record_action, self.enrol_action, self.load_enrolment_action, self.snapshot_action,
                  self.export_action, self.quit_action):
            self.addAction(a)
        self._programmatic = False

    def set_playing(self, playing: bool) -> None:
        self.play_action.setText("Pause" if playing else "Play")
        self.step_action.setEnabled(not playing)

    def set_length(self, length: int | None) -> None:
        """Frames in a seekable source (None: live, no slider)."""
        self._programmatic = True
        if length:
            self.slider.setRange(0, max(0, length - 1))
            self.slider.setEnabled(True)
        else:
            self.slider.setRange(0, 0)
            self.slider.setEnabled(False)
            self.counter.setText(" live ")
        self._programmatic = False

    def set_position(self, position: int, length: int | None) -> None:
        if length:
            if not self.slider.isSliderDown():
                self._programmatic = True
                self.slider.setValue(position)
                self._programmatic = False
            self.counter.setText(f" frame {position + 1} / {length} ")

    def _slider_moved(self, value: int) -> None:
        if not self._programmatic:
            self.seek_requested.emit(int(value))




class ViewBar(QtWidgets.QToolBar):
    """How depth is drawn (display only, the models' encoding is untouched): the shown depth
    range (± mm around the head centre), the colour map, and the 3D view."""

    range_changed = QtCore.pyqtSignal(float)
    colormap_changed = QtCore.pyqtSignal(str)

    def __init__(self, parent: QtWidgets.QWidget) -> None:
        super().__init__("View", parent)
        self.setObjectName("view_bar")
        self.addWidget(QtWidgets.QLabel(" Depth \u00b1"))
        self.range_mm = QtWidgets.QSpinBox()
        self.range_mm.setRange(*display.SHOWN_RANGE_LIMITS_MM)
        self.range_mm.setSingleStep(10)
        self.range_mm.setSuffix(" mm")
        self.range_mm.setToolTip("the depth panels' scale: z - D from -this to +this (display only)")
        self.range_mm.setKeyboardTracking(False)
        self.range_mm.valueChanged.connect(lambda v: self.range_changed.emit(float(v)))
        self.addWidget(self.range_mm)
        self.colormap = QtWidgets.QComboBox()
        self.colormap.addItems(list(display.DEPTH_COLORMAPS))
        self.colormap.setToolTip("the depth panels' colour map (display only)")
        self.colormap.activated.connect(lambda i: self.colormap_changed.emit(self.colormap.itemText(i)))
        self.addWidget(self.colormap)
        self.view3d_action = _action(self, "3D", "a 3D view of the true and predicted depth (drag to turn, "
                                     "wheel to zoom) with PLY export", "view3d", checkable=True)
        self.addAction(self.view3d_action)

    def set_display(self, half_range_mm: float, colormap: str) -> None:
        """Show the current settings without emitting."""
        for w in (self.range_mm, self.colormap):
            w.blockSignals(True)
        self.range_mm.setValue(int(round(half_range_mm)))
        i = self.colormap.findText(colormap)
        self.colormap.setCurrentIndex(max(i, 0))
        for w in (self.range_mm, self.colormap):
            w.blockSignals(False)
