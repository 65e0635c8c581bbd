"""The window's rough edges of issue 30, off-screen at the default 1440 x 900: toolbars without
overflow menus, the crops' titles and the crops themselves never clipped, both models' face
windows visible where they coincide, both models in the numbers table, the plots' head room and
keys, a single photo, a source opened while paused, the hover readout, and the depth panels'
adjustable range and colour map (remembered, display only)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PyQt5 import QtCore, QtGui, QtWidgets  # noqa: E402

from app.gui import display  # noqa: E402
from app.gui.settings import AppSettings  # noqa: E402
from tests.support.gui import settle, wait_frames  # noqa: E402
from tests.support.fakes import write_tiny_generator  # noqa: E402

pytestmark = pytest.mark.gui
LONG_PATH = "images:/home/someone/Videos/" + "a_rather_long_folder_name/" * 8 + "clip.avi"


def _paused(qtbot, w) -> None:
    wait_frames(qtbot, w, 3)
    w.controller.set_playing(False)
    settle(qtbot, w)


def _default_size(qtbot, w) -> None:
    w.resize(1440, 900)
    qtbot.wait(100)
    QtWidgets.QApplication.processEvents()


def _scene_rect_in_view(view: QtWidgets.QGraphicsView) -> QtCore.QRectF:
    """The part of a graphics view's scene that is on screen."""
    return view.mapToScene(view.viewport().rect()).boundingRect()


def _inside(inner: QtCore.QRectF, outer: QtCore.QRectF, tol: float = 1.0) -> bool:
    return (inner.left() >= outer.left() - tol and inner.top() >= outer.top() - tol
            and inner.right() <= outer.right() + tol and inner.bottom() <= outer.bottom() + tol)


def _rgb(widget: QtWidgets.QWidget) -> np.ndarray:
    """The widget as drawn, (H, W, 3) uint8 RGB."""
    img = widget.grab().toImage().convertToFormat(QtGui.QImage.Format_RGB888)
    ptr = img.constBits()
    ptr.setsize(img.byteCount())
    return np.frombuffer(ptr, np.uint8).reshape(img.height(), img.bytesPerLine())[:, : img.width() * 3] \
        .reshape(img.height(), img.width(), 3).copy()


def test_a_long_source_path_pushes_no_control_into_an_overflow_menu(qtbot, make_window):
    w = make_window()
    w.source_bar.set_sources(LONG_PATH, [LONG_PATH + "2"])
    _default_size(qtbot, w)
    for bar in (w.source_bar, w.model_bar, w.view_bar, w.playback):
        ext = bar.findChild(QtWidgets.QToolButton, "qt_toolbar_ext_button")
        assert ext is None or not ext.isVisible(), f"{bar.objectName()} has an overflow menu"
    for widget in (w.model_bar.compare, w.model_bar.second, w.model_bar.recorded, w.view_bar.range_mm,
                   w.view_bar.colormap, w.source_bar.combo):
        assert widget.isVisible()
    assert w.source_bar.combo.width() < 500  # the box keeps its width whatever the path
    # the status bar names a long source by its start and its file, the whole URI in the tooltip
    w.open_source(LONG_PATH)
    label = w.status_labels["source"]
    assert label.toolTip() == LONG_PATH and len(label.text()) <= len("source: ") + 48
    assert label.text().startswith("source: images:/home/") and label.text().endswith("clip.avi")


def _compare_window(make_window, tmp_path, name: str = "a_rather_long_generator_name"):
    second = write_tiny_generator(tmp_path / f"{name}.onnx", weights=(0.3, 0.3, 0.3))
    return make_window(second_model=second)


def test_compare_mode_shows_both_models_in_the_table_and_their_titles_unclipped(qtbot, make_window, tmp_path):
    w = _compare_window(make_window, tmp_path)
    _default_size(qtbot, w)
    _paused(qtbot, w)
    w.plots.refresh(w.controller.log)
    qtbot.wait(50)
    log = w.controller.log
    assert tuple(log.model_names) == ("tiny", "a_rather_long_generator_name")
    table = w.plots.table
    assert table.columnCount() == 6
    for i in range(2):
        session = log.means(i).session["l1_mm"]
        assert table.item(6, 3 * i + 2).text() == f"{session:.2f}"
        assert table.horizontalHeaderItem(3 * i).toolTip().startswith(log.model_names[i])
    assert "a_rather_long_generator_name" in w.plots.caption.text()
    # every crop title fits its cell, inside the panels, without touching its neighbours
    p = w.panels
    shown = _scene_rect_in_view(p)
    titles = [v.title for v in (p.true_crop, p.input_crop, *p.pred_crops, *p.error_crops)]
    assert titles[2].text == "Predicted: tiny" and titles[3].text == "Predicted: a_rather_long_generator_name"
    rects = [t.item.sceneBoundingRect() for t in titles]
    for t, r in zip(titles, rects):
        assert t.isVisible() and _inside(r, t.sceneBoundingRect(), tol=2.0) and _inside(r, shown), t.text
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            assert not a.intersects(b)
    # the plots' titles too
    graphs = _scene_rect_in_view(w.plots.graphs)
    for plot in (w.plots.delta_plot, w.plots.l1_plot, w.plots.score_plot):
        assert _inside(plot.titleLabel.item.sceneBoundingRect(), graphs), plot.titleLabel.text
    assert "tiny" in w.plots.l1_plot.titleLabel.text and "a_rather_long" in w.plots.l1_plot.titleLabel.text


def test_both_face_windows_stay_visible_when_the_models_crop_the_same_window(qtbot, make_window, tmp_path):
    w = _compare_window(make_window, tmp_path, "same_crop")
    _default_size(qtbot, w)
    _paused(qtbot, w)
    a, b = w.last_shown.models
    assert a.crop.window_px == pytest.approx(b.crop.window_px)
    # the two outlines drawn over a black frame: both colours are on screen
    w.panels.color_image.setImage(np.zeros_like(w.last_shown.frame.color), autoLevels=False, levels=(0, 255))
    qtbot.wait(50)
    img = _rgb(w.panels).astype(int)

    def count(rgb: str) -> int:
        c = QtGui.QColor(rgb)
        return int((np.abs(img - (c.red(), c.green(), c.blue())).sum(axis=2) < 60).sum())

    green, blue = count("#3ef07a"), count("#4fc3ff")
    # both on screen, and the first model's outline is not mostly hidden under the second's
    assert blue > 100 and green > blue


def test_an_error_banner_clips_no_crop(qtbot, make_window, tmp_path):
    w = _compare_window(make_window, tmp_path)
    _default_size(qtbot, w)
    _paused(qtbot, w)
    w._show_error("The source stopped: " + "a long explanation of what went wrong and what to do " * 6,
                  reconnect=True)
    qtbot.wait(100)
    p = w.panels
    shown = _scene_rect_in_view(p)
    for v in (p.true_crop, p.input_crop, *p.pred_crops, *p.error_crops):
        if v.view.isVisible():
            box = v.view.sceneBoundingRect()
            image = v.image.sceneBoundingRect()
            assert _inside(box, shown) and _inside(image, box), v.title.text
            assert image.height() > 40


def test_the_plots_keep_curves_off_the_frame_and_keys_off_the_curves(qtbot, make_window):
    w = make_window()
    _paused(qtbot, w)
    plots = w.plots
    plots.refresh(w.controller.log)
    vb = plots.delta_plot.getViewBox()
    top_px = vb.mapViewToScene(QtCore.QPointF(0.0, 1.0)).y() - vb.sceneBoundingRect().top()
    assert top_px >= 3.0  # a curve at full accuracy sits below the frame's top edge
    score_vb = plots.score_plot.getViewBox()
    assert score_vb.mapViewToScene(QtCore.QPointF(0.0, 1.0)).y() - score_vb.sceneBoundingRect().top() >= 3.0
    l1_top = plots.l1_plot.getViewBox().viewRange()[1][1]
    assert l1_top > np.nanmax(w.controller.log.series(0, ("l1_mm",), 300)["l1_mm"]) * 1.04
    # no legend inside any plot: one model names nothing more, the threshold is in the title
    for plot in (plots.delta_plot, plots.l1_plot, plots.score_plot):
        assert plot.legend is None
    assert plots.l1_plot.titleLabel.text == "L1 error (mm)"
    plots.set_threshold(0.6)
    assert "threshold 0.60" in plots.score_plot.titleLabel.text
    assert getattr(plots.threshold_line, "label", None) is None and plots.threshold_line.isVisible()


def test_a_single_photo_shows_no_end_of_recording_and_no_frame_rate(qtbot, make_window, tmp_path):
    photo = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(photo), rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
    w = make_window(source=f"images:{photo}")
    qtbot.waitUntil(w.stream_done, timeout=8000)
    qtbot.wait(300)
    w._update_status()
    assert w.single_image() and w.banner.text == ""
    assert w.status_labels["fps"].text() == "still image"


def test_a_source_opened_while_paused_plays_and_record_while_paused_plays(qtbot, make_window, tmp_path):
    w = make_window()
    _paused(qtbot, w)
    assert w.open_source("fake:n=300,fps=60")
    assert w.controller.playing and w.playback.play_action.text() == "Pause"
    wait_frames(qtbot, w, 5)
    w.controller.set_playing(False)
    w._record_clicked()
    assert w.controller.recording and w.controller.playing
    qtbot.waitUntil(lambda: w.controller.recording_status().frames_written >= 3, timeout=5000)
    w._record_clicked()


def test_hovering_a_depth_panel_reads_out_the_depth_in_mm(qtbot, make_window):
    w = make_window()
    _paused(qtbot, w)
    m = w.last_shown.models[0]
    p = w.panels
    rows, cols = np.nonzero(m.true8 > 0)
    r, c = int(rows[len(rows) // 2]), int(cols[len(cols) // 2])
    pos = p.true_crop.view.mapViewToScene(QtCore.QPointF(c, r))
    z = float(display.decode_depth(m.true8[r, c], m.crop.distance_mm, m.crop.config.half_range_mm))
    text = p.readout_at(pos)
    assert text.startswith(f"True depth at crop ({c}, {r})") and f"z = {z:.0f} mm" in text
    assert f"z - D = {z - m.crop.distance_mm:+.0f} mm" in text
    # the prediction and the error map under the same pixel
    pred = p.readout_at(p.pred_crops[0].view.mapViewToScene(QtCore.QPointF(c, r)))
    zp = float(display.decode_depth(m.pred8[r, c], m.crop.distance_mm, m.crop.config.half_range_mm))
    assert pred.startswith("Predicted (tiny)") and f"z = {zp:.0f} mm" in pred
    err = p.readout_at(p.error_crops[0].view.mapViewToScene(QtCore.QPointF(c, r)))
    e = display.error_mm(m.pred8, m.true8, m.crop.config.half_range_mm)[r, c]
    assert f"{e:.1f} mm" in err
    # off the crops: nothing; the status bar follows the mouse
    assert p.readout_at(p.color_view.sceneBoundingRect().center()) == ""
    p.scene().sigMouseMoved.emit(pos)
    assert w.hover_label.text() == text


def test_the_depth_range_and_colour_map_are_display_only_and_remembered(qtbot, make_window, tmp_path):
    w = make_window()
    _paused(qtbot, w)
    m = w.last_shown.models[0]
    w.view_bar.range_mm.setValue(75)
    w.view_bar.colormap.setCurrentText("magma")
    w.view_bar.colormap.activated.emit(w.view_bar.colormap.currentIndex())
    p = w.panels
    assert (p.shown_half_range_mm, p.colormap) == (75.0, "magma")
    # the frame on screen is redrawn on the new scale; the model's encoding is untouched
    assert m.crop.config.half_range_mm == 150.0
    np.testing.assert_array_equal(p.true_crop.image.image, display.depth_indices(m.true8, 150.0, 75.0))
    np.testing.assert_array_equal(p.pred_crops[0].image.image, display.depth_indices(m.pred8, 150.0, 75.0))
    np.testing.assert_array_equal(p.true_crop.image.lut, p.depth_lut)
    assert tuple(p.depth_bar.levels()) == (-75.0, 75.0)
    assert AppSettings(tmp_path / "settings.ini").display() == (75.0, "magma")
    w.shutdown()
    again = make_window()
    assert (again.panels.shown_half_range_mm, again.panels.colormap) == (75.0, "magma")
    assert again.view_bar.range_mm.value() == 75 and again.view_bar.colormap.currentText() == "magma"


def test_unreadable_display_settings_fall_back_to_the_defaults(tmp_path):
    s = AppSettings(tmp_path / "s.ini")
    assert s.display() == (150.0, "viridis")
    s.set_value("display/half_range_mm", "lots")
    s.set_value("display/colormap", "no-such-map")
    assert s.display() == (150.0, "viridis")
    s.set_value("display/half_range_mm", 5000)
    assert s.display()[0] == 150.0


def test_the_3d_view_degrades_to_a_one_line_notice_and_still_exports_ply(qtbot, make_window, tmp_path,
                                                                         monkeypatch):
    from app.gui import view3d
    from app.ply import read_ply

    # off-screen Qt has no OpenGL context anyway; under Xvfb the probe is made to fail the same way
    if view3d.opengl_problem() is None:
        monkeypatch.setattr(view3d, "opengl_problem", lambda: "no OpenGL context on this display (test)")
    w = make_window()
    _paused(qtbot, w)
    w.view_bar.view3d_action.trigger()
    assert not w.view3d_dock.isHidden() and w.view3d.gl is None
    notice = w.view3d.notice.text()
    assert notice.startswith("3D view unavailable: ") and "\n" not in notice and "PLY" in notice
    paths = w.view3d.export_ply(tmp_path / "clouds")
    m = w.last_shown.models[0]
    assert set(paths) == {"true", "pred"}
    true_points, true_colours = read_ply(paths["true"])
    assert len(true_points) == int((m.crop.depth_mm > 0).sum())
    assert 600 < np.median(true_points[:, 2]) < 1000                 # millimetres around D = 800
    pred_points, _ = read_ply(paths["pred"])
    assert len(pred_points) == int((m.pred8 > 0).sum())
    w.view_bar.view3d_action.trigger()
    assert w.view3d_dock.isHidden()


def test_the_3d_view_without_pyopengl_names_it(monkeypatch):
    import sys

    from app.gui import view3d

    for name in ("OpenGL", "OpenGL.GL"):  # as if PyOpenGL were not installed
        monkeypatch.setitem(sys.modules, name, None)
    problem = view3d.opengl_problem()
    assert problem.startswith("PyOpenGL is not available") and "\n" not in problem


@pytest.mark.gl
def test_the_3d_view_draws_both_clouds_with_opengl(qtbot, make_window, tmp_path):
    """Needs a real OpenGL context: runs under Xvfb with Mesa (``.ci/run``), skipped elsewhere."""
    from app.gui import view3d

    problem = view3d.opengl_problem()
    if problem is not None:
        pytest.skip(f"no OpenGL here: {problem}")
    w = make_window()
    _paused(qtbot, w)
    w.show_3d(True)
    v = w.view3d
    assert v.gl is not None and v.notice is None
    qtbot.waitUntil(lambda: v.updates >= 1, timeout=3000)
    m = w.last_shown.models[0]
    pos = v.clouds["true"].pos
    assert len(pos) == int((m.crop.depth_mm > 0).sum())
    # true on the left, predicted on the right, in mm around the head centre
    assert pos[:, 0].mean() < 0 < v.clouds["pred"].pos[:, 0].mean()
    assert np.ptp(pos[:, 2]) > 100  # a head is taller than 10 cm (z is up in the view)
    qtbot.wait(100)
    img = v.gl.grabFramebuffer()
    ptr = img.constBits()
    ptr.setsize(img.byteCount())
    rgba = np.frombuffer(ptr, np.uint8).reshape(img.height(), img.bytesPerLine() // 4, 4)
    background = np.array([0x1e, 0x1e, 0x22])
    drawn = (np.abs(rgba[..., :3].astype(int) - background[::-1]).sum(axis=2) > 30).mean()
    assert drawn > 0.02  # the clouds cover part of the view


def test_the_window_size_option_takes_width_x_height():
    import argparse

    from app.cli.run import _window_size

    assert _window_size("1920x1080") == (1920, 1080) and _window_size("1440X900") == (1440, 900)
    for bad in ("1920", "12x5", "axb", "1920x", "-1x900", "99999x900"):
        with pytest.raises(argparse.ArgumentTypeError, match="WIDTHxHEIGHT"):
            _window_size(bad)


def test_the_3d_view_left_open_is_open_again_next_time(qtbot, make_window, monkeypatch):
    from app.gui import view3d

    monkeypatch.setattr(view3d, "opengl_problem", lambda: "no OpenGL context on this display (test)")
    w = make_window()
    w.view_bar.view3d_action.trigger()
    assert w.view3d is not None and not w.view3d_dock.isHidden()
    w.shutdown()
    again = make_window()
    qtbot.waitUntil(lambda: again.view3d is not None, timeout=3000)
    assert not again.view3d_dock.isHidden() and again.view_bar.view3d_action.isChecked()
    again.view3d_dock.close()                          # its own close button
    qtbot.waitUntil(lambda: not again.view_bar.view3d_action.isChecked(), timeout=3000)


def test_the_shipped_model_s_note_wraps_and_the_window_keeps_the_default_size(qtbot, make_window):
    """The note on a shipped model quotes its real-head figures: a long line, which must wrap
    rather than make the window wider than a 1440 x 900 screen."""
    from models.common.shipped import GENERATOR

    w = make_window(model=GENERATOR)
    _default_size(qtbot, w)
    qtbot.waitUntil(lambda: w.synthetic_note.isVisible(), timeout=8000)
    _default_size(qtbot, w)
    assert "MediaPipe Face Mesh" in w.synthetic_note.text()
    assert w.width() == 1440 and w.minimumSizeHint().width() <= 1440
