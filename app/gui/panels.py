"""The image panels: the colour frame with the face window, and the crops (input colour, true
depth, predicted depth of one or two models, error maps) on one fixed depth scale.

Everything is built once; ``show(result)`` only pushes arrays into existing ImageItems with
fixed levels (uint8 colour-table indices, see :mod:`app.gui.display`), so a frame costs a few
table look-ups and one colour-image upload at reduced resolution.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore, QtGui, QtWidgets

from app.gui import display
from app.pipeline import FrameResult, ModelResult

#: colour of invalid pixels (no reading, background) in the depth panels
INVALID_RGB = (0, 0, 0)
#: colour of pixels without ground truth in the error maps
NO_TRUTH_RGB = (70, 70, 78)
COLOR_PANEL_MAX_WIDTH_PX = 640


def _lut(name: str, invalid_rgb: tuple[int, int, int], reverse: bool = False) -> tuple[np.ndarray, pg.ColorMap]:
    """A 256-entry table: index 0 = invalid, 1..255 = the colour map from one end to the other."""
    cmap = pg.colormap.get(name)
    if reverse:
        cmap.reverse()
    table = cmap.getLookupTable(0.0, 1.0, 255, alpha=False)
    lut = np.empty((256, 3), dtype=np.uint8)
    lut[0] = invalid_rgb
    lut[1:] = table[:, :3]
    return lut, cmap


#: room above each crop for its title, as a share of the crop's side
TITLE_MARGIN = 0.16


@dataclass
class _CropView:
    """One crop panel: an image with its title drawn above it, in its own view box."""

    title: pg.TextItem
    view: pg.ViewBox
    image: pg.ImageItem
    last_title: str = ""

    def set_title(self, text: str) -> None:
        if text != self.last_title:
            self.title.setText(text)
            self.last_title = text

    def fit(self, size_px: int) -> None:
        """Show the whole S x S crop and the title strip above it."""
        self.view.setRange(xRange=(0, size_px), yRange=(-TITLE_MARGIN * size_px, size_px), padding=0)
        self.title.setPos(size_px / 2, -0.02 * size_px)


def _crop_view(title: str, lut: np.ndarray | None) -> _CropView:
    view = pg.ViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
    view.setDefaultPadding(0.0)
    image = pg.ImageItem(axisOrder="row-major")
    if lut is not None:
        image.setLookupTable(lut)
    view.addItem(image)
    label = pg.TextItem(title, color="#c8c8d0", anchor=(0.5, 1.0))
    label.setFont(QtGui.QFont("Sans", 9))
    view.addItem(label)
    cv = _CropView(label, view, image, title)
    cv.fit(100)
    return cv


class ImagePanels(pg.GraphicsLayoutWidget):
    """Colour frame and depth crops. Emits ``face_clicked(u, v)`` (full-resolution colour
    pixels) when the user clicks in the colour frame."""

    face_clicked = QtCore.pyqtSignal(float, float)

    def __init__(self, shown_half_range_mm: float = 150.0, error_max_mm: float = 30.0,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setBackground("#1e1e22")
        # repaint only the panels that changed (the colour bars' axes cost ~1 ms each to draw)
        self.setViewportUpdateMode(QtWidgets.QGraphicsView.SmartViewportUpdate)
        self.shown_half_range_mm = float(shown_half_range_mm)
        self.error_max_mm = float(error_max_mm)
        self.depth_lut, self.depth_cmap = _lut("viridis", INVALID_RGB, reverse=True)
        self.error_lut, self.error_cmap = _lut("inferno", NO_TRUTH_RGB)
        self.frames_shown = 0
        self._second = False
        self._color_shape: tuple[int, int] | None = None
        self._crop_size: int | None = None
        self._cleared = False

        # the colour frame, with the face windows and a "no face" / "REC" overlay
        self.color_view = pg.ViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
        self.color_view.setDefaultPadding(0.0)
        self.color_image = pg.ImageItem(axisOrder="row-major")
        self.color_view.addItem(self.color_image)
        self.face_rects = [QtWidgets.QGraphicsRectItem(), QtWidgets.QGraphicsRectItem()]
        for rect, colour, style in zip(self.face_rects, ("#3ef07a", "#4fc3ff"), (QtCore.Qt.SolidLine, QtCore.Qt.DashLine)):
            pen = QtGui.QPen(QtGui.QColor(colour))
            pen.setWidth(2)
            pen.setCosmetic(True)
            pen.setStyle(style)
            rect.setPen(pen)
            rect.setVisible(False)
            self.color_view.addItem(rect)
        self.message = pg.TextItem("", color="#ffd54f", anchor=(0.5, 0.5))
        self.message.setFont(QtGui.QFont("Sans", 14))
        self.color_view.addItem(self.message)
        self.rec_badge = pg.TextItem("\u25cf REC", color="#ff3b30", anchor=(0, 0))
        self.rec_badge.setFont(QtGui.QFont("Sans", 16, QtGui.QFont.Bold))
        self.rec_badge.setVisible(False)
        self.color_view.addItem(self.rec_badge)

        # the crops
        self.input_crop = _crop_view("Input crop", None)
        self.true_crop = _crop_view("True depth", self.depth_lut)
        self.pred_crops = [_crop_view("Predicted", self.depth_lut), _crop_view("Predicted (2nd)", self.depth_lut)]
        self.error_crops = [_crop_view("|pred - true|", self.error_lut), _crop_view("|pred - true| (2nd)", self.error_lut)]
        self.depth_bar = pg.ColorBarItem(values=(-self.shown_half_range_mm, self.shown_half_range_mm),
                                         colorMap=self.depth_cmap, interactive=False, width=14,
                                         label="z - D (mm)", colorMapMenu=False)
        self.error_bar = pg.ColorBarItem(values=(0.0, self.error_max_mm), colorMap=self.error_cmap,
                                         interactive=False, width=14, label="error (mm)", colorMapMenu=False)
        self.scene().sigMouseClicked.connect(self._on_click)
        self._build_layout()

    # -- layout -----------------------------------------------------------------------------
    def _build_layout(self) -> None:
        """(Re)place the items: the colour frame on the left, the crops in a grid beside it
        (true, predicted, [second]; input crop, error, [second error]), then the colour bars."""
        self.ci.clear()
        self.ci.layout.setContentsMargins(4, 4, 4, 4)
        self.ci.layout.setVerticalSpacing(12)
        self.ci.addItem(self.color_view, row=0, col=0, rowspan=2)
        cols = 3 if self._second else 2
        top = [self.true_crop, *self.pred_crops[: cols - 1]]
        bottom = [self.input_crop, *self.error_crops[: cols - 1]]
        for c, (t, b) in enumerate(zip(top, bottom), start=1):
            self.ci.addItem(t.view, row=0, col=c)
            self.ci.addItem(b.view, row=1, col=c)
        self.ci.addItem(self.depth_bar, row=0, col=cols + 1)
        self.ci.addItem(self.error_bar, row=1, col=cols + 1)
        for hidden in self.pred_crops[cols - 1:] + self.error_crops[cols - 1:]:
            hidden.view.setVisible(False)
        for shown in top + bottom:
            shown.view.setVisible(True)
        lay = self.ci.layout
        lay.setColumnStretchFactor(0, 5 if self._second else 4)
        for c in range(1, cols + 1):
            lay.setColumnStretchFactor(c, 2)
        lay.setColumnStretchFactor(cols + 1, 0)
        lay.setRowStretchFactor(0, 1)
        lay.setRowStretchFactor(1, 1)

    def set_second_visible(self, visible: bool) -> None:
        """Show or hide the second model's prediction and error panels."""
        if bool(visible) != self._second:
            self._second = bool(visible)
            self._build_layout()

    def set_recording(self, on: bool) -> None:
        self.rec_badge.setVisible(on)

    def set_message(self, text: str) -> None:
        """A line of text over the colour frame ('' hides it)."""
        if text != self.message.toPlainText():
            self.message.setText(text)

    # -- per frame --------------------------------------------------------------------------
    def show(self, result: FrameResult, predictions: list[np.ndarray | None] | None = None,
             labels: list[str] | None = None) -> None:
        """Push one result into the panels. ``predictions`` replaces the models' 8-bit
        predictions (e.g. the recorded ones of a replay); ``labels`` names the models."""
        frame = result.frame
        img, _ = display.reduce_color(frame.color, COLOR_PANEL_MAX_WIDTH_PX)
        self.color_image.setImage(img, autoLevels=False, levels=(0, 255))
        shape = frame.color.shape[:2]
        if shape != self._color_shape:
            h, w = shape
            self.color_image.setRect(QtCore.QRectF(-0.5, -0.5, w, h))
            self.color_view.setRange(xRange=(-0.5, w - 0.5), yRange=(-0.5, h - 0.5), padding=0)
            self.message.setPos(w / 2, h / 2)
            self.rec_badge.setPos(w * 0.02, h * 0.02)
            self._color_shape = shape
        models = result.models
        for i, rect in enumerate(self.face_rects):
            if i < len(models) and (i == 0 or self._second):
                x0, y0, w, h = models[i].crop.window_px
                rect.setRect(QtCore.QRectF(x0, y0, w, h))
                rect.setVisible(True)
            else:
                rect.setVisible(False)
        labels = labels or [m.name for m in models]
        if models:
            self._show_crops(models, predictions, labels)
            self.set_message("")
        else:
            self._clear_crops()
            self.set_message("No face in view")
        self.frames_shown += 1

    def _show_crops(self, models: tuple[ModelResult, ...], predictions: list[np.ndarray | None] | None,
                    labels: list[str]) -> None:
        self._cleared = False
        hs = self.shown_half_range_mm
        m0 = models[0]
        self._set(self.input_crop.image, m0.crop.color)
        true0 = m0.true8
        self.true_crop.set_title("True depth" if true0 is not None else "No true depth")
        self._set(self.true_crop.image, display.depth_indices(true0, m0.crop.config.half_range_mm, hs)
                  if true0 is not None else None, like=m0.pred8)
        for i in range(2 if self._second else 1):
            pv, ev = self.pred_crops[i], self.error_crops[i]
            if i >= len(models):
                self._set(pv.image, None, like=m0.pred8)
                self._set(ev.image, None, like=m0.pred8)
                pv.set_title("No second model")
                ev.set_title("")
                continue
            m = models[i]
            pred = m.pred8
            if predictions is not None and i < len(predictions) and predictions[i] is not None:
                pred = predictions[i]
            h = m.crop.config.half_range_mm
            pv.set_title(f"Predicted: {labels[i]}")
            self._set(pv.image, display.depth_indices(pred, h, hs))
            true8 = m.true8
            if true8 is None:
                ev.set_title("Error: no true depth")
                self._set(ev.image, None, like=pred)
            else:
                ev.set_title(f"|pred - true|: {labels[i]}")
                self._set(ev.image, display.error_indices(display.error_mm(pred, true8, h), self.error_max_mm))

    def _clear_crops(self) -> None:
        if self._cleared:
            return
        size = self._crop_size or 100
        blank = np.zeros((size, size), np.uint8)
        for v in (self.true_crop, *self.pred_crops, *self.error_crops):
            v.image.setImage(blank, autoLevels=False, levels=(0, 255))
        self.input_crop.image.setImage(np.zeros((size, size, 3), np.uint8), autoLevels=False, levels=(0, 255))
        self._cleared = True

    def _set(self, item: pg.ImageItem, data: np.ndarray | None, like: np.ndarray | None = None) -> None:
        if data is None:
            data = np.zeros(like.shape[:2] if like is not None else (100, 100), np.uint8)
        first = item.image is None
        item.setImage(data, autoLevels=False, levels=(0, 255))
        if first or data.shape[0] != self._crop_size:
            self._crop_size = data.shape[0]
            for v in (self.input_crop, self.true_crop, *self.pred_crops, *self.error_crops):
                v.fit(data.shape[0])

    # -- interaction ------------------------------------------------------------------------
    def _on_click(self, event: object) -> None:
        pos = event.scenePos()  # type: ignore[attr-defined]
        if self._color_shape is None or not self.color_view.sceneBoundingRect().contains(pos):
            return
        p = self.color_view.mapSceneToView(pos)
        h, w = self._color_shape
        if -0.5 <= p.x() <= w - 0.5 and -0.5 <= p.y() <= h - 0.5:
            self.face_clicked.emit(float(p.x()), float(p.y()))
