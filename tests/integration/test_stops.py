"""Clean stops: SIGINT (Ctrl-C) and SIGTERM take the same path in every long command.

Most cases start a child process, wait until it is working, send the signal and check: the
exit code is 128 + the signal (130 / 143), one line on stderr and no traceback, every
recording finished (it replays every frame it says it wrote), the report written with
``"complete": false``, and for ``train`` a ``last.pt`` that ``--resume`` continues.
(Ctrl-C with the thread checks and the 2 s limit: tests/integration/test_faults.py.)
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from app import stops
from sensors.recording import scan_mcap
from sensors.source import open_source
from tests.integration.test_faults import launch_wrapped
from tests.support.processes import stop_process
from tests.support.fakes import write_tiny_generator

ROOT = Path(__file__).resolve().parents[2]
SIGNALS = [pytest.param(signal.SIGINT, 130, id="SIGINT"), pytest.param(signal.SIGTERM, 143, id="SIGTERM")]
#: a stopped command exits within this many seconds of the signal (a train step, a frame)
STOP_LIMIT_S = 5.0
#: train: the step in progress, then validation, last.pt, curves and samples, then torch's exit
TRAIN_STOP_LIMIT_S = 15.0


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> Path:
    return write_tiny_generator(tmp_path_factory.mktemp("models") / "generator.onnx")


def _wait_for(predicate, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the child ended early ({proc.returncode}): {out[-2000:]} {err[-2000:]}")
        assert time.monotonic() < deadline, "the child never got going"
        time.sleep(0.05)


def _stop(proc: subprocess.Popen, signo: int) -> tuple[float, str, str]:
    """Send ``signo``; seconds until the process exits, and its output."""
    return stop_process(proc, signo, timeout_s=30)


def _stop_line(command: str, code: int) -> str:
    """The one line a stopped command leaves on stderr."""
    return f"launch.py {command}: " + ("interrupted" if code == 130 else "stopped by SIGTERM")


def _replays(path: Path) -> int:
    with open_source(f"replay:{path},pace=off") as src:
        assert src.describe()["complete"] is True  # finalised, not a torn file
        n = len(src)
        assert sum(1 for _ in src) == n
    return n


# -- the module itself, in-process ------------------------------------------------------------------
def test_both_signals_raise_keyboard_interrupt_and_set_the_exit_code():
    for signo, code, name in ((signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")):
        before = signal.getsignal(signo)
        with stops.installed():
            with pytest.raises(KeyboardInterrupt) as info:
                os.kill(os.getpid(), signo)
                time.sleep(1.0)  # the handler runs here
            assert stops.requested() and stops.exit_code() == code and stops.signal_name() == name
        assert signal.getsignal(signo) is before  # the previous handler is back
        assert not stops.requested()  # the next command (in-process) starts afresh
        # the exception says which signal it was
        assert stops.exit_code(info.value) == code and stops.signal_name(info.value) == name


def test_a_deferred_stop_only_sets_the_flag_and_a_second_signal_raises():
    with stops.installed():
        with stops.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            assert stops.requested() and stops.exit_code() == 143
            os.kill(os.getpid(), signal.SIGINT)  # at once: the same request (the terminal's group, torchrun)
            time.sleep(0.05)
            time.sleep(stops.SAME_REQUEST_S)
            with pytest.raises(KeyboardInterrupt):  # later: a clean-up that hangs can still be cut short
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1.0)
        assert stops.signal_name() == "SIGTERM"  # the first signal decides the exit code


def test_after_the_first_poll_a_signal_only_sets_the_request():
    with stops.installed():
        assert stops.poll() is None
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert stops.poll() == "SIGINT" and stops.exit_code() == 130
    with stops.installed():  # a new command starts afresh: the signal raises again until it polls
        assert not stops.requested()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1.0)


def test_an_ignored_sigint_stays_ignored():
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stops.installed():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, before)


# -- commands in child processes ---------------------------------------------------------------------
@pytest.mark.parametrize("signo, code", SIGNALS)
def test_a_stopped_headless_run_writes_its_report_marked_incomplete(signo, code, tmp_path, generator):
    saved, report = tmp_path / "crops", tmp_path / "report.json"
    proc = launch_wrapped("run", "--headless", "--source", "fake:live=on,fps=30,n=1000000",
                          "--model", str(generator), "--save", str(saved), "--report", str(report))
    _wait_for(lambda: saved.exists() and len(list(saved.glob("*_pred.png"))) >= 5, proc)
    elapsed, out, err = _stop(proc, signo)
    assert proc.returncode == code, (out, err)
    assert "Traceback" not in out + err
    assert err.strip().splitlines() == [_stop_line("run", code)]
    assert elapsed < STOP_LIMIT_S, elapsed
    r = json.loads(report.read_text())
    assert r["complete"] is False and r["stopped"] == ("SIGINT" if code == 130 else "SIGTERM")
    assert r["frames"] == len(r["per_frame"]) >= 5
    assert out.splitlines()[0].split() == ["frames", str(r["frames"])]  # the summary table


def test_a_headless_run_that_ends_by_itself_reports_complete(tmp_path, generator, monkeypatch, capsys):
    import launch
    from sensors.source import SOURCE_SCHEMES

    monkeypatch.setitem(SOURCE_SCHEMES, "fake", "tests.support.fakes:FakeRGBDSource")
    report = tmp_path / "report.json"
    assert launch.main(["run", "--headless", "--source", "fake:n=4", "--model", str(generator),
                        "--report", str(report)]) == 0
    r = json.loads(report.read_text())
    assert r["complete"] is True and r["stopped"] is None and r["frames"] == 4


@pytest.mark.parametrize("signo, code", [
    pytest.param(signal.SIGINT, 130, id="SIGINT", marks=pytest.mark.slow),  # the fake sensor's case covers it
    pytest.param(signal.SIGTERM, 143, id="SIGTERM")])
def test_a_stopped_headless_run_on_the_paced_virtual_kinect_writes_its_report(signo, code, tmp_path,
                                                                               generator):
    report, saved = tmp_path / "report.json", tmp_path / "crops"
    proc = launch_wrapped("run", "--headless", "--source", "virtual:seed=0,pace=on",
                          "--model", str(generator), "--save", str(saved), "--report", str(report))
    _wait_for(lambda: saved.exists() and len(list(saved.glob("*_pred.png"))) >= 3, proc, timeout_s=120)
    _, out, err = _stop(proc, signo)
    assert proc.returncode == code and "Traceback" not in out + err, (out, err)
    r = json.loads(report.read_text())
    assert r["complete"] is False and r["frames"] >= 3


@pytest.mark.parametrize("signo, code", SIGNALS)
def test_a_stopped_recording_is_finished_and_replays_every_frame_written(signo, code, tmp_path):
    out_file = tmp_path / "session.mcap"
    proc = launch_wrapped("record", "--source", "fake:live=on,fps=60,n=1000000", "--out", str(out_file))
    _wait_for(lambda: out_file.exists() and len(scan_mcap(out_file).chunks) >= 5, proc)
    elapsed, out, err = _stop(proc, signo)
    assert proc.returncode == code, (out, err)
    assert err == "" and "Traceback" not in out
    (line,) = out.strip().splitlines()
    assert line.endswith("stopped by " + ("Ctrl-C" if code == 130 else "SIGTERM")), line
    assert elapsed < STOP_LIMIT_S, elapsed
    assert _replays(out_file) == int(line.split()[1]) >= 5


@pytest.mark.parametrize("signo, code", SIGNALS)
def test_a_stopped_conversion_is_finished_and_replays_every_frame_written(signo, code, tmp_path):
    out_file = tmp_path / "converted.mcap"
    proc = launch_wrapped("convert", "--source", "fake:live=on,fps=60,n=1000000", "--out", str(out_file))
    _wait_for(lambda: out_file.exists() and len(scan_mcap(out_file).chunks) >= 5, proc)
    elapsed, out, err = _stop(proc, signo)
    assert proc.returncode == code, (out, err)
    assert err == "" and "Traceback" not in out
    (line,) = out.strip().splitlines()
    assert line.startswith("converted ")
    assert line.endswith("stopped by " + ("Ctrl-C" if code == 130 else "SIGTERM")), line
    assert elapsed < STOP_LIMIT_S, elapsed
    assert _replays(out_file) == int(line.split()[1]) >= 5


@pytest.mark.parametrize("signo, code", SIGNALS)
def test_a_stopped_build_dataset_stops_its_workers_and_writes_nothing(signo, code, tmp_path):
    out_file = tmp_path / "data.npz"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD.format(root=str(ROOT)), "build-dataset", "--out", str(out_file),
         "--source", "virtual:heads=procedural,seed=0,subjects=0-3,frames=100000,pace=off",
         "--workers", "2", "--locator", "annotation"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        # the command, multiprocessing's resource tracker and both workers
        _wait_for(lambda: len(_alive_in_group(proc.pid)) >= 4, proc)
        time.sleep(0.5)  # the workers at work
        # the terminal sends Ctrl-C to the whole process group; a service manager SIGTERM to the command
        t0 = time.monotonic()
        if signo == signal.SIGINT:
            os.killpg(proc.pid, signo)
        else:
            proc.send_signal(signo)
        out, err = proc.communicate(timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == code, (out, err)
    assert "Traceback" not in out + err, err
    assert err.strip().splitlines()[-1] == _stop_line("build-dataset", code)
    assert elapsed < STOP_LIMIT_S, elapsed
    assert not out_file.exists()
    # no worker left behind (multiprocessing's resource tracker ends on its own once the parent is gone)
    deadline = time.monotonic() + 5.0
    while _alive_in_group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive_in_group(proc.pid) == []


def _alive_in_group(pgid: int) -> list[int]:
    """The processes of a process group still running (zombies waiting to be reaped do not count)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


#: launch.py with Ctrl-C as from a terminal (a background-started test run inherits SIGINT ignored)
_CHILD = textwrap.dedent("""
    import signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, {root!r})
    import launch
    sys.exit(launch.main(sys.argv[1:]))
""")


@pytest.mark.parametrize("signo, code", [
    pytest.param(signal.SIGINT, 130, id="SIGINT", marks=pytest.mark.slow),  # the same path as SIGTERM's
    pytest.param(signal.SIGTERM, 143, id="SIGTERM")])
def test_a_stopped_training_saves_last_pt_and_resume_continues(signo, code, tmp_path):
    pytest.importorskip("torch")
    from models.common.checkpoint import load_checkpoint
    from tests.support.synthetic_data import make_crops

    data = tmp_path / "crops.npz"
    make_crops(n=36, size=48, seed=1).save(data)
    run = tmp_path / "run"
    common = ["--data", str(data), "--out", str(run), "--threads", "1", "--no-progress"]
    # a step slowed down, so that the signal lands inside the first epoch
    slow = textwrap.dedent("""
        import time, torch, models.generator.train as mt
        real = mt.masked_mse
        def slow_mse(*a, **k):
            if torch.is_grad_enabled():  # a training step, not validation
                open({mark!r}, "a").write("step\\n")
                time.sleep(0.3)
            return real(*a, **k)
        mt.masked_mse = slow_mse
    """).format(mark=str(tmp_path / "steps"))
    child = _CHILD.replace("import launch", slow + "\nimport launch")
    proc = subprocess.Popen([sys.executable, "-c", child.format(root=str(ROOT)), "train", *common,
                             "--mode", "ae", "--epochs", "2", "--batch-size", "3", "--widths", "8,16,24"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    steps = tmp_path / "steps"
    _wait_for(lambda: steps.exists() and steps.read_text().count("step") >= 2, proc, timeout_s=120)
    elapsed, out, err = _stop(proc, signo)
    assert proc.returncode == code, (out, err)
    assert "Traceback" not in out + err, err
    assert err.strip().splitlines()[-1] == _stop_line("train", code)
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["stopped"] == ("SIGINT" if code == 130 else "SIGTERM") and summary["epochs_done"] == 1
    print(f"train: exited {elapsed:.2f} s after {signal.Signals(signo).name} (validation and last.pt included)")
    assert elapsed < TRAIN_STOP_LIMIT_S, elapsed
    last = load_checkpoint(run / "last.pt", "generator")
    assert last["epoch"] == 1 and len(last["history"]) == 1
    # --resume continues with the next epoch, to the end
    import launch

    assert launch.main(["train", *common, "--resume"]) == 0
    last = load_checkpoint(run / "last.pt", "generator")
    assert last["epoch"] == 2 and [r["epoch"] for r in last["history"]] == [1, 2]


# -- the GUI ------------------------------------------------------------------------------------------
_GUI_CHILD = textwrap.dedent("""
    import os, signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, {root!r})
    from sensors.source import SOURCE_SCHEMES
    SOURCE_SCHEMES["fake"] = "tests.support.fakes:FakeRGBDSource"
    # the window starts recording at once, as if Record had been pressed
    import app.gui.window as window
    real_init = window.MainWindow.__init__
    def init(self, *a, **k):
        real_init(self, *a, **k)
        self.controller.start_recording(os.environ["RECORD_TO"])
    window.MainWindow.__init__ = init
    import launch
    sys.exit(launch.main(sys.argv[1:]))
""")


@pytest.mark.parametrize("signo, code", SIGNALS)
def test_a_signal_closes_the_gui_and_finishes_its_recording(signo, code, tmp_path, generator):
    pytest.importorskip("PyQt5")
    out_file = tmp_path / "gui.mcap"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "RECORD_TO": str(out_file),
           "FACEDEPTH_SETTINGS": str(tmp_path / "settings.ini")}
    proc = subprocess.Popen([sys.executable, "-c", _GUI_CHILD.format(root=str(ROOT)), "run", "--source",
                             "fake:live=on,fps=30,n=1000000", "--model", str(generator)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _wait_for(lambda: out_file.exists() and len(scan_mcap(out_file).chunks) >= 5, proc, timeout_s=120)
    elapsed, out, err = _stop(proc, signo)
    assert proc.returncode == code, (out, err)
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines() == [_stop_line("run", code)]
    assert elapsed < STOP_LIMIT_S, elapsed
    assert _replays(out_file) >= 5


# -- train-verifier (in-process: the signal is sent to this process once its training loop polls) ------
@pytest.mark.slow  # two exports with their latency measurements: about a minute on 2 busy cores
def test_a_stopped_train_verifier_saves_last_pt_exports_and_resume_continues(tmp_path, capsys):
    pytest.importorskip("torch")
    import threading

    import launch
    from tests.support.verifier_toy import toy_depth_dataset

    data = tmp_path / "toy.npz"
    toy_depth_dataset(n_subjects=18, per_subject=12, seed=3, val=4, test=4).save(data)
    out = tmp_path / "run"
    args = ["train-verifier", "--data", str(data), "--out", str(out), "--epochs", "3",
            "--steps-per-epoch", "25", "--identities", "8", "--per-identity", "4", "--val-pairs", "200",
            "--quiet", "--device", "cpu"]

    def terminate_once_training() -> None:
        deadline = time.monotonic() + 60
        while not stops._State.polling and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=terminate_once_training, daemon=True)
    sender.start()
    assert launch.main(args) == 143
    sender.join()
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.err.strip().splitlines()[-1] == (
        "launch.py train-verifier: stopped by SIGTERM")
    assert "stopped by SIGTERM in epoch 1" in captured.out
    torch = pytest.importorskip("torch")
    assert torch.load(out / "last.pt", weights_only=False)["epoch"] == 1
    assert (out / "verifier.onnx").exists()  # the best so far, exported as with --max-minutes
    assert launch.main([*args, "--resume"]) == 0
    assert torch.load(out / "last.pt", weights_only=False)["epoch"] == 3


@pytest.mark.slow  # torchrun and two workers: about half a minute
def test_ctrl_c_on_torchrun_saves_last_pt_from_rank_0(tmp_path):
    """The terminal sends SIGINT to torchrun and both workers, torchrun then SIGINT again: the workers
    take both as one request, end the epoch together and rank 0 saves last.pt (torchrun itself then
    exits 1 with its own traceback, which is torchrun's, not ours)."""
    pytest.importorskip("torch")
    from models.common.checkpoint import load_checkpoint
    from tests.support.ddp import start_torchrun_train
    from tests.support.synthetic_data import make_crops

    data = tmp_path / "crops.npz"
    make_crops(n=120, size=48, seed=1).save(data)
    out = tmp_path / "ddp"
    proc = start_torchrun_train(data, out, epochs=100, batch_size=2, cwd=tmp_path)
    try:
        _wait_for(lambda: (out / "last.pt").exists(), proc, timeout_s=120)
        time.sleep(3.0)  # into a later epoch
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert stderr.count("launch.py train: interrupted") == 2, stderr[-3000:]  # both workers, cleanly
    assert "models/generator/train.py" not in stderr and "app/cli" not in stderr, stderr[-3000:]
    (summary,) = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]  # rank 0's
    assert summary["stopped"] == "SIGINT"
    assert load_checkpoint(out / "last.pt", "generator")["epoch"] == summary["epochs_done"] >= 1
