"""Fixtures every test folder may use, defined once (``pytest_plugins`` in tests/conftest.py)."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# before any test imports Qt: tests never open a window on the screen
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# the virtual Kinect's people must not depend on the developer's environment: tests that want
# scan heads ask for the face_model fixture, which reads the folder saved here
_FACE_MODEL_ENV = os.environ.pop("FACEDEPTH_FACE_MODEL", None)


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


@pytest.fixture
def tiny_model(tmp_path_factory) -> Path:
    """A tiny ONNX generator (random weights, the shipped crop geometry)."""
    from tests.support.fakes import write_tiny_generator

    return write_tiny_generator(tmp_path_factory.mktemp("models") / "tiny.onnx")


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


def _outside_data(env_name: str, env_value: str | None, beside_repo: str, what: str) -> Path:
    """Data that is never part of the repository (licence, size): the path in ``env_value``,
    else ``beside_repo`` (relative to the folder that holds the repository); skip without it."""
    root = Path(__file__).resolve().parents[2]
    for p in (env_value, root.parent / beside_repo):
        if p and Path(p).exists():
            return Path(p)
    pytest.skip(f"no {what}: set {env_name} to it or put it in {beside_repo} beside the repository"
                + (f" ({env_name}={env_value} does not exist)" if env_value else ""))


@pytest.fixture(scope="session")
def face_model_dir() -> Path:
    """An ICT-FaceKit FaceXModel folder (``$FACEDEPTH_FACE_MODEL``)."""
    return _outside_data("FACEDEPTH_FACE_MODEL", _FACE_MODEL_ENV, "shared/ict-facekit/FaceXModel",
                         "ICT-FaceKit FaceXModel folder")


@pytest.fixture(scope="session")
def real_scan_glb() -> Path:
    """The real head scan, LeePerrySmith.glb (CC BY 3.0, evaluation only; ``$FACEDEPTH_REAL_SCAN``)."""
    return _outside_data("FACEDEPTH_REAL_SCAN", os.environ.get("FACEDEPTH_REAL_SCAN"),
                         "shared/realface/leeperrysmith/LeePerrySmith.glb", "real head scan")


@pytest.fixture(scope="session")
def facekit_cache_dir(tmp_path_factory) -> Path:
    """One face-model cache folder for the session (the first load parses the kit for seconds):
    tests that open scan people point ``FACEDEPTH_CACHE_DIR`` here, never at the user's cache."""
    return tmp_path_factory.mktemp("facekit-session-cache")


@pytest.fixture(scope="session")
def face_model(face_model_dir, facekit_cache_dir):
    """The face model loaded once per session, its cache in the session's cache folder."""
    from sensors.virtual.facekit import load_face_model

    mp = pytest.MonkeyPatch()
    mp.setenv("FACEDEPTH_CACHE_DIR", str(facekit_cache_dir))
    try:
        return load_face_model(face_model_dir)
    finally:
        mp.undo()
