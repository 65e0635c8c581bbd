"""``launch.py train-verifier``: train the face verifier on TRUE depth crops of the training
identities, choose its threshold on the validation identities, export ``verifier.onnx``.

    python launch.py train-verifier --data crops.npz --out runs/verifier
    python launch.py train-verifier --data crops.npz --out runs/verifier --resume --epochs 60

Training (``models.verifier.net``): batches of P identities x K crops of the training split,
the sensor depth (``depth``) and, with probability ``--clean-prob``, the noise-free depth of
the same crop where the dataset has it (still true depth: never a generator's output);
augmented with a small shift, extra sensor holes and level noise; the supervised contrastive
loss (``--loss triplet``: batch-hard soft-margin triplet); AdamW with a one-cycle cosine
learning-rate schedule.

Validation after each epoch: a fixed, balanced pair list drawn on the validation identities
(seeded); its equal error rate decides the best epoch (ties: the higher AUC, then the wider
separation d' = (mean same - mean different score) / pooled standard deviation). The decision threshold exported with
the model is the EER threshold of the best epoch on those pairs (``models.verifier.pairs``): the
validation identities never take part in training, so the threshold is chosen on identities
the network has not seen, as the test identities will be.

In ``--out``: ``config.json`` (arguments, branch, data), ``last.pt`` (model, optimiser,
scheduler and random states: ``--resume`` continues from it), ``best.pt``, ``curves.csv`` and
``curves.png`` (loss and validation EER / AUC / accuracy per epoch), ``val_pairs.json``,
``verifier.onnx`` (exported from ``best.pt`` with a PyTorch/ONNX Runtime parity check) and
``export.json`` (threshold, validation metrics, parity, pair latency). ``--max-minutes`` stops
after the epoch that passes the limit and exports what is best so far; ``--resume`` continues
(with a larger ``--epochs`` to train longer).

The training identities (and the dataset's sources) are recorded in the ONNX metadata, so an
evaluation can tell when its pairs hold identities the verifier was trained on.
"""
from __future__ import annotations

import csv
import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def _ints(text: str, what: str) -> tuple[int, ...]:
    from sensors.errors import ConfigError

    try:
        vals = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not vals:
        raise ConfigError(f"{what} must list at least one integer")
    return vals


@dataclass(frozen=True)
class VerifierTrainConfig:
    """One ``train-verifier`` run: data, run folder, training, branch and validation. Field names
    are the command's options (``to_dict`` is what config.json records as ``args``)."""

    #: crop datasets; the first gives validation and test, the others add training crops
    data: tuple[str, ...]
    out: str
    resume: bool = False
    #: no training: export ``out``/best.pt only
    export_only: bool = False
    epochs: int = 40
    #: batches per epoch (None: training crops / batch size, at least 50)
    steps_per_epoch: int | None = None
    #: identities per batch (P) and crops per identity (K)
    identities: int = 16
    per_identity: int = 8
    #: the one-cycle schedule's peak learning rate
    lr: float = 1e-3
    weight_decay: float = 5e-4
    #: ``models.verifier.net.LOSSES``: "supcon" or "triplet"
    loss: str = "supcon"
    temperature: float = 0.1
    #: share of crops taken from the noise-free depth where the data has it
    clean_prob: float = 0.25
    shift_px: int = 4
    flip_prob: float = 0.0
    erase_prob: float = 0.0
    # the branch (``VerifierConfig``); widths and extra convs comma-separated, as given on the command line
    embedding_dim: int = 128
    widths: str = "16,32,48,64,96"
    extra_convs: str = "0,1,1,1,0"
    val_pairs: int = 2000
    seed: int = 0
    #: "auto" (CUDA when present), "cpu" or "cuda"
    device: str = "auto"
    #: PyTorch CPU threads (None: PyTorch's choice)
    threads: int | None = None
    #: stop after the epoch that passes this many minutes (None: no limit)
    max_minutes: float | None = None
    quiet: bool = False

    def __post_init__(self) -> None:
        from sensors.errors import ConfigError

        for name, lo in (("epochs", 1), ("identities", 2), ("per_identity", 2), ("val_pairs", 10), ("embedding_dim", 2)):
            if getattr(self, name) < lo:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least {lo}, got {getattr(self, name)}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ConfigError(f"--steps-per-epoch must be at least 1, got {self.steps_per_epoch}")
        for name in ("clean_prob", "flip_prob", "erase_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"--{name.replace('_', '-')} must be in [0, 1], got {getattr(self, name)}")
        if self.max_minutes is not None and not self.max_minutes > 0:  # "not >": refuses nan too
            raise ConfigError(f"--max-minutes must be positive, got {self.max_minutes}")
        if not (self.lr > 0 and self.temperature > 0) or self.shift_px < 0:
            raise ConfigError("--lr and --temperature must be positive and --shift-px not negative")

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON values, in the command's order."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class _Data:
    """The training and validation crops, and PK batch sampling with augmentation."""

    def __init__(self, dataset: Any, cfg: VerifierTrainConfig, rng: Any) -> None:
        import numpy as np

        from sensors.errors import FormatError

        self.rng = rng
        train = dataset.split == 0
        self.depth = dataset.depth
        self.clean = dataset.depth_clean
        self.by_subject = {int(s): np.flatnonzero(train & (dataset.subject == s))
                           for s in np.unique(dataset.subject[train])}
        self.by_subject = {s: ix for s, ix in self.by_subject.items() if len(ix) >= 2}
        if len(self.by_subject) < 2:
            raise FormatError(f"the training split holds {len(self.by_subject)} identities with two or more crops; "
                              "the verifier needs at least 2", cfg.data[0])
        self.subjects = np.array(sorted(self.by_subject))
        self.p = min(cfg.identities, len(self.subjects))
        self.k = cfg.per_identity
        self.clean_prob = cfg.clean_prob if self.clean is not None else 0.0
        self.shift = cfg.shift_px
        self.flip_prob = cfg.flip_prob
        self.erase_prob = cfg.erase_prob
        self.n_train = int(train.sum())

    def batch(self) -> tuple[Any, Any]:
        """(P*K, S, S) float32 levels and (P*K,) int64 labels."""
        import numpy as np

        rng = self.rng
        subs = rng.choice(self.subjects, size=self.p, replace=False)
        idx = np.concatenate([rng.choice(self.by_subject[int(s)], size=self.k, replace=len(self.by_subject[int(s)]) < self.k)
                              for s in subs])
        labels = np.repeat(subs, self.k).astype(np.int64)
        x = self.depth[idx].astype(np.float32)
        if self.clean_prob > 0:
            use_clean = rng.random(len(idx)) < self.clean_prob
            x[use_clean] = self.clean[idx[use_clean]]
        return self._augment(x), labels

    def _augment(self, x: Any) -> Any:
        import numpy as np

        rng = self.rng
        n, s, _ = x.shape
        out = np.zeros_like(x)
        for i in range(n):
            dy, dx = (rng.integers(-self.shift, self.shift + 1, size=2) if self.shift else (0, 0))
            src = x[i, max(0, -dy):s - max(0, dy), max(0, -dx):s - max(0, dx)]
            out[i, max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
        valid = out > 0
        noise = rng.normal(0.0, 1.0, size=out.shape).astype(np.float32)
        out = np.where(valid, np.clip(np.rint(out + noise), 1, 255), 0).astype(np.float32)
        holes = rng.random(out.shape) < rng.uniform(0.0, 0.03, size=(n, 1, 1))
        out[holes] = 0
        if self.flip_prob > 0:
            flip = rng.random(n) < self.flip_prob
            out[flip] = out[flip, :, ::-1]
        for i in np.flatnonzero(rng.random(n) < self.erase_prob):
            h, w = rng.integers(s // 8, s // 3, size=2)
            y, x0 = rng.integers(0, s - h), rng.integers(0, s - w)
            out[i, y:y + h, x0:x0 + w] = 0
        return out


def _validation_pairs(dataset: Any, cfg: VerifierTrainConfig, out: Path) -> Any:
    from models.verifier.runtime import pairs_for

    return pairs_for(dataset, out / "val_pairs.json", split="val", n_pairs=cfg.val_pairs, seed=cfg.seed)


def _embed(model: Any, crops: Any, device: Any, batch: int = 256) -> Any:
    import numpy as np
    import torch

    model.eval()
    outs = []
    with torch.no_grad():
        for k in range(0, len(crops), batch):
            outs.append(model(torch.from_numpy(np.ascontiguousarray(crops[k:k + batch])).to(device)).cpu().numpy())
    return np.concatenate(outs)


def validate(model: Any, dataset: Any, pairs: Any, device: Any) -> dict[str, float]:
    """Validation metrics on the fixed pairs, at the EER threshold of these scores."""
    import numpy as np

    from models.verifier.pairs import equal_error_rate, verification_metrics

    needed = np.unique(np.concatenate([pairs.first, pairs.second]))
    where = np.full(len(dataset.subject), -1, dtype=np.int64)
    where[needed] = np.arange(len(needed))
    emb = _embed(model, dataset.depth[needed], device)
    scores = np.sum(emb[where[pairs.first]] * emb[where[pairs.second]], axis=1)
    t = equal_error_rate(scores, pairs.same).threshold
    m = verification_metrics(scores, pairs.same, t)
    pos, neg = scores[pairs.same], scores[~pairs.same]
    d_prime = float((pos.mean() - neg.mean()) / max(np.sqrt((pos.var() + neg.var()) / 2), 1e-9))
    return {"val_eer": m.eer, "val_auc": m.auc, "val_accuracy": m.accuracy, "val_d_prime": d_prime, "threshold": t}


CURVE_FIELDS = ("epoch", "train_loss", "val_eer", "val_auc", "val_accuracy", "val_d_prime", "threshold", "lr", "epoch_s")


def _write_curves(out: Path, rows: list[dict[str, Any]]) -> None:
    with open(out / "curves.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CURVE_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in CURVE_FIELDS})
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    ep = [r["epoch"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    a.plot(ep, [r["train_loss"] for r in rows], marker=".")
    a.set_xlabel("epoch"), a.set_ylabel("triplet loss (train)"), a.grid(alpha=0.3)
    b.plot(ep, [r["val_eer"] for r in rows], marker=".", label="EER")
    b.plot(ep, [1 - r["val_auc"] for r in rows], marker=".", label="1 - AUC")
    b.plot(ep, [1 - r["val_accuracy"] for r in rows], marker=".", label="error at EER threshold")
    b.set_xlabel("epoch"), b.set_ylabel("validation (unseen identities)"), b.grid(alpha=0.3), b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curves.png")
    plt.close(fig)


def _save(path: Path, state: dict[str, Any]) -> None:
    from models.common.checkpoint import save_checkpoint

    save_checkpoint(state, path, "verifier")


def _load(path: Path) -> dict[str, Any]:
    from models.common.checkpoint import load_checkpoint

    return load_checkpoint(path, "verifier", missing_hint="train first, or drop --resume / --export-only")


def pair_latency_ms(onnx_path: Path, crops: Any, repeats: int = 200) -> dict[str, float]:
    """Median wall and mean CPU milliseconds to score one pair (batch of two), one thread."""
    import numpy as np

    from models.verifier.runtime import Verifier

    v = Verifier(onnx_path, threads=1)
    a, b = crops[0], crops[1 % len(crops)]
    for _ in range(10):
        v.score(a, b)
    walls = []
    c0 = time.process_time()
    for _ in range(repeats):
        t0 = time.perf_counter()
        v.score(a, b)
        walls.append(time.perf_counter() - t0)
    cpu = (time.process_time() - c0) / repeats
    return {"pair_wall_ms_median": float(np.median(walls) * 1e3), "pair_cpu_ms_mean": float(cpu * 1e3)}


def export_best(out: Path, dataset: Any, pairs: Any, data_names: str, quiet: bool = False) -> dict[str, Any]:
    """Export DIR/best.pt to DIR/verifier.onnx with the validation threshold; write export.json."""
    import numpy as np
    import torch

    from models.verifier.export import export_verifier
    from models.verifier.net import branch_from_checkpoint

    ck = _load(out / "best.pt")
    model = branch_from_checkpoint(ck)
    metrics = validate(model, dataset, pairs, torch.device("cpu"))
    val_idx = np.flatnonzero(dataset.split == 1)
    parity = dataset.depth[val_idx[np.linspace(0, len(val_idx) - 1, min(16, len(val_idx))).astype(int)]]
    info = {
        "name": "facedepth verifier",
        "threshold_rule": "equal-error-rate threshold on balanced pairs of the validation identities",
        "validation": {"eer": metrics["val_eer"], "auc": metrics["val_auc"], "d_prime": metrics["val_d_prime"],
                       "accuracy_at_threshold": metrics["val_accuracy"], "pairs": len(pairs),
                       "subjects": list(pairs.subjects)},
        "crop": dict(dataset.meta.get("crop", {})),
        "training": {"data": data_names, "epoch": ck["epoch"],
                     "sources": dataset.meta.get("sources", []),
                     "train_subjects": [int(s) for s in np.unique(dataset.subject[dataset.split == 0])],
                     "loss": ck.get("loss", "supcon"), "true_depth_only": True},
    }
    if (out / "config.json").is_file():  # the options the run was trained with
        with open(out / "config.json", encoding="utf-8") as f:
            info["training"]["args"] = json.load(f).get("args", {})
    onnx_path = out / "verifier.onnx"
    parity_check = export_verifier(model, onnx_path, metrics["threshold"], info, parity)
    latency = pair_latency_ms(onnx_path, parity)
    summary = {"file": str(onnx_path), "bytes": onnx_path.stat().st_size, "threshold": metrics["threshold"],
               "validation": info["validation"], "parity": parity_check, "latency": latency,
               "latency_note": "one pair = two crops in one batch, ONNX Runtime, 1 thread, this machine"}
    with open(out / "export.json", "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    if not quiet:
        print(f"exported {onnx_path} ({summary['bytes'] / 1e6:.2f} MB): threshold {metrics['threshold']:.4f}, "
              f"validation EER {metrics['val_eer']:.4f}, AUC {metrics['val_auc']:.4f}; parity {parity_check['max_abs_diff']:.1e}; "
              f"pair {latency['pair_wall_ms_median']:.2f} ms")
    return summary


def train_verifier(cfg: VerifierTrainConfig, command: str | None = None,
                   stop: Callable[[], str | None] | None = None) -> int:
    """Train (or, with ``export_only``, only export) the verifier as ``cfg`` says. The run's
    config.json (and through it the ONNX metadata) records ``cfg`` as ``args``, with the
    ``launch.py`` command it ran under (``command``) first when given.

    ``stop()`` (``app.stops.poll``; polled before the first epoch and after every step) returns
    why to stop early or None: the epoch ends there, is validated and saved to ``last.pt`` (it
    counts as done; ``--resume`` continues), and the best so far is exported, as with
    ``--max-minutes``."""
    import numpy as np
    import torch
    from tqdm import tqdm

    from models.common.errors import ModelError
    from sensors.errors import ConfigError

    from models.data.dataset import load_datasets
    from models.verifier.net import LOSSES, VerifierBranch, VerifierConfig

    out = Path(cfg.out)
    dataset = load_datasets(list(cfg.data))  # a bad data file leaves no run folder behind
    out.mkdir(parents=True, exist_ok=True)
    data_names = ", ".join(os.path.basename(p) for p in cfg.data)
    pairs = _validation_pairs(dataset, cfg, out)
    if cfg.export_only:
        export_best(out, dataset, pairs, data_names, cfg.quiet)
        return 0
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available to PyTorch")
    device = torch.device("cuda" if cfg.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    try:
        config = VerifierConfig(size_px=dataset.size_px, widths=_ints(cfg.widths, "--widths"),
                                extra_convs=_ints(cfg.extra_convs, "--extra-convs"), embedding_dim=cfg.embedding_dim)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    data = _Data(dataset, cfg, rng)
    model = VerifierBranch(config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.steps_per_epoch or max(50, data.n_train // (data.p * data.k))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps,
                                                pct_start=min(0.3, 1.0 / cfg.epochs), anneal_strategy="cos")
    rows: list[dict[str, Any]] = []
    start, best = 1, None
    if cfg.resume:
        ck = _load(out / "last.pt")
        if ck["branch"] != config.to_dict():
            raise ModelError(f"checkpoint branch {ck['branch']} differs from the arguments' {config.to_dict()}", out / "last.pt")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if ck["total_steps"] == cfg.epochs * steps:
            sched.load_state_dict(ck["scheduler"])
        elif ck["epoch"] < cfg.epochs:
            # a longer run than the checkpoint's: the new schedule, advanced to where training stands
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for _ in range(ck["epoch"] * steps):
                    sched.step()
        rng.bit_generator.state = ck["numpy_rng"]
        torch.set_rng_state(ck["torch_rng"])
        rows, best, start = ck["curves"], ck["best"], ck["epoch"] + 1
        if start > cfg.epochs:
            print(f"{out / 'last.pt'} already holds {ck['epoch']} epochs; raise --epochs to train more")
    recorded = {**({"command": command} if command else {}), **cfg.to_dict()}
    config_doc = {"command": "train-verifier", "args": recorded,
                  "branch": config.to_dict(), "data": {"files": [os.path.abspath(p) for p in cfg.data], "crops": len(dataset),
                  "train_crops": data.n_train, "train_subjects": [int(s) for s in data.subjects],
                  "val_subjects": list(pairs.subjects), "crop": dataset.meta.get("crop", {})},
                  "steps_per_epoch": steps, "device": str(device)}
    with open(out / "config.json", "w", encoding="utf-8") as f:
        json.dump(config_doc, f, indent=1)
    started = time.monotonic()
    if stop is not None:
        stop()  # the first poll: from here on a stop signal waits for the end of the step
    for epoch in range(start, cfg.epochs + 1):
        if cfg.max_minutes is not None and time.monotonic() - started > cfg.max_minutes * 60:
            print(f"stopped before epoch {epoch}: --max-minutes {cfg.max_minutes:g} passed; --resume continues")
            break
        model.train()
        t0 = time.perf_counter()
        losses = []
        bar = tqdm(range(steps), desc=f"epoch {epoch}/{cfg.epochs}", disable=cfg.quiet, leave=False, unit="batch")
        for _ in bar:
            x, y = data.batch()
            xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
            loss = LOSSES[cfg.loss](model(xt), yt, cfg.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
            if stop is not None and stop():
                break
        m = validate(model, dataset, pairs, device)
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), **m,
               "lr": opt.param_groups[0]["lr"], "epoch_s": time.perf_counter() - t0}
        rows.append(row)
        improved = best is None or (m["val_eer"], -m["val_auc"], -m["val_d_prime"]) < (
            best["val_eer"], -best["val_auc"], -best["val_d_prime"])
        if improved:
            best = dict(row)
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "epoch": epoch, "branch": config.to_dict(), "total_steps": cfg.epochs * steps,
                 "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                 "curves": rows, "best": best}
        _save(out / "last.pt", state)
        if improved:
            _save(out / "best.pt", {"model": model.state_dict(), "epoch": epoch, "branch": config.to_dict(),
                                    "best": best, "loss": cfg.loss})
        _write_curves(out, rows)
        print(f"epoch {epoch}: loss {row['train_loss']:.4f}  val EER {m['val_eer']:.4f}  AUC {m['val_auc']:.4f}  "
              f"acc {m['val_accuracy']:.4f}  ({row['epoch_s']:.1f} s){'  *best' if improved else ''}", flush=True)
        reason = stop() if stop is not None else None
        if reason:
            print(f"stopped by {reason} in epoch {epoch} (saved as done); --resume continues", flush=True)
            break
    export_best(out, dataset, pairs, data_names, cfg.quiet)
    return 0
