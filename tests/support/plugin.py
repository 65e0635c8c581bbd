"""Fixtures every test folder may use, defined once (``pytest_plugins`` in tests/conftest.py)."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# before any test imports Qt: tests never open a window on the screen
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def fake_freenect(monkeypatch):
    """The fake pylibfreenect2 (tests/support/pylibfreenect2.py) in place of the driver, reset
    before and after the test."""
    import tests.support.pylibfreenect2 as fake

    fake.reset()
    monkeypatch.setitem(sys.modules, "pylibfreenect2", fake)
    yield fake
    fake.reset()


@dataclass(frozen=True)
class TinyRun:
    """A generator trained for one short epoch on tiny synthetic crops, and its ONNX export."""

    folder: Path
    data: Path  # the crops it was trained on (24 crops of 48 px, seed 4)
    checkpoint: Path  # last.pt of the run
    onnx: Path


@pytest.fixture(scope="session")
def tiny_cgan_run(tmp_path_factory) -> TinyRun:
    """Trained once per test session (training is the slow part), shared by the export,
    evaluation and averaging tests. Tests must not write into its folder."""
    pytest.importorskip("torch")
    import launch
    from models.generator.train import TrainConfig, train
    from tests.support.synthetic_data import make_crops

    d = tmp_path_factory.mktemp("tiny_cgan")
    make_crops(n=24, size=48, seed=4).save(d / "crops.npz")
    train(TrainConfig(data=str(d / "crops.npz"), out=str(d / "run"), mode="cgan", epochs=1, batch_size=8,
                      threads=1), progress=False)
    assert launch.main(["export", "--checkpoint", str(d / "run" / "last.pt"), "--out", str(d / "g.onnx")]) == 0
    return TinyRun(d, d / "crops.npz", d / "run" / "last.pt", d / "g.onnx")
