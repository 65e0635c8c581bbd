"""train-verifier: a short run on toy identities improves verification of unseen identities,
writes its run folder, resumes, and exports an ONNX verifier whose threshold is the validation
EER threshold."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

import launch
from models.data.dataset import load_dataset
from models.verifier.pairs import load_pairs
from models.verifier.train import validate
from models.verifier.runtime import Verifier
from models.verifier.net import (
    VerifierBranch,
    VerifierConfig,
    batch_hard_triplet_loss,
    supervised_contrastive_loss,
)
from tests.support.verifier_toy import toy_depth_dataset

ARGS = ["--epochs", "3", "--steps-per-epoch", "25", "--identities", "8", "--per-identity", "4",
        "--val-pairs", "200", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "toy.npz"
    toy_depth_dataset(n_subjects=18, per_subject=12, seed=3, val=4, test=4).save(path)
    return path


@pytest.fixture(scope="module")
def run(data_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert launch.main(["train-verifier", "--data", str(data_file), "--out", str(out), *ARGS]) == 0
    return out


def _rows(out):
    with open(out / "curves.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_short_run_improves_validation_verification(data_file, run):
    ds = load_dataset(data_file)
    pairs = load_pairs(run / "val_pairs.json")
    assert set(pairs.subjects) == set(np.unique(ds.subject[ds.split == 1]).tolist())
    torch.manual_seed(0)
    untrained = validate(VerifierBranch(VerifierConfig()), ds, pairs, torch.device("cpu"))
    rows = _rows(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    best_eer = min(float(r["val_eer"]) for r in rows)
    best_auc = max(float(r["val_auc"]) for r in rows)
    assert best_eer < untrained["val_eer"] - 0.05, (best_eer, untrained)
    assert best_auc > untrained["val_auc"] + 0.03, (best_auc, untrained)
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])


def test_run_folder_and_export(data_file, run):
    for name in ("config.json", "last.pt", "best.pt", "curves.csv", "curves.png", "val_pairs.json",
                 "verifier.onnx", "export.json"):
        assert (run / name).exists(), name
    config = json.loads((run / "config.json").read_text())
    assert config["branch"] == VerifierConfig().to_dict() and config["args"]["epochs"] == 3
    assert set(config["data"]["train_subjects"]).isdisjoint(config["data"]["val_subjects"])
    summary = json.loads((run / "export.json").read_text())
    v = Verifier(run / "verifier.onnx")
    assert (run / "verifier.onnx").stat().st_size < 20e6
    assert summary["parity"]["max_abs_diff"] <= 1e-4
    # the exported threshold is the validation EER threshold of the best checkpoint
    rows = _rows(run)
    best = min(rows, key=lambda r: (float(r["val_eer"]), -float(r["val_auc"]), -float(r["val_d_prime"])))
    assert v.threshold == pytest.approx(float(best["threshold"]), abs=1e-6)
    assert v.info["validation"]["eer"] == pytest.approx(float(best["val_eer"]))
    assert v.info["training"]["true_depth_only"] is True
    ds = load_dataset(data_file)
    assert v.info["training"]["train_subjects"] == sorted(np.unique(ds.subject[ds.split == 0]).tolist())
    assert v.info["training"]["sources"] == ["toy"]
    # an evaluation on the training identities says so
    from models.verifier.runtime import evaluate_verification

    train_view = ds.subset(np.arange(len(ds)))
    object.__setattr__(train_view, "split", np.where(ds.split == 0, 2, 0).astype(np.uint8))
    r = evaluate_verification(train_view, v, n_pairs=20).to_dict()
    assert r["subjects_in_verifier_training"] == sorted(np.unique(ds.subject[ds.split == 0]).tolist())
    assert v.crop_config_dict["half_range_mm"] == 150.0
    # the verifier separates unseen validation identities with its own threshold
    ds = load_dataset(data_file)
    pairs = load_pairs(run / "val_pairs.json")
    emb = v.embed(ds.depth)
    scores = np.sum(emb[pairs.first] * emb[pairs.second], axis=1)
    assert np.mean((scores >= v.threshold) == pairs.same) == pytest.approx(v.info["validation"]["accuracy_at_threshold"], abs=1e-6)


def test_resume_continues_the_run(data_file, run, tmp_path):
    import shutil

    out = tmp_path / "resumed"
    shutil.copytree(run, out)
    args = [a if a != "3" else "4" for a in ARGS]
    assert launch.main(["train-verifier", "--data", str(data_file), "--out", str(out), "--resume", *args]) == 0
    rows = _rows(out)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert rows[:3] == _rows(run)
    assert torch.load(out / "last.pt", weights_only=False)["epoch"] == 4
    # export only, from best.pt
    (out / "verifier.onnx").unlink()
    assert launch.main(["train-verifier", "--data", str(data_file), "--out", str(out), "--export-only", "--quiet"]) == 0
    assert Verifier(out / "verifier.onnx").threshold == pytest.approx(json.loads((out / "export.json").read_text())["threshold"])


def test_bad_arguments_and_data(tmp_path, data_file, capsys):
    assert launch.main(["train-verifier", "--data", str(data_file), "--out", str(tmp_path), "--epochs", "0"]) == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err
    assert launch.main(["train-verifier", "--data", str(data_file), "--out", str(tmp_path), "--flip-prob", "2"]) == 2
    assert "--flip-prob must be in [0, 1]" in capsys.readouterr().err
    assert launch.main(["train-verifier", "--data", str(data_file), "--out", str(tmp_path), "--max-minutes", "0"]) == 2
    assert "--max-minutes must be positive" in capsys.readouterr().err
    assert launch.main(["train-verifier", "--data", str(tmp_path / "none.npz"), "--out", str(tmp_path)]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert launch.main(["train-verifier", "--data", str(data_file), "--out", str(tmp_path / "fresh"), "--resume"]) == 1
    assert "checkpoint does not exist" in capsys.readouterr().err
    # a dataset without validation identities cannot choose a threshold
    ds = toy_depth_dataset(n_subjects=4, per_subject=3, seed=0, val=0, test=0)
    path = tmp_path / "noval.npz"
    ds.save(path)
    assert launch.main(["train-verifier", "--data", str(path), "--out", str(tmp_path / "r")]) == 1
    assert "no val identities" in capsys.readouterr().err


def test_losses_by_hand():
    # two identities, two crops each; embeddings on the unit circle
    e = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
    y = torch.tensor([0, 0, 1, 1])
    t = 0.5
    # batch-hard: anchor 0: hardest positive 1 - 0.6 = 0.4, nearest negative 1 - 0 = 1.0 (crop 2)
    # anchor 1: pos 0.4, neg min(1 - 0.8, 1 + 0.6) = 0.2; anchor 2: pos 1 - 0 = 1, neg min(1 - 0, 1 - 0.8) = 0.2
    # anchor 3: pos 1, neg min(2, 1.6) = 1.6
    gaps = torch.tensor([0.4 - 1.0, 0.4 - 0.2, 1.0 - 0.2, 1.0 - 1.6])
    want = torch.nn.functional.softplus(gaps / t).mean()
    assert float(batch_hard_triplet_loss(e, y, t)) == pytest.approx(float(want), rel=1e-6)
    # supervised contrastive, anchor 0: sims to others 0.6 (pos), 0, -1
    s = e @ e.t() / t
    want = 0.0
    for i in range(4):
        others = [j for j in range(4) if j != i]
        pos = [j for j in others if y[j] == y[i]]
        lse = torch.logsumexp(s[i, others], dim=0)
        want += -float(sum(s[i, j] - lse for j in pos) / len(pos))
    assert float(supervised_contrastive_loss(e, y, t)) == pytest.approx(want / 4, rel=1e-6)
    with pytest.raises(ValueError):
        supervised_contrastive_loss(e[:3], y[:3], t)


def test_augmentation_flip_and_erase():
    from models.verifier.train import VerifierTrainConfig, _Data

    ds = toy_depth_dataset(n_subjects=4, per_subject=4, seed=1, val=1, test=1)
    cfg = VerifierTrainConfig(data=("toy",), out="unused", identities=2, per_identity=2, clean_prob=0.0, shift_px=0,
                              flip_prob=1.0, erase_prob=0.0)
    data = _Data(ds, cfg, np.random.default_rng(0))
    x = ds.depth[:8].astype(np.float32)
    out = data._augment(x)
    # mirrored: the valid masks agree except for the few extra holes (at most 3 %)
    agree = np.mean((out > 0) == (x[:, :, ::-1] > 0))
    assert agree > 0.96 and np.mean((out > 0) == (x > 0)) < agree
    # levels change by the +-1 level noise at most (rounded Gaussian, clipped at 4 sigma here)
    both = (out > 0) & (x[:, :, ::-1] > 0)
    assert np.abs(out - x[:, :, ::-1])[both].mean() < 1.5
    data.flip_prob, data.erase_prob = 0.0, 1.0
    erased = data._augment(x)
    assert np.all((erased > 0).sum(axis=(1, 2)) < (x > 0).sum(axis=(1, 2)))


def test_more_data_files_add_training_identities_only(data_file, tmp_path):
    """--data twice: the second file's training crops join; validation and test stay the first's;
    a second file that trains on the first's held-out people is refused, naming it."""
    from dataclasses import replace

    from models.data.dataset import SPLITS, with_extra_training
    from sensors.errors import FormatError

    first = load_dataset(data_file)
    extra = toy_depth_dataset(n_subjects=8, per_subject=6, seed=9, val=2, test=0)
    extra = replace(extra, subject=extra.subject + 100, meta={**extra.meta, "sources": [{"uri": "toy2", "split": "train"}]})
    merged = with_extra_training(first, [("more.npz", extra)])
    n_extra_train = int((extra.split == SPLITS["train"]).sum())
    assert len(merged) == len(first) + n_extra_train
    assert np.array_equal(merged.subject[:len(first)], first.subject)
    assert set(np.unique(merged.subject[merged.split != 0])) == set(np.unique(first.subject[first.split != 0]))
    assert merged.meta["extra_training_data"] == ["more.npz"] and {"uri": "toy2", "split": "train"} in merged.meta["sources"]
    leaky = replace(extra, subject=np.where(extra.split == 0, first.subject[first.split == 1][0], extra.subject))
    with pytest.raises(FormatError, match="leaky.npz"):
        with_extra_training(first, [("leaky.npz", leaky)])

    extra_file = tmp_path / "more.npz"
    extra.save(extra_file)
    out = tmp_path / "run"
    args = ["--epochs", "1", "--steps-per-epoch", "5", "--identities", "8", "--per-identity", "4",
            "--val-pairs", "100", "--quiet", "--device", "cpu"]
    assert launch.main(["train-verifier", "--data", str(data_file), "--data", str(extra_file), "--out", str(out), *args]) == 0
    info = Verifier(out / "verifier.onnx").info
    assert info["training"]["data"] == f"{data_file.name}, more.npz"
    assert set(info["training"]["train_subjects"]) == set(np.unique(merged.subject[merged.split == 0]).tolist())
