"""The Qt window (PyQt5 + pyqtgraph): views of the Qt-free :class:`app.controller.Controller`.

``run_gui(cfg)`` is what ``launch.py run`` calls without ``--headless``. Qt is
imported only inside it, so importing this package stays cheap and Qt-free.

Modules: ``window`` (MainWindow: builds the views, wires the controls to the controller and
its events to the views; timer-driven display, snapshot, export, errors), ``panels`` (colour
frame and depth crops, hover readout), ``plots`` (metrics over time and their means),
``controls`` (toolbars and shortcuts), ``display`` (depth -> colour indices and the depth
panels' range and colour maps, Qt-free), ``view3d`` (the 3D view and PLY export), ``settings``
(what is remembered between runs).
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from app.run_config import RunConfig

#: an INI file to use instead of the user's settings (tests, screenshots, portable setups)
SETTINGS_ENV = "FACEDEPTH_SETTINGS"
#: how long --screenshot waits for its frames before saving what it has
SCREENSHOT_TIMEOUT_S = 120.0
SCREENSHOT_DEFAULT_FRAMES = 30
#: how often the window looks for a stop signal (SIGINT, SIGTERM), milliseconds
STOP_POLL_MS = 100


def run_gui(cfg: RunConfig) -> int:
    """Open the window on ``cfg.source`` with ``cfg.model``; with ``cfg.screenshot``, render
    off-screen (unless ``QT_QPA_PLATFORM`` names another platform, e.g. ``xcb`` under Xvfb for the
    3D view's OpenGL), save a PNG after ``cfg.max_frames`` frames (default 30) and exit; with
    ``cfg.report`` too, write the display's figures there as JSON (:func:`display_figures`).

    Returns 0, or 1 when a screenshot run ended with an error shown in the window; 130 or 143
    when SIGINT (Ctrl-C in the terminal) or SIGTERM closed the window (as Quit does: any
    recording is finished first).
    """
    from app import stops

    screenshot = cfg.screenshot
    if screenshot and "QT_QPA_PLATFORM" not in os.environ:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    import pyqtgraph as pg
    from PyQt5 import QtCore, QtWidgets

    from app.gui.settings import AppSettings
    from app.gui.window import MainWindow

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
    _quiet_known_qt_noise()
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([sys.argv[0]])
    app.setApplicationName("facedepth")
    tmp_settings = None
    if screenshot:
        # a fresh layout for a reproducible picture; the user's settings stay untouched
        tmp_settings = tempfile.TemporaryDirectory(prefix="facedepth-settings-")
        settings = AppSettings(Path(tmp_settings.name) / "settings.ini")
    else:
        settings = AppSettings(os.environ.get(SETTINGS_ENV) or None)
    source = cfg.source if screenshot else initial_source(cfg.source, settings)
    # None: no limit (``--max-frames`` refuses 0, so 0 never means "no limit" here either)
    frames = cfg.max_frames if cfg.max_frames is not None else (SCREENSHOT_DEFAULT_FRAMES if screenshot else None)
    # a stop signal only raises a flag (an exception raised inside Qt's event loop would be
    # printed and lost); a timer, whose Python callback also lets the handler run, then closes
    # every top-level window (an open dialog's own event loop ends too), as Quit does
    window = None
    try:
        with stops.deferred(second_raises=False):
            window = MainWindow(cfg.model, source, settings, second_model=cfg.second_model,
                                verifier_path=cfg.verifier, max_frames=frames, enrolment_path=cfg.enrolment)
            if cfg.window_size_px:
                window.resize(*cfg.window_size_px)
            if cfg.view3d:
                window.show_3d(True)
            watch = QtCore.QTimer()
            watch.timeout.connect(lambda: stops.requested() and app.closeAllWindows())
            watch.start(STOP_POLL_MS)
            if screenshot:
                rc = _screenshot(app, window, screenshot, frames, cfg.report)
            else:
                window.show()
                app.exec_()
                rc = 0
            watch.stop()
        if stops.requested():
            stops.announce("run")
            return stops.exit_code()
        return rc
    finally:
        if window is not None:
            window.shutdown()
        if tmp_settings is not None:
            tmp_settings.cleanup()


#: Qt messages that say nothing to a user (the off-screen platform's missing window hints, a
#: runtime folder Qt falls back from on its own)
_QT_NOISE = ("does not support propagateSizeHints", "XDG_RUNTIME_DIR not set")


def _quiet_known_qt_noise() -> None:
    """Drop Qt's known harmless warnings; every other message still reaches stderr."""
    from PyQt5 import QtCore

    def handler(kind: Any, context: Any, message: str) -> None:
        if not any(n in message for n in _QT_NOISE):
            sys.stderr.write(message + "\n")

    QtCore.qInstallMessageHandler(handler)


def initial_source(source_arg: str, settings: Any) -> str:
    """The source the window opens: ``--source`` when given, else the last one used.

    ``source_arg`` is ``RunConfig.source``; argparse hands over its default object itself when
    the option is absent, which is how "not given" is told from an explicit ``--source virtual:``.
    """
    from app.run_config import DEFAULT_SOURCE

    if source_arg is DEFAULT_SOURCE:
        return settings.last_source() or source_arg
    return source_arg


def display_figures(w: Any, elapsed_s: float) -> dict[str, Any]:
    """How a screenshot run's window kept up: frames processed and drawn, new frames drawn per
    second from the first drawn to the last (``drawn_fps``), the status bar's rate over its last
    2 s (``status_fps``), frames dropped before inference, the median capture-to-display latency
    and the window's size."""
    p = w.controller.pipeline
    drawn_fps, latency = w.drawn_fps(), w.latency_ms()
    span = w.drawn_span_s()
    return {"frames_processed": p.frames_processed if p is not None else 0, "frames_drawn": w.results_seen,
            "drawn_span_s": None if span is None else round(span, 4),
            "drawn_fps": None if drawn_fps is None else round(drawn_fps, 2), "status_fps": round(w.fps(), 2),
            "dropped": p.dropped if p is not None else 0,
            "latency_ms_p50": None if latency is None else round(latency, 1),
            "elapsed_s": round(elapsed_s, 3), "window_size_px": [w.width(), w.height()],
            "source": w.controller.source_uri, "platform": os.environ.get("QT_QPA_PLATFORM", "")}


def _screenshot(app: Any, w: Any, path: Path, frames: int, report: Path | None = None) -> int:
    """Show the window (a MainWindow, which pauses itself after ``frames`` frames) off-screen
    until those frames were processed and the newest is drawn (or the stream ended or failed),
    then save it (and, with ``report``, :func:`display_figures` as JSON)."""
    from PyQt5 import QtWidgets

    from app import stops

    w.show()
    start = time.monotonic()
    deadline = start + SCREENSHOT_TIMEOUT_S
    while time.monotonic() < deadline:
        QtWidgets.QApplication.processEvents()
        if stops.requested():
            return 0  # no picture: the caller exits with the signal's code
        p = w.controller.pipeline
        if w.stream_done() or (p.frames_processed >= frames and p.latest() is w.last_shown):
            break
        time.sleep(0.002)
    figures = display_figures(w, time.monotonic() - start)  # before saving: its rendering is no frame
    w.controller.set_playing(False)
    ok = w.save_screenshot(path)
    error = w.banner.text if w.banner.kind == "error" else ""
    p = w.controller.pipeline
    processed = p.frames_processed if p is not None else 0
    shown = w.panels.frames_shown
    if not ok:
        sys.stderr.write(f"launch.py run: error: could not write the screenshot {path}\n")
        return 1
    rate = f" ({figures['drawn_fps']} new frames drawn per second)" if figures["drawn_fps"] else ""
    print(f"screenshot {path}: {processed} frames processed, {shown} drawn{rate}")
    if report is not None:
        from models.common.files import write_json

        write_json(report, figures)
    if error:
        sys.stderr.write(f"launch.py run: error shown in the window: {error}\n")
        return 1
    return 0
