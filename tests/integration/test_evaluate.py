"""The evaluate command: methods x metrics in both domains, baselines, the yaw breakdown, the figure."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("torch")

import launch  # noqa: E402
from models.evaluation.generator import (  # noqa: E402
    FLAT_BASELINE, MEAN_BASELINE, MEDIAN_PLANE_BASELINE, error_budget, evaluate, mean_crop)
from models.metrics import ALL_KEYS, FACE_KEYS, FACE_REGION_RULES  # noqa: E402
from tests.support.synthetic_data import make_crops  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_cgan_run):
    """Crops to score (their own test split) and the shared tiny generator as m.onnx."""
    d = tmp_path_factory.mktemp("eval")
    data = make_crops(n=36, size=48, seed=5)
    data.save(d / "crops.npz")
    shutil.copy(tiny_cgan_run.onnx, d / "m.onnx")
    return d, data


def test_report_has_every_method_and_metric_and_the_yaw_breakdown(setup, capsys):
    d, data = setup
    args = ["evaluate", "--data", str(d / "crops.npz"), "--models", f"{d / 'm.onnx'},{d / 'm.onnx'}",
            "--report", str(d / "eval.json"), "--figure", str(d / "eval.png"), "--split", "test", "--threads", "1"]
    assert launch.main(args) == 0
    table = capsys.readouterr().out
    report = json.loads((d / "eval.json").read_text())
    names = [m["name"] for m in report["methods"]]
    assert names == ["m", "m-2", MEAN_BASELINE, FLAT_BASELINE, MEDIAN_PLANE_BASELINE]
    assert all(name in table for name in names)
    test = data.select_split("test")
    for m in report["methods"]:
        assert set(m["metrics"]) == set(ALL_KEYS)  # both domains
        assert m["frames_scored"] + m["frames_skipped"] == len(test)
        counted = sum(b["frames"] + b["skipped"] for b in m["by_yaw"].values())
        assert counted == len(test)
    # the yaw bins hold the right frames
    ayaw = np.abs(test.pose_deg[:, 0])
    by_yaw = report["methods"][0]["by_yaw"]
    for label, lo, hi in (("0-30", 0, 30), ("30-60", 30, 60), ("60+", 60, 1e9)):
        n = int(((ayaw >= lo) & (ayaw < hi)).sum())
        assert by_yaw.get(label, {"frames": 0, "skipped": 0})["frames"] + by_yaw.get(label, {"skipped": 0})["skipped"] == n
    # the same model twice gives the same row
    assert report["methods"][0]["metrics"] == report["methods"][1]["metrics"]
    assert report["data"]["truth"] == "depth_clean" and report["data"]["crops"] == len(test)
    assert len(report["examples"]["best"]) > 0
    assert (d / "eval.png").stat().st_size > 10_000
    # the face-region metrics, and which region they used (these crops have no face_mask: the fallback)
    assert report["data"]["face_region"] == {"kind": "fallback", "rule": FACE_REGION_RULES["fallback"]}
    assert report["domains"]["face"] == list(FACE_KEYS)
    for m in report["methods"]:
        assert set(FACE_KEYS) <= set(m["metrics"])
    assert "face_shape_l1_mm" in table and "face region (fallback)" in table
    # each model's error budget: its parts add up to its whole-crop L1, and the table says so
    for m in report["methods"][:2]:
        b = m["error_budget"]
        assert b["l1_mm_face"] + b["l1_mm_rest"] + b["l1_mm_missed"] == pytest.approx(m["metrics"]["l1_mm"], rel=1e-6)
        assert b["pixels_face"] + b["pixels_rest"] + b["pixels_missed"] == pytest.approx(1.0)
        assert f"m: whole-crop L1 {m['metrics']['l1_mm']:.2f} mm = face {b['l1_mm_face']:.2f}" in table
    assert all("error_budget" not in m for m in report["methods"][2:])  # baselines have none


def test_face_metrics_use_the_datasets_face_mask_when_it_has_one(setup, tmp_path):
    _, data = setup
    masks = data.depth_clean > 0
    masks[:, : data.size_px // 2] = False  # the right half of each head
    with_mask = replace(data, face_mask=masks)
    with_mask.save(tmp_path / "masked.npz")
    report, _ = evaluate(str(tmp_path / "masked.npz"), [], split="test")
    assert report["data"]["face_region"]["kind"] == "mask"
    rows = {m["name"]: m for m in report["methods"]}
    # a flat plane at the region's median has the same L1 and shape L1 there (its offset is the median's)
    flat = rows[MEDIAN_PLANE_BASELINE]["metrics"]
    assert flat["face_l1_mm"] == pytest.approx(flat["face_shape_l1_mm"], abs=0.6)
    assert flat["face_coverage"] == 1.0 and flat["face_relief_mm"] > 0


def test_baselines_are_what_they_claim(setup, tmp_path):
    _, data = setup
    # a world where every true crop is the plane z = D: the flat baseline is exact
    plane = np.full(data.depth.shape, 128, np.uint8)
    flat_world = replace(data, depth=plane, depth_clean=plane.copy())
    flat_world.save(tmp_path / "plane.npz")
    report, _ = evaluate(str(tmp_path / "plane.npz"), [], split="test")
    rows = {m["name"]: m for m in report["methods"]}
    assert rows[FLAT_BASELINE]["metrics"]["l1_mm"] == 0.0
    assert rows[FLAT_BASELINE]["metrics"]["delta<1.25^1/4"] == 1.0
    assert rows[MEAN_BASELINE]["metrics"]["l1"] == 0.0  # the mean of identical planes is that plane


def test_error_budget_puts_each_error_where_it_is():
    truth = np.zeros((2, 20, 20), np.uint8)
    truth[:, 2:18, 2:18] = 100  # 256 valid pixels a crop (enough to be scored)
    face = np.zeros(truth.shape, bool)
    face[:, 6:14, 6:14] = True  # 64 of them the face
    pred = truth.copy()
    pred[0, 8, 8] += 10  # one face pixel 10 levels off
    pred[1, 2, 2] = 0  # one pixel outside the face marked as background: scored at level 1
    pred[1, 17, 17] -= 4  # one outside the face 4 levels off
    b = error_budget(pred, truth, 127.0, face)  # 1 mm a level
    assert b["l1_mm_face"] == pytest.approx(10 / 256 / 2)
    assert b["l1_mm_missed"] == pytest.approx(99 / 256 / 2)
    assert b["l1_mm_rest"] == pytest.approx(4 / 256 / 2)
    assert b["pixels_face"] == pytest.approx(64 / 256) and b["pixels_missed"] == pytest.approx(1 / 512)
    assert b["l1_mm_rounding"] == pytest.approx(0.25)
    assert error_budget(pred[:, :4], truth[:, :4], 127.0, face[:, :4]) == {}  # too few valid pixels


def test_mean_crop_averages_valid_pixels_only():
    stack = np.array([[[0, 10], [20, 0]], [[0, 30], [0, 0]]], np.uint8)
    assert mean_crop(stack).tolist() == [[0, 20], [20, 0]]


def test_sensor_truth_and_missing_training_split(setup, tmp_path):
    d, data = setup
    report, _ = evaluate(str(d / "crops.npz"), [str(d / "m.onnx")], split="val", truth="sensor")
    assert report["data"]["truth"] == "depth" and report["data"]["split"] == "val"
    only_test = data.subset(data.split == 2)
    only_test.save(tmp_path / "test_only.npz")
    report, _ = evaluate(str(tmp_path / "test_only.npz"), [], split="test")
    assert [m["name"] for m in report["methods"]] == [FLAT_BASELINE, MEDIAN_PLANE_BASELINE]
    assert MEAN_BASELINE in report["notes"]
    report, _ = evaluate(str(tmp_path / "test_only.npz"), [], split="test", mean_from=str(d / "crops.npz"))
    assert [m["name"] for m in report["methods"]] == [MEAN_BASELINE, FLAT_BASELINE, MEDIAN_PLANE_BASELINE]


def test_a_model_for_another_crop_geometry_is_refused(setup, tmp_path, capsys):
    d, _ = setup
    make_crops(n=12, size=40, seed=1).save(tmp_path / "other.npz")
    code = launch.main(["evaluate", "--data", str(tmp_path / "other.npz"), "--models", str(d / "m.onnx"),
                        "--report", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 2 and "size_px" in err and err.count("\n") == 1


def test_verifier_hook_gets_every_models_predictions(setup, tmp_path, monkeypatch):
    import models.verifier.runtime as verification

    d, data = setup
    seen = {}

    class FakeEvaluation:
        def to_dict(self):
            return {"pairs": 1}

        def plot(self, path):
            path.write_bytes(b"png")

    def fake(dataset, verifier, generators=None, pairs_file=None, split="test", **kw):
        seen.update(verifier=verifier, generators=generators, split=split, n=len(dataset))
        return FakeEvaluation()

    monkeypatch.setattr(verification, "evaluate_verification", fake)
    args = ["evaluate", "--data", str(d / "crops.npz"), "--models", str(d / "m.onnx"), "--report",
            str(tmp_path / "r.json"), "--figure", str(tmp_path / "f.png"), "--verifier", "v.onnx", "--examples", "1"]
    assert launch.main(args) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["verification"] == {"pairs": 1} and (tmp_path / "f_verification.png").exists()
    assert seen["verifier"] == "v.onnx" and seen["split"] == "test" and list(seen["generators"]) == ["m"]
    pred = seen["generators"]["m"]
    assert pred.shape == data.depth.shape
    assert (pred[data.split != 2] == 0).all() and (pred[data.split == 2] > 0).any()


def _external(path, data_path, depth8, split="test"):
    from models.common.files import file_sha256
    from models.evaluation.generator import EXTERNAL_KIND

    np.savez_compressed(path, depth8=depth8, kind=EXTERNAL_KIND, split=split, data_sha256=file_sha256(data_path),
                        method="a face model elsewhere")
    return str(path)


def test_external_predictions_are_one_more_row_scored_by_shape_on_the_pixels_they_cover(setup, tmp_path):
    from models.evaluation.generator import EXTERNAL_KEYS

    d, data = setup
    test = data.select_split("test")
    truth = test.depth_clean
    # the truth moved 20 levels nearer (a wrong offset, the right shape) on the left half of each
    # crop; the first crop has no face found at all
    ext = np.where(truth > 0, np.clip(truth.astype(int) + 20, 1, 255), 0).astype(np.uint8)
    ext[:, :, data.size_px // 2:] = 0
    ext[0] = 0
    path = _external(tmp_path / "ext.npz", d / "crops.npz", ext)
    report, _ = evaluate(str(d / "crops.npz"), [], split="test", external=[("elsewhere", path)])
    rows = {m["name"]: m for m in report["methods"]}
    row = rows["elsewhere"]
    assert row["kind"] == "external" and set(row["metrics"]) <= set(EXTERNAL_KEYS)
    assert row["metrics"]["face_shape_l1_mm"] < 0.05 and row["metrics"]["face_coverage"] == 1.0
    assert row["frames_with_a_face"] == len(test) - 1
    assert "covers" in report["data"]["face_region"]["rule"]
    # every row is scored on the covered pixels only: the same baselines without the external
    # row see a larger face region, so their face numbers differ
    plain, _ = evaluate(str(d / "crops.npz"), [], split="test")
    before = {m["name"]: m for m in plain["methods"]}[MEDIAN_PLANE_BASELINE]["metrics"]["face_shape_l1_mm"]
    assert rows[MEDIAN_PLANE_BASELINE]["metrics"]["face_shape_l1_mm"] != pytest.approx(before)


def test_external_predictions_for_other_data_or_another_split_are_refused_by_name(setup, tmp_path, capsys):
    d, data = setup
    test = data.select_split("test")
    other = tmp_path / "other.npz"
    replace(data, frame=data.frame + 1).save(other)
    wrong_data = _external(tmp_path / "a.npz", other, test.depth_clean)
    wrong_split = _external(tmp_path / "b.npz", d / "crops.npz", test.depth_clean, split="val")
    for path, words in ((wrong_data, "another dataset"), (wrong_split, "--split val"),
                        (str(tmp_path / "missing.npz"), "does not exist")):
        code = launch.main(["evaluate", "--data", str(d / "crops.npz"), "--report", str(tmp_path / "r.json"),
                            "--external", f"x={path}"])
        err = capsys.readouterr().err.strip()
        assert code == 1 and len(err.splitlines()) == 1 and path in err and words in err, err
