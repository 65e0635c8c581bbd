"""``launch.py average``: the uniform average of several generator checkpoints' weights.

    python launch.py average --checkpoint runs/a/best.pt --checkpoint runs/b/best.pt \\
        --data data/virtual_v1.npz --out runs/ab/best.pt

Runs fine-tuned from ONE checkpoint (the same ``--init``) stay close enough in weight space that
the mean of their weights is itself a good generator, often better than each of them (a "model
soup"); a mean of unrelated networks is not. The command refuses checkpoints whose recorded start
differs (``init``: the ``--init`` file's name, its mode and its data file's name), but it cannot
tell two files of one name apart (every stage's ``generator.pt``): the validation metrics it
measures again are the real check.

Every network of the checkpoints (generator, and discriminator for the cGAN) is averaged
parameter by parameter. The result is a checkpoint like ``train``'s, without optimiser state
(what ``export`` and ``train --init`` read), whose validation metrics are measured again on
``--data``'s validation crops with the training code's own ``validate``: the file must be the
one the runs were trained and validated on (checked by its sha256). The source checkpoints are
listed under ``averaged_from`` (file, sha256, epoch, training command, validation L1), which
``export`` copies into the ONNX metadata.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sensors.errors import ConfigError

# What must be equal, besides the networks' parameter names and shapes, for the mean to be one model.
_SAME_KEYS = ("mode", "crop", "init")


def average_state(states: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The parameter-wise mean of state dicts with the same keys and shapes (in each tensor's dtype)."""
    return {k: (sum(s[k].double() for s in states) / len(states)).to(v.dtype) for k, v in states[0].items()}


def _check_compatible(ckpts: Sequence[Mapping[str, Any]], paths: Sequence[str]) -> None:
    ref = ckpts[0]
    for path, ck in zip(paths[1:], ckpts[1:]):
        for key in _SAME_KEYS:
            if ck.get(key) != ref.get(key):
                raise ConfigError(f"its {key} differs from {os.path.basename(paths[0])}'s ({ck.get(key)} against "
                                  f"{ref.get(key)}); only runs fine-tuned from one checkpoint can be averaged", path)
        for net in ("generator", "discriminator"):
            a, b = ref.get(net) or {}, ck.get(net) or {}
            if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
                raise ConfigError(f"its {net} has other parameters than {os.path.basename(paths[0])}'s", path)


def average_checkpoints(paths: Sequence[str | os.PathLike[str]], data: str | os.PathLike[str],
                        out: str | os.PathLike[str], threads: int = 0) -> dict[str, Any]:
    """Write the average of ``paths`` to ``out``, validated on ``data`` with ``threads`` PyTorch CPU
    threads (0: PyTorch's default, all cores); returns a summary."""
    import torch

    if threads:
        torch.set_num_threads(threads)

    from models.data.dataset import load_dataset
    from models.generator.export import slimmed
    from models.common.checkpoint import load_checkpoint, save_checkpoint
    from models.common.files import file_sha256
    from models.generator.train import BACKGROUND_WEIGHT, build_generator, validate

    paths = [os.fspath(p) for p in paths]
    if len(paths) < 2:
        raise ConfigError(f"averaging needs at least two checkpoints, got {len(paths)}")
    if len(set(map(os.path.realpath, paths))) != len(paths):
        raise ConfigError("the same checkpoint is given twice: " + ", ".join(paths))
    ckpts = [load_checkpoint(p, "generator") for p in paths]
    _check_compatible(ckpts, paths)
    data = os.fspath(data)
    if not os.path.isfile(data):
        raise ConfigError("dataset file does not exist", data)
    sha = file_sha256(data)
    for path, ck in zip(paths, ckpts):
        theirs = (ck.get("data") or {}).get("sha256")
        if theirs != sha:
            raise ConfigError(f"the run was trained on {(ck.get('data') or {}).get('file')} (sha256 {str(theirs)[:12]}), "
                              f"not on this file (sha256 {sha[:12]})", path)

    avg = slimmed(ckpts[0])
    avg["generator"] = average_state([c["generator"] for c in ckpts])
    if avg.get("discriminator"):
        avg["discriminator"] = average_state([c["discriminator"] for c in ckpts])

    val_set = load_dataset(data).select_split("val")
    if len(val_set) == 0:
        raise ConfigError("the dataset has no validation crops (split 1)", data)
    cfg = avg.get("train_config") or {}
    G = build_generator(avg)
    val = validate(G, val_set.color, val_set.target, (val_set.depth_clean is not None,
                                                        cfg.get("background_weight", BACKGROUND_WEIGHT)),
                   val_set.distance_mm, avg["crop"]["half_range_mm"], torch.device("cpu"))
    metrics = {"val_loss": val["val_loss"], **val["metrics"]}
    avg["val_metrics"] = avg["best_metrics"] = metrics
    avg["history"], avg["best_value"], avg["best_epoch"] = [], None, None
    avg["averaged_from"] = [
        {"file": p, "sha256": file_sha256(p), "epoch": c.get("epoch"), "command": (c.get("train_config") or {}).get("command"),
         "val_l1_mm": (c.get("val_metrics") or {}).get("l1_mm")} for p, c in zip(paths, ckpts)]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(avg, out, "generator")
    return {"out": str(out), "checkpoints": len(paths), "val_l1_mm": metrics.get("l1_mm"),
            "val_loss": metrics["val_loss"], "val_delta<1.25^1/4": metrics.get("delta<1.25^1/4")}
