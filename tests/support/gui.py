"""The window fixture and waits of the GUI tests (pytest-qt's ``qtbot``); Qt is imported only
when a test asks for a window, so registering this plugin costs the other tests nothing."""
from __future__ import annotations

from typing import Any

import pytest

from tests.support.fakes import open_fake_or_real


@pytest.fixture
def make_window(qtbot, tmp_path, tiny_model):
    """Build a MainWindow with a temporary settings file and output folder; closes it after."""
    from app.gui.settings import AppSettings
    from app.gui.window import MainWindow

    windows: list[Any] = []

    def make(source: str = "fake:n=300,fps=60", **kw) -> MainWindow:
        kw.setdefault("settings", AppSettings(tmp_path / "settings.ini"))
        kw.setdefault("output_dir", tmp_path / "out")
        kw.setdefault("verifier_path", tmp_path / "no_verifier.onnx")
        model = kw.pop("model", tiny_model)
        w = MainWindow(model, source, source_opener=open_fake_or_real, **kw)
        qtbot.addWidget(w)
        w.show()
        windows.append(w)
        return w

    yield make
    for w in windows:
        w.shutdown()


def wait_frames(qtbot, w: Any, n: int, timeout_ms: int = 8000) -> None:
    """Wait until the window has shown ``n`` more frames."""
    start = w.panels.frames_shown
    qtbot.waitUntil(lambda: w.panels.frames_shown >= start + n, timeout=timeout_ms)


def settle(qtbot, w: Any) -> None:
    """Wait until the display has caught up with the pipeline (after a pause)."""
    qtbot.wait(250)
    qtbot.waitUntil(lambda: w.controller.pipeline.latest() is w.last_shown, timeout=3000)
