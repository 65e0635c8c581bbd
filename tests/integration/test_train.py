"""Training: a short run learns, writes its files, resumes exactly, fine-tunes, and runs under DDP."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import launch  # noqa: E402
from models.generator.train import (  # noqa: E402
    AugmentConfig,
    TrainConfig,
    augment_sample,
    build_generator,
    loss_masks,
    train,
    validate,
)
from models.common.checkpoint import load_checkpoint  # noqa: E402
from models.common.errors import ModelError  # noqa: E402
from models.data.dataset import load_dataset  # noqa: E402
from sensors.errors import ConfigError  # noqa: E402
from tests.support.synthetic_data import make_crops  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"widths": [8, 16, 24], "enc_convs": [0, 1, 1], "dec_convs": [0, 1]}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "crops.npz"
    make_crops(n=36, size=48, seed=1).save(path)
    return path


def _cfg(data, out, **kw):
    base = dict(data=str(data), out=str(out), epochs=3, batch_size=6, threads=1, generator=SMALL, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def test_a_short_run_lowers_the_validation_loss_and_writes_its_files(data_file, tmp_path):
    cfg = _cfg(data_file, tmp_path / "run", mode="ae", epochs=6, lr=3e-3, batch_size=3)
    result = train(cfg, progress=False)
    val_losses = [r["val_loss"] for r in result.history]
    # an untrained generator of the same seed, scored the same way, is the starting point
    from models.data.dataset import load_dataset

    torch.manual_seed(cfg.seed)
    untrained = build_generator(SMALL)
    val = load_dataset(data_file).select_split("val")
    start = validate(untrained, val.color, val.target, (True, cfg.background_weight), val.distance_mm, 150.0,
                     torch.device("cpu"))["val_loss"]
    assert val_losses[-1] < 0.75 * start  # a quarter off the untrained model's loss in 72 small steps
    assert val_losses[-1] < val_losses[0]
    out = tmp_path / "run"
    saved = json.loads((out / "config.json").read_text())
    assert saved["mode"] == "ae" and saved["epochs"] == 6 and saved["generator"] == SMALL
    with open(out / "curves.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert {"train_mse", "val_loss", "val_l1_mm", "val_delta<1.25^1/4"} <= set(rows[0])
    assert (out / "curves.png").stat().st_size > 1000
    assert sorted(p.name for p in (out / "samples").iterdir()) == [f"epoch_00{i}.png" for i in range(1, 7)]
    best = load_checkpoint(out / "best.pt", "generator")
    assert best["epoch"] == result.best_epoch
    assert best["val_metrics"]["l1_mm"] == min(float(r["val_l1_mm"]) for r in rows)
    assert best["crop"]["size_px"] == 48 and best["synthetic_only"] is True
    assert best["discriminator"] is None


def test_resume_continues_exactly_where_an_uninterrupted_run_would_be(data_file, tmp_path, monkeypatch):
    import models.generator.train as mt

    straight = train(_cfg(data_file, tmp_path / "a", mode="cgan", epochs=3), progress=False)
    # run b is killed (Ctrl-C) right after it saved epoch 2
    real_grid, calls = mt.write_sample_grid, []

    def killed_after_epoch_2(*args, **kwargs):
        real_grid(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(mt, "write_sample_grid", killed_after_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(data_file, tmp_path / "b", mode="cgan", epochs=3), progress=False)
    monkeypatch.setattr(mt, "write_sample_grid", real_grid)
    assert load_checkpoint(tmp_path / "b" / "last.pt", "generator")["epoch"] == 2
    resumed = train(_cfg(data_file, tmp_path / "b", mode="cgan", epochs=3), resume=True, progress=False)
    assert len(resumed.history) == 3 and resumed.history[:2] == load_checkpoint(tmp_path / "b" / "last.pt", "generator")["history"][:2]
    a, b = load_checkpoint(tmp_path / "a" / "last.pt", "generator"), load_checkpoint(tmp_path / "b" / "last.pt", "generator")
    assert b["epoch"] == 3
    for k in a["generator"]:
        torch.testing.assert_close(a["generator"][k], b["generator"][k], rtol=1e-5, atol=1e-6)
    for k in a["discriminator"]:
        torch.testing.assert_close(a["discriminator"][k], b["discriminator"][k], rtol=1e-5, atol=1e-6)
    assert straight.history[-1]["val_loss"] == pytest.approx(resumed.history[-1]["val_loss"], rel=1e-4)


def test_cli_resume_and_its_errors(data_file, tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["train", "--data", str(data_file), "--out", str(out), "--mode", "ae", "--epochs", "1", "--batch-size", "6",
            "--widths", "8,16,24", "--threads", "1", "--no-progress"]
    assert launch.main(args) == 0
    assert launch.main(["train", "--data", str(data_file), "--out", str(out), "--resume", "--epochs", "2",
                        "--no-progress", "--threads", "1"]) == 0
    ckpt = load_checkpoint(out / "last.pt", "generator")
    assert ckpt["epoch"] == 2 and ckpt["generator_config"]["widths"] == [8, 16, 24]
    assert "--widths 8,16,24" in ckpt["train_config"]["command"]
    capsys.readouterr()
    assert launch.main(["train", "--data", str(data_file), "--out", str(tmp_path / "none"), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "no config.json" in err and err.count("\n") == 1


def test_more_data_files_add_training_people_and_are_recorded(data_file, tmp_path, capsys):
    more = make_crops(n=24, size=48, subjects=4, seed=5)
    more = replace(more, subject=more.subject + 50)  # other people
    more.save(tmp_path / "more.npz")
    out = tmp_path / "run"
    args = ["train", "--data", str(data_file), "--data", str(tmp_path / "more.npz"), "--out", str(out), "--mode", "ae",
            "--epochs", "1", "--batch-size", "6", "--widths", "8,16,24", "--threads", "1", "--no-progress"]
    assert launch.main(args) == 0
    ckpt = load_checkpoint(out / "last.pt", "generator")
    first, extra = load_dataset(data_file), load_dataset(tmp_path / "more.npz")
    expected_train = set(first.subject[first.split == 0].tolist()) | set(extra.subject[extra.split == 0].tolist())
    assert set(ckpt["data"]["train_subjects"]) == expected_train
    # validation stays the first file's: the extra file's validation people are not used at all
    assert set(ckpt["data"]["val_subjects"]) == set(first.subject[first.split == 1].tolist())
    assert ckpt["data"]["train"] == int((first.split == 0).sum() + (extra.split == 0).sum())
    assert [f["file"] for f in ckpt["data"]["extra_training_files"]] == ["more.npz"]
    assert f"--data {data_file} --data {tmp_path / 'more.npz'} --out" in ckpt["train_config"]["command"]
    # --resume keeps the extra file from config.json when --data is given as at the start
    assert launch.main(args[:7] + ["--resume", "--epochs", "2", "--no-progress", "--threads", "1"]) == 0
    assert list(load_checkpoint(out / "last.pt", "generator")["train_config"]["extra_data"]) == [str(tmp_path / "more.npz")]
    # resuming with fewer (or more) files than the run trains on is refused, not silently changed
    capsys.readouterr()
    assert launch.main(args[:3] + args[5:7] + ["--resume", "--epochs", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "2 data files" in err and "more.npz" in err and err.count("\n") == 1
    # an extra file holding a validation person of the first file is refused in one line
    leaky = replace(more, subject=np.where(more.split == 0, first.subject[first.split == 1][0], more.subject))
    leaky.save(tmp_path / "leaky.npz")
    capsys.readouterr()
    assert launch.main(["train", "--data", str(data_file), "--data", str(tmp_path / "leaky.npz"), "--out",
                        str(tmp_path / "x"), "--epochs", "1", "--widths", "8,16,24", "--threads", "1", "--no-progress"]) == 1  # a data error
    err = capsys.readouterr().err
    assert "leaky.npz" in err and "validation or test identities" in err and err.count("\n") == 1


def test_fine_tuning_starts_from_the_given_weights(data_file, tmp_path):
    train(_cfg(data_file, tmp_path / "base", mode="cgan", epochs=1), progress=False)
    base = load_checkpoint(tmp_path / "base" / "last.pt", "generator")
    # sensor-depth data of other people, not marked synthetic: what a user's Kinect recordings look like
    real = make_crops(n=24, size=48, seed=7, clean=False)
    real_file = tmp_path / "real.npz"
    replace(real, meta={**real.meta, "sources": ["biwi:/data/hpdb"]}).save(real_file)
    train(_cfg(real_file, tmp_path / "ft", mode="cgan", epochs=1, lr=0.0, lr_d=0.0, generator={},
               init=str(tmp_path / "base" / "last.pt")), progress=False)
    ft = load_checkpoint(tmp_path / "ft" / "last.pt", "generator")
    for k in base["generator"]:  # lr 0: the weights are exactly the initial ones
        torch.testing.assert_close(ft["generator"][k], base["generator"][k], rtol=0, atol=0)
    for k in base["discriminator"]:
        torch.testing.assert_close(ft["discriminator"][k], base["discriminator"][k], rtol=0, atol=0)
    assert ft["generator_config"] == base["generator_config"]
    assert ft["init"]["file"] == "last.pt" and ft["synthetic_only"] is False
    assert ft["data"]["target"].startswith("depth (sensor")
    # a checkpoint trained on another crop geometry is refused
    other = make_crops(n=24, size=40, seed=2)
    other.save(tmp_path / "other.npz")
    with pytest.raises(ConfigError, match="size_px"):
        train(_cfg(tmp_path / "other.npz", tmp_path / "x", generator={}, init=str(tmp_path / "base" / "last.pt")),
              progress=False)
    (tmp_path / "junk.pt").write_bytes(os.urandom(300))
    with pytest.raises(ModelError, match="junk.pt"):
        train(_cfg(data_file, tmp_path / "y", init=str(tmp_path / "junk.pt")), progress=False)


def test_fine_tuning_can_widen_the_network_without_changing_its_output(data_file, tmp_path):
    train(_cfg(data_file, tmp_path / "base", mode="ae", epochs=1), progress=False)
    base = load_checkpoint(tmp_path / "base" / "last.pt", "generator")
    wider = {**SMALL, "widths": [8, 24, 32]}
    train(_cfg(data_file, tmp_path / "wide", mode="ae", epochs=1, lr=0.0, generator=wider,
               init=str(tmp_path / "base" / "last.pt")), progress=False)
    wide = load_checkpoint(tmp_path / "wide" / "last.pt", "generator")
    assert wide["generator_config"]["widths"] == [8, 24, 32] and "--widths 8,24,32" in wide["train_config"]["command"]
    x = torch.rand(2, 3, 48, 48) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(build_generator(wide)(x), build_generator(base)(x), atol=1e-6, rtol=0)
    with pytest.raises(ConfigError, match="widened level by level"):
        train(_cfg(data_file, tmp_path / "narrow", mode="ae", epochs=1, generator={**SMALL, "widths": [8, 16, 16]},
                   init=str(tmp_path / "base" / "last.pt")), progress=False)


def test_max_minutes_stops_after_validating_and_saving(data_file, tmp_path):
    result = train(_cfg(data_file, tmp_path / "t", mode="ae", epochs=50, max_minutes=1e-6), progress=False)
    assert result.stopped == "max-minutes" and result.epochs_done == 1
    assert load_checkpoint(tmp_path / "t" / "last.pt", "generator")["epoch"] == 1


def test_sensor_targets_mask_invalid_pixels_and_clean_targets_keep_background():
    target = np.array([[0, 10], [200, 0]], np.uint8)
    assert loss_masks(target, clean=False).tolist() == [[0.0, 1.0], [1.0, 0.0]]
    assert loss_masks(target, clean=True, background_weight=0.25).tolist() == [[0.25, 1.0], [1.0, 0.25]]


def test_geometric_augmentation_moves_colour_depth_and_mask_together():
    s = 32
    ramp = np.tile(np.arange(s, dtype=np.uint8) * 7, (s, 1))
    color = np.repeat(ramp[:, :, None], 3, axis=2)
    mask = np.ones((s, s), np.float32)
    flip_only = AugmentConfig(flip_p=1.0, shift_px=0, scale=0, rotate_deg=0, brightness=0, contrast=0, saturation=0,
                              channel_gain=0, blur_p=0, noise_p=0, jpeg_p=0, lowres_p=0, misalign_px=0)
    c, t, m = augment_sample(color, ramp, mask, flip_only, np.random.default_rng(0))
    assert np.array_equal(t, ramp[:, ::-1]) and np.array_equal(c[:, :, 0], ramp[:, ::-1]) and m.all()
    shift = replace(flip_only, flip_p=0.0, shift_px=3.0)
    c, t, m = augment_sample(color, ramp, mask, shift, np.random.default_rng(1))
    assert (m == 0).any()                      # pixels from outside the crop do not count
    inner = (m > 0) & (t > 0)
    assert np.abs(c[:, :, 0][inner].astype(int) - t[inner].astype(int)).max() <= 7  # same warp, one pixel at most
    full = AugmentConfig()
    c2, _, _ = augment_sample(color, ramp, mask, full, np.random.default_rng(2))
    assert c2.dtype == np.uint8 and c2.shape == color.shape


def test_camera_augmentation_moves_colour_alone_and_lowers_its_resolution():
    s = 32
    rng = np.random.default_rng(5)
    color = rng.integers(0, 256, (s, s, 3), dtype=np.uint8)  # fine detail everywhere
    target = np.tile(np.arange(s, dtype=np.uint8) * 7, (s, 1))
    mask = np.ones((s, s), np.float32)
    none = AugmentConfig(flip_p=0, shift_px=0, scale=0, rotate_deg=0, brightness=0, contrast=0, saturation=0,
                         channel_gain=0, blur_p=0, noise_p=0, jpeg_p=0, lowres_p=0, misalign_px=0)
    c, t, m = augment_sample(color, target, mask, none, np.random.default_rng(0))
    assert np.array_equal(c, color) and np.array_equal(t, target)
    misaligned = replace(none, misalign_px=2.0)
    moved = [augment_sample(color, target, mask, misaligned, np.random.default_rng(k)) for k in range(4)]
    assert all(np.array_equal(t, target) and m.all() for _, t, m in moved)  # depth and weights stay put
    assert all(not np.array_equal(c, color) for c, _, _ in moved)
    lowres = replace(none, lowres_p=1.0, lowres_scale=(0.5, 0.5))
    c, t, _ = augment_sample(color, target, mask, lowres, np.random.default_rng(0))

    def detail(x: np.ndarray) -> float:
        return float(np.abs(np.diff(x.astype(np.float32), axis=1)).mean())

    assert np.array_equal(t, target) and detail(c) < 0.6 * detail(color)


def test_ddp_with_two_cpu_processes_on_gloo(data_file, tmp_path):
    from tests.support.ddp import start_torchrun_train

    out = tmp_path / "ddp"
    proc = start_torchrun_train(data_file, out, epochs=1, batch_size=4, cwd=tmp_path)
    try:
        stdout, stderr = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both workers
        proc.communicate()
        raise AssertionError("DDP training did not finish within 180 s") from None
    assert proc.returncode == 0, stderr[-3000:]
    ckpt = load_checkpoint(out / "last.pt", "generator")
    assert ckpt["epoch"] == 1 and ckpt["generator_config"]["widths"] == [8, 16]
    reports = [line for line in stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1, stdout  # rank 0 alone reports
    report = json.loads(reports[0])
    assert report["epochs_done"] == 1 and report["best_epoch"] == 1
    # two processes really trained together, each on its half of the training crops
    n_train = int((load_dataset(data_file).split == 0).sum())
    assert report["world_size"] == 2 and report["samples_per_process"] == n_train // 2


def _verifier_checkpoint(path, size_px, seed=0, threshold=None):
    """A train-verifier checkpoint of an untrained branch (the identity loss only needs its embedding,
    its other-people term the validation threshold a best.pt holds)."""
    from models.verifier.net import VerifierBranch, VerifierConfig

    torch.manual_seed(seed)
    cfg = VerifierConfig(size_px=size_px, widths=(8, 16, 16), extra_convs=(0, 0, 0), embedding_dim=16)
    ck = {"model": VerifierBranch(cfg).state_dict(), "branch": cfg.to_dict(), "epoch": 0}
    if threshold is not None:
        ck["best"] = {"threshold": threshold}
    torch.save(ck, path)
    return path


def test_identity_loss_by_hand():
    from models.generator.train import identity_loss, to_tanh
    from models.verifier.net import load_branch

    import tempfile

    with tempfile.TemporaryDirectory() as d:
        v = load_branch(_verifier_checkpoint(Path(d) / "v.pt", 48))
    true8 = make_crops(n=4, size=48, seed=2).depth_clean
    same = to_tanh(torch.from_numpy(true8), "cpu")
    assert float(identity_loss(v, same, torch.from_numpy(true8)).same.detach()) < 1e-5  # the true depth itself: cos 1
    fake = same.flip(-1).clone().requires_grad_(True)  # another surface
    loss = identity_loss(v, fake, torch.from_numpy(true8)).same
    assert 0.0 < float(loss.detach()) <= 2.0
    loss.backward()
    assert float(fake.grad.abs().sum()) > 0  # the loss reaches the generator's output
    # "face": the generated background (outside the true outline) is not seen; "crop": it is
    noisy = torch.where(torch.from_numpy(true8 > 0)[:, None], same, torch.full_like(same, 0.2))
    target = torch.from_numpy(true8)
    assert float(identity_loss(v, noisy, target, "face").same.detach()) < 1e-5
    assert float(identity_loss(v, noisy, target, "crop").same.detach()) > 1e-3
    assert float(identity_loss(v, noisy, target, "face").others) == 0.0  # not asked for


def test_identity_loss_other_people_term_by_hand():
    from models.generator.train import identity_loss, to_tanh
    from models.verifier.net import load_branch

    import tempfile

    with tempfile.TemporaryDirectory() as d:
        v = load_branch(_verifier_checkpoint(Path(d) / "v.pt", 48))
    true8 = torch.from_numpy(make_crops(n=4, size=48, seed=2).depth_clean)
    fake = to_tanh(true8, "cpu").flip(-1).clone().requires_grad_(True)
    with torch.no_grad():
        cos = v(((fake[:, 0] + 1) * 127.5) * (true8 > 0)) @ v(true8).T  # generated i against true j
    people = torch.tensor([5, 6, 7, 8])
    # threshold -1: every other person's pair counts with cos + 1; the crop's own pair never
    terms = identity_loss(v, fake, true8, "face", people, -1.0)
    expect = sum(float(cos[i, j]) + 1.0 for i in range(4) for j in range(4) if i != j) / 4
    assert float(terms.others.detach()) == pytest.approx(expect, rel=1e-4)
    # crops of the same person are not "others"; nothing scores above a threshold of 1
    assert float(identity_loss(v, fake, true8, "face", torch.tensor([5, 5, 5, 5]), -1.0).others.detach()) == 0.0
    pairs = identity_loss(v, fake, true8, "face", torch.tensor([5, 5, 6, 6]), -1.0).others
    assert float(pairs.detach()) == pytest.approx(sum(float(cos[i, j]) + 1.0 for i in range(4) for j in range(4)
                                             if (i < 2) != (j < 2)) / 4, rel=1e-4)
    assert float(identity_loss(v, fake, true8, "face", people, 1.0).others.detach()) == 0.0
    terms.others.backward()
    assert float(fake.grad.abs().sum()) > 0  # it reaches the generator's output


def test_identity_loss_triplet_term_by_hand():
    from models.generator.train import identity_loss, to_tanh
    from models.verifier.net import load_branch

    import tempfile

    with tempfile.TemporaryDirectory() as d:
        v = load_branch(_verifier_checkpoint(Path(d) / "v.pt", 48))
    true8 = torch.from_numpy(make_crops(n=4, size=48, seed=2).depth_clean)
    fake = to_tanh(true8, "cpu").flip(-1).clone().requires_grad_(True)
    with torch.no_grad():
        cos = v(((fake[:, 0] + 1) * 127.5) * (true8 > 0)) @ v(true8).T  # generated i against true j
    people = torch.tensor([5, 6, 7, 8])
    # a margin of 3 (cosines lie in [-1, 1]): every crop's hardest other person counts
    terms = identity_loss(v, fake, true8, "face", people, triplet_margin=3.0)
    expect = sum(max(float(cos[i, j]) for j in range(4) if j != i) - float(cos[i, i]) + 3.0 for i in range(4)) / 4
    assert float(terms.triplet.detach()) == pytest.approx(expect, rel=1e-4)
    assert float(terms.others) == 0.0  # no threshold given: the other-people term is off
    # two people of two crops each: the hardest other is the other person's more similar crop
    two = identity_loss(v, fake, true8, "face", torch.tensor([5, 5, 6, 6]), triplet_margin=3.0).triplet
    expect = sum(max(float(cos[i, j]) for j in range(4) if (i < 2) != (j < 2)) - float(cos[i, i]) + 3.0
                 for i in range(4)) / 4
    assert float(two.detach()) == pytest.approx(expect, rel=1e-4)
    # one person only: nobody to compare with; a margin of -3: nothing counts
    assert float(identity_loss(v, fake, true8, "face", torch.tensor([5, 5, 5, 5]), triplet_margin=3.0).triplet.detach()) == 0.0
    assert float(identity_loss(v, fake, true8, "face", people, triplet_margin=-3.0).triplet.detach()) == 0.0
    terms.triplet.backward()
    assert float(fake.grad.abs().sum()) > 0  # it reaches the generator's output


def test_identity_loss_raises_the_identity_similarity_and_is_recorded(data_file, tmp_path, capsys):
    from models.generator.train import identity_similarity
    from models.verifier.net import load_branch

    vpath = _verifier_checkpoint(tmp_path / "verifier.pt", 48)
    common = dict(mode="ae", epochs=4, lr=3e-3, batch_size=3)
    plain = train(_cfg(data_file, tmp_path / "plain", **common), progress=False)
    runs = {region: train(_cfg(data_file, tmp_path / region, id_verifier=str(vpath), id_weight=1.0, id_region=region,
                               **common), progress=False) for region in ("crop", "face")}
    # same seed, data and schedule: the identity term is the only difference
    v = load_branch(vpath)
    val = load_dataset(data_file).select_split("val")
    face = val.target > 0
    sims = {}
    for name in ("plain", "crop", "face"):
        G = build_generator(load_checkpoint(tmp_path / name / "last.pt", "generator")).eval()
        pred8 = validate(G, val.color, val.target, (True, 0.1), val.distance_mm, 150.0, torch.device("cpu"))["pred8"]
        sims[name] = (identity_similarity(v, pred8, val.target, torch.device("cpu")),  # the crop as handed over
                      identity_similarity(v, pred8 * face, val.target, torch.device("cpu")))  # inside the true outline
    assert sims["crop"][0] > sims["plain"][0] + 0.02
    face_id = [r["train_id"] for r in runs["face"].history]  # the face-only identity loss it minimises
    assert face_id[-1] < 0.8 * face_id[0]
    assert runs["crop"].history[-1]["val_id_similarity"] == pytest.approx(sims["crop"][0], abs=1e-4)
    assert "val_id_similarity" not in plain.history[-1]
    ckpt = load_checkpoint(tmp_path / "face" / "last.pt", "generator")
    assert ckpt["data"]["id_verifier"]["file"] == "verifier.pt" and len(ckpt["data"]["id_verifier"]["sha256"]) == 64
    assert f"--id-verifier {vpath} --id-weight 1 --id-region face" in ckpt["train_config"]["command"]
    # bad combinations are one-line errors
    base = ["train", "--data", str(data_file), "--out", str(tmp_path / "x"), "--epochs", "1", "--widths", "8,16,24",
            "--threads", "1", "--no-progress"]
    capsys.readouterr()
    assert launch.main(base + ["--id-weight", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "--id-verifier" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as exc:
        launch.main(base + ["--id-verifier", str(vpath), "--id-region", "hair"])
    assert exc.value.code == 2 and "--id-region" in capsys.readouterr().err
    assert launch.main(base + ["--id-verifier", str(tmp_path / "missing.pt")]) == 1
    err = capsys.readouterr().err
    assert "missing.pt" in err and "does not exist" in err and err.count("\n") == 1
    assert launch.main(base + ["--id-verifier", str(tmp_path / "face" / "last.pt")]) != 0
    err = capsys.readouterr().err
    assert "last.pt" in err and "not a verifier checkpoint" in err and err.count("\n") == 1
    assert launch.main(base + ["--id-verifier", str(_verifier_checkpoint(tmp_path / "v64.pt", 64))]) == 2
    err = capsys.readouterr().err
    assert "v64.pt" in err and "64 px" in err and err.count("\n") == 1
    # the other-people term needs the verifier's validation threshold (a best.pt holds it)
    assert launch.main(base + ["--id-verifier", str(vpath), "--id-negatives", "1"]) == 1
    err = capsys.readouterr().err
    assert "verifier.pt" in err and "threshold" in err and err.count("\n") == 1
    assert launch.main(base + ["--id-negatives", "1"]) == 2
    assert "--id-verifier" in capsys.readouterr().err
    # the margin lowers the other-people term's bar, so it needs that term
    assert launch.main(base + ["--id-verifier", str(vpath), "--id-margin", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "--id-margin" in err and "--id-negatives" in err and err.count("\n") == 1


def test_the_other_people_term_trains_and_is_recorded(data_file, tmp_path):
    vpath = _verifier_checkpoint(tmp_path / "best.pt", 48, threshold=-0.5)  # every pair counts: the term is active
    result = train(_cfg(data_file, tmp_path / "neg", mode="ae", epochs=1, batch_size=3, id_verifier=str(vpath),
                        id_weight=0.5, id_negatives=0.25), progress=False)
    row = result.history[-1]
    assert row["train_id_others"] > 0
    assert row["train_loss_g"] == pytest.approx(row["train_mse"] + 0.5 * row["train_id"] + 0.25 * row["train_id_others"],
                                                rel=1e-4)
    ckpt = load_checkpoint(tmp_path / "neg" / "last.pt", "generator")
    assert ckpt["data"]["id_verifier"]["threshold"] == -0.5
    assert "--id-region face --id-negatives 0.25" in ckpt["train_config"]["command"]


def test_the_margin_lowers_the_other_people_terms_bar(data_file, tmp_path):
    # threshold 0.5 minus a margin of 1.5: the bar is -1, so every pair counts and the term is active
    vpath = _verifier_checkpoint(tmp_path / "best.pt", 48, threshold=0.5)
    result = train(_cfg(data_file, tmp_path / "margin", mode="ae", epochs=1, batch_size=3, id_verifier=str(vpath),
                        id_weight=0.5, id_negatives=0.25, id_margin=1.5), progress=False)
    assert result.history[-1]["train_id_others"] > 0
    ckpt = load_checkpoint(tmp_path / "margin" / "last.pt", "generator")
    assert ckpt["data"]["id_verifier"]["threshold"] == 0.5 and ckpt["data"]["id_verifier"]["margin"] == 1.5
    assert "--id-region face --id-negatives 0.25 --id-margin 1.5" in ckpt["train_config"]["command"]


def test_the_triplet_term_trains_and_is_recorded(data_file, tmp_path, capsys):
    vpath = _verifier_checkpoint(tmp_path / "best.pt", 48)  # no threshold needed
    result = train(_cfg(data_file, tmp_path / "trip", mode="ae", epochs=1, batch_size=3, id_verifier=str(vpath),
                        id_weight=0.5, id_triplet=0.25, id_triplet_margin=3.0), progress=False)
    row = result.history[-1]
    assert row["train_id_triplet"] > 0 and row["train_id_others"] == 0.0
    assert row["train_loss_g"] == pytest.approx(row["train_mse"] + 0.5 * row["train_id"] + 0.25 * row["train_id_triplet"],
                                                rel=1e-4)
    ckpt = load_checkpoint(tmp_path / "trip" / "last.pt", "generator")
    assert ckpt["data"]["id_verifier"]["triplet_margin"] == 3.0
    assert "--id-region face --id-triplet 0.25 --id-triplet-margin 3" in ckpt["train_config"]["command"]
    capsys.readouterr()
    base = ["train", "--data", str(data_file), "--out", str(tmp_path / "cli"), "--epochs", "1"]
    assert launch.main(base + ["--id-triplet", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "--id-triplet" in err and "--id-verifier" in err and err.count("\n") == 1
    assert launch.main(base + ["--id-triplet-margin", "0.3"]) == 2  # a margin for a term that is off
    err = capsys.readouterr().err
    assert "--id-triplet-margin 0.3 needs --id-triplet" in err and err.count("\n") == 1


def test_several_loss_verifiers_score_as_the_mean_of_their_cosines(data_file, tmp_path, capsys):
    from models.generator.train import identity_loss
    from models.verifier.net import load_branch
    from models.verifier.net import BranchEnsemble

    a = _verifier_checkpoint(tmp_path / "a.pt", 48, seed=0, threshold=0.2)
    b = _verifier_checkpoint(tmp_path / "b.pt", 48, seed=1, threshold=0.4)
    va, vb = load_branch(a), load_branch(b)
    g = torch.Generator().manual_seed(3)
    true8 = torch.randint(1, 256, (4, 48, 48), generator=g).to(torch.uint8)
    fake = torch.rand(4, 1, 48, 48, generator=g) * 2 - 1
    both = identity_loss(BranchEnsemble([va, vb]), fake, true8, "crop").same.detach()
    alone = [identity_loss(v, fake, true8, "crop").same.detach() for v in (va, vb)]
    assert float(both) == pytest.approx((float(alone[0]) + float(alone[1])) / 2, rel=1e-5)
    # the same verifier twice trains as it does once
    common = dict(mode="ae", epochs=1, batch_size=3, id_weight=0.5)
    once = train(_cfg(data_file, tmp_path / "once", id_verifier=str(a), **common), progress=False).history[-1]
    twice = train(_cfg(data_file, tmp_path / "twice", id_verifier=f"{a},{a}", **common), progress=False).history[-1]
    assert twice["train_id"] == pytest.approx(once["train_id"], rel=1e-4)
    assert twice["val_id_similarity"] == pytest.approx(once["val_id_similarity"], rel=1e-4)
    # two verifiers: both recorded; the other-people term's threshold is the mean of theirs
    train(_cfg(data_file, tmp_path / "pair", id_verifier=f"{a},{b}", id_negatives=0.25, **common), progress=False)
    ckpt = load_checkpoint(tmp_path / "pair" / "last.pt", "generator")
    record = ckpt["data"]["id_verifier"]
    assert record["file"] == "a.pt,b.pt" and [len(h) for h in record["sha256"].split(",")] == [64, 64]
    assert record["threshold"] == pytest.approx(0.3)
    assert f"--id-verifier {a},{b} --id-weight 0.5" in ckpt["train_config"]["command"]
    # a bad entry in the list is a one-line error naming it
    base = ["train", "--data", str(data_file), "--out", str(tmp_path / "cli"), "--epochs", "1", "--widths", "8,16,24",
            "--threads", "1", "--no-progress"]
    capsys.readouterr()
    assert launch.main(base + ["--id-verifier", f"{a},"]) == 2
    err = capsys.readouterr().err
    assert "--id-verifier" in err and "empty" in err and err.count("\n") == 1
    assert launch.main(base + ["--id-verifier", f"{a},{tmp_path / 'missing.pt'}"]) == 1
    err = capsys.readouterr().err
    assert "missing.pt" in err and "does not exist" in err and err.count("\n") == 1


def test_relief_loss_ignores_a_constant_offset_and_sees_a_wrong_slope():
    from models.generator.train import relief_loss

    y = torch.linspace(-0.5, 0.5, 20).repeat(20, 1)[None, None]  # a ramp along x
    w = torch.ones_like(y)
    assert float(relief_loss(y, y, w)) < 1e-5
    assert float(relief_loss(y + 0.2, y, w)) < 1e-5  # the same shape, elsewhere
    flat = torch.zeros_like(y)
    # the ramp rises 1/19 per pixel: over 4 pixels the gradient error is 4/19
    assert float(relief_loss(flat, y, w, step_px=4)) == pytest.approx(4 / 19, rel=1e-3)
    # pixels with no true depth (-1) take no part
    holes = y.clone()
    holes[..., :, 10:] = -1.0
    assert float(relief_loss(flat, holes, w, step_px=4)) == pytest.approx(4 / 19, rel=1e-3)


def test_face_weight_weighs_the_face_masks_valid_pixels():
    target = np.array([[0, 9], [9, 9]], np.uint8)
    face = np.array([[True, True], [False, False]])
    assert loss_masks(target, True, 0.1, face, 3.0).tolist() == [[pytest.approx(0.1), 3.0], [1.0, 1.0]]


def test_relief_and_face_weight_train_and_are_recorded(data_file, tmp_path):
    data = load_dataset(data_file)
    masks = data.depth_clean > 0
    masks[:, :, : data.size_px // 2] = False
    path = tmp_path / "masked.npz"
    replace(data, face_mask=masks).save(path)
    result = train(_cfg(path, tmp_path / "relief", mode="ae", epochs=1, relief_weight=0.5, face_weight=2.0),
                   progress=False)
    row = result.history[-1]
    assert row["train_relief"] > 0
    assert row["train_loss_g"] == pytest.approx(row["train_mse"] + 0.5 * row["train_relief"], rel=1e-4)
    assert "val_face_shape_l1_mm" in row
    ckpt = load_checkpoint(tmp_path / "relief" / "last.pt", "generator")
    assert "--face-weight 2 --relief-weight 0.5" in ckpt["train_config"]["command"]
    # data without face masks cannot be face-weighted
    from sensors.errors import FormatError

    with pytest.raises(FormatError, match="face masks"):
        train(_cfg(data_file, tmp_path / "nomask", mode="ae", epochs=1, face_weight=2.0), progress=False)
