"""Running plots over time (the six delta accuracies, L1 in mm, the verification scores) and a
table of the latest value, the sliding-window mean and the session mean of each (and of the
face-region shape L1, which has no curve).

Refreshed from the window's timer at about 10 Hz from :class:`app.session.SessionLog`;
the curves are built once and only get new data.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore, QtGui, QtWidgets

from app.session import SessionLog
from models.metrics import DELTA_KEYS, LIVE_TABLE_KEYS

HISTORY_FRAMES = 300
#: the numbers table's columns, for each model
TABLE_COLUMNS = ("now", "window", "session")
#: the delta and score plots' top: 1.0 plus room for the curves' line width; the L1 plot's head room
DELTA_Y_TOP = 1.06
SCORE_Y_TOP = 1.06
HEAD_ROOM = 1.05
#: the two models' colours (their face windows, L1 curves and table headers)
MODEL_COLOURS = ("#3ef07a", "#4fc3ff")
#: the x axis scrolls in steps of this many frames, so the axes are redrawn only now and then
X_STEP_FRAMES = 50
_DELTA_COLOURS = ("#ff5252", "#ff9800", "#ffeb3b", "#8bc34a", "#26c6da", "#7e57c2")
_DELTA_LABELS = ("\u03b4<1.25^1/4", "\u03b4<1.25^1/3", "\u03b4<1.25^1/2", "\u03b4<1.25", "\u03b4<1.25^2", "\u03b4<1.25^3")
#: the rows of the numbers table: (key, label, format)
TABLE_ROWS = (
    *((k, lab, "{:.3f}") for k, lab in zip(DELTA_KEYS, _DELTA_LABELS)),
    *((k, lab, "{:.2f}") for k, lab in LIVE_TABLE_KEYS),  # L1 (mm), then face shape L1 (mm): no curve
    ("verification", "verify vs true", "{:.3f}"),
    ("enrolled", "verify vs enrolled", "{:.3f}"),
)
#: the colour of each table row's label: the delta rows double as the delta plot's legend, L1 (mm)
#: and the verification rows take their curves' colours; rows without a curve stay neutral
_ROW_COLOURS = (*_DELTA_COLOURS, "#3ef07a", *("#e0e0e6",) * (len(LIVE_TABLE_KEYS) - 1), "#3ef07a", "#ffb74d")
_TABLE_STYLE = (
    "QTableWidget { background: #1e1e22; color: #e0e0e6; gridline-color: #34343a; border: none; }"
    " QHeaderView { background: #1e1e22; }"
    " QHeaderView::section { background: #26262c; border: none; padding: 1px 4px; }"
    " QHeaderView::section:horizontal { color: #b0b0b8; }"
    " QTableCornerButton::section { background: #26262c; border: none; }"
)


def _short(name: str, chars: int = 14) -> str:
    """A model name cut to fit a plot title (the table's caption has the full names)."""
    return name if len(name) <= chars else name[: chars - 1] + "\u2026"


class MetricsPlots(QtWidgets.QWidget):
    """Three plots side by side and the numbers table."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.refreshes = 0
        self.graphs = pg.GraphicsLayoutWidget()
        self.graphs.setBackground("#1e1e22")
        # repaint only what changed: new curve data must not redraw every axis
        self.graphs.setViewportUpdateMode(QtWidgets.QGraphicsView.SmartViewportUpdate)
        self._ranges: dict[str, tuple[float, float]] = {}
        self.delta_plot = self.graphs.addPlot(title="delta accuracy (share of pixels)")
        self.l1_plot = self.graphs.addPlot(title="L1 error (mm)")
        self.score_plot = self.graphs.addPlot(title="verification score")
        for p in (self.delta_plot, self.l1_plot, self.score_plot):
            p.showGrid(x=True, y=True, alpha=0.25)
            p.setLabel("bottom", "frame")
            p.setMenuEnabled(False)
            p.setMouseEnabled(x=False, y=False)
            p.hideButtons()
        for p in (self.delta_plot, self.l1_plot, self.score_plot):
            p.disableAutoRange()
        # head room above 1.0: curves at full accuracy stay clear of the frame's top edge
        self.delta_plot.setYRange(0.0, DELTA_Y_TOP, padding=0)
        self.delta_curves = {
            k: self.delta_plot.plot(pen=pg.mkPen(c, width=1.5), name=lab)
            for k, c, lab in zip(DELTA_KEYS, _DELTA_COLOURS, _DELTA_LABELS)
        }
        # no legends inside the plots (curves would run through them): the titles name the two
        # models' L1 curves in Compare mode and the threshold line, the table's rows the rest
        self.l1_curves = [
            self.l1_plot.plot(pen=pg.mkPen(MODEL_COLOURS[0], width=1.5)),
            self.l1_plot.plot(pen=pg.mkPen(MODEL_COLOURS[1], width=1.5, style=QtCore.Qt.DashLine)),
        ]
        self._l1_names: tuple[str, ...] = ()
        self.score_curves = {
            "verification": self.score_plot.plot(pen=pg.mkPen("#3ef07a", width=1.5)),
            "enrolled": self.score_plot.plot(pen=pg.mkPen("#ffb74d", width=1.5)),
        }
        threshold_pen = pg.mkPen("#e0e0e0", width=1, style=QtCore.Qt.DotLine)
        self.threshold_line = pg.InfiniteLine(angle=0, movable=False, pen=threshold_pen)
        self.threshold_line.setVisible(False)
        self.score_plot.addItem(self.threshold_line)

        self.table = QtWidgets.QTableWidget(len(TABLE_ROWS), 0)
        self.table.setVerticalHeaderLabels([lab for _, lab, _ in TABLE_ROWS])
        self.table.setStyleSheet(_TABLE_STYLE)
        self.table.setVerticalScrollBarPolicy(QtCore.Qt.ScrollBarAlwaysOff)
        self.table.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarAlwaysOff)
        for r, colour in enumerate(_ROW_COLOURS):
            self.table.verticalHeaderItem(r).setForeground(QtGui.QColor(colour))
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.NoSelection)
        self.table.setFocusPolicy(QtCore.Qt.NoFocus)
        font = self.table.font()
        font.setPointSize(8)
        self.table.setFont(font)
        self.table.horizontalHeader().setFont(font)
        self.table.verticalHeader().setFont(font)
        self.table.verticalHeader().setDefaultSectionSize(15)
        self.table.setMinimumHeight(120)
        self.table.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.Stretch)
        self.table.horizontalHeader().setMinimumSectionSize(48)
        self.table_models: tuple[str, ...] = ()
        self._set_table_models(("model",))
        self.caption = QtWidgets.QLabel("")
        self.caption.setStyleSheet("color: #b0b0b8;")
        self.caption.setWordWrap(True)
        self.caption.setFont(font)
        side = QtWidgets.QVBoxLayout()
        side.setContentsMargins(0, 0, 0, 0)
        side.addWidget(self.table, 1)
        side.addWidget(self.caption)
        self.setObjectName("metrics_plots")
        self.setAttribute(QtCore.Qt.WA_StyledBackground, True)
        self.setStyleSheet("#metrics_plots { background: #1e1e22; }")
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.graphs, 1)
        lay.addLayout(side)

    def _set_table_models(self, names: tuple[str, ...]) -> None:
        """Three columns (now, window, session) per model, headed in the model's colour."""
        if names == self.table_models:
            return
        self.table_models = names
        self.table.setColumnCount(3 * len(names))
        for i, name in enumerate(names):
            for c, head in enumerate(TABLE_COLUMNS):
                item = QtWidgets.QTableWidgetItem(head)
                item.setForeground(QtGui.QColor(MODEL_COLOURS[i % len(MODEL_COLOURS)]))
                item.setToolTip(f"{name}: {head}")
                self.table.setHorizontalHeaderItem(3 * i + c, item)
        for r in range(len(TABLE_ROWS)):
            for c in range(3 * len(names)):
                item = QtWidgets.QTableWidgetItem("-")
                item.setTextAlignment(QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter)
                self.table.setItem(r, c, item)
        header = self.table.verticalHeader().sizeHint().width()
        self.table.setMinimumWidth(header + (62 if len(names) == 1 else 50) * 3 * len(names) + 4)

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt's name)
        return QtCore.QSize(1200, 270)

    def set_threshold(self, threshold: float | None) -> None:
        if threshold is None:
            self.threshold_line.setVisible(False)
            self.score_plot.setTitle("verification score: no verifier loaded")
        else:
            self.threshold_line.setPos(float(threshold))
            self.threshold_line.setVisible(True)
            self.score_plot.setTitle(f"verification score, \u2508 threshold {float(threshold):.2f}")

    def _scroll(self, n: int) -> None:
        """Show the last HISTORY_FRAMES frames, moving the x range in steps of X_STEP_FRAMES."""
        hi = max(HISTORY_FRAMES, X_STEP_FRAMES * int(np.ceil(n / X_STEP_FRAMES)))
        for name, plot in (("dx", self.delta_plot), ("lx", self.l1_plot), ("sx", self.score_plot)):
            self._set_range(name, plot, (hi - HISTORY_FRAMES - X_STEP_FRAMES, hi), x=True)

    def _set_range(self, key: str, plot: pg.PlotItem, lo_hi: tuple[float, float], x: bool = False) -> None:
        if self._ranges.get(key) == lo_hi:
            return
        self._ranges[key] = lo_hi
        if x:
            plot.setXRange(*lo_hi, padding=0)
        else:
            plot.setYRange(*lo_hi, padding=0.02)

    def clear(self) -> None:
        for c in [*self.delta_curves.values(), *self.l1_curves, *self.score_curves.values()]:
            c.setData([], [])
        for r in range(len(TABLE_ROWS)):
            for c in range(self.table.columnCount()):
                self.table.item(r, c).setText("-")
        self.caption.setText("")

    def _set_l1_legend(self, names: tuple[str, ...]) -> None:
        """Name the L1 curves in the title in Compare mode (solid: the first model, dashed: the
        second, in their colours); with one model the title names nothing more."""
        if names == self._l1_names:
            return
        self._l1_names = names
        if len(names) > 1:
            keys = (f"<span style='color:{c}'>{mark} {name}</span>"
                    for c, mark, name in zip(MODEL_COLOURS, ("\u2500", "\u2504"), map(_short, names)))
            self.l1_plot.setTitle("L1 error (mm): " + " ".join(keys))
        else:
            self.l1_plot.setTitle("L1 error (mm)")

    def refresh(self, log: SessionLog) -> None:
        """Redraw the curves and the numbers from the log (call at about 10 Hz)."""
        names = tuple(log.model_names)
        two = len(names) > 1
        self._set_l1_legend(names)
        self._set_table_models(names)
        keys = (*DELTA_KEYS, "l1_mm", "verification_smoothed", "enrolled_smoothed")
        s = log.series(0, keys, HISTORY_FRAMES)
        x = s["seq"]
        self._scroll(len(x) and x[-1] + 1)
        for k, curve in self.delta_curves.items():
            curve.setData(x, s[k], connect="finite")
        self.l1_curves[0].setData(x, s["l1_mm"], connect="finite")
        l1 = s["l1_mm"]
        if two:
            s2 = log.series(1, ("l1_mm",), HISTORY_FRAMES)
            self.l1_curves[1].setData(s2["seq"], s2["l1_mm"], connect="finite")
            l1 = np.concatenate([l1, s2["l1_mm"]])
        else:
            self.l1_curves[1].setData([], [])
        top = np.nanmax(l1) if np.isfinite(l1).any() else 10.0
        # 5 % head room: the highest curve stays off the frame's top edge (as in the delta plot)
        self._set_range("l1", self.l1_plot, (0.0, 10.0 * np.ceil(max(top, 1.0) * HEAD_ROOM / 10.0)))
        scores = np.concatenate([s["verification_smoothed"], s["enrolled_smoothed"]])
        low = np.nanmin(scores) if np.isfinite(scores).any() else 0.0
        self._set_range("score", self.score_plot, (min(0.0, np.floor(low * 5.0) / 5.0), SCORE_Y_TOP))
        for k, curve in self.score_curves.items():
            curve.setData(x, s[f"{k}_smoothed"], connect="finite")
        captions = []
        for i, name in enumerate(names):
            means = log.means(i)
            for r, (key, _, fmt) in enumerate(TABLE_ROWS):
                for c, src in enumerate((means.latest, means.window, means.session)):
                    v = src.get(key)
                    text = "-" if v is None or not np.isfinite(v) else fmt.format(v)
                    item = self.table.item(r, 3 * i + c)
                    if item.text() != text:
                        item.setText(text)
            colour = MODEL_COLOURS[i % len(MODEL_COLOURS)]
            captions.append(f"<span style='color:{colour}'>{name}</span>: {means.scored} of {means.frames} "
                            "frames scored")
        self.caption.setText(" &nbsp; ".join(captions))
        self.caption.setToolTip(f"window: the last {log.window} scored frames; session: every scored frame "
                                "since the source or model was chosen")
        self.refreshes += 1
