"""``launch.py average``: the mean of runs fine-tuned from one checkpoint, validated again."""
from __future__ import annotations

import shutil

import pytest

torch = pytest.importorskip("torch")

import launch  # noqa: E402
from models.common.checkpoint import load_checkpoint  # noqa: E402
from models.generator.average import average_checkpoints  # noqa: E402
from models.data.dataset import load_dataset  # noqa: E402
from models.generator.runtime import DepthGenerator  # noqa: E402
from models.generator.train import TrainConfig, build_generator, train, validate  # noqa: E402
from sensors.errors import ConfigError  # noqa: E402
from tests.support.synthetic_data import make_crops  # noqa: E402

S = 48


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_cgan_run):
    """Two one-epoch fine-tunes of the tiny base run with different seeds, and a run from scratch."""
    d = tmp_path_factory.mktemp("average")
    shutil.copy(tiny_cgan_run.data, d / "crops.npz")
    make_crops(n=24, size=S, seed=5).save(d / "other.npz")
    base = dict(data=str(d / "crops.npz"), mode="cgan", epochs=1, batch_size=8, threads=1)
    for seed in (1, 2):
        train(TrainConfig(out=str(d / f"ft{seed}"), seed=seed, init=str(tiny_cgan_run.checkpoint), **base),
              progress=False)
    train(TrainConfig(out=str(d / "scratch"), seed=3, **base), progress=False)
    return d


def test_the_average_is_the_parameter_mean_and_is_validated_again(runs, tmp_path):
    a, b = runs / "ft1" / "last.pt", runs / "ft2" / "last.pt"
    out = tmp_path / "avg.pt"
    assert launch.main(["average", "--checkpoint", str(a), "--checkpoint", str(b), "--data", str(runs / "crops.npz"),
                        "--out", str(out), "--threads", "1"]) == 0
    ca, cb, avg = load_checkpoint(a, "generator"), load_checkpoint(b, "generator"), load_checkpoint(out, "generator")
    assert not torch.equal(ca["generator"]["stem.0.weight"], cb["generator"]["stem.0.weight"])
    for net in ("generator", "discriminator"):
        for k, v in avg[net].items():
            assert torch.allclose(v, (ca[net][k] + cb[net][k]) / 2, atol=1e-7), (net, k)
    assert avg["opt_g"] is None and "rng" not in avg
    assert [s["epoch"] for s in avg["averaged_from"]] == [1, 1]
    assert [s["command"] for s in avg["averaged_from"]] == [ca["train_config"]["command"], cb["train_config"]["command"]]

    # Its validation metrics are the averaged generator's, not a copy of either run's.
    val = load_dataset(runs / "crops.npz").select_split("val")
    ref = validate(build_generator(avg), val.color, val.target, (True, ca["train_config"]["background_weight"]),
                   val.distance_mm, avg["crop"]["half_range_mm"], torch.device("cpu"))
    assert avg["val_metrics"]["l1_mm"] == pytest.approx(ref["metrics"]["l1_mm"])
    assert avg["val_metrics"]["l1_mm"] != pytest.approx(ca["val_metrics"]["l1_mm"])

    # It exports and fine-tunes like any checkpoint; the ONNX metadata names its sources.
    assert launch.main(["export", "--checkpoint", str(out), "--out", str(tmp_path / "avg.onnx")]) == 0
    info = DepthGenerator(tmp_path / "avg.onnx", provider="cpu").info
    assert [s["sha256"] for s in info.training["averaged_from"]] == [s["sha256"] for s in avg["averaged_from"]]
    assert dict(info.validation_metrics) == pytest.approx(avg["val_metrics"])
    tuned = train(TrainConfig(data=str(runs / "crops.npz"), out=str(tmp_path / "ft"), mode="cgan", epochs=1,
                              batch_size=8, threads=1, init=str(out)), progress=False)
    assert tuned.history and load_checkpoint(tmp_path / "ft" / "last.pt", "generator")["init"]["file"] == "avg.pt"


def test_refuses_runs_from_other_starts_other_data_or_one_file(runs, tmp_path):
    a, b, scratch = (str(runs / r / "last.pt") for r in ("ft1", "ft2", "scratch"))
    data = str(runs / "crops.npz")
    with pytest.raises(ConfigError, match="init differs") as e:
        average_checkpoints([a, scratch], data, tmp_path / "x.pt")
    assert scratch in str(e.value)
    with pytest.raises(ConfigError, match="trained on crops.npz"):
        average_checkpoints([a, b], runs / "other.npz", tmp_path / "x.pt")
    with pytest.raises(ConfigError, match="at least two"):
        average_checkpoints([a], data, tmp_path / "x.pt")
    with pytest.raises(ConfigError, match="twice"):
        average_checkpoints([a, a], data, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_bad_checkpoint_is_a_one_line_error(runs, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    rc = launch.main(["average", "--checkpoint", str(bad), "--checkpoint", str(runs / "ft1" / "last.pt"),
                      "--data", str(runs / "crops.npz"), "--out", str(tmp_path / "x.pt")])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1 and "bad.pt" in err
    assert all(not p.name.startswith("x.pt") for p in tmp_path.iterdir())
