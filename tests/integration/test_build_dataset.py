"""``launch.py build-dataset``: sources -> one crop dataset file, split by identity.

Uses a tiny Biwi folder written by tests/support/formats.py (a sphere-shaped "head" with a
known centre and rotation per frame), so every stored value can be checked against the truth.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import launch
from models.data.dataset import FORMAT_VERSION, SPLITS, load_dataset
from sensors.crop import CropConfig, crop_face
from sensors.geometry import euler_deg_from_rotation
from sensors.source import open_source
from tests.support.formats import BIWI_R, BIWI_T, biwi_depth_bin_bytes, write_biwi

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hpdb(tmp_path_factory):
    root = tmp_path_factory.mktemp("biwi") / "hpdb"
    info = write_biwi(root, {1: [3, 4, 7], 2: [1, 2], 3: [5, 6], 15: [2]})
    return root, info


def _build(*argv: str) -> int:
    return launch.main(["build-dataset", "--quiet", *argv])


def test_builds_aligned_crops_with_ground_truth_and_splits_by_subject(hpdb, tmp_path):
    root, info = hpdb
    out = tmp_path / "d.npz"
    assert _build("--source", f"biwi:{root}", "--out", str(out), "--val-subjects", "2",
                  "--test-subjects", "3", "--workers", "1", "--size", "64", "--window-mm", "250") == 0
    ds = load_dataset(out)
    assert len(ds) == 8 and ds.size_px == 64 and ds.depth_clean is None and ds.face_mask is None
    # sequence 15 shows the person of sequence 3: the same identity, so the same split
    assert ds.subject.tolist() == [1, 1, 1, 2, 2, 3, 3, 3]
    assert ds.split.tolist() == [SPLITS[s] for s in ["train"] * 3 + ["val"] * 2 + ["test"] * 3]
    keys = [(1, 3), (1, 4), (1, 7), (2, 1), (2, 2), (3, 5), (3, 6), (15, 2)]
    assert ds.frame.tolist() == list(range(8))  # frame index within the source
    with open_source(f"biwi:{root}") as src:
        for i, key in enumerate(keys):
            truth = info.frames[key]
            c = BIWI_R @ truth.head_center_mm + BIWI_T  # the head centre in colour coordinates
            assert ds.distance_mm[i] == pytest.approx(c[2], abs=1e-3)
            yaw, pitch, roll = euler_deg_from_rotation(BIWI_R @ truth.head_rotation)
            np.testing.assert_allclose(ds.pose_deg[i], [yaw, pitch, roll], atol=1e-3)
            # the stored crops are exactly the one crop of the annotated head centre
            crop = crop_face(src.read(), c, CropConfig(size_px=64, window_x_mm=250, window_y_mm=250))
            np.testing.assert_array_equal(ds.color[i], crop.color)
            np.testing.assert_array_equal(ds.depth[i], crop.depth8())
            assert (ds.depth[i] > 0).sum() > 500  # the sphere's face is in the window
    meta = ds.meta
    assert meta["crop"] == {"size_px": 64, "window_x_mm": 250.0, "window_y_mm": 250.0, "half_range_mm": 150.0,
                            "depth_margin_mm": 500.0}
    assert meta["command"].startswith("launch.py build-dataset")
    assert meta["sources"][0]["uri"].startswith("biwi:") and meta["sources"][0]["samples"] == 8
    assert meta["sources"][0]["methods"] == {"annotation": 8}
    assert meta["subjects"] == {"train": [1], "val": [2], "test": [3]}
    assert meta["skipped"] == {}


def test_skipped_frames_are_counted_by_reason(hpdb, tmp_path):
    root, _ = hpdb
    # a copy of sequence 1 where frame 4 has no depth at all
    import shutil

    copy = tmp_path / "hpdb"
    shutil.copytree(root / "01", copy / "01")
    (copy / "01" / "frame_00004_depth.bin").write_bytes(biwi_depth_bin_bytes(np.zeros((48, 64), np.uint16)))
    out = tmp_path / "d.npz"
    assert _build("--source", f"biwi:{copy}", "--out", str(out), "--workers", "1") == 0
    ds = load_dataset(out)
    assert len(ds) == 2 and ds.meta["skipped"] == {"too_few_valid_depth": 1}
    # detection instead of annotations: the sphere is no face, every frame is "no face"
    out2 = tmp_path / "e.npz"
    assert _build("--source", f"biwi:{copy}", "--out", str(out2), "--workers", "1", "--locator", "detect") == 0
    ds2 = load_dataset(out2)
    assert len(ds2) == 0 and ds2.meta["skipped"] == {"no_face": 3}


def test_sources_tagged_with_splits_and_identity_leaks_are_refused(hpdb, tmp_path):
    root, _ = hpdb
    out = tmp_path / "d.npz"
    assert _build("--source", f"biwi:{root},subjects=1-2", "--split", "train",
                  "--source", f"biwi:{root},subjects=3", "--split", "test",
                  "--out", str(out), "--workers", "1", "--max-frames", "2") == 0
    ds = load_dataset(out)
    assert ds.meta["subjects"] == {"train": [1], "val": [], "test": [3]}  # 2 frames of each source
    assert ds.split.tolist() == [0, 0, 2, 2]
    # subject 2 in both a train source and a test source: refused, nothing written
    bad = tmp_path / "bad.npz"
    assert _build("--source", f"biwi:{root},subjects=1-2", "--split", "train",
                  "--source", f"biwi:{root},subjects=2-3", "--split", "test", "--out", str(bad),
                  "--workers", "1") == 2
    assert not bad.exists()


def test_two_workers_give_the_same_file_as_one(hpdb, tmp_path):
    root, _ = hpdb
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    assert _build("--source", f"biwi:{root}", "--out", str(a), "--workers", "1") == 0
    import models.data.build as bd

    old = bd.CHUNK_FRAMES
    bd.CHUNK_FRAMES = 3  # several work units, so both workers get some
    try:
        assert _build("--source", f"biwi:{root}", "--out", str(b), "--workers", "2") == 0
    finally:
        bd.CHUNK_FRAMES = old
    da, db = load_dataset(a), load_dataset(b)
    for name in ("color", "depth", "distance_mm", "subject", "frame", "pose_deg", "split"):
        np.testing.assert_array_equal(getattr(da, name), getattr(db, name))


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path):
    cmd = [sys.executable, "launch.py", "build-dataset", "--split", "train", "--source", "virtual:",
           "--out", str(tmp_path / "x.npz")]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--split must follow" in r.stderr and r.stderr.count("\n") == 1
    r = subprocess.run([sys.executable, "launch.py", "build-dataset", "--source", "nosuch:x", "--out",
                        str(tmp_path / "x.npz")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "unknown source scheme" in r.stderr


def test_every_kth_frame_of_the_virtual_kinect_in_parallel_units(tmp_path):
    """The virtual Kinect with frames=N jumps straight to every K-th frame, split into work
    units for both workers; without frames=N it is read through, keeping every K-th."""
    import models.data.build as bd

    uri = "virtual:seed=3,subjects=0-1,sequence_frames=30,frames=12"
    units, totals = bd.plan_units([{"uri": uri}], every=4, max_frames=None)
    assert totals == [3] and len(units) == 1
    old = bd.CHUNK_FRAMES
    bd.CHUNK_FRAMES = 1
    try:
        units, _ = bd.plan_units([{"uri": uri}], every=4, max_frames=None)
        assert [(u.start, u.stop) for u in units] == [(0, 4), (4, 8), (8, 12)]
        out = tmp_path / "v.npz"
        assert _build("--source", uri, "--every", "4", "--out", str(out), "--workers", "2") == 0
    finally:
        bd.CHUNK_FRAMES = old
    ds = load_dataset(out)
    assert ds.frame.tolist() == [0, 4, 8]
    with open_source(uri + ",pace=off") as src:
        frame = src.render(8)
        src.seek(11)
        assert src.read().index == 11
        from sensors.errors import ConfigError

        with pytest.raises(ConfigError, match="cannot seek to frame 12"):
            src.seek(12)
    crop = crop_face(frame, frame.head_center_color_mm(), CropConfig())
    np.testing.assert_array_equal(ds.depth[2], crop.depth8())
    # the virtual Kinect's face mask, carried into the crops (format 2): the crop's mask where the
    # clean 8-bit depth is valid
    assert ds.meta["format_version"] == FORMAT_VERSION == 2 and ds.meta["face_mask"] is True
    assert ds.face_mask is not None and ds.face_mask.shape == ds.depth.shape and ds.face_mask.dtype == bool
    np.testing.assert_array_equal(ds.face_mask[2], crop.face_mask & (crop.depth_clean8() > 0))
    assert (ds.face_mask.sum(axis=(1, 2)) > 300).all() and (ds.depth_clean[ds.face_mask] > 0).all()
    endless = tmp_path / "e.npz"
    assert _build("--source", "virtual:seed=3,subjects=0-1", "--every", "3", "--max-frames", "2",
                  "--out", str(endless), "--workers", "1") == 0
    assert load_dataset(endless).frame.tolist() == [0, 3]


def test_format_1_files_still_load_and_newer_formats_are_refused(tmp_path):
    """A file written before the face mask (no ``format_version`` in its meta) is version 1; the
    mask round-trips through a version 2 file and its subsets."""
    import json

    from models.data.dataset import CropDataset
    from sensors.errors import FormatError

    n, s = 3, 16
    arrays = dict(color=np.zeros((n, s, s, 3), np.uint8), depth=np.full((n, s, s), 7, np.uint8),
                  distance_mm=np.full(n, 800, np.float32), subject=np.arange(n, dtype=np.int32),
                  frame=np.arange(n, dtype=np.int64), pose_deg=np.zeros((n, 3), np.float32),
                  split=np.zeros(n, np.uint8))
    old = tmp_path / "v1.npz"
    np.savez_compressed(old, **arrays, depth_clean=arrays["depth"], meta=np.array(json.dumps({"samples": n})))
    ds = load_dataset(old)
    assert len(ds) == n and ds.face_mask is None and "format_version" not in ds.meta
    assert ds.depth_clean is not None
    mask = np.zeros((n, s, s), bool)
    mask[:, 4:9, 5:11] = True
    new = tmp_path / "v2.npz"
    CropDataset(**arrays, meta={"samples": n}, face_mask=mask).save(new)
    back = load_dataset(new)
    assert back.meta["format_version"] == 2
    np.testing.assert_array_equal(back.face_mask, mask)
    assert back.subset(np.array([0, 2])).face_mask.shape == (2, s, s)
    with pytest.raises(FormatError, match="face_mask"):
        CropDataset(**arrays, face_mask=mask.astype(np.uint8))
    newer = tmp_path / "v9.npz"
    np.savez_compressed(newer, **arrays, meta=np.array(json.dumps({"format_version": 9})))
    with pytest.raises(FormatError, match="newer"):
        load_dataset(newer)
