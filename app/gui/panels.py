"""The image panels: the colour frame with the face window, and the crops (input colour, true
depth, predicted depth of one or two models, error maps) on one depth scale that does not
change from frame to frame (its range and colour map are the user's: :meth:`ImagePanels.set_display`),
and the hover readout of the depth or error under the mouse.

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


@dataclass
class _CropView:
    """One crop panel: a title label (a layout cell of its own above the image, so the layout
    makes the column at least as wide as the title and it is never clipped) and the image in
    its own view box."""

    title: pg.LabelItem
    view: pg.ViewBox
    image: pg.ImageItem
    last_title: str = ""

    def set_title(self, text: str) -> bool:
        """True when the title changed (the columns' widths may need to follow)."""
        if text == self.last_title:
            return False
        self.title.setText(text)
        self.last_title = text
        return True

    def fit(self, size_px: int) -> None:
        """Show the whole S x S crop."""
        self.view.setRange(xRange=(-0.5, size_px - 0.5), yRange=(-0.5, size_px - 0.5), padding=0)

    def set_visible(self, visible: bool) -> None:
        self.view.setVisible(visible)
        self.title.setVisible(visible)


def _crop_view(title: str, lut: np.ndarray | None) -> _CropView:
    view = pg.ViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
    view.setDefaultPadding(0.0)
    image = pg.ImageItem(axisOrder="row-major")
    if lut is not None:
        image.setLookupTable(lut)
    view.addItem(image)
    label = pg.LabelItem(title, color="#c8c8d0", size="9pt")
    # its own height only: the crops below take the rest of the row pair
    label.setSizePolicy(QtWidgets.QSizePolicy.Preferred, QtWidgets.QSizePolicy.Fixed)
    cv = _CropView(label, view, image, title)
    cv.fit(100)
    return cv


class ImagePanels(pg.GraphicsLayoutWidget):
    """Colour frame and depth crops. Emits ``face_clicked(u, v)`` (full-resolution colour
    pixels) when the user clicks in the colour frame."""

    face_clicked = QtCore.pyqtSignal(float, float)

    #: the hover readout of the depth or error under the mouse ("" when off the crops)
    hover_text = QtCore.pyqtSignal(str)

    def __init__(self, shown_half_range_mm: float = display.DEFAULT_SHOWN_HALF_RANGE_MM,
                 error_max_mm: float = 30.0, colormap: str = display.DEFAULT_COLORMAP,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setBackground("#1e1e22")
        # repaint only the panels that changed (the colour bars' axes cost ~1 ms each to draw)
        self.setViewportUpdateMode(QtWidgets.QGraphicsView.SmartViewportUpdate)
        self.shown_half_range_mm = float(shown_half_range_mm)
        self.error_max_mm = float(error_max_mm)
        self.colormap = colormap if colormap in display.DEPTH_COLORMAPS else display.DEFAULT_COLORMAP
        self.depth_lut, self.depth_cmap = _lut(display.DEPTH_COLORMAPS[self.colormap], INVALID_RGB,
                                               reverse=True)
        self.error_lut, self.error_cmap = _lut("inferno", NO_TRUTH_RGB)
        self.frames_shown = 0
        self._second = False
        self._color_shape: tuple[int, int] | None = None
        self._crop_size: int | None = None
        self._cleared = False
        self._last: tuple[FrameResult, list[np.ndarray | None] | None, list[str]] | None = None
        #: per crop view: what its pixels mean, for the hover readout
        self._hover: dict[int, tuple[str, np.ndarray, float, float]] = {}

        # the colour frame, with the face windows and a "no face" / "REC" overlay
        self.color_view = pg.ViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
        self.color_view.setDefaultPadding(0.0)
        self.color_image = pg.ImageItem(axisOrder="row-major")
        self.color_view.addItem(self.color_image)
        # the first model's window wide and solid, the second's narrow and dashed on top of it:
        # where both models crop the same window both stay visible (green beside and between
        # the blue dashes)
        self.face_rects = [QtWidgets.QGraphicsRectItem(), QtWidgets.QGraphicsRectItem()]
        for rect, colour, width, style, z in zip(self.face_rects, ("#3ef07a", "#4fc3ff"), (5, 2),
                                                 (QtCore.Qt.SolidLine, QtCore.Qt.DashLine), (1, 2)):
            pen = QtGui.QPen(QtGui.QColor(colour))
            pen.setWidth(width)
            pen.setCosmetic(True)
            pen.setStyle(style)
            rect.setPen(pen)
            rect.setZValue(z)
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
        self.scene().sigMouseMoved.connect(self._on_move)
        self._build_layout()

    # -- layout -----------------------------------------------------------------------------
    def _build_layout(self) -> None:
        """(Re)place the items: the colour frame on the left, the crops in a grid beside it
        (true, predicted, [second]; input crop, error, [second error]), each under its title
        row, then the colour bars."""
        self.ci.clear()
        self.ci.layout.setContentsMargins(4, 8, 4, 8)  # room for the colour bars' end labels
        # room between the two colour bars' end labels
        self.ci.layout.setVerticalSpacing(18)
        self.ci.addItem(self.color_view, row=0, col=0, rowspan=4)
        cols = 3 if self._second else 2
        top = [self.true_crop, *self.pred_crops[: cols - 1]]
        bottom = [self.input_crop, *self.error_crops[: cols - 1]]
        for c, (t, b) in enumerate(zip(top, bottom), start=1):
            self.ci.addItem(t.title, row=0, col=c)
            self.ci.addItem(t.view, row=1, col=c)
            self.ci.addItem(b.title, row=2, col=c)
            self.ci.addItem(b.view, row=3, col=c)
        self.ci.addItem(self.depth_bar, row=0, col=cols + 1, rowspan=2)
        self.ci.addItem(self.error_bar, row=2, col=cols + 1, rowspan=2)
        for hidden in self.pred_crops[cols - 1:] + self.error_crops[cols - 1:]:
            hidden.set_visible(False)
        for shown in top + bottom:
            shown.set_visible(True)
        lay = self.ci.layout
        lay.setColumnStretchFactor(0, 5 if self._second else 4)
        for c in range(1, cols + 1):
            lay.setColumnStretchFactor(c, 2)
        lay.setColumnStretchFactor(cols + 1, 0)
        for r, stretch in enumerate((0, 1, 0, 1)):
            lay.setRowStretchFactor(r, stretch)
        self._equal_columns()

    def _equal_columns(self) -> None:
        """Every crop column as wide as the widest title, so the crops keep one size."""
        cols = 3 if self._second else 2
        views = [self.true_crop, self.input_crop, *self.pred_crops[: cols - 1], *self.error_crops[: cols - 1]]
        width = max(v.title.minimumWidth() for v in views)
        for c in range(1, cols + 1):
            self.ci.layout.setColumnMinimumWidth(c, width)

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

    def set_display(self, shown_half_range_mm: float, colormap: str) -> None:
        """The depth panels' scale (z - D over ± ``shown_half_range_mm``) and colour map; display
        only (each model's encoding keeps its own half-range). Redraws the frame on screen."""
        if colormap not in display.DEPTH_COLORMAPS:
            colormap = display.DEFAULT_COLORMAP
        lo, hi = display.SHOWN_RANGE_LIMITS_MM
        shown = float(min(max(shown_half_range_mm, lo), hi))
        if (shown, colormap) == (self.shown_half_range_mm, self.colormap):
            return
        self.shown_half_range_mm, self.colormap = shown, colormap
        self.depth_lut, self.depth_cmap = _lut(display.DEPTH_COLORMAPS[colormap], INVALID_RGB, reverse=True)
        for v in (self.true_crop, *self.pred_crops):
            v.image.setLookupTable(self.depth_lut)
        self.depth_bar.setColorMap(self.depth_cmap)
        self.depth_bar.setLevels((-shown, shown))
        if self._last is not None and not self._cleared:
            result, predictions, labels = self._last
            self._show_crops(result.models, predictions, labels)

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
        self._last = (result, predictions, labels)
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
        titles = [v.last_title for v in self._crop_views()]
        self._fill_crops(models, predictions, labels)
        if titles != [v.last_title for v in self._crop_views()]:
            self._equal_columns()

    def _crop_views(self) -> list[_CropView]:
        return [self.input_crop, self.true_crop, *self.pred_crops, *self.error_crops]

    def _fill_crops(self, models: tuple[ModelResult, ...], predictions: list[np.ndarray | None] | None,
                    labels: list[str]) -> None:
        hs = self.shown_half_range_mm
        m0 = models[0]
        self._set(self.input_crop.image, m0.crop.color)
        true0 = m0.true8
        self._hover.clear()
        if true0 is not None:
            for v in (self.true_crop, self.input_crop):
                self._hover[id(v.view)] = ("True depth", true0, m0.crop.distance_mm,
                                           m0.crop.config.half_range_mm)
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
            self._hover[id(pv.view)] = (f"Predicted ({labels[i]})", pred, m.crop.distance_mm, h)
            true8 = m.true8
            if true8 is None:
                ev.set_title("Error: no true depth")
                self._set(ev.image, None, like=pred)
            else:
                ev.set_title(f"|pred - true|: {labels[i]}")
                err = display.error_mm(pred, true8, h)
                self._set(ev.image, display.error_indices(err, self.error_max_mm))
                self._hover[id(ev.view)] = (f"|pred - true| ({labels[i]})", err, m.crop.distance_mm, h)

    def _clear_crops(self) -> None:
        self._hover.clear()
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

    def _on_move(self, pos: QtCore.QPointF) -> None:
        self.hover_text.emit(self.readout_at(pos))

    def readout_at(self, scene_pos: QtCore.QPointF) -> str:
        """The depth (or error) in mm under a scene position in a crop panel; "" elsewhere."""
        for v in (self.true_crop, self.input_crop, *self.pred_crops, *self.error_crops):
            if not v.view.isVisible() or not v.view.sceneBoundingRect().contains(scene_pos):
                continue
            data = self._hover.get(id(v.view))
            if data is None:
                return ""
            p = v.view.mapSceneToView(scene_pos)
            col, row = int(np.floor(p.x() + 0.5)), int(np.floor(p.y() + 0.5))
            what, values, distance_mm, half_range_mm = data
            if not (0 <= row < values.shape[0] and 0 <= col < values.shape[1]):
                return ""
            return f"{what} at crop ({col}, {row}): " + display.readout_text(
                values[row, col], distance_mm, half_range_mm, error=values.dtype != np.uint8)
        return ""
