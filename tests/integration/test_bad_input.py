"""Bad input files: each is refused with one line that names the file and says what is wrong.

For every kind of broken file a user may hand the app (half-copied datasets, wrong image
types, damaged recordings, the wrong model files), two levels are checked:

- the API raises the right :class:`~sensors.errors.FacedepthError` subclass, in one line that
  names the file;
- the CLI, run as users run it (a subprocess: ``launch.py run --headless ...``), exits with
  code 1 and writes exactly one line on stderr naming the file, never a traceback.

Datasets with only some bad frames play on: each bad frame is skipped once, counted and listed
(file and reason) in the headless report; when every frame is bad the run ends with one clear
error. A damaged recording (random byte flips and cuts) only ever raises FormatError.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest

from models.common.errors import ModelError, VerificationError
from sensors.errors import FacedepthError, FormatError, FramesLostError
from sensors.frame import Frame
from sensors.geometry import CameraIntrinsics
from sensors.recording import Recorder, scan_mcap
from sensors.source import open_source
from tests.support.formats import biwi_depth_bin_bytes, write_biwi, write_pandora, write_photos, write_tum
from tests.support.fakes import write_tiny_generator, write_tiny_verifier

ROOT = Path(__file__).resolve().parents[2]


# -- helpers ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> Path:
    """A generator file in the exported format (tiny, fast) for the headless runs."""
    return write_tiny_generator(tmp_path_factory.mktemp("models") / "generator.onnx")


def run_cli(*args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess:
    """``launch.py ARGS`` in a fresh interpreter, as a user runs it."""
    return subprocess.run([sys.executable, str(ROOT / "launch.py"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout_s)


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str, code: int = 1) -> str:
    """Exit code ``code``, no traceback anywhere, exactly one stderr line holding every word."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == code, out
    assert "Traceback" not in out, out
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def first_error(uri: str) -> FacedepthError | None:
    """The error opening ``uri`` raises, else the first error a read raises (reading to the end)."""
    try:
        src = open_source(uri)
    except FacedepthError as exc:
        return exc
    with src:
        while True:
            try:
                src.read(timeout_s=5.0)
            except EOFError:
                return None
            except FacedepthError as exc:
                return exc


def tiny_frames(n: int) -> list[Frame]:
    """Small RGB-D frames of a grey disc at 900 mm, annotated with its centre."""
    cam = CameraIntrinsics(60.0, 60.0, 31.5, 23.5, 64, 48)
    yy, xx = np.mgrid[0:48, 0:64]
    disc = (xx - 31.5) ** 2 + (yy - 23.5) ** 2 < 12 ** 2
    out = []
    for i in range(n):
        color = np.full((48, 64, 3), 40, np.uint8)
        color[disc] = 200
        color[:4, :4] = i
        depth = np.where(disc, 880, 1500).astype(np.uint16)
        out.append(Frame(index=i, timestamp_ns=1_000_000_000 + i * 33_333_333, color=color, color_camera=cam,
                         depth_mm=depth, depth_camera=cam, head_center_mm=[0.0, 0.0, 900.0], subject_id=1,
                         source=f"tiny:{i}"))
    return out


def write_recording(path: Path, n: int) -> Path:
    with Recorder(path, color_format="png") as rec:
        for f in tiny_frames(n):
            assert rec.write(f, wait_s=5.0)
    return path


# -- the cases: (source URI, the file to blame, the error class, words of the message) ---------
@dataclass(frozen=True)
class Bad:
    uri: str
    culprit: Path
    error: type[FacedepthError]
    words: str


def _biwi(tmp: Path, frames=(3,)) -> Path:
    return write_biwi(tmp / "hpdb", {1: list(frames)}).root / "01"


def biwi_depth_truncated(tmp: Path) -> Bad:
    seq = _biwi(tmp)
    p = seq / "frame_00003_depth.bin"
    p.write_bytes(p.read_bytes()[:-7])
    return Bad(f"biwi:{seq}", p, FormatError, "truncated")


def biwi_depth_run_past_end(tmp: Path) -> Bad:
    seq = _biwi(tmp)
    p = seq / "frame_00003_depth.bin"
    data = p.read_bytes()
    p.write_bytes(data[:8] + struct.pack("<ii", 0, 10 ** 6) + data[16:])
    return Bad(f"biwi:{seq}", p, FormatError, "run length past the end")


def biwi_depth_bad_header(tmp: Path) -> Bad:
    seq = _biwi(tmp)
    p = seq / "frame_00003_depth.bin"
    p.write_bytes(struct.pack("<ii", -5, 0) + p.read_bytes()[8:])
    return Bad(f"biwi:{seq}", p, FormatError, "implausible image size -5x0")


def biwi_depth_header_disagrees_with_cal(tmp: Path) -> Bad:
    seq = _biwi(tmp)
    p = seq / "frame_00003_depth.bin"
    p.write_bytes(biwi_depth_bin_bytes(np.full((24, 32), 900, np.uint16)))  # valid, but 32x24
    return Bad(f"biwi:{seq}", p, FormatError, "depth is 32x24 but depth.cal says 64x48")


def biwi_cal_missing_lines(tmp: Path) -> Bad:
    seq = _biwi(tmp)
    p = seq / "rgb.cal"
    p.write_text("\n".join(p.read_text().splitlines()[:5]) + "\n")
    return Bad(f"biwi:{seq}", p, FormatError, "expected lines of")


def biwi_pose_with_text(tmp: Path) -> Bad:
    seq = _biwi(tmp)
    p = seq / "frame_00003_pose.txt"
    p.write_text("rotation follows\n" + p.read_text())
    return Bad(f"biwi:{seq}", p, FormatError, "not a line of numbers: 'rotation follows'")


def biwi_zero_byte_image(tmp: Path) -> Bad:
    seq = _biwi(tmp)
    p = seq / "frame_00003_rgb.png"
    p.write_bytes(b"")
    return Bad(f"biwi:{seq}", p, FormatError, "not a readable image")


def biwi_truncated_image(tmp: Path) -> Bad:
    seq = _biwi(tmp)
    p = seq / "frame_00003_rgb.png"
    p.write_bytes(p.read_bytes()[:120])
    return Bad(f"biwi:{seq}", p, FormatError, "not a readable image")


def biwi_16bit_colour_image(tmp: Path) -> Bad:
    seq = _biwi(tmp)
    p = seq / "frame_00003_rgb.png"
    assert cv2.imwrite(str(p), np.full((48, 64), 30000, np.uint16))  # a depth map where colour belongs
    return Bad(f"biwi:{seq}", p, FormatError, "found one 16-bit channel")


def photo_16bit(tmp: Path) -> Bad:
    p = tmp / "depth_not_photo.png"
    assert cv2.imwrite(str(p), np.full((30, 40), 1200, np.uint16))
    return Bad(f"images:{p}", p, FormatError, "found one 16-bit channel")


def photo_random_bytes(tmp: Path) -> Bad:
    folder = tmp / "photos"
    folder.mkdir()
    p = folder / "holiday.jpg"
    p.write_bytes(random.Random(1).randbytes(5000))
    return Bad(f"images:{folder}", p, FormatError, "not a readable image")


def video_not_a_video(tmp: Path) -> Bad:
    """Neither image nor video: OpenCV's video back end logs a warning of its own on fd 2."""
    p = tmp / "clip.dat"
    p.write_text("notes, not a video\n")
    return Bad(f"images:{p}", p, FormatError, "not an image, folder or video OpenCV can open")


def pandora_data_json_not_json(tmp: Path) -> Bad:
    root = write_pandora(tmp / "pandora", frames=2).root
    p = root / "10" / "base_1_ID10" / "data.json"
    p.write_text('[{"frame_num": 0, "orientation": ')  # cut short while copying
    return Bad(f"pandora:{root}", p, FormatError, "not valid JSON")


def pandora_data_json_lacks_fields(tmp: Path) -> Bad:
    root = write_pandora(tmp / "pandora", frames=2).root
    p = root / "10" / "base_1_ID10" / "data.json"
    p.write_text(json.dumps([{"frame_num": 0, "pose": [1, 2, 3]}, {"frame_num": 1}]))
    return Bad(f"pandora:{root}", p, FormatError, "no usable frame record")


def pandora_8bit_depth(tmp: Path) -> Bad:
    root = write_pandora(tmp / "pandora", frames=2).root
    depth_dir = root / "10" / "base_1_ID10" / "DEPTH"
    for f in depth_dir.iterdir():  # 8-bit images where 16-bit depth belongs
        assert cv2.imwrite(str(f), np.full((53, 64), 90, np.uint8))
    return Bad(f"pandora:{root}", depth_dir / "000000_DEPTH.png", FormatError, "must be one 16-bit channel")


def tum_list_points_at_missing_files(tmp: Path) -> Bad:
    info = write_tum(tmp / "tum", n=3)
    shutil.rmtree(info.root / "rgb")  # the lists were copied, the images were not
    first = f"rgb/{info.frames[0].extra['t_color']:.6f}.png"
    return Bad(f"tum:{info.root}", info.root / first, FormatError, "colour image is missing")


def tum_list_with_text(tmp: Path) -> Bad:
    info = write_tum(tmp / "tum", n=3)
    p = info.root / "rgb.txt"
    p.write_text(p.read_text() + "see the README for the images\n")
    return Bad(f"tum:{info.root}", p, FormatError, "no numeric timestamp")


def mcap_not_mcap(tmp: Path) -> Bad:
    p = tmp / "session.mcap"
    p.write_bytes(b"PK\x03\x04 a zip file renamed to .mcap" * 20)
    return Bad(f"replay:{p}", p, FormatError, "not an MCAP file")


def mcap_without_our_channels(tmp: Path) -> Bad:
    from mcap.writer import CompressionType, Writer

    p = tmp / "foreign.mcap"
    with open(p, "wb") as f:
        w = Writer(f, compression=CompressionType.NONE)
        w.start()
        sid = w.register_schema("x", "jsonschema", b"{}")
        cid = w.register_channel("/imu", "json", sid)
        for t in range(3):
            w.add_message(cid, t + 1, b"{}", t + 1)
        w.finish()
    return Bad(f"replay:{p}", p, FormatError, "not a facedepth recording")


def mcap_cut_before_the_first_frame(tmp: Path) -> Bad:
    full = write_recording(tmp / "full.mcap", 3)
    p = tmp / "cut.mcap"
    p.write_bytes(full.read_bytes()[:scan_mcap(full).chunks[0].records_offset - 1])
    return Bad(f"replay:{p}", p, FormatError, "no complete frame")


SOURCE_CASES: dict[str, Callable[[Path], Bad]] = {f.__name__: f for f in (
    biwi_depth_truncated, biwi_depth_run_past_end, biwi_depth_bad_header,
    biwi_depth_header_disagrees_with_cal, biwi_cal_missing_lines, biwi_pose_with_text, biwi_zero_byte_image,
    biwi_truncated_image, biwi_16bit_colour_image, photo_16bit, photo_random_bytes, video_not_a_video,
    pandora_data_json_not_json, pandora_data_json_lacks_fields, pandora_8bit_depth,
    tum_list_points_at_missing_files, tum_list_with_text,
    mcap_not_mcap, mcap_without_our_channels, mcap_cut_before_the_first_frame,
)}


@pytest.mark.parametrize("case", sorted(SOURCE_CASES))
def test_bad_source_file_is_one_line_naming_the_file(case, tmp_path, generator):
    bad = SOURCE_CASES[case](tmp_path)
    exc = first_error(bad.uri)
    assert isinstance(exc, bad.error), repr(exc)
    assert exc.path == str(bad.culprit) and bad.words in exc.message, str(exc)
    assert "\n" not in str(exc) and str(exc).startswith(str(bad.culprit))
    proc = run_cli("run", "--headless", "--source", bad.uri, "--max-frames", "2", "--model", str(generator))
    assert_one_line_error(proc, str(bad.culprit), bad.words)


# -- model, verifier and enrolment files ------------------------------------------------------
def _edit_onnx(src: Path, dst: Path, edit: Callable) -> Path:
    import onnx

    model = onnx.load(str(src))
    edit(model)
    onnx.save(model, str(dst))
    return dst


def _shape_64(model) -> None:
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        dims[2].dim_value, dims[3].dim_value = 64, 64  # metadata still says 100 px crops


def model_random_bytes(tmp: Path, gen: Path) -> tuple[Path, str]:
    p = tmp / "weights.onnx"
    p.write_bytes(random.Random(2).randbytes(4096))
    return p, "not a loadable ONNX model"


def model_truncated(tmp: Path, gen: Path) -> tuple[Path, str]:
    p = tmp / "half.onnx"
    data = gen.read_bytes()
    p.write_bytes(data[:len(data) // 2])
    return p, "not a loadable ONNX model"


def model_wrong_input_shape(tmp: Path, gen: Path) -> tuple[Path, str]:
    return _edit_onnx(gen, tmp / "shape64.onnx", _shape_64), "does not match (N, 3, 100, 100)"


def model_missing_metadata(tmp: Path, gen: Path) -> tuple[Path, str]:
    return _edit_onnx(gen, tmp / "bare.onnx", lambda m: m.metadata_props.clear()), "metadata lacks"


def model_is_a_verifier(tmp: Path, gen: Path) -> tuple[Path, str]:
    return write_tiny_verifier(tmp / "verifier.onnx"), "not a facedepth generator"


MODEL_CASES = {f.__name__: f for f in (model_random_bytes, model_truncated, model_wrong_input_shape,
                                       model_missing_metadata, model_is_a_verifier)}


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_bad_model_file_is_one_line_naming_the_file(case, tmp_path, generator):
    from models.generator.runtime import DepthGenerator

    path, words = MODEL_CASES[case](tmp_path, generator)
    with pytest.raises(ModelError) as info:
        DepthGenerator(path, provider="cpu")
    assert info.value.path == str(path) and words in info.value.message and "\n" not in str(info.value)
    seq = _biwi(tmp_path)
    proc = run_cli("run", "--headless", "--source", f"biwi:{seq}", "--max-frames", "2", "--model", str(path))
    assert_one_line_error(proc, str(path), words)


def test_bad_verifier_file_is_one_line_naming_the_file(tmp_path, generator):
    from models.verifier.runtime import Verifier

    p = tmp_path / "verifier.onnx"
    p.write_bytes(random.Random(3).randbytes(3000))
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        Verifier(p)
    not_a_verifier = tmp_path / "generator_as_verifier.onnx"
    shutil.copy(generator, not_a_verifier)
    with pytest.raises(ModelError, match="not a facedepth verifier"):
        Verifier(not_a_verifier)
    seq = _biwi(tmp_path)
    for path, words in ((p, "not a loadable ONNX model"), (not_a_verifier, "not a facedepth verifier")):
        proc = run_cli("run", "--headless", "--source", f"biwi:{seq}", "--max-frames", "2", "--model",
                       str(generator), "--verifier", str(path))
        assert_one_line_error(proc, str(path), words)


def test_enrolment_from_another_verifier_is_refused_naming_the_file(tmp_path):
    """The API level (``run --enrolment`` and the GUI's Load enrolment show this message; their
    one-line CLI errors are in tests/integration/test_enrolment_use.py)."""
    from models.verifier.runtime import Enrolment, Verifier

    mine = Verifier(write_tiny_verifier(tmp_path / "mine.onnx", seed=0))
    other = Verifier(write_tiny_verifier(tmp_path / "other.onnx", seed=1))
    crops = np.random.default_rng(0).integers(1, 256, (3, 100, 100), dtype=np.uint8)
    path = tmp_path / "anna.json"
    Enrolment.create("anna", "true-depth", other, crops).save(path)
    assert Enrolment.load(path, other).name == "anna"  # fine with its own verifier
    for load in (lambda: mine.load_enrolment(path), lambda: Enrolment.load(path, mine)):
        with pytest.raises(VerificationError) as info:
            load()
        msg = str(info.value)
        assert msg.startswith(str(path)) and "another verifier" in msg and "other.onnx" in msg
        assert "\n" not in msg
    path.write_text(path.read_text()[:50])  # a half-written enrolment
    with pytest.raises(FormatError, match="not a readable enrolment file") as info:
        Enrolment.load(path, mine)
    assert info.value.path == str(path)


# -- datasets with some bad frames ------------------------------------------------------------
def some_bad_biwi(tmp: Path) -> tuple[str, int, Path, str]:
    seq = _biwi(tmp, frames=(3, 4, 7))
    p = seq / "frame_00004_depth.bin"
    p.write_bytes(p.read_bytes()[:100])
    return f"biwi:{seq}", 3, p, "truncated"


def some_bad_pandora(tmp: Path) -> tuple[str, int, Path, str]:
    root = write_pandora(tmp / "pandora", frames=3).root
    p = root / "10" / "base_1_ID10" / "RGB" / "000001_RGB.png"
    p.write_bytes(b"")
    return f"pandora:{root}", 3, p, "not a readable image"


def some_bad_tum(tmp: Path) -> tuple[str, int, Path, str]:
    info = write_tum(tmp / "tum", n=4)
    p = info.root / "depth" / f"{info.frames[2].extra['t_depth']:.6f}.png"
    p.unlink()
    return f"tum:{info.root}", 4, p, "depth image is missing"


def some_bad_photos(tmp: Path) -> tuple[str, int, Path, str]:
    info = write_photos(tmp / "photos", names=("a1.png", "a2.png", "a3.png"))
    p = info.root / "a2.png"
    p.write_bytes(p.read_bytes()[:60])
    return f"images:{info.root}", 3, p, "not a readable image"


def some_bad_recording(tmp: Path) -> tuple[str, int, Path, str]:
    p = write_recording(tmp / "session.mcap", 5)
    chunk = scan_mcap(p).chunks[2]  # one chunk per frame: damage frame 2's
    data = bytearray(p.read_bytes())
    mid = chunk.records_offset + chunk.records_length // 2
    data[mid:mid + 16] = bytes(b ^ 0x5A for b in data[mid:mid + 16])
    p.write_bytes(bytes(data))
    return f"replay:{p},pace=off", 5, p, "chunk 2 is damaged"


def some_bad_truncated_jpeg(tmp: Path) -> tuple[str, int, Path, str]:
    """A half-copied JPEG: libjpeg would pad it with grey and print "Premature end of JPEG file"."""
    info = write_photos(tmp / "photos", names=("a1.jpg", "a2.jpg", "a3.jpg"), width=160, height=120)
    p = info.root / "a2.jpg"
    p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2])
    return f"images:{info.root}", 3, p, "truncated JPEG"


SOME_BAD = {f.__name__: f for f in (some_bad_biwi, some_bad_pandora, some_bad_tum, some_bad_photos,
                                    some_bad_recording, some_bad_truncated_jpeg)}


@pytest.mark.parametrize("case", sorted(SOME_BAD))
def test_bad_frames_are_skipped_counted_and_listed_and_the_run_goes_on(case, tmp_path, generator):
    uri, n, culprit, words = SOME_BAD[case](tmp_path)
    # the source raises FormatError for the bad frame once, then delivers the next frame
    events = []
    with open_source(uri) as src:
        while True:
            try:
                events.append(src.read(timeout_s=5.0).index)
            except EOFError:
                break
            except FormatError as exc:
                assert exc.path == str(culprit) and words in exc.message, str(exc)
                events.append("bad")
    assert len(events) == n and events.count("bad") == 1, events
    bad_at = events.index("bad")
    assert [e for e in events if e != "bad"] == [i for i in range(n) if i != bad_at]
    # the headless run goes on past it and lists it in the report
    report_path = tmp_path / "report.json"
    proc = run_cli("run", "--headless", "--source", uri, "--model", str(generator),
                   "--report", str(report_path))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    report = json.loads(report_path.read_text())
    assert report["frames"] == n - 1
    assert report["skipped"]["reasons"]["unreadable frame"] == 1
    (entry,) = report["skipped"]["bad_frames"]
    assert entry["file"] == str(culprit) and words in entry["reason"]


# -- files that lost a stretch of frames: counted, named, and the run goes on ---------------------
def _truncated_video(tmp: Path) -> tuple[str, Path, int]:
    """A 60-frame MJPG video cut in half, as a copy that stopped midway leaves it."""
    p = tmp / "clip.avi"
    writer = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(60):
        writer.write(np.full((48, 64, 3), (i * 4) % 256, np.uint8))
    writer.release()
    p.write_bytes(p.read_bytes()[:p.stat().st_size // 2])
    return f"images:{p},pace=off", p, 60


def _overwritten_recording(tmp: Path) -> tuple[str, Path, int]:
    """A 30-frame recording with its middle fifth overwritten by random bytes (a bad disk sector
    run, a stray write): several whole chunks and their indexes are gone."""
    p = write_recording(tmp / "session.mcap", 30)
    data = bytearray(p.read_bytes())
    a, b = len(data) * 2 // 5, len(data) * 3 // 5
    data[a:b] = random.Random(5).randbytes(b - a)
    p.write_bytes(bytes(data))
    return f"replay:{p},pace=off", p, 30


LOST_STRETCH = {"truncated_video": _truncated_video, "overwritten_recording": _overwritten_recording}


@pytest.mark.parametrize("case", sorted(LOST_STRETCH))
def test_a_lost_stretch_of_frames_is_counted_named_and_the_run_goes_on(case, tmp_path, generator):
    uri, culprit, promised = LOST_STRETCH[case](tmp_path)
    frames, losses = [], []
    with open_source(uri) as src:
        while True:
            try:
                frames.append(src.read(timeout_s=5.0).index)
            except EOFError:
                break
            except FramesLostError as exc:
                assert exc.path == str(culprit) and "lost" in exc.message and "\n" not in str(exc), str(exc)
                losses.append(exc)
    assert len(losses) == 1 and 0 < len(frames) < promised, (frames, losses)
    (loss,) = losses
    assert loss.span_s is not None and loss.span_s > 0
    if case == "truncated_video":  # the container's frame count makes it exact
        assert loss.frames == promised - len(frames) and frames == list(range(len(frames)))
    else:  # a recording's loss is sized by time: within a frame of the truth
        assert abs(loss.frames - (promised - len(frames))) <= 1
        assert frames == list(range(len(frames)))  # the frames after the damage play on
    report_path = tmp_path / "report.json"
    proc = run_cli("run", "--headless", "--source", uri, "--model", str(generator), "--report", str(report_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr.strip() == "", proc.stderr  # no decoder chatter, no traceback
    report = json.loads(report_path.read_text())
    assert report["frames"] == len(frames)
    assert report["skipped"]["lost"] == {"frames": loss.frames, "span_s": round(loss.span_s, 3), "stretches": 1}
    (entry,) = report["skipped"]["bad_frames"]
    assert entry["file"] == str(culprit) and entry["frames"] == loss.frames
    assert "lost to file damage" in proc.stdout and f"{loss.frames} frames" in proc.stdout


def test_the_app_s_threaded_pipeline_steps_over_a_lost_stretch_and_says_so(tmp_path, generator):
    """The GUI's controller: a damaged recording plays on past the damage (it used to end the
    stream there), with a notice naming the file and the loss."""
    import time

    import app.controller as ctl

    uri, culprit, _ = _overwritten_recording(tmp_path)
    with open_source(uri) as src:
        n = len(src)
    c = ctl.Controller(generator, tmp_path / "out", verifier_path=tmp_path / "none.onnx")
    seen: list = []
    c.events.subscribe(seen.append)
    try:
        c.open_source(uri)
        deadline = time.monotonic() + 20
        while not c.pipeline.finished.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert c.pipeline.finished.is_set() and c.pipeline.error is None, c.pipeline.error
        assert c.pipeline.frames_processed == n
        notes = [e.text for e in seen if isinstance(e, ctl.Notice) and e.text.startswith("Skipped")]
        assert len(notes) == 1 and str(culprit) in notes[0] and "lost" in notes[0], notes
        assert c.pipeline.frames_skipped >= 1
    finally:
        c.close()


def test_a_truncated_jpeg_keeps_libjpeg_off_the_console(tmp_path, generator):
    uri, _, culprit, _ = some_bad_truncated_jpeg(tmp_path)
    proc = run_cli("run", "--headless", "--source", uri, "--model", str(generator))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "JPEG" not in proc.stderr and proc.stderr.strip() == "", proc.stderr


def test_a_dataset_where_every_frame_is_bad_ends_with_one_clear_error(tmp_path, generator):
    seq = _biwi(tmp_path, frames=(3, 4, 7))
    for p in seq.glob("frame_*_depth.bin"):
        p.write_bytes(p.read_bytes()[:-3])
    proc = run_cli("run", "--headless", "--source", f"biwi:{seq}", "--model", str(generator))
    line = assert_one_line_error(proc, str(seq / "frame_00003_depth.bin"), "every frame was unreadable (3)")
    assert "truncated" in line


# -- damaged recordings: only FormatError, whatever the damage --------------------------------
def test_randomly_damaged_recordings_only_ever_raise_format_errors(tmp_path):
    good = write_recording(tmp_path / "good.mcap", 4).read_bytes()
    rng = random.Random(0)
    opened = frames_read = 0
    for trial in range(120):
        data = bytearray(good)
        for _ in range(rng.choice((1, 3, 8))):
            data[rng.randrange(8, len(data))] = rng.randrange(256)
        if trial % 3 == 0:
            data = data[:rng.randrange(8, len(data))]
        p = tmp_path / f"damaged{trial % 2}.mcap"
        p.write_bytes(bytes(data))
        try:
            src = open_source(f"replay:{p},pace=off")
        except FormatError as exc:
            assert exc.path == str(p) and "\n" not in str(exc)
            continue
        opened += 1
        with src:
            outcomes = losses = 0
            while True:
                try:
                    frame = src.read(timeout_s=1.0)
                    frames_read += 1
                    assert frame.color.shape == (48, 64, 3)
                except FramesLostError as exc:  # a damaged stretch stepped over: said once, not a frame
                    assert exc.path == str(p) and "\n" not in str(exc)
                    losses += 1
                except FormatError as exc:
                    assert exc.path == str(p)
                except EOFError:
                    break
                outcomes += 1
            assert outcomes - losses == len(src) <= 4
    assert opened > 20 and frames_read > 40  # most damage leaves most frames readable
    assert os.path.getsize(tmp_path / "good.mcap") == len(good)
