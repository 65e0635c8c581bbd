"""Enrolments in use: ``run --enrolment FILE`` (headless and before the window opens), the
controller's Load enrolment, and the one enrolment rule the CLI's ``enrol`` and the GUI's
Enrol share (frame count, minimum share of valid depth pixels)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import app.controller as ctl
import app.enrol
import launch
from app.enrol import ENROLMENT_RULE, EnrolmentRule
from sensors.source import SOURCE_SCHEMES
from tests.support.fakes import write_tiny_generator, write_tiny_verifier
from tests.support.waits import wait_until


@pytest.fixture
def fake_scheme(monkeypatch):
    monkeypatch.setitem(SOURCE_SCHEMES, "fake", "tests.support.fakes:FakeRGBDSource")


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """A tiny generator, two tiny verifiers, and an enrolment made with the first."""
    from models.verifier.runtime import Enrolment, Verifier

    d = tmp_path_factory.mktemp("enrol")
    model = write_tiny_generator(d / "gen.onnx")
    mine = write_tiny_verifier(d / "mine.onnx", threshold=0.5, seed=0)
    other = write_tiny_verifier(d / "other.onnx", threshold=0.5, seed=1)
    crops = np.random.default_rng(0).integers(1, 256, (3, 100, 100), dtype=np.uint8)
    path = d / "anna.json"
    Enrolment.create("anna", "true-depth", Verifier(mine), crops).save(path)
    return {"model": model, "mine": mine, "other": other, "anna": path, "dir": d}


def test_the_rule_counts_valid_depth_pixels():
    rule = EnrolmentRule(frames=5, min_valid_fraction=0.15)
    crop = np.zeros((100, 100), np.uint8)
    crop.flat[:1499] = 200
    assert not rule.accepts(crop)  # 14.99 %
    crop.flat[:1500] = 200
    assert rule.accepts(crop)      # 15 %
    assert not rule.accepts(np.zeros((0, 0), np.uint8))


def test_cli_and_gui_share_one_rule():
    assert ctl.ENROLMENT_RULE is app.enrol.ENROLMENT_RULE
    assert ctl.ENROL_FRAMES == ENROLMENT_RULE.frames == app.enrol.EnrolConfig(name="x").frames
    assert ENROLMENT_RULE.min_valid_fraction == 0.15


def test_headless_run_scores_against_the_enrolment(tmp_path, fake_scheme, kit):
    report_path = tmp_path / "r.json"
    rc = launch.main(["run", "--headless", "--source", "fake:n=6", "--model", str(kit["model"]), "--verifier",
                      str(kit["mine"]), "--enrolment", str(kit["anna"]), "--report", str(report_path)])
    assert rc == 0
    r = json.loads(report_path.read_text())
    enr = r["enrolment"]
    assert enr["file"] == str(kit["anna"]) and enr["name"] == "anna" and enr["measures"] == "identity"
    assert enr["frames"] == 6 and 0 <= enr["accept_rate"] <= 1 and enr["crops"] == 3
    scores = [f["enrolled"] for f in r["per_frame"]]
    assert len(scores) == 6 and all(-1 <= s <= 1 for s in scores)
    assert enr["score_mean"] == pytest.approx(float(np.mean(scores)))


@pytest.mark.parametrize("headless", [True, False], ids=["headless", "gui"])
@pytest.mark.parametrize("case", ["missing", "half_written", "other_verifier", "no_verifier"])
def test_a_bad_enrolment_is_one_line_naming_the_file(case, headless, tmp_path, fake_scheme, kit, capsys,
                                                     monkeypatch):
    enrolment, verifier, words = kit["anna"], kit["mine"], ""
    if case == "missing":
        enrolment, words = tmp_path / "nobody.json", "enrolment file does not exist"
    elif case == "half_written":
        enrolment = tmp_path / "half.json"
        enrolment.write_text(kit["anna"].read_text()[:40])
        words = "not a readable enrolment file"
    elif case == "other_verifier":
        verifier, words = kit["other"], "another verifier"
    else:
        verifier, words = tmp_path / "absent.onnx", "verifier file does not exist"
    args = ["run", "--source", "fake:n=3", "--model", str(kit["model"]), "--verifier", str(verifier),
            "--enrolment", str(enrolment)] + (["--headless"] if headless else [])
    if not headless:  # the window must never open: it would only show a notice
        import app.gui

        def no_window(cfg):
            raise AssertionError("the window opened")
        monkeypatch.setattr(app.gui, "run_gui", no_window)
    rc = launch.main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    culprit = verifier if case == "no_verifier" else enrolment
    assert str(culprit) in err[0] and words in err[0] and "Traceback" not in err[0], err


def _controller(tmp_path, kit, verifier):
    from tests.support.fakes import fake_source

    def opener(uri):
        return fake_source(**dict(item.split("=", 1) for item in uri[5:].split(",") if item))

    c = ctl.Controller(kit["model"], tmp_path / "out", verifier_path=verifier, source_opener=opener)
    seen: list = []
    c.events.subscribe(seen.append)
    return c, seen


def test_the_controller_loads_an_enrolment_and_scores_against_it(tmp_path, kit):
    c, seen = _controller(tmp_path, kit, kit["mine"])
    try:
        c.open_source("fake:n=400,fps=60")
        wait_until(lambda: c.pipeline.latest() is not None)
        assert c.load_enrolment(kit["anna"])
        assert c.enrolment.name == "anna" and c.pipeline.enrolment is c.enrolment
        (loaded,) = [e for e in seen if isinstance(e, ctl.Enrolled)]
        assert loaded.path == kit["anna"]  # the window remembers it as the last enrolment
        wait_until(lambda: (r := c.pipeline.latest()) is not None and r.models[0].enrolled is not None)
        # a file made with another verifier is refused with a notice naming it; the old one stays
        from models.verifier.runtime import Enrolment, Verifier

        foreign = tmp_path / "foreign.json"
        Enrolment.create("bob", "true-depth", Verifier(kit["other"]), np.full((2, 100, 100), 9, np.uint8)).save(foreign)
        assert not c.load_enrolment(foreign)
        notice = [e for e in seen if isinstance(e, ctl.Notice)][-1]
        assert str(foreign) in notice.text and "another verifier" in notice.text
        assert c.enrolment.name == "anna"
    finally:
        c.close()


def test_the_gui_enrol_refuses_crops_the_cli_refuses(tmp_path, kit, monkeypatch):
    """The GUI's Enrol applies the shared rule: with a rule no crop passes, nothing is collected
    (before, the GUI took any crop); with the rule in force, the fake face's crops pass."""
    c, seen = _controller(tmp_path, kit, kit["mine"])
    try:
        c.open_source("fake:n=4000,fps=60")
        wait_until(lambda: c.pipeline.latest() is not None)
        r = c.pipeline.latest()
        assert ENROLMENT_RULE.accepts(r.models[0].true8)  # the fake face is a valid crop
        monkeypatch.setattr(ctl, "ENROLMENT_RULE", EnrolmentRule(min_valid_fraction=1.01))
        assert c.enrol("nobody", frames=3)
        import time

        time.sleep(0.6)  # dozens of frames at 60 fps
        assert not [e for e in seen if isinstance(e, ctl.EnrolmentCollected)]
        refused = [e.text for e in seen if isinstance(e, ctl.Notice) and "were not used" in e.text]
        assert len(refused) == 1 and "nobody" in refused[0], refused  # said once
        monkeypatch.setattr(ctl, "ENROLMENT_RULE", ENROLMENT_RULE)
        wait_until(lambda: [e for e in seen if isinstance(e, ctl.EnrolmentCollected)])
        assert c.finish_enrolment() and len(c.enrolment.embeddings) == 3
    finally:
        c.close()
