"""The window shows a real head scan's credit (CC BY) while that source is on screen."""
from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")
from app.gui.settings import AppSettings  # noqa: E402
from app.gui.window import MainWindow  # noqa: E402
from tests.support.fakes import open_fake_or_real, write_tiny_generator  # noqa: E402

pytestmark = pytest.mark.gui


def test_the_credit_shows_with_the_scan_and_goes_with_it(qtbot, tmp_path, real_scan_glb):
    model = write_tiny_generator(tmp_path / "tiny.onnx")
    uri = f"virtual:person=scan:{real_scan_glb},pace=off,frames=30"
    w = MainWindow(model, uri, source_opener=open_fake_or_real, settings=AppSettings(tmp_path / "s.ini"),
                   output_dir=tmp_path / "out", verifier_path=tmp_path / "none.onnx")
    qtbot.addWidget(w)
    w.show()
    try:
        qtbot.waitUntil(lambda: w.credit_label.isVisible(), timeout=10000)
        assert "Lee Perry-Smith" in w.credit_label.text() and "CC BY 3.0" in w.credit_label.text()
        w.open_source("fake:n=300")
        qtbot.waitUntil(lambda: not w.credit_label.isVisible(), timeout=10000)
        assert w.credit_label.text() == ""
    finally:
        w.shutdown()
