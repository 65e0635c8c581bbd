"""The 3D view: the true and the predicted depth of the current crop (both models' in Compare
mode) as colour-textured point clouds in millimetres, side by side (pyqtgraph.opengl; drag to
turn, wheel to zoom), and the export of the current frame as PLY.

The points come from the project's one crop geometry (:func:`sensors.crop.crop_points`, through
:func:`app.ply.model_clouds`). Where OpenGL is missing (no PyOpenGL, or no OpenGL context, as on
Qt's off-screen platform) the view is a one-line notice; the PLY export works either way.
"""
from __future__ import annotations

import importlib
import time
from pathlib import Path

import numpy as np
from PyQt5 import QtCore, QtGui, QtWidgets

from app.controller import plain_words
from app.pipeline import FrameResult
from app.ply import model_clouds, write_ply
from sensors.errors import FacedepthError

#: redraws of the clouds per second at most (the panels keep the full frame rate)
UPDATE_HZ = 10.0
#: gap between the two clouds, as a share of the crop window's width
GAP_SHARE = 0.15
POINT_SIZE_PX = 3.0
#: the camera's distance from the head centre: two clouds (about 2.2 crop windows wide) in view
CAMERA_DISTANCE_MM = 600.0


def opengl_problem() -> str | None:
    """Why the 3D view cannot be drawn here (None when it can): PyOpenGL missing, or no
    OpenGL context on this display."""
    try:
        importlib.import_module("OpenGL.GL")
        importlib.import_module("pyqtgraph.opengl")
    except Exception as exc:  # noqa: BLE001 - any import failure means: no 3D view
        return f"PyOpenGL is not available ({type(exc).__name__}: {exc})"
    if not QtGui.QOpenGLContext().create():
        platform = QtGui.QGuiApplication.platformName()
        return f"no OpenGL context on this display (Qt platform '{platform}')"
    return None


def viewer_coords(points_mm: np.ndarray, centre_mm: np.ndarray, shift_x_mm: float = 0.0) -> np.ndarray:
    """Colour-camera points (x right, y down, z forward) to pyqtgraph's world around the head
    centre (x right, y away from the camera, z up), shifted by ``shift_x_mm`` along x."""
    p = np.asarray(points_mm, dtype=np.float32) - np.asarray(centre_mm, dtype=np.float32)
    return np.stack([p[:, 0] + shift_x_mm, p[:, 2], -p[:, 1]], axis=1)


class DepthView3D(QtWidgets.QWidget):
    """The 3D view's widget: the GL view (or the notice), a caption and *Export PLY*."""

    #: a one-line message for the window's banner (PLY written, or why not)
    message = QtCore.pyqtSignal(str, str)

    def __init__(self, output_dir: Path, parent: QtWidgets.QWidget | None = None,
                 problem: str | None = None) -> None:
        super().__init__(parent)
        self.output_dir = Path(output_dir)
        self.result: FrameResult | None = None
        self.updates = 0
        self._shown_clouds = 2
        self._next_update = 0.0
        # ``problem`` given: the reason to show instead of probing (tests)
        self.problem = opengl_problem() if problem is None else problem
        self._pending = QtCore.QTimer(self)
        self._pending.setSingleShot(True)
        self._pending.timeout.connect(lambda: self.show_result(self.result, force=True))
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        self.gl = None
        self.clouds: dict[str, object] = {}
        if self.problem is None:
            import pyqtgraph.opengl as gl

            self.gl = gl.GLViewWidget()
            self.gl.setBackgroundColor("#1e1e22")
            # from the camera's side, a little above and to the right: the faces look at the viewer
            self.gl.setCameraPosition(distance=CAMERA_DISTANCE_MM, elevation=8.0, azimuth=-75.0)
            for key in ("true", "pred", "pred2"):
                # opaque: the default additive blending would wash the colours out to white
                item = gl.GLScatterPlotItem(pos=np.zeros((1, 3)), color=(0, 0, 0, 0), size=POINT_SIZE_PX,
                                            pxMode=True, glOptions="opaque")
                self.gl.addItem(item)
                self.clouds[key] = item
            lay.addWidget(self.gl, 1)
            self.notice = None
        else:
            self.notice = QtWidgets.QLabel(f"3D view unavailable: {self.problem}. Export PLY still works.")
            self.notice.setObjectName("view3d_notice")
            self.notice.setWordWrap(True)
            self.notice.setStyleSheet("color: #ffd54f; padding: 6px;")
            lay.addWidget(self.notice)
            lay.addStretch(1)
        row = QtWidgets.QHBoxLayout()
        self.caption = QtWidgets.QLabel("left to right: true depth, prediction (mm); drag to turn, "
                                        "wheel to zoom")
        self.caption.setStyleSheet("color: #b0b0b8;")
        self.caption.setWordWrap(True)  # a narrow dock must not widen the window
        self.export_button = QtWidgets.QPushButton("Export PLY")
        self.export_button.setToolTip("write the current frame's true and predicted depth as PLY point "
                                      "clouds (mm)")
        self.export_button.clicked.connect(self._export_clicked)
        row.addWidget(self.caption, 1)
        row.addWidget(self.export_button)
        lay.addLayout(row)

    def show_result(self, result: FrameResult | None, force: bool = False) -> None:
        """Take the frame on screen; the clouds are redrawn at most UPDATE_HZ times a second."""
        self.result = result
        if self.gl is None:
            return
        now = time.monotonic()
        if not force and now < self._next_update:
            # drawn a moment ago: draw the newest frame when the moment is over (a paused
            # stream's last frame must not be left out)
            if not self._pending.isActive():
                self._pending.start(max(1, int(1000 * (self._next_update - now))))
            return
        self._pending.stop()
        self._next_update = now + 1.0 / UPDATE_HZ
        self._draw()

    def _draw(self) -> None:
        r = self.result
        if r is None or not r.models:
            for item in self.clouds.values():
                item.setData(pos=np.zeros((1, 3)), color=(0, 0, 0, 0))
            return
        m = r.models[0]
        crop = m.crop
        centre = np.array([0.0, 0.0, crop.distance_mm])
        if crop.color_camera is not None:
            centre = crop.color_camera.unproject(np.array([crop.center_px[0]]), np.array([crop.center_px[1]]),
                                                 np.array([crop.distance_mm]))[0]
        # left to right: the true depth, then each model's prediction (Compare mode: two)
        shown = {"true": model_clouds(m).get("true")}
        names = ["true depth"]
        for i, mi in enumerate(r.models[:2]):
            shown["pred" if i == 0 else "pred2"] = model_clouds(mi)["pred"]
            names.append(mi.name)
        step = (1.0 + GAP_SHARE) * crop.config.window_x_mm
        for k, key in enumerate(("true", "pred", "pred2")):
            item = self.clouds[key]
            cloud = shown.get(key)
            if cloud is None or len(cloud[0]) == 0:
                item.setData(pos=np.zeros((1, 3)), color=(0, 0, 0, 0))
                continue
            points, colours = cloud
            shift = (k - (len(shown) - 1) / 2.0) * step
            alpha = np.ones((len(colours), 1), np.float32)
            rgba = np.concatenate([colours.astype(np.float32) / 255.0, alpha], axis=1)
            item.setData(pos=viewer_coords(points, centre, shift), color=rgba)
        self.caption.setText(f"left to right: {', '.join(names)} (mm); drag to turn, wheel to zoom")
        if len(shown) != self._shown_clouds:  # a third cloud (Compare mode): step back to see all
            self._shown_clouds = len(shown)
            self.gl.setCameraPosition(distance=CAMERA_DISTANCE_MM * len(shown) / 2.0)
        self.updates += 1

    def _export_clicked(self) -> None:
        paths = self.export_ply()
        if paths:
            self.message.emit(f"PLY saved: {', '.join(p.name for p in paths.values())} in "
                              f"{next(iter(paths.values())).parent}", "info")

    def export_ply(self, out_dir: Path | None = None) -> dict[str, Path] | None:
        """Write the current frame's clouds: ``true`` and ``pred`` of the first model (``pred2``
        and ``true2`` for a second); returns the paths by role, None when nothing was written."""
        r = self.result
        if r is None or not r.models:
            self.message.emit("Export PLY: no face on screen.", "error")
            return None
        out = Path(out_dir) if out_dir else self.output_dir / "snapshots"
        stem = time.strftime("cloud_%Y%m%d_%H%M%S") + f"_frame{r.index:06d}"
        paths: dict[str, Path] = {}
        try:
            out.mkdir(parents=True, exist_ok=True)
            for i, m in enumerate(r.models):
                n = "" if i == 0 else str(i + 1)
                for key, (points, colours) in model_clouds(m).items():
                    what = "predicted by " + m.name if key == "pred" else "sensor depth"
                    paths[f"{key}{n}"] = write_ply(out / f"{stem}_{key}{n}.ply", points, colours,
                                                   comment=f"facedepth frame {r.index}: {what}")
        except (FacedepthError, OSError, ValueError) as exc:
            self.message.emit(f"Export PLY failed: {plain_words(exc)}", "error")
            return None
        return paths
