"""Bad options, bad source URIs and files of the wrong kind, command by command: each is refused
before any work with one line on stderr that names the option or the file, and the exit code
of the README (2: a malformed option or source URI; 1: a file that is missing or of the wrong
kind), never a traceback.

The cases run in-process through ``app.cli.registry.main``, the one entry point of every
command, so the whole list takes seconds. They extend ``test_bad_input.py`` (damaged dataset
files, models, verifiers and recordings, run as a subprocess), which they do not repeat.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest

from app.cli.registry import main
from sensors.errors import ConfigError
from sensors.source import MAX_RANGE_COUNT, SourceURI, parse_uri
from tests.support.fakes import write_tiny_generator


@dataclass(frozen=True)
class Files:
    """The files the cases hand to the commands."""

    root: Path
    photo: Path          # a small PNG photo
    empty: Path          # a zero-byte file
    text: Path           # a text file that is no image, dataset or model
    folder: Path         # an empty folder
    generator: Path      # a valid (tiny) generator, so that runs get as far as their source
    checkpoint: Path     # a zip archive named .pt (what a PyTorch checkpoint is)
    missing: Path        # a path that does not exist

    def __call__(self, name: str) -> str:
        return str(getattr(self, name))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Files:
    root = tmp_path_factory.mktemp("bad_options")
    photo = root / "photo.png"
    assert cv2.imwrite(str(photo), np.full((30, 40, 3), 90, np.uint8))
    (root / "empty.npz").write_bytes(b"")
    (root / "notes.txt").write_text("not an image, a dataset or a model\n")
    (root / "folder").mkdir()
    (root / "out").mkdir()  # outputs' folders must exist: every case's output goes here
    with zipfile.ZipFile(root / "weights.pt", "w") as z:
        z.writestr("archive/data.pkl", b"not a real checkpoint")
    return Files(root=root, photo=photo, empty=root / "empty.npz", text=root / "notes.txt", folder=root / "folder",
                 generator=write_tiny_generator(root / "generator.onnx"), checkpoint=root / "weights.pt",
                 missing=root / "missing.onnx")


@dataclass(frozen=True)
class Case:
    """``argv`` (from the files), the exit code, and words the one error line must hold."""

    argv: Callable[[Files], list[str]]
    code: int
    words: Callable[[Files], tuple[str, ...]]


def case(argv: Callable[[Files], list[str]], code: int, *words: str | Callable[[Files], str]) -> Case:
    return Case(argv, code, lambda f: tuple(w(f) if callable(w) else w for w in words))


def _run(*extra: str) -> Callable[[Files], list[str]]:
    """``run --headless`` on a photo with the tiny generator, plus ``extra``."""
    return lambda f: ["run", "--headless", "--source", f"images:{f.photo}", "--model", f("generator"), *extra]


def _source(uri: str | Callable[[Files], str], command: str = "run") -> Callable[[Files], list[str]]:
    """``command`` reading ``uri`` (a run with the tiny generator, or a record to a new file)."""
    def argv(f: Files) -> list[str]:
        u = uri(f) if callable(uri) else uri
        if command == "record":
            return ["record", "--source", u, "--out", str(f.root / "never.mcap")]
        return ["run", "--headless", "--source", u, "--model", f("generator")]
    return argv


def _out(f: Files, name: str) -> str:
    return str(f.root / "out" / name)


CASES: dict[str, Case] = {
    # -- numbers: finite, positive, in range (exit 2, the option named) -------------------------
    "record --duration nan": case(lambda f: ["record", "--out", _out(f, "r.mcap"), "--duration", "nan"], 2,
                                  "--duration", "finite", "'nan'"),
    "record --duration inf": case(lambda f: ["record", "--out", _out(f, "r.mcap"), "--duration", "inf"], 2,
                                  "--duration", "finite"),
    "record --duration -5": case(lambda f: ["record", "--out", _out(f, "r.mcap"), "--duration", "-5"], 2,
                                 "--duration must be positive"),
    "record --max-frames 2.5": case(lambda f: ["record", "--out", _out(f, "r.mcap"), "--max-frames", "2.5"], 2,
                                    "--max-frames must be a whole number"),
    "record --jpeg-quality 101": case(lambda f: ["record", "--out", _out(f, "r.mcap"), "--jpeg-quality", "101"], 2,
                                      "--jpeg-quality must be at most 100"),
    "run --headless --max-frames 0": case(_run("--max-frames", "0"), 2, "--max-frames must be at least 1"),
    "run --headless --max-frames -3": case(_run("--max-frames", "-3"), 2, "--max-frames must be at least 1"),
    # the window reads the same option: 0 is refused there too, never "no limit"
    "run (GUI) --max-frames 0": case(lambda f: ["run", "--max-frames", "0", "--model", f("generator")], 2,
                                     "--max-frames must be at least 1"),
    "convert --max-frames 0": case(lambda f: ["convert", "--source", "virtual:", "--out", _out(f, "c"),
                                              "--max-frames", "0"], 2, "--max-frames"),
    "enrol --timeout-s nan": case(lambda f: ["enrol", "--name", "a", "--out", _out(f, "a.json"),
                                             "--timeout-s", "nan"], 2, "--timeout-s", "finite"),
    "enrol --every 0": case(lambda f: ["enrol", "--name", "a", "--out", _out(f, "a.json"), "--every", "0"], 2,
                            "--every must be at least 1"),
    "calibrate --square-mm 0": case(lambda f: ["calibrate", "--out", _out(f, "c.yaml"), "--square-mm", "0"], 2,
                                    "--square-mm must be positive"),
    "calibrate --views 2": case(lambda f: ["calibrate", "--out", _out(f, "c.yaml"), "--views", "2"], 2,
                                "--views must be at least 3"),
    "calibrate --board 1x6": case(lambda f: ["calibrate", "--out", _out(f, "c.yaml"), "--board", "1x6"], 2,
                                  "--board must look like 9x6"),
    "calibrate --interval-s -1": case(lambda f: ["calibrate", "--out", _out(f, "c.yaml"), "--interval-s", "-1"], 2,
                                      "--interval-s must not be negative"),
    "contact-sheet --tile 8": case(lambda f: ["contact-sheet", "--out", _out(f, "s.png"), "--tile", "8"], 2,
                                   "--tile must be at least 32"),
    "contact-sheet --seed -1": case(lambda f: ["contact-sheet", "--out", _out(f, "s.png"), "--seed", "-1"], 2,
                                    "--seed must be at least 0"),
    "evaluate --examples -1": case(lambda f: ["evaluate", "--data", f("missing"), "--report", _out(f, "e.json"),
                                              "--examples", "-1"], 2, "--examples must be at least 0"),
    "evaluate --threads -2": case(lambda f: ["evaluate", "--data", f("missing"), "--report", _out(f, "e.json"),
                                             "--threads", "-2"], 2, "--threads must be at least 0"),
    "evaluate-locator --window-mm nan": case(lambda f: ["evaluate-locator", "--window-mm", "nan"], 2,
                                             "--window-mm", "finite"),
    "evaluate-locator --every 0": case(lambda f: ["evaluate-locator", "--every", "0"], 2, "--every must be at least 1"),
    "bench --frames 0": case(lambda f: ["bench", "--frames", "0"], 2, "--frames must be at least 1"),
    "bench --video --soak": case(lambda f: ["bench", "--video", "--soak", "10", "--quick"], 2,
                                 "--video measures video playback alone", "--quick, --soak"),
    "bench --video-seconds 0": case(lambda f: ["bench", "--video", "--video-seconds", "0"], 2,
                                    "--video-seconds must be positive"),
    "bench --video-seconds 1000": case(lambda f: ["bench", "--video", "--video-seconds", "1000"], 2,
                                       "--video-seconds must be at most 120"),
    "bench --video-seconds alone": case(lambda f: ["bench", "--video-seconds", "5"], 2,
                                        "--video-seconds goes with --video"),
    "build-dataset --val-fraction 1": case(lambda f: ["build-dataset", "--source", "virtual:", "--out",
                                                      _out(f, "d.npz"), "--val-fraction", "1"], 2,
                                           "--val-fraction must be in [0, 1)"),
    "build-dataset --window-mm inf": case(lambda f: ["build-dataset", "--source", "virtual:", "--out",
                                                     _out(f, "d.npz"), "--window-mm", "inf"], 2, "--window-mm", "finite"),
    "build-dataset --val-subjects 0-10**12": case(lambda f: ["build-dataset", "--source", "virtual:", "--out",
                                                             _out(f, "d.npz"), "--val-subjects", "0-999999999999"], 2,
                                                  "--val-subjects", f"at most {MAX_RANGE_COUNT}"),
    "train --lr nan": case(lambda f: ["train", "--data", f("missing"), "--out", _out(f, "t"), "--lr", "nan"], 2,
                           "--lr", "finite"),
    "train --beta1 1": case(lambda f: ["train", "--data", f("missing"), "--out", _out(f, "t"), "--beta1", "1"], 2,
                            "--beta1 must be in [0, 1)"),
    "train --max-minutes 0": case(lambda f: ["train", "--data", f("missing"), "--out", _out(f, "t"),
                                             "--max-minutes", "0"], 2, "--max-minutes must be positive"),
    "train-refiner --batch-size 1": case(lambda f: ["train-refiner", "--source", "virtual:", "--val-source",
                                                    "virtual:", "--out", _out(f, "tr"), "--batch-size", "1"], 2,
                                         "--batch-size must be at least 2"),
    "train-verifier --temperature nan": case(lambda f: ["train-verifier", "--data", f("missing"), "--out",
                                                        _out(f, "tv"), "--temperature", "nan"], 2,
                                             "--temperature", "finite"),
    "train-verifier --max-minutes nan": case(lambda f: ["train-verifier", "--data", f("missing"), "--out",
                                                        _out(f, "tv"), "--max-minutes", "nan"], 2,
                                             "--max-minutes must be positive"),
    # -- source URIs (exit 2, the URI named) ----------------------------------------------------
    "virtual:seed=1,seed=2": case(_source("virtual:seed=1,seed=2"), 2, "seed= is given twice", "virtual:seed=1,seed=2"),
    "virtual:SEED=1,seed=2 (keys are case-blind)": case(_source("virtual:SEED=1,seed=2"), 2, "given twice"),
    "virtual:subjects=0-999999999999": case(_source("virtual:subjects=0-999999999999"), 2,
                                            "subjects=", f"at most {MAX_RANGE_COUNT} numbers"),
    "virtual:subjects=9-3": case(_source("virtual:subjects=9-3"), 2, "subjects='9-3'", "B >= A"),
    "virtual:sequence_frames=10**12": case(_source("virtual:sequence_frames=999999999999"), 2, "sequence_frames="),
    "virtual:frames=0": case(_source("virtual:frames=0", "record"), 2, "frames=0", "at least 1"),
    "virtual:plane_mm=nan": case(_source("virtual:scene=plane,plane_mm=nan"), 2, "plane_mm=", "finite"),
    "images: fov=inf": case(_source(lambda f: f"images:{f.photo},fov=inf"), 2, "fov=", "finite"),
    "images: a comma unescaped": case(_source(lambda f: f"images:{f.root}/a,b.jpg"), 2, "'b.jpg'", "\\,"),
    "unknown scheme": case(_source("kinnect:"), 2, "unknown source scheme 'kinnect'"),
    "unknown option": case(_source("virtual:colour=red"), 2, "unknown option(s) colour"),
    "images: missing path": case(_source(lambda f: f"images:{f.missing}"), 2, lambda f: str(f.missing), "does not exist"),
    # the URIs of every source are checked before the first is read
    "build-dataset: second source bad": case(lambda f: ["build-dataset", "--source", "virtual:frames=3",
                                                        "--source", "virtual:subjects=3-1", "--out", _out(f, "d.npz")],
                                             2, "subjects='3-1'"),
    "train-refiner: bad --val-source": case(lambda f: ["train-refiner", "--source", "virtual:", "--val-source",
                                                       "virtual:seed=1,seed=2", "--out", _out(f, "tr")], 2, "given twice"),
    # -- files missing or of the wrong kind (exit 1, the file named) --------------------------
    "calibration= a photo": case(_source(lambda f: f"images:{f.photo},calibration={f.photo}"), 1,
                                 lambda f: str(f.photo), "not a calibration file: it is a PNG image"),
    "calibration= an empty file": case(_source(lambda f: f"images:{f.photo},calibration={f.empty}"), 1,
                                       lambda f: str(f.empty), "it is an empty file"),
    "calibration= a folder": case(_source(lambda f: f"images:{f.photo},calibration={f.folder}"), 1,
                                  lambda f: str(f.folder), "it is a folder"),
    "calibration= missing": case(_source(lambda f: f"images:{f.photo},calibration={f.missing}"), 1,
                                 lambda f: str(f.missing), "does not exist"),
    "evaluate --data a photo": case(lambda f: ["evaluate", "--data", f("photo"), "--report", _out(f, "e.json")], 1,
                                    lambda f: str(f.photo), "not a dataset file", "it is a PNG image"),
    "evaluate --data an empty file": case(lambda f: ["evaluate", "--data", f("empty"), "--report", _out(f, "e.json")],
                                          1, lambda f: str(f.empty), "it is an empty file"),
    "evaluate --data a text file": case(lambda f: ["evaluate", "--data", f("text"), "--report", _out(f, "e.json")], 1,
                                        lambda f: str(f.text), "not a dataset file"),
    "train-verifier --data a photo": case(lambda f: ["train-verifier", "--data", f("photo"), "--out", _out(f, "tv")], 1,
                                          lambda f: str(f.photo), "it is a PNG image"),
    "run --verifier missing": case(_run("--verifier", "/nonexistent/verifier.onnx"), 1,
                                   "/nonexistent/verifier.onnx", "verifier file does not exist"),
    "run --verifier a folder": case(lambda f: _run("--verifier", f("folder"))(f), 1, lambda f: str(f.folder),
                                    "is a folder"),
    "run --second-model missing": case(lambda f: _run("--second-model", f("missing"))(f), 1,
                                       lambda f: str(f.missing), "does not exist"),
    "run --model a photo": case(lambda f: ["run", "--headless", "--source", "virtual:", "--model", f("photo")], 1,
                                lambda f: str(f.photo), "not a loadable ONNX model (it is a PNG image)"),
    "run --model a checkpoint": case(lambda f: ["run", "--headless", "--source", "virtual:", "--model",
                                                f("checkpoint")], 1, lambda f: str(f.checkpoint),
                                     "not a loadable ONNX model (it is a zip archive"),
    "export --checkpoint a photo": case(lambda f: ["export", "--checkpoint", f("photo"), "--out", _out(f, "g.onnx")],
                                        1, lambda f: str(f.photo), "not a readable PyTorch checkpoint (it is a PNG image)"),
    "evaluate --models missing": case(lambda f: ["evaluate", "--data", f("photo"), "--report", _out(f, "e.json"),
                                                 "--models", f("missing")], 1,
                                      lambda f: str(f.missing), "model file does not exist"),
    "replay: a photo": case(_source(lambda f: f"replay:{f.photo}", "record"), 1, lambda f: str(f.photo),
                            "not an MCAP file"),
    "images: an empty folder": case(_source(lambda f: f"images:{f.folder}"), 1, lambda f: str(f.folder),
                                    "no images in this folder"),
    "images: a text file": case(_source(lambda f: f"images:{f.text}"), 1, lambda f: str(f.text),
                                "not an image, folder or video"),
}


def _call(argv: list[str], capsys) -> tuple[int, str, str]:
    """``launch.py ARGV`` in-process: (exit code, stdout, stderr). argparse errors exit via SystemExit."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_with_the_right_exit_code(name, files, capsys):
    c = CASES[name]
    argv = c.argv(files)
    code, out, err = _call(argv, capsys)
    assert "Traceback" not in out + err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert code == c.code, (code, lines[0])
    assert lines[0].startswith(f"launch.py {argv[0]}: error: "), lines[0]
    for word in c.words(files):
        assert word in lines[0], (word, lines[0])
    assert not any((files.root / "out").iterdir())  # refused before anything was written


def test_the_list_is_long_enough():
    """The issue asks for at least 40 bad-input cases."""
    assert len(CASES) >= 40


# -- commas in paths ---------------------------------------------------------------------------
def test_a_comma_in_a_path_is_written_backslash_comma(files, capsys):
    folder = files.root / "holiday, 2024"
    folder.mkdir()
    photo = folder / "anna,bob.png"
    photo.write_bytes(files.photo.read_bytes())
    report = files.root / "comma_report.json"
    uri = "images:" + str(photo).replace(",", "\\,") + ",pace=off"
    code, _, err = _call(["run", "--headless", "--source", uri, "--model", str(files.generator), "--report",
                          str(report)], capsys)
    assert code == 0, err
    data = json.loads(report.read_text())
    assert data["frames"] == 1
    assert parse_uri(data["provenance"]["source"]["uri"]).target == str(photo)  # the report's URI reads back


def test_uri_escapes_round_trip_and_other_backslashes_stay(files):
    photo = files.root / "a,b=c.jpg"
    photo.write_bytes(b"")
    u = parse_uri(f"images:{files.root}/a\\,b\\=c.jpg,fov=50")
    assert u.target == str(photo) and u.options == {"fov": "50"}
    assert parse_uri(str(u)) == u
    assert parse_uri("webcam:0,calibration=C:\\cams\\left.yaml").options["calibration"] == "C:\\cams\\left.yaml"
    assert str(SourceURI("images", "/x/a,b.png")) == "images:/x/a\\,b.png"
    with pytest.raises(ConfigError, match="given twice"):
        parse_uri("virtual:pace=off,pace=on")


def test_the_window_opens_a_picked_path_with_a_comma(files):
    pytest.importorskip("PyQt5")
    from app.gui.controls import guess_uri

    photo = files.root / "picked, too.png"
    photo.write_bytes(files.photo.read_bytes())
    assert parse_uri(guess_uri(photo)).target == str(photo)
