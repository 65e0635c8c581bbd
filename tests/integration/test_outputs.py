"""Output paths (issue 29, "Outputs"): every command checks where it will write before any work,
with one overwrite rule, and never writes onto one of its inputs.

The commands run in-process (``app.cli.registry.main``): each case fails in the check, before
the command reads a frame or loads a model, so the whole file takes seconds.
"""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Callable

import pytest

from app.cli.outputs import MIN_RECORDING_FREE_BYTES, OutputError, check_output
from app.cli.registry import main
from sensors.errors import ConfigError

#: command name -> argv writing its output to OUT (a file, or for the run folders a folder) in TMP
COMMANDS: dict[str, Callable[[Path, str], list[str]]] = {
    "run": lambda tmp, out: ["run", "--headless", "--source", "virtual:pace=off", "--max-frames", "1",
                             "--report", out],
    "run --save": lambda tmp, out: ["run", "--headless", "--source", "virtual:pace=off", "--max-frames", "1",
                                    "--save", out],
    "bench": lambda tmp, out: ["bench", "--quick", "--report", out],
    "evaluate": lambda tmp, out: ["evaluate", "--data", str(tmp / "d.npz"), "--report", out],
    "evaluate-locator": lambda tmp, out: ["evaluate-locator", "--source", "virtual:pace=off", "--report", out],
    "build-dataset": lambda tmp, out: ["build-dataset", "--source", "virtual:frames=4", "--out", out],
    "export": lambda tmp, out: ["export", "--checkpoint", str(tmp / "c.pt"), "--out", out],
    "average": lambda tmp, out: ["average", "--checkpoint", str(tmp / "a.pt"), "--checkpoint", str(tmp / "b.pt"),
                                 "--data", str(tmp / "d.npz"), "--out", out],
    "enrol": lambda tmp, out: ["enrol", "--source", "virtual:pace=off", "--name", "a", "--out", out],
    "record": lambda tmp, out: ["record", "--source", "virtual:pace=off", "--max-frames", "1", "--out", out],
    "convert": lambda tmp, out: ["convert", "--source", "virtual:pace=off", "--max-frames", "1", "--out", out],
    "contact-sheet": lambda tmp, out: ["contact-sheet", "--out", out],
    "calibrate": lambda tmp, out: ["calibrate", "--source", f"images:{tmp}", "--out", out],
    "train": lambda tmp, out: ["train", "--data", str(tmp / "d.npz"), "--out", out],
    "train-refiner": lambda tmp, out: ["train-refiner", "--source", "virtual:pace=off",
                                       "--val-source", "virtual:pace=off", "--out", out],
    "train-verifier": lambda tmp, out: ["train-verifier", "--data", str(tmp / "d.npz"), "--out", out],
}
#: the output's file name per command (the folder outputs: a name without an extension)
NAMES = {"run": "r.json", "run --save": "crops", "bench": "b.json", "evaluate": "e.json",
         "evaluate-locator": "l.json", "build-dataset": "d2.npz", "export": "g.onnx", "average": "avg.pt",
         "enrol": "me.json", "record": "r.mcap", "convert": "c.mcap", "contact-sheet": "s.png",
         "calibrate": "cam.yaml", "train": "run", "train-refiner": "run", "train-verifier": "run"}
FOLDERS = {"run --save", "train", "train-refiner", "train-verifier"}


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().err


def _assert_one_line(err: str, *words: str) -> None:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert ".partial" not in err, err
    for w in words:
        assert w in err, (w, err)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_missing_folder_is_refused_before_any_work(command, tmp_path, capsys):
    out = str(tmp_path / "no_such_folder" / NAMES[command])
    code, err = _cli(COMMANDS[command](tmp_path, out), capsys)
    assert code == 1, err
    _assert_one_line(err, out, "does not exist")
    assert not (tmp_path / "no_such_folder").exists()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_folder_that_cannot_be_written_is_refused_before_any_work(command, tmp_path, capsys):
    # a "folder" that is a file fails for every user, root included (root ignores permission bits)
    (tmp_path / "afile").write_text("x")
    out = str(tmp_path / "afile" / NAMES[command])
    code, err = _cli(COMMANDS[command](tmp_path, out), capsys)
    assert code == 1, err
    _assert_one_line(err, out, "is not a folder")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("command", ["run", "build-dataset", "enrol", "export", "record", "train"])
def test_a_read_only_folder_is_refused_before_any_work(command, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        out = str(ro / NAMES[command])
        code, err = _cli(COMMANDS[command](tmp_path, out), capsys)
    finally:
        ro.chmod(stat.S_IRWXU)
    assert code == 1, err
    _assert_one_line(err, out, "not writable")


@pytest.mark.parametrize("command", ["run", "build-dataset", "enrol", "export", "record", "train"])
def test_a_folder_the_system_refuses_to_write_is_refused_before_any_work(command, tmp_path, capsys, monkeypatch):
    # what a read-only disk or an ACL says, for root too (the check tries a file, it does not guess)
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    out = str(tmp_path / NAMES[command])
    code, err = _cli(COMMANDS[command](tmp_path, out), capsys)
    assert code == 1, err
    _assert_one_line(err, out, "not writable", "Permission denied")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_existing_output_is_refused_without_force(command, tmp_path, capsys):
    target = tmp_path / NAMES[command]
    if command in FOLDERS:
        target.mkdir()
        (target / "best.pt").write_bytes(b"the previous run")
    else:
        target.write_bytes(b"the previous output")
    code, err = _cli(COMMANDS[command](tmp_path, str(target)), capsys)
    assert code == 2, err
    _assert_one_line(err, str(target), "--force")
    kept = target / "best.pt" if command in FOLDERS else target
    assert kept.read_bytes().startswith(b"the previous")


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    """A two-frame recording, made once; tests copy it."""
    from sensors.recording.capture import RecordConfig, record_source

    path = tmp_path_factory.mktemp("rec") / "x.mcap"
    record_source(RecordConfig(source="virtual:pace=off,seed=0", out=str(path), max_frames=2))
    return path


@pytest.mark.parametrize("argv", [
    lambda x: ["record", "--source", f"replay:{x},pace=off", "--out", str(x), "--force"],
    lambda x: ["convert", "--source", f"replay:{x}", "--out", str(x), "--force"],
    lambda x: ["record", "--source", f"replay:{x.parent / 'link.mcap'}", "--out", str(x), "--force"],
], ids=["record", "convert", "record-through-a-link"])
def test_a_recording_is_never_written_onto_the_recording_being_read(argv, tmp_path, capsys, recording):
    rec = Path(shutil.copy(recording, tmp_path / "x.mcap"))
    (tmp_path / "link.mcap").symlink_to("x.mcap")
    before = rec.read_bytes()
    code, err = _cli(argv(rec), capsys)
    assert code == 2, err
    _assert_one_line(err, str(rec), "input")
    assert rec.read_bytes() == before


def test_a_folder_output_never_holds_the_source_being_read(tmp_path, capsys, recording):
    tum = tmp_path / "tum"
    assert main(["convert", "--source", f"replay:{recording}", "--out", str(tum)]) == 0
    code, err = _cli(["convert", "--source", f"images:{tum / 'rgb'}", "--out", str(tum), "--force"], capsys)
    assert code == 2, err
    _assert_one_line(err, str(tum), "holds an input")


@pytest.mark.parametrize("argv", [
    lambda t: ["average", "--checkpoint", str(t / "a.pt"), "--checkpoint", str(t / "b.pt"), "--data",
               str(t / "d.npz"), "--out", str(t / "a.pt"), "--force"],
    lambda t: ["export", "--checkpoint", str(t / "a.pt"), "--out", str(t / "a.pt"), "--force"],
    lambda t: ["evaluate", "--data", str(t / "d.npz"), "--report", str(t / "d.npz"), "--force"],
    lambda t: ["train", "--data", str(t / "run" / "d.npz"), "--out", str(t / "run"), "--force"],
], ids=["average", "export", "evaluate", "train"])
def test_an_input_is_never_an_output_even_with_force(argv, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    for name in ("a.pt", "b.pt", "d.npz", "run/d.npz"):
        (tmp_path / name).write_bytes(b"input")
    code, err = _cli(argv(tmp_path), capsys)
    assert code == 2, err
    _assert_one_line(err, "input", "--force")
    assert all((tmp_path / n).read_bytes() == b"input" for n in ("a.pt", "b.pt", "d.npz", "run/d.npz"))


def test_record_with_force_replaces_an_existing_file(tmp_path, capsys):
    out = tmp_path / "r.mcap"
    out.write_bytes(b"old")
    code, err = _cli(["record", "--source", "virtual:pace=off", "--max-frames", "1", "--out", str(out),
                      "--force"], capsys)
    assert code == 0, err
    assert out.read_bytes()[:8] != b"old"


# -- the helper itself ------------------------------------------------------------------------
def test_an_empty_existing_folder_is_a_fine_run_folder(tmp_path):
    check_output(tmp_path, kind="folder")
    (tmp_path / "x").write_text("x")
    with pytest.raises(ConfigError, match="not empty; pass --force"):
        check_output(tmp_path, kind="folder")
    check_output(tmp_path, kind="folder", force=True)


def test_a_file_where_a_folder_goes_and_the_other_way_round(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        check_output(tmp_path / "f", kind="folder", force=True)
    with pytest.raises(OutputError, match="is a folder"):
        check_output(tmp_path, kind="file", force=True)


def test_a_recording_needs_free_space(tmp_path, monkeypatch):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=MIN_RECORDING_FREE_BYTES - 1))
    with pytest.raises(OutputError, match="free in") as e:
        check_output(tmp_path / "r.mcap", min_free_bytes=MIN_RECORDING_FREE_BYTES)
    assert str(e.value).startswith(str(tmp_path / "r.mcap"))
    check_output(tmp_path / "r.json")  # a report needs no space check


def test_a_device_is_written_as_it_is(tmp_path):
    check_output(os.devnull)  # exists, but nothing is replaced: no --force needed


def test_the_write_test_leaves_nothing_behind(tmp_path):
    check_output(tmp_path / "x.json")
    check_output(tmp_path / "run", kind="folder")
    assert not list(tmp_path.iterdir())
