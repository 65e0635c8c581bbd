"""Checks of the shipped generators (models/weights): they exist, carry their metadata, are not
an "average face", beat the mean crop on held-out identities, and give a face-shaped depth on a
real photograph.

These tests FAIL (never skip) when the shipped files are missing.

Held-out data: ``tests/data/heldout_virtual.npz``, a few crops of virtual-Kinect identities that
were in the test split of the shipped models' training data (see models/README.md).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.data.dataset import load_dataset
from models.evaluation.generator import mean_crop
from models.generator.runtime import DepthGenerator
from models.metrics import MetricsAggregator, depth_metrics_batch

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "models" / "weights"
HELDOUT = ROOT / "tests" / "data" / "heldout_virtual.npz"
MODELS = {"generator.onnx": "cgan", "generator_ae.onnx": "ae"}
MB = 1024 ** 2


def _generator(name: str) -> DepthGenerator:
    path = WEIGHTS / name
    assert path.is_file(), f"{path} is missing: the shipped model must be in the repository"
    return DepthGenerator(path, provider="cpu", threads=1)


@pytest.mark.parametrize("name", list(MODELS))
def test_shipped_files_exist_with_metadata_and_checkpoints(name):
    gen = _generator(name)
    assert (WEIGHTS / name).stat().st_size < 20 * MB
    assert gen.info.model_kind == MODELS[name]
    assert gen.info.synthetic_only is True  # trained on the virtual Kinect only: the model card says so
    assert gen.info.size_px == 100 and gen.info.half_range_mm == 150.0
    assert set(gen.info.validation_metrics) >= {"l1_mm", "delta<1.25^1/4"}
    ckpt = WEIGHTS / name.replace(".onnx", ".pt")
    assert ckpt.is_file() and ckpt.stat().st_size < 20 * MB
    torch = pytest.importorskip("torch")
    from models.common.checkpoint import load_checkpoint
    from models.generator.train import build_generator

    state = load_checkpoint(ckpt, "generator")
    assert state["mode"] == MODELS[name] and state["crop"] == gen.crop_config_dict
    # the checkpoint is the exported model: same output
    color = load_dataset(HELDOUT).color[:4]
    with torch.no_grad():
        ref = build_generator(state).eval()(torch.from_numpy(color).permute(0, 3, 1, 2).float() / 127.5 - 1)[:, 0]
    assert np.abs(gen.predict_tanh(color) - ref.numpy()).max() <= 1e-4


@pytest.mark.parametrize("name", list(MODELS))
def test_a_flipped_face_gives_the_flipped_depth(name):
    """A model that ignores the input (an "average face") fails: turned heads are asymmetric."""
    gen = _generator(name)
    data = load_dataset(HELDOUT)
    turned = np.abs(data.pose_deg[:, 0]) > 25
    assert turned.sum() >= 4
    color, truth = data.color[turned], data.target[turned]
    pred = gen.predict(color).astype(np.float64)
    pred_of_flipped = gen.predict(np.ascontiguousarray(color[:, :, ::-1])).astype(np.float64)
    face = (truth > 0) | (truth[:, :, ::-1] > 0)
    equivariance_error = np.abs(pred_of_flipped - pred[:, :, ::-1])[face].mean()
    asymmetry = np.abs(pred - pred[:, :, ::-1])[face].mean()
    assert asymmetry > 8.0  # the model's output follows the head's turn
    assert equivariance_error < 0.35 * asymmetry


def _l1_mm_model_and_mean_crop(name: str) -> tuple[float, float]:
    """L1 in mm on the held-out crops of the model, and of the mean crop of those crops
    themselves (a stronger baseline than the mean training crop of `evaluate`)."""
    gen = _generator(name)
    data = load_dataset(HELDOUT)
    h = gen.info.half_range_mm
    truth = data.target

    def l1_mm(pred: np.ndarray) -> float:
        agg = MetricsAggregator()
        for m in depth_metrics_batch(pred, truth, data.distance_mm, h):
            agg.add(m)
        return agg.session_mean()["l1_mm"]

    return l1_mm(gen.predict(data.color)), l1_mm(np.ascontiguousarray(np.broadcast_to(mean_crop(truth), truth.shape)))


@pytest.mark.parametrize("name", list(MODELS))
def test_beats_the_mean_crop_on_held_out_identities(name):
    model, baseline = _l1_mm_model_and_mean_crop(name)
    print(f"{name}: L1 {model:.2f} mm, mean crop {baseline:.2f} mm ({model / baseline:.2f}x)")
    assert model < baseline, (model, baseline)


@pytest.mark.parametrize("name", [
    pytest.param("generator.onnx", marks=pytest.mark.xfail(
        strict=True, reason="the target L1 of at most half the mean crop's (docs/design.md, \"Targets\") is missed by "
                            "the shipped cGAN (models/README.md): 0.64x of the mean crop's on these crops (9.94 against "
                            "15.55 mm); strict, so a cGAN that reaches it turns this into a failure that asks for the "
                            "card to be updated")),
    "generator_ae.onnx",  # the stage-6 AE: 0.49x (7.66 against 15.55 mm)
])
def test_reaches_half_the_mean_crop_error(name):
    model, baseline = _l1_mm_model_and_mean_crop(name)
    assert model <= 0.5 * baseline, (model, baseline)


def _photo_crop(gen: DepthGenerator, path: Path):
    """The live path on a photo: the images: source, the head locator, the one crop."""
    from sensors.crop import CropConfig, crop_face
    from sensors.locate.locator import HeadLocator
    from sensors.source import open_source, parse_uri

    with open_source(parse_uri(f"images:{path}")) as src:
        frame = src.read(10.0)
    head = HeadLocator().locate(frame)
    assert head is not None and head.face_box_px is not None, "no face found in the photo"
    crop = crop_face(frame, head.center_color_mm, CropConfig.from_dict(gen.crop_config_dict))
    return frame, head, crop


def _to_crop(crop, u: float, v: float) -> tuple[float, float]:
    x0, y0, w, h = crop.window_px
    s = crop.color.shape[0]
    return (u - x0) * s / w - 0.5, (v - y0) * s / h - 0.5


@pytest.mark.parametrize("name", list(MODELS))
def test_a_real_photograph_gives_a_face_shaped_depth(name):
    """Grace Hopper's portrait, shipped with matplotlib: the nose tip is the nearest point of the
    face and the eye sockets lie deeper than the cheeks. Landmarks come from the face detector's
    box (standard proportions of a frontal face: eyes at 30 % / 70 % across and 38 % down, nose
    tip at 50 % / 60 %, cheeks at 27 % / 73 % across and 62 % down)."""
    import matplotlib

    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    gen = _generator(name)
    frame, head, crop = _photo_crop(gen, photo)
    depth = cv2.medianBlur(gen.predict(crop.color), 3).astype(np.float64)
    bx, by, bw, bh = head.face_box_px

    def at(fx: float, fy: float, r: int = 2) -> float:
        u, v = _to_crop(crop, bx + fx * bw, by + fy * bh)
        i, j = int(round(v)), int(round(u))
        return float(depth[i - r:i + r + 1, j - r:j + r + 1].mean())

    eyes = (at(0.30, 0.38) + at(0.70, 0.38)) / 2
    cheeks = (at(0.27, 0.62) + at(0.73, 0.62)) / 2
    assert eyes < cheeks - 2, (eyes, cheeks)
    # the nearest point of the face (inside the detector's box) is the nose tip
    u0, v0 = _to_crop(crop, bx + 0.15 * bw, by + 0.15 * bh)
    u1, v1 = _to_crop(crop, bx + 0.85 * bw, by + 0.90 * bh)
    region = depth[int(v0):int(v1), int(u0):int(u1)]
    i, j = np.unravel_index(np.argmax(region), region.shape)
    nose_u, nose_v = _to_crop(crop, bx + 0.5 * bw, by + 0.6 * bh)
    dist = np.hypot(int(u0) + j - nose_u, int(v0) + i - nose_v)
    scale = bw * crop.color.shape[0] / crop.window_px[2]  # face box width in crop pixels
    assert dist < 0.15 * scale, (dist, scale)
    assert region.max() > cheeks + 3


def test_the_model_card_states_what_the_models_were_not_tested_on():
    card = (ROOT / "models" / "README.md").read_text()
    assert "not tested" in card.lower() or "NOT tested" in card
    for name in MODELS:  # the card's training command is the one recorded in each model
        info = json.loads(json.dumps(dict(_generator(name).info.training), default=dict))  # read-only mappings
        assert info["command"] in card, name
        for source in info.get("averaged_from") or []:  # a mean of runs (launch.py average): every run's command
            assert source["command"] in card, (name, source["file"])


def test_the_real_head_scores_belong_to_the_shipped_generators_and_reach_the_note():
    from app.controller import synthetic_note_text
    from models.common.files import file_sha256
    from models.common.shipped import GENERATOR, GENERATOR_AE, REAL_HEAD_SCORES

    # a retrained generator must be measured again (models/README.md, "The real scanned head")
    # before the GUI quotes a figure for it
    assert set(REAL_HEAD_SCORES) == {file_sha256(GENERATOR), file_sha256(GENERATOR_AE)}
    note = synthetic_note_text(REAL_HEAD_SCORES[file_sha256(GENERATOR)])
    assert "6.3 mm" in note and "MediaPipe Face Mesh: 4.3 mm" in note and "real cameras" in note
    # the cGAN's note points to the AE, which reads the real head's shape clearly better
    assert "the shipped generator_ae.onnx: 3.1 mm" in note
    ae_note = synthetic_note_text(REAL_HEAD_SCORES[file_sha256(GENERATOR_AE)])
    assert "3.1 mm" in ae_note and "the shipped" not in ae_note
    assert "has not been measured" in synthetic_note_text(None)
