"""Sensor faults, recording safety and shutdown: clear errors within 2 s, nothing lost, no hangs.

- A source that stops delivering (the fake Kinect unplugged, the webcam gone, a fake sensor that
  stalls, hangs in its driver, or raises) ends the stream with a clear error within 2 s of its
  last frame, in the threaded pipeline and in the headless run (measured).
- Frames of the wrong size or dtype are refused with a message naming the field.
- A recording whose disk fills up (a file object whose writes fail with ENOSPC after N bytes)
  replays every frame the recorder counted as written, and a recording killed with SIGKILL
  from the ``record`` command replays every frame in it; the recorder never leaves a file the
  reader refuses.
- Ctrl-C (SIGINT) stops ``launch.py record`` and ``launch.py run --headless`` on a live source
  within 2 s, with every thread stopped, the recording finalised, one line and exit code 130.
  (Closing the GUI is covered in tests/gui/test_gui.py.)

The child processes run launch.py through a small wrapper that adds the test sources
(``fault:`` below, ``fake:`` from tests/support/fakes.py) and, on request, the fake
pylibfreenect2 and the list of threads still alive when ``main`` returns.
"""
from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import sensors.recording.writer as recording_writer
from app.pipeline import Pipeline
from sensors.errors import FacedepthError, FormatError, SensorError, SourceLostError
from sensors.frame import Frame
from sensors.geometry import CameraIntrinsics
from sensors.recording import Recorder, scan_mcap
from sensors.source import Options, Source, SourceURI, open_source
from tests.support.fakes import FakeRGBDSource, SlowGenerator, write_tiny_generator
from tests.support.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]
#: the limit: a lost source ends the stream within this many seconds of its last frame
#: (docs/design.md, "Targets")
LOST_LIMIT_S = 2.0


class FaultySource(Source):
    """A live fake sensor that misbehaves on cue: ``fault:mode=MODE,after=N[,stamp=FILE]``.

    Delivers N annotated RGB-D frames (those of tests/support/fakes.py) at about 100 Hz, then
    by mode: ``stall`` no frame ever again (reads wait out their timeout: a frozen sensor);
    ``hang`` read() blocks, ignoring its timeout, until the source is closed (a driver call that
    never returns); ``raise`` read() raises SensorError (the driver reports a failure); ``crash``
    read() raises RuntimeError (a bug in a binding); ``badframe`` the frames come with float32
    depth (the Frame contract refuses them); ``ok`` never fails. ``fault_at`` (and the file
    ``stamp``, for a parent process) is the monotonic time the last good frame was delivered.
    """

    is_live = True
    lost_after_s = 1.5  # as the real sensors (Kinect v2, webcam)

    def __init__(self, uri: SourceURI) -> None:
        super().__init__(uri)
        opts = Options(uri)
        self.mode = opts.str("mode", "ok")
        self.after = opts.int("after", 10)
        self.stamp = opts.str("stamp", None)
        opts.finish()
        assert self.mode in ("ok", "stall", "hang", "raise", "crash", "badframe"), self.mode
        self._inner = FakeRGBDSource(SourceURI("fake", None, {"n": "1000000000"}))
        self._released = threading.Event()
        self.delivered = 0
        self.fault_at: float | None = None

    def _open(self) -> None:
        self._inner.open()

    def _read(self, timeout_s: float) -> Frame:
        if self.mode == "ok" or self.delivered < self.after:
            time.sleep(0.01)
            frame = dataclasses.replace(self._inner.read(), timestamp_ns=time.monotonic_ns())
            self.delivered += 1
            if self.delivered == self.after and self.mode != "ok":
                self.fault_at = time.monotonic()
                if self.stamp:
                    Path(self.stamp).write_text(repr(self.fault_at))
            return frame
        if self.mode == "stall":
            time.sleep(timeout_s)
            raise TimeoutError("no frame")
        if self.mode == "hang":
            self._released.wait()
            raise EOFError("closed while hanging")
        if self.mode == "raise":
            raise SensorError("the fake driver reports a USB transfer error", path=str(self.uri))
        if self.mode == "crash":
            raise RuntimeError("fake binding crashed")
        good = self._inner.read()
        return Frame(index=good.index, timestamp_ns=time.monotonic_ns(), color=good.color,
                     color_camera=good.color_camera, depth_mm=good.depth_mm.astype(np.float32),
                     depth_camera=good.depth_camera)

    def _close(self) -> None:
        self._released.set()
        self._inner.close()


def faulty(mode: str, after: int = 8) -> FaultySource:
    return FaultySource(SourceURI("fault", None, {"mode": mode, "after": str(after)})).open()


def _pipeline_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("facedepth-") and t.is_alive()]


def _run_until_the_stream_ends(pipeline: Pipeline, fault_at, budget_s: float = 6.0) -> float:
    """Start, wait until the stream ends; seconds from the fault to the end of the stream."""
    pipeline.start()
    try:
        assert pipeline.finished.wait(budget_s), "the stream did not end"
        ended = time.monotonic()
        t0 = fault_at() if callable(fault_at) else fault_at
        assert t0 is not None
        return ended - t0
    finally:
        t_stop = time.monotonic()
        pipeline.stop()
        assert time.monotonic() - t_stop < 2.0


# -- sensor faults in the threaded pipeline -----------------------------------------------------
@pytest.mark.parametrize("mode, error, words", [
    ("stall", SourceLostError, "no frame for 1.5 s"),
    ("hang", SourceLostError, "stopped responding"),
    ("raise", SensorError, "USB transfer error"),
    ("crash", FacedepthError, "RuntimeError: fake binding crashed"),
    ("badframe", SensorError, "depth_mm must be uint16, got float32"),
])
def test_a_failing_source_ends_the_threaded_stream_with_a_clear_error_within_2_s(mode, error, words, capsys):
    src = faulty(mode)
    pipeline = Pipeline(src, [SlowGenerator()])
    try:
        elapsed = _run_until_the_stream_ends(pipeline, lambda: src.fault_at)
    finally:
        src.close()
    print(f"{mode}: stream ended {elapsed:.2f} s after the last good frame")
    assert isinstance(pipeline.error, error), repr(pipeline.error)
    assert words in str(pipeline.error) and "\n" not in str(pipeline.error)
    assert elapsed < LOST_LIMIT_S, elapsed
    assert pipeline.frames_processed >= 1
    time.sleep(0.05)  # the hung capture thread returns once the source is closed
    assert _pipeline_threads() == []


def test_unplugging_the_kinect_ends_the_threaded_stream_within_2_s(fake_freenect):
    src = open_source("kinect:")
    pipeline = Pipeline(src, [SlowGenerator()])
    unplugged: list[float] = []

    def unplug_after_frames() -> None:
        while pipeline.frames_read < 5 and not pipeline.finished.is_set():
            time.sleep(0.01)
        unplugged.append(time.monotonic())
        fake_freenect.WORLD.unplugged.set()

    threading.Thread(target=unplug_after_frames, daemon=True).start()
    try:
        elapsed = _run_until_the_stream_ends(pipeline, lambda: unplugged[0] if unplugged else None,
                                             budget_s=15.0)
    finally:
        t0 = time.monotonic()
        src.close()
        assert time.monotonic() - t0 < 2.5
    assert isinstance(pipeline.error, SourceLostError) and "kinect:012345678912" in str(pipeline.error)
    assert elapsed < LOST_LIMIT_S, elapsed


def test_a_webcam_gone_ends_the_threaded_stream_within_2_s(monkeypatch):
    import sensors.devices.webcam as webcam
    from tests.unit.test_webcam import FakeCamera

    cam = FakeCamera(period_s=0.02, width=64, height=48)
    monkeypatch.setattr(webcam, "_open_capture", lambda target: cam)
    src = open_source("webcam:0")
    pipeline = Pipeline(src, [SlowGenerator()])
    gone: list[float] = []

    def unplug_after_frames() -> None:
        while pipeline.frames_read < 5 and not pipeline.finished.is_set():
            time.sleep(0.01)
        gone.append(time.monotonic())
        cam.unplugged.set()

    threading.Thread(target=unplug_after_frames, daemon=True).start()
    try:
        elapsed = _run_until_the_stream_ends(pipeline, lambda: gone[0] if gone else None)
    finally:
        src.close()
    assert isinstance(pipeline.error, SourceLostError) and "webcam:0" in str(pipeline.error)
    assert elapsed < LOST_LIMIT_S, elapsed
    assert cam.released


def test_a_webcam_sending_malformed_images_is_refused_by_name(monkeypatch):
    import sensors.devices.webcam as webcam
    from tests.unit.test_webcam import FakeCamera

    class GreyCamera(FakeCamera):
        def read(self):
            time.sleep(self.period_s)
            return True, np.zeros(self.size, np.uint16)  # one 16-bit channel, not BGR

    monkeypatch.setattr(webcam, "_open_capture", lambda target: GreyCamera())
    with open_source("webcam:0") as src:
        t0 = time.monotonic()
        with pytest.raises(SourceLostError,
                           match=r"only malformed images \(uint16 24x32; expected HxWx3 uint8\)"):
            while True:
                try:
                    src.read(timeout_s=1.0)
                except TimeoutError:
                    pass
        assert time.monotonic() - t0 < LOST_LIMIT_S


def test_frames_of_the_wrong_size_or_dtype_are_refused_naming_the_field():
    cam = CameraIntrinsics(50.0, 50.0, 15.5, 11.5, 32, 24)
    good = {"index": 0, "timestamp_ns": 1, "color": np.zeros((24, 32, 3), np.uint8), "color_camera": cam}
    cases = [
        ({"color": np.zeros((24, 32, 3), np.float32)}, "color must be uint8, got float32"),
        ({"color": np.zeros((24, 32), np.uint8)}, "color must be HxWx3"),
        ({"color": np.zeros((24, 32, 4), np.uint8)}, "color must be HxWx3"),
        ({"color": np.zeros((48, 64, 3), np.uint8)}, "colour image is 64x48 but its camera says 32x24"),
        ({"depth_mm": np.zeros((24, 32), np.float32), "depth_camera": cam}, "depth_mm must be uint16"),
        ({"depth_mm": np.zeros((12, 16), np.uint16), "depth_camera": cam},
         "depth_mm is 16x12 but its camera"),
        ({"depth_mm": np.zeros((24, 32), np.uint16)}, "has depth_mm but no depth_camera"),
        ({"color": [[1, 2, 3]]}, "must be a numpy array"),
        ({"head_center_mm": [0.0, np.nan, 800.0]}, "head_center_mm must be 3 finite numbers"),
    ]
    for change, words in cases:
        with pytest.raises(SensorError) as info:
            Frame(**{**good, **change})
        assert words in str(info.value) and "\n" not in str(info.value), (change, str(info.value))


# -- sensor faults in the headless run (a subprocess) ------------------------------------------
WRAPPER = textwrap.dedent("""
    import json, os, signal, sys, threading, time
    # Ctrl-C as from a terminal, even when this test run was started in the background (a
    # non-interactive shell starts background jobs with SIGINT ignored, and children inherit it)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, {root!r})
    from sensors.source import SOURCE_SCHEMES
    SOURCE_SCHEMES["fault"] = "tests.integration.test_faults:FaultySource"
    SOURCE_SCHEMES["fake"] = "tests.support.fakes:FakeRGBDSource"
    stamp = os.environ.get("FAULT_STAMP")
    if os.environ.get("FAKE_KINECT_UNPLUG_AFTER"):
        import tests.support.pylibfreenect2 as fake
        sys.modules["pylibfreenect2"] = fake
        def unplug():
            n = int(os.environ["FAKE_KINECT_UNPLUG_AFTER"])
            while not (fake.WORLD.opened and fake.WORLD.opened[0]._color_listener is not None
                       and fake.WORLD.opened[0]._color_listener.delivered >= n):
                time.sleep(0.01)
            open(stamp, "w").write(repr(time.monotonic()))
            fake.WORLD.unplugged.set()
        threading.Thread(target=unplug, daemon=True).start()
    import launch
    rc = launch.main(sys.argv[1:])
    if os.environ.get("THREADS_FILE"):
        alive = [t.name for t in threading.enumerate()
                 if t is not threading.current_thread() and t.is_alive()]
        open(os.environ["THREADS_FILE"], "w").write(json.dumps(alive))
    sys.exit(rc)
""").format(root=str(ROOT))


def launch_wrapped(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRAPPER, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> Path:
    return write_tiny_generator(tmp_path_factory.mktemp("models") / "generator.onnx")


@pytest.mark.parametrize("source, words", [
    ("fault:mode=stall,after=20", "no frame for 1.5 s"),
    ("fault:mode=hang,after=20", "stopped responding"),
    ("kinect:", "the Kinect v2 sent no frames for 1.5 s"),
])
def test_a_lost_source_ends_the_headless_run_with_one_line_within_2_s(source, words, tmp_path, generator):
    stamp = tmp_path / "fault_at"
    env = {"FAULT_STAMP": str(stamp), "THREADS_FILE": str(tmp_path / "threads.json")}
    if source.startswith("kinect"):
        env["FAKE_KINECT_UNPLUG_AFTER"] = "10"
    else:
        source += f",stamp={stamp}"
    proc = launch_wrapped("run", "--headless", "--source", source, "--model", str(generator), env=env)
    try:
        line = proc.stderr.readline()  # the error line: its arrival is the end of the run's stream
        t_line = time.monotonic()
        rest_err = proc.stderr.read()
        out = proc.stdout.read()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, (line, rest_err, out)
    assert "Traceback" not in line + rest_err and rest_err == "", rest_err
    assert line.startswith("launch.py run: error: ") and words in line, line
    elapsed = t_line - float(stamp.read_text())
    print(f"{source}: error line {elapsed:.2f} s after the last frame / unplug")
    assert 0 < elapsed < LOST_LIMIT_S, elapsed
    alive = [t for t in json.loads((tmp_path / "threads.json").read_text())
             if t.startswith(("facedepth-", "kinect-", "webcam-"))]
    # a capture thread blocked in a driver call that never returns is left behind (a daemon thread)
    assert alive == (["facedepth-capture"] if "hang" in source and alive else []), alive


# -- recording safety ---------------------------------------------------------------------------
class FillingFile:
    """A file on a disk with ``room`` bytes left: the write that crosses the limit writes what fits
    and raises OSError(ENOSPC), as write(2) on a full file system does."""

    def __init__(self, path: str, room: int) -> None:
        self._f = open(path, "wb", buffering=0)  # noqa: SIM115 - closed by close()
        self.name = path
        self.room = room

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self.room:
            if self.room > 0:
                self._f.write(data[:self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.name)
        self.room -= len(data)
        return self._f.write(data)

    def tell(self) -> int:
        return self._f.tell()

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self._f.fileno()

    def close(self) -> None:
        self._f.close()


def _frames(n: int) -> list[Frame]:
    cam = CameraIntrinsics(50.0, 50.0, 31.5, 23.5, 64, 48)
    rng = np.random.default_rng(5)
    return [Frame(index=i, timestamp_ns=10**9 + i * 33_333_333, color_camera=cam, depth_camera=cam,
                  color=rng.integers(0, 256, (48, 64, 3), np.uint8),
                  depth_mm=rng.integers(400, 4000, (48, 64)).astype(np.uint16),
                  head_center_mm=[1.0, 2.0, 900.0 + i], subject_id=7) for i in range(n)]


def _sizes(tmp_path: Path) -> tuple[int, int]:
    """Bytes of a recording's start (header, schemas, metadata) and of one frame."""
    p = tmp_path / "probe.mcap"
    rec = Recorder(p, color_format="png")
    start = os.path.getsize(rec.partial_path)  # written under this name until the first frame is in
    for f in _frames(3):
        rec.write(f, wait_s=5.0)
    rec.close()
    ends = [c.records_offset + c.records_length for c in scan_mcap(p).chunks]
    return start, ends[2] - ends[1]


@pytest.mark.parametrize("room", ["start", "first frame", "frame 3", "frame 7"])
def test_a_full_disk_keeps_every_frame_written_before_it(room, tmp_path, monkeypatch):
    start, per_frame = _sizes(tmp_path)
    limit = {"start": start // 2, "first frame": start + per_frame // 2,
             "frame 3": start + int(3.5 * per_frame), "frame 7": start + int(7.3 * per_frame)}[room]
    path = tmp_path / "full.mcap"
    partial = tmp_path / "full.mcap.partial"  # the recorder's name for the file until its first frame
    real_open = open

    def full_disk_open(file, mode="r", *args, **kwargs):
        if "w" in mode and os.fspath(file) == str(partial):
            return FillingFile(str(partial), limit)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(recording_writer, "open", full_disk_open, raising=False)
    frames = _frames(12)
    if room == "start":
        with pytest.raises(FormatError, match="cannot write the recording .No space left on device") as info:
            Recorder(path, color_format="png")
        assert info.value.path == str(path) and not path.exists() and not partial.exists()  # no file left
        return
    rec = Recorder(path, color_format="png")
    accepted = sum(rec.write(f, wait_s=5.0) for f in frames)
    stats = rec.close()
    monkeypatch.undo()
    assert stats.error is not None and "No space left on device" in stats.error and str(path) in stats.error
    assert stats.frames_written + stats.frames_dropped == 12 and accepted <= 12
    if stats.frames_written == 0:
        assert room == "first frame" and not path.exists() and not partial.exists()  # no file left behind
        return
    with open_source(f"replay:{path},pace=off") as src:
        back = list(src)
        assert src.describe()["complete"] is False
    # every frame counted as written replays exactly (a frame whose chunk landed but whose index
    # did not may replay too)
    assert stats.frames_written <= len(back) <= stats.frames_written + 1, (stats, len(back))
    for a, b in zip(frames, back):
        assert a.timestamp_ns == b.timestamp_ns
        np.testing.assert_array_equal(a.color, b.color)
        np.testing.assert_array_equal(a.depth_mm, b.depth_mm)


def test_a_record_command_killed_mid_write_replays_every_frame_in_the_file(tmp_path):
    out = tmp_path / "killed.mcap"
    proc = launch_wrapped("record", "--source", "fake:live=on,fps=60,n=100000", "--out", str(out),
                          "--color-format", "png")
    try:
        deadline = time.monotonic() + 60
        chunks = 0
        while time.monotonic() < deadline and chunks < 15:
            time.sleep(0.2)
            if out.exists() and out.stat().st_size > 0:
                chunks = len(scan_mcap(out).chunks)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL and chunks >= 15
    with open_source(f"replay:{out},pace=off") as src:
        n = len(src)
        back = list(src)
        assert src.describe()["complete"] is False
    assert n >= chunks and len(back) == n  # every frame the file holds replays, none refused
    assert [f.index for f in back] == list(range(n))
    marks = [int(f.color[0, 0, 0]) for f in back[:100]]  # fake frame k carries k % 256 (drops may skip some)
    assert all(a < b for a, b in zip(marks, marks[1:])), marks


# -- Ctrl-C ----------------------------------------------------------------------------------------
#: the threads of the pipeline, the recorder and the sensors; a virtual Kinect's background
#: sequence build (pure computation, no device or file) may still be finishing when main returns:
#: a daemon thread that ends with the process
PIPELINE_THREADS = ("facedepth-", "kinect-", "webcam-")


def _interrupt(proc: subprocess.Popen) -> tuple[float, str, str]:
    """SIGINT; seconds until the process exits, and its output."""
    return stop_process(proc, signal.SIGINT, timeout_s=15)


def _wait_for(predicate, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "the child never got going"
        time.sleep(0.1)


#: live sources for the Ctrl-C tests: a cheap fake sensor by default, the virtual Kinect (Kinect
#: v2-sized frames, background sequence builds) in the slow run
LIVE_SOURCES = [pytest.param("fake:live=on,fps=30,n=1000000", id="fake"),
                pytest.param("virtual:seed=0", id="virtual", marks=pytest.mark.slow)]


@pytest.mark.parametrize("source", LIVE_SOURCES)
def test_ctrl_c_stops_a_recording_within_2_s_and_finalises_it(source, tmp_path):
    out = tmp_path / "session.mcap"
    threads = tmp_path / "threads.json"
    proc = launch_wrapped("record", "--source", source, "--out", str(out), env={"THREADS_FILE": str(threads)})
    _wait_for(lambda: out.exists() and len(scan_mcap(out).chunks) >= 10)
    elapsed, stdout, stderr = _interrupt(proc)
    print(f"record: exited {elapsed:.2f} s after SIGINT")
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stdout + stderr and stderr == ""
    (line,) = stdout.strip().splitlines()
    assert line.startswith("recorded ") and line.endswith("stopped by Ctrl-C") and str(out) in line
    written = int(line.split()[1])
    assert elapsed < 2.0, elapsed
    assert not [t for t in json.loads(threads.read_text()) if t.startswith(PIPELINE_THREADS)]
    with open_source(f"replay:{out},pace=off") as src:  # finalised: complete, every frame replays
        assert src.describe()["complete"] is True
        assert len(src) == written >= 10
        assert sum(1 for _ in src) == written


@pytest.mark.parametrize("source", LIVE_SOURCES)
def test_ctrl_c_stops_a_headless_run_on_a_live_source_within_2_s(source, tmp_path, generator):
    saved = tmp_path / "crops"
    threads = tmp_path / "threads.json"
    proc = launch_wrapped("run", "--headless", "--source", source, "--model", str(generator),
                          "--save", str(saved), env={"THREADS_FILE": str(threads)})
    _wait_for(lambda: saved.exists() and len(list(saved.glob("*_pred.png"))) >= 5)
    elapsed, stdout, stderr = _interrupt(proc)
    print(f"run --headless: exited {elapsed:.2f} s after SIGINT")
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stdout + stderr
    assert stderr.strip().splitlines() == ["launch.py run: interrupted"]
    assert elapsed < 2.0, elapsed
    assert not [t for t in json.loads(threads.read_text()) if t.startswith(PIPELINE_THREADS)]
