"""MCAP recording and replay: round trips, seeking, pacing, crash safety, drops, throughput, CLI."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from sensors import ConfigError, FormatError, open_source
from sensors.frame import Frame
from sensors.geometry import CameraIntrinsics, Extrinsics
from sensors.recording import (
    TOPIC_COLOR, TOPIC_DEPTH, TOPIC_FRAME, Recorder, rotation_to_quaternion, scan_mcap,
)
from tests.support.formats import write_biwi

ROOT = Path(__file__).resolve().parents[2]
CC = CameraIntrinsics(1081.37, 1081.37, 959.5, 539.5, 1920, 1080)
DC = CameraIntrinsics(365.456, 365.456, 254.878, 205.395, 512, 424, (0.0905, -0.2695, 0.0, 0.0, 0.0953))


def small_frames(n, seed=0, with_depth=True):
    rng = np.random.default_rng(seed)
    cc = CameraIntrinsics(50.0, 50.0, 15.5, 11.5, 32, 24)
    dc = CameraIntrinsics(40.123456789, 40.1, 9.5, 7.25, 20, 16, (0.1, -0.2, 0.001, 0.0, 0.3))
    ext = Extrinsics(np.array([[0.99995, -0.01, 0.0], [0.01, 0.99995, 0.0], [0.0, 0.0, 1.0]]), [52.1, -0.3, 1.7])
    out = []
    for i in range(n):
        out.append(Frame(
            index=i, timestamp_ns=1_000_000_000 + i * 33_333_333 + (i % 3), color=rng.integers(0, 256, (24, 32, 3), np.uint8),
            color_camera=cc, depth_mm=rng.integers(0, 4500, (16, 20)).astype(np.uint16) if with_depth else None,
            depth_camera=dc if with_depth else None, depth_to_color=ext if with_depth else Extrinsics.identity(),
            head_center_mm=[0.1 * i + 1 / 3, -20.0 / 7, 900.0 + i * np.pi] if i % 4 != 3 else None,
            head_rotation=np.eye(3) + 1e-9 * i if i % 2 == 0 else None,
            subject_id=[3, "anna", None][i % 3],
            depth_clean_mm=rng.integers(0, 4500, (16, 20)).astype(np.uint16) if with_depth and i % 2 else None,
            source=f"test:{i}"))
    return out


def record(path, frames, **kw):
    with Recorder(path, **kw) as rec:
        for f in frames:
            assert rec.write(f, wait_s=5.0)
    return rec


def assert_same(a: Frame, b: Frame, exact_color=True):
    assert a.timestamp_ns == b.timestamp_ns and a.subject_id == b.subject_id and a.source == b.source
    if exact_color:
        np.testing.assert_array_equal(a.color, b.color)
    for name in ("depth_mm", "depth_clean_mm", "head_center_mm", "head_rotation"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name  # bit-exact
    assert a.color_camera == b.color_camera and a.depth_camera == b.depth_camera
    assert a.depth_to_color.rotation.tobytes() == b.depth_to_color.rotation.tobytes()
    assert a.depth_to_color.translation_mm.tobytes() == b.depth_to_color.translation_mm.tobytes()


def test_round_trip_is_bit_exact_for_depth_annotations_and_png_colour(tmp_path):
    frames = small_frames(8)
    rec = record(tmp_path / "r.mcap", frames, color_format="png")
    assert (rec.frames_written, rec.frames_dropped) == (8, 0)
    with open_source(f"replay:{tmp_path / 'r.mcap'},pace=off") as src:
        back = list(src)
        d = src.describe()
    assert len(back) == 8 and d["complete"] and d["recovered"] is None
    for a, b in zip(frames, back):
        assert_same(a, b)
    assert [f.index for f in back] == list(range(8))


def test_jpeg_colour_is_close_and_colour_only_frames_replay(tmp_path):
    frames = small_frames(3, with_depth=False)
    for f in frames:
        f.color[:] = np.uint8(120)  # flat: JPEG reproduces it closely
    record(tmp_path / "c.mcap", frames, jpeg_quality=95)
    with open_source(f"replay:{tmp_path / 'c.mcap'},pace=off") as src:
        back = list(src)
    assert all(b.depth_mm is None and b.depth_camera is None for b in back)
    assert max(int(np.abs(b.color.astype(int) - 120).max()) for b in back) <= 2
    for a, b in zip(frames, back):
        assert_same(a, b, exact_color=False)


def test_recorded_prediction_and_metrics_come_back(tmp_path):
    frames = small_frames(3)
    pred = np.arange(100 * 100, dtype=np.uint32).reshape(100, 100).astype(np.uint8)
    with Recorder(tmp_path / "p.mcap") as rec:
        rec.write(frames[0], wait_s=5)
        rec.write(frames[1], prediction_depth8=pred, metrics={"delta<1.25": np.float64(0.97), "l1_mm": 4.25}, wait_s=5)
        rec.write(frames[2], wait_s=5)
    with open_source(f"replay:{tmp_path / 'p.mcap'},pace=off") as src:
        src.read()
        assert src.last_extras.prediction_depth8 is None
        f1 = src.read()
        np.testing.assert_array_equal(src.last_extras.prediction_depth8, pred)
        assert src.last_extras.metrics == {"delta<1.25": 0.97, "l1_mm": 4.25}
        np.testing.assert_array_equal(src.recorded_prediction(f1), pred)
        assert src.extras(2).metrics is None and src.extras(1).metrics["l1_mm"] == 4.25


def test_file_opens_with_the_mcap_library_and_decodes_as_ros2(tmp_path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    frames = small_frames(2)
    record(tmp_path / "r.mcap", frames)
    with open(tmp_path / "r.mcap", "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        header = reader.get_header()
        got = {}
        for schema, channel, _, msg in reader.iter_decoded_messages():
            got.setdefault(channel.topic, (schema.name, msg))
    assert header.profile == "ros2"
    assert got[TOPIC_COLOR][0] == "sensor_msgs/msg/CompressedImage" and got[TOPIC_COLOR][1].format == "jpeg"
    depth_msg = got[TOPIC_DEPTH][1]
    assert (depth_msg.encoding, depth_msg.width, depth_msg.height, depth_msg.step) == ("16UC1", 20, 16, 40)
    np.testing.assert_array_equal(np.frombuffer(depth_msg.data, "<u2").reshape(16, 20), frames[0].depth_mm)
    info = got["/camera/depth/camera_info"][1]
    assert list(info.k) == [DC_ := frames[0].depth_camera.fx, 0.0, frames[0].depth_camera.cx, 0.0,
                            frames[0].depth_camera.fy, frames[0].depth_camera.cy, 0.0, 0.0, 1.0] and DC_ > 0
    tf = got["/tf_static"][1].transforms[0]
    assert (tf.header.frame_id, tf.child_frame_id) == ("color_optical_frame", "depth_optical_frame")
    assert tf.transform.translation.x == pytest.approx(0.0521)
    meta = json.loads(got[TOPIC_FRAME][1].data)
    assert meta["subject_id"] == 3 and meta["timestamp_ns"] == frames[0].timestamp_ns


def test_quaternion_of_known_rotations():
    np.testing.assert_allclose(rotation_to_quaternion(np.eye(3)), (0, 0, 0, 1))
    rz90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(rotation_to_quaternion(rz90), (0, 0, np.sqrt(0.5), np.sqrt(0.5)), atol=1e-12)
    rx180 = np.diag([1.0, -1.0, -1.0])
    np.testing.assert_allclose(np.abs(rotation_to_quaternion(rx180)), (1, 0, 0, 0), atol=1e-12)


def test_seek_by_index_and_time_and_step(tmp_path):
    frames = small_frames(10)
    record(tmp_path / "s.mcap", frames)
    with open_source(f"replay:{tmp_path / 's.mcap'},pace=off") as src:
        assert len(src) == 10
        src.seek(7)
        assert src.position == 7
        assert_same(frames[7], src.read(), exact_color=False)
        assert src.seek_time_ns(frames[4].timestamp_ns) == 4
        assert src.read().index == 4
        assert src.seek_time_ns(frames[4].timestamp_ns + 1) == 5  # first frame at or after the time
        assert src.seek_time_ns(0) == 0 and src.seek_time_ns(10**19) == 9
        assert src.timestamps_ns == [f.timestamp_ns for f in frames]
        src.seek(9)
        src.read()
        with pytest.raises(EOFError):
            src.read()
        src.seek(2)  # after the end, seeking plays again
        assert src.read().index == 2
        with pytest.raises(ConfigError, match="out of range"):
            src.seek(10)


def test_real_time_pacing_and_resume_after_a_pause(tmp_path):
    frames = small_frames(6)
    record(tmp_path / "t.mcap", frames)
    with open_source(f"replay:{tmp_path / 't.mcap'}") as src:
        assert src.describe()["paced"]
        t0 = time.monotonic()
        for _ in range(4):
            src.read()
        assert time.monotonic() - t0 >= 0.095  # three gaps of 33 ms
        time.sleep(0.5)  # paused: no catch-up burst afterwards
        t1 = time.monotonic()
        src.read()
        src.read()
        assert time.monotonic() - t1 >= 0.03


def _chunk_ends(path):
    scan = scan_mcap(path)
    return [c.records_offset + c.records_length for c in scan.chunks]


def test_truncated_files_keep_every_complete_frame(tmp_path):
    frames = small_frames(6)
    full = tmp_path / "full.mcap"
    record(full, frames, color_format="png")
    data = full.read_bytes()
    ends = _chunk_ends(full)
    assert len(ends) == 6  # one chunk per frame
    # (cut at byte, frames expected, data section complete): inside chunk 4; inside chunk 4's index;
    # after the last chunk (no summary); inside the summary (the mcap library's reader fails there)
    cases = [(ends[3] - 10, 3, False), (ends[3] + 3, 4, False), (ends[5] + 1, 6, False),
             (len(data) - 40, 6, True), (ends[0] - 1, 0, False)]
    for cut, expect, complete in cases:
        p = tmp_path / f"cut{cut}.mcap"
        p.write_bytes(data[:cut])
        if expect == 0:
            with pytest.raises(FormatError, match="no complete frame"):
                open_source(f"replay:{p}")
            continue
        with open_source(f"replay:{p},pace=off") as src:
            back = list(src)
            d = src.describe()
        assert len(back) == expect, cut
        for a, b in zip(frames, back):
            assert_same(a, b)
        assert d["complete"] is complete and bool(d["recovered"]) is not complete


def test_not_mcap_and_foreign_mcap_are_clear_errors(tmp_path):
    p = tmp_path / "x.mcap"
    p.write_bytes(b"hello world, not mcap at all")
    with pytest.raises(FormatError, match="not an MCAP file"):
        open_source(f"replay:{p}")
    from mcap.writer import CompressionType, Writer
    with open(tmp_path / "other.mcap", "wb") as f:
        w = Writer(f, compression=CompressionType.NONE)
        w.start()
        sid = w.register_schema("x", "jsonschema", b"{}")
        cid = w.register_channel("/other", "json", sid)
        w.add_message(cid, 1, b"{}", 1)
        w.finish()
    with pytest.raises(FormatError, match="not a facedepth recording"):
        open_source(f"replay:{tmp_path / 'other.mcap'}")


def test_full_queue_drops_are_counted_never_queued_without_bound(tmp_path):
    frames = small_frames(1)
    big = Frame(index=0, timestamp_ns=1, color=np.zeros((1080, 1920, 3), np.uint8), color_camera=CC)
    with Recorder(tmp_path / "d.mcap", color_format="png", max_queue_frames=2) as rec:
        accepted = sum(rec.write(Frame(index=i, timestamp_ns=1 + i, color=big.color, color_camera=CC))
                       for i in range(40))
    assert rec.frames_dropped == 40 - accepted > 0
    assert rec.frames_written == accepted
    with open_source(f"replay:{tmp_path / 'd.mcap'},pace=off") as src:
        assert len(src) == accepted
    assert frames  # (the small frames helper stays importable for other tests)


def test_close_is_idempotent_and_writes_after_close_are_refused(tmp_path):
    rec = Recorder(tmp_path / "i.mcap")
    rec.write(small_frames(1)[0], wait_s=5)
    s1 = rec.close()
    s2 = rec.close()
    assert s1 == s2 and s1.frames_written == 1
    assert rec.write(small_frames(1)[0]) is False and rec.frames_dropped == 1


def test_unwritable_path_is_a_format_error(tmp_path):
    with pytest.raises(FormatError, match="cannot create the recording"):
        Recorder(tmp_path / "no" / "such" / "dir" / "r.mcap")
    if os.path.exists("/dev/full"):  # every write fails with "no space left on device"
        with pytest.raises(FormatError, match="cannot write the recording .No space left"):
            Recorder("/dev/full")


CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from tests.integration.test_recording import small_frames
    from sensors.recording import Recorder
    rec = Recorder({path!r}, color_format="png")
    last = -1
    for f in small_frames(400):
        rec.write(f, wait_s=5.0)
        if rec.frames_written != last:
            last = rec.frames_written
            print(last, flush=True)
        time.sleep(0.005)
    time.sleep(60)
""")


def test_recording_killed_before_its_first_frame_leaves_no_file_at_its_path(tmp_path):
    path = tmp_path / "early.mcap"
    code = (f"import sys, os, signal; sys.path.insert(0, {str(ROOT)!r}); from sensors.recording import Recorder; "
            f"rec = Recorder({str(path)!r}); print('open', flush=True); os.kill(os.getpid(), signal.SIGKILL)")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert child.returncode == -signal.SIGKILL and child.stdout == "open\n", child.stderr
    assert not path.exists()  # only the visibly partial file: never a recording the reader refuses
    assert (tmp_path / "early.mcap.partial").exists()


def test_recording_killed_mid_write_keeps_every_flushed_frame(tmp_path):
    path = tmp_path / "killed.mcap"
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(root=str(ROOT), path=str(path))],
                             stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        flushed = 0
        deadline = time.monotonic() + 60
        while flushed < 25 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            flushed = int(line)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL and flushed >= 25
    frames = small_frames(400)
    with open_source(f"replay:{path},pace=off") as src:
        back = list(src)
        assert src.describe()["complete"] is False
    assert len(back) >= flushed  # everything reported flushed before the kill replays
    for a, b in zip(frames, back):
        assert_same(a, b)


DISK_FULL_CHILD = textwrap.dedent("""
    import resource, signal, sys
    sys.path.insert(0, {root!r})
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    from tests.integration.test_recording import small_frames
    from sensors.recording import Recorder
    rec = Recorder({path!r}, color_format="png")
    resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
    for f in small_frames(60):
        rec.write(f, wait_s=5.0)
    stats = rec.close()
    print(stats.frames_written, stats.frames_dropped, stats.error)
""")


def test_disk_full_stops_the_recording_with_a_clear_error_and_keeps_what_was_written(tmp_path):
    path = tmp_path / "full.mcap"
    out = subprocess.run([sys.executable, "-c", DISK_FULL_CHILD.format(root=str(ROOT), path=str(path), limit=12000)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    written, dropped, *error = out.stdout.split()
    written, dropped = int(written), int(dropped)
    assert 0 < written < 60 and written + dropped == 60
    assert "recording stopped" in " ".join(error) and "full.mcap" in " ".join(error)
    with open_source(f"replay:{path},pace=off") as src:
        assert len(src) == written


class _KinectSizedSource:
    """Kinect v2-sized frames (1920x1080 colour, 512x424 depth) at 30 fps, arrays made per frame."""

    def __init__(self):
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:1080, 0:1920]
        base = np.stack([(xx // 8) % 256, (yy // 8) % 256, ((xx + yy) // 16) % 256], axis=2).astype(np.uint8)
        self.colors = [np.roll(base, 7 * i, axis=1) for i in range(4)]
        self.depths = [rng.integers(500, 4500, (424, 512)).astype(np.uint16) for _ in range(4)]

    def frames(self, seconds, fps=30.0):
        t0 = time.monotonic()
        n = int(seconds * fps)
        for i in range(n):
            due = t0 + i / fps
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            yield Frame(index=i, timestamp_ns=time.monotonic_ns(), color=self.colors[i % 4], color_camera=CC,
                        depth_mm=self.depths[i % 4], depth_camera=DC, head_center_mm=[0, 0, 900], subject_id=1)


def _throughput(tmp_path, seconds):
    src = _KinectSizedSource()
    path = tmp_path / "kinect.mcap"
    cpu0, t0 = time.process_time(), time.monotonic()
    rec = Recorder(path)
    accepted = sum(bool(rec.write(f)) for f in src.frames(seconds))
    stats = rec.close()
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    enc = np.array(rec.encode_ms)
    report = {"frames": int(seconds * 30), "written": stats.frames_written, "dropped": stats.frames_dropped,
              "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "write_ms_mean": round(float(enc.mean()), 2),
              "write_ms_p95": round(float(np.percentile(enc, 95)), 2), "mb": round(stats.bytes / 1e6, 1)}
    print("recording throughput:", report)
    assert stats.frames_dropped == 0 and accepted == stats.frames_written == int(seconds * 30), report
    with open_source(f"replay:{path},pace=off") as replay:
        assert len(replay) == int(seconds * 30)
        replay.seek(len(replay) - 1)
        last = replay.read()
    np.testing.assert_array_equal(last.depth_mm, src.depths[(int(seconds * 30) - 1) % 4])
    return report


def test_kinect_sized_frames_at_30_fps_short(tmp_path):
    _throughput(tmp_path, 2.0)


@pytest.mark.slow
def test_kinect_sized_frames_at_30_fps_for_20_s(tmp_path):
    _throughput(tmp_path, 20.0)


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "launch.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_record_and_convert_commands(tmp_path):
    info = write_biwi(tmp_path / "hpdb", {1: [0, 1, 2, 5]})
    out = _cli("record", "--source", f"biwi:{info.root}", "--out", str(tmp_path / "b.mcap"), "--max-frames", "3")
    assert out.returncode == 0, out.stderr
    assert "recorded 3 frames (0 dropped)" in out.stdout
    again = _cli("record", "--source", f"biwi:{info.root}", "--out", str(tmp_path / "b.mcap"))
    assert again.returncode == 2 and "--force" in again.stderr
    tum = _cli("convert", "--source", f"replay:{tmp_path / 'b.mcap'}", "--out", str(tmp_path / "t"))
    assert tum.returncode == 0, tum.stderr
    mc = _cli("convert", "--source", f"tum:{tmp_path / 't'}", "--out", str(tmp_path / "t.mcap"))
    assert mc.returncode == 0, mc.stderr
    with open_source(f"biwi:{info.root}") as a, open_source(f"replay:{tmp_path / 't.mcap'},pace=off") as b:
        originals, back = list(a)[:3], list(b)
    assert len(back) == 3
    for x, y in zip(originals, back):
        np.testing.assert_array_equal(x.depth_mm, y.depth_mm)
        np.testing.assert_array_equal(x.head_center_mm, y.head_center_mm)
        assert y.subject_id == 1
    bad = _cli("record", "--source", "replay:" + str(tmp_path / "nope.mcap"), "--out", str(tmp_path / "z.mcap"))
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr


# -- recordings for other tools ---------------------------------------------------------------
def test_every_channel_offers_a_ros2_qos_profile(tmp_path):
    """``ros2 bag play`` reads ``offered_qos_profiles`` to republish a topic with a QoS its
    subscribers match; /tf_static is latched (transient local), the rest reliable and volatile."""
    from mcap.reader import make_reader

    from sensors.recording import TOPIC_TF

    path = tmp_path / "qos.mcap"
    frames = small_frames(2)
    with Recorder(path, color_format="png") as rec:
        for f in frames:
            assert rec.write(f, prediction_depth8=np.full((8, 8), 7, np.uint8), metrics={"l1_mm": 1.0}, wait_s=5.0)
    with open(path, "rb") as f:
        channels = list(make_reader(f).get_summary().channels.values())
    assert len(channels) >= 8  # colour, depth, clean depth, both camera infos, tf, head, frame, prediction, metrics
    for ch in channels:  # one YAML list item, keys as rosbag2 writes them (no YAML parser in the venv)
        text = ch.metadata["offered_qos_profiles"]
        lines = text.splitlines()
        assert lines[0] == "- history: 3" and all(ln.startswith("  ") for ln in lines[1:]), text
        keys = {ln.strip().split(":")[0] for ln in lines if not ln.startswith("    ")}
        assert keys == {"- history", "depth", "reliability", "durability", "deadline", "lifespan", "liveliness",
                        "liveliness_lease_duration", "avoid_ros_namespace_conventions"}, ch.topic
        assert "  reliability: 1\n" in text and "  liveliness: 1\n" in text
        assert f"  durability: {1 if ch.topic == TOPIC_TF else 2}\n" in text, ch.topic
        assert "  deadline:\n    sec: 2147483647\n    nsec: 4294967295\n" in text


def test_a_torn_recording_is_repaired_by_convert_for_other_readers(tmp_path, capsys):
    """A recording killed mid-write has no summary and a torn last chunk: the standard MCAP
    reader refuses it (the app's replay copes); ``convert`` writes a whole copy that it reads,
    with every complete frame and the predictions and metrics recorded with them."""
    from mcap.exceptions import McapError
    from mcap.reader import make_reader

    import launch

    full = tmp_path / "full.mcap"
    with Recorder(full, color_format="png") as rec:
        for i, f in enumerate(small_frames(6)):
            assert rec.write(f, prediction_depth8=np.full((8, 8), 10 + i, np.uint8), metrics={"l1_mm": float(i)},
                             wait_s=5.0)
    torn = tmp_path / "torn.mcap"
    torn.write_bytes(full.read_bytes()[:_chunk_ends(full)[3] - 40])  # killed while writing frame 3
    with pytest.raises(McapError), open(torn, "rb") as f:
        list(make_reader(f).iter_messages())
    whole = tmp_path / "whole.mcap"
    assert launch.main(["convert", "--source", f"replay:{torn}", "--out", str(whole)]) == 0
    assert "converted 3 frames" in capsys.readouterr().out
    with open(whole, "rb") as f:
        reader = make_reader(f)
        topics = [ch.topic for _, ch, _ in reader.iter_messages()]
        assert reader.get_summary() is not None
    assert topics.count(TOPIC_FRAME) == 3
    with open_source(f"replay:{whole},pace=off") as src:
        originals = small_frames(3)
        for i in range(3):
            frame = src.read()
            assert_same(originals[i], frame)
            assert src.last_extras.metrics == {"l1_mm": float(i)}
            assert (src.last_extras.prediction_depth8 == 10 + i).all()
