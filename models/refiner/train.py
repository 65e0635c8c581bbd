"""``launch.py train-refiner``: train the head-centre refiner (``models.refiner.runtime``) on sources
with annotated head centres, and export it to ONNX::

    python launch.py train-refiner --source virtual:heads=procedural,seed=31,subjects=1000-1399,frames=6000 \\
        --val-source virtual:heads=procedural,seed=33,subjects=1500-1539,sequence=free,frames=900 --out runs/refiner

Samples (``make_samples``)
    For every annotated frame with depth, ``--samples-per-frame`` heads: the true centre moved
    by a random offset (normal; in x and y with standard deviation ``--perturb-mm``, half of it
    and a fifth of it in turn, twice that in z), the refiner's wide crop cut around the moved
    centre exactly as at run time (``models.refiner.runtime.refine_input``), and as target where
    the true centre lies in that crop (``refine_target``). And ``--negatives-per-frame`` crops
    that are not centred on a head: the depth search's candidates far from the true centre,
    then points behind random depth readings. Samples are cached per source in
    ``DIR/samples_train_<hash>.npz`` and ``samples_val_<hash>.npz`` (uint8 planes and targets;
    the hash covers the source, the seed and the options), so a run that adds a source builds
    only that source's samples.

Training
    Binary cross-entropy on the head logit, plus on heads a smooth-L1 loss on (x, y offset in
    crop pixels, depth difference / DZ_SCALE_MM); AdamW with a one-cycle schedule; random mirror
    images (the x offset flips sign). Validation reports one step's image-plane error on heads
    (median, and the share within ``WITHIN_MM``: 5 face-crop pixels at R = 240 mm, S = 100) and
    how often heads are rejected and non-heads accepted.

Output in ``--out``: ``config.json`` (arguments, spec), ``last.pt`` / ``best.pt``, ``curves.csv``,
``head_refiner.onnx`` (the best epoch's network, checked against PyTorch). Copy it to
``models/weights/head_refiner.onnx`` to ship it.
"""
from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.common.checkpoint import load_checkpoint, save_checkpoint
from models.common.files import atomic_path
from sensors.errors import SensorError

#: the 95 % target's radius: 5 crop pixels of a 100-px crop over 240 mm (mm)
WITHIN_MM = 12.0
#: a centre this far (mm) from the true one is "not a head"
NEGATIVE_MM = 100.0


@dataclass(frozen=True)
class RefinerTrainConfig:
    """One ``train-refiner`` run: the sources, the sampling, the optimisation and the run folder.
    Field names are the command's options (``to_dict`` is what config.json records)."""

    #: annotated training sources (their identities must not be evaluated on)
    source: tuple[str, ...]
    #: annotated source of other identities, for validation
    val_source: str
    out: str
    samples_per_frame: int = 4
    negatives_per_frame: int = 2
    ray_negatives_per_frame: int = 1
    #: the largest offset standard deviation in x and y (``make_samples``)
    perturb_mm: float = 30.0
    epochs: int = 12
    batch_size: int = 64
    #: the one-cycle schedule's peak learning rate
    lr: float = 2e-3
    seed: int = 0
    #: PyTorch CPU threads (None: PyTorch's choice)
    threads: int | None = None
    resume: bool = False
    #: no training: export ``out``/best.pt only
    export_only: bool = False
    quiet: bool = False

    def __post_init__(self) -> None:
        from sensors.errors import ConfigError

        if self.negatives_per_frame < 0 or self.ray_negatives_per_frame < 0:
            raise ConfigError("--negatives-per-frame and --ray-negatives-per-frame must not be negative")
        if self.samples_per_frame < 1 or self.epochs < 1 or self.batch_size < 2 or not self.perturb_mm > 0:
            raise ConfigError("--samples-per-frame, --epochs must be >= 1, --batch-size >= 2 and --perturb-mm > 0")

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON values, in the command's order."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


# --------------------------------------------------------------------------------------------
# samples


def make_samples(uris: list[str], crop: Any, samples_per_frame: int, perturb_mm: float, seed: int | list[int],
                 negatives_per_frame: int = 2, ray_negatives_per_frame: int = 0, quiet: bool = True,
                 desc: str = "samples") -> dict[str, np.ndarray]:
    """From annotated frames: inputs (N, 2, S, S) uint8; targets (N, 4) float32 (x, y offset in
    crop pixels, depth difference / DZ_SCALE_MM, 1 for a head); the frames' yaw (N,).

    Heads: the true centre moved by a random offset (see the module docstring). Not heads
    (targets 0, 0, 0, 0), ``negatives_per_frame`` per frame: first the depth search's plausible
    heads (``sensors.locate.locator.depth_heads``) that lie more than NEGATIVE_MM from the true centre (a
    headrest, a door, a hand: the mistakes the refiner must catch), then points 100 mm behind
    random depth readings of the frame, equally far from the head. And ``ray_negatives_per_frame``
    on the ray through the true centre, at 0.5-0.8 or 1.25-3 times its distance: the face is
    where it should be in the colour image but the depth says the head is elsewhere (what a
    face box gives when its distance is guessed from its size and the guess is wrong).
    """
    from tqdm import tqdm

    from sensors.geometry import euler_deg_from_rotation
    from sensors.locate.locator import depth_heads
    from sensors.source import open_source

    from models.data.build import unpaced_uri
    from models.refiner.runtime import refine_input, refine_target

    rng = np.random.default_rng(seed)
    xs, ys, yaws = [], [], []

    def add(frame: Any, rough: np.ndarray, truth: np.ndarray | None, yaw: float) -> None:
        try:
            x, step = refine_input(frame, rough, crop)
        except SensorError:
            return
        xs.append(x)
        ys.append(np.append(refine_target(frame, step, truth, crop), 1.0) if truth is not None else np.zeros(4))
        yaws.append(yaw)

    for uri in uris:
        with open_source(unpaced_uri(uri)) as src:
            for frame in tqdm(src, desc=desc, unit="frame", disable=quiet):
                truth = frame.head_center_color_mm()
                if truth is None or frame.depth_mm is None or frame.depth_camera is None:
                    continue
                yaw = euler_deg_from_rotation(frame.head_rotation)[0] if frame.head_rotation is not None else np.nan
                for k in range(samples_per_frame):
                    sd = perturb_mm * (1.0, 0.5, 0.2)[k % 3]
                    add(frame, truth + rng.normal(0.0, 1.0, 3) * np.array([sd, sd, 2.0 * sd]), truth, yaw)
                wrong = [c for _, c in depth_heads(frame, raw=True) if np.linalg.norm(c - truth) > NEGATIVE_MM]
                wrong = [wrong[j] for j in rng.permutation(len(wrong))]
                for _ in range(8 * negatives_per_frame):
                    if len(wrong) >= negatives_per_frame:
                        break
                    c = _random_surface_point(frame, rng)
                    if c is not None and np.linalg.norm(c - truth) > NEGATIVE_MM:
                        wrong.append(c)
                for c in wrong[:negatives_per_frame]:
                    add(frame, c, None, yaw)
                for _ in range(ray_negatives_per_frame):
                    scale = rng.uniform(0.5, 0.8) if rng.random() < 0.4 else rng.uniform(1.25, 3.0)
                    add(frame, truth * scale, None, yaw)
    if not xs:
        from sensors.errors import ConfigError

        raise ConfigError(f"{', '.join(uris)}: no frame with an annotated head centre and depth")
    return {"x": np.stack(xs), "y": np.stack(ys).astype(np.float32), "yaw_deg": np.array(yaws, np.float32)}


def _random_surface_point(frame: Any, rng: np.random.Generator) -> np.ndarray | None:
    """A point 100 mm behind a random depth reading, in colour-camera mm (None when it hit a hole)."""
    cam = frame.depth_camera
    v, u = int(rng.integers(0, cam.height)), int(rng.integers(0, cam.width))
    z = float(frame.depth_mm[v, u])
    if z <= 0:
        return None
    p = cam.ray(u, v) * (z + 100.0)
    return frame.depth_to_color.apply(p)


def cached_samples(out: Path, split: str, uris: list[str], seed: int, crop: Any, quiet: bool = True,
                   **options: Any) -> dict[str, np.ndarray]:
    """The samples of every source in ``uris`` (``make_samples`` with the sampling ``options``),
    each cached in its own ``DIR/samples_<split>_<hash>.npz`` keyed by the source, the seed, the
    crop and the options, so that a run which adds a source reuses the samples of the others."""
    parts = []
    for k, uri in enumerate(uris):
        key = json.dumps({**options, "crop": crop.to_dict(), "uri": uri, "seed": [seed, k]}, sort_keys=True)
        path = out / f"samples_{split}_{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"
        part = None
        if path.exists():
            with np.load(path, allow_pickle=False) as z:
                if str(z["key"]) == key:
                    part = {name: z[name] for name in ("x", "y", "yaw_deg")}
        if part is None:
            part = make_samples(uris=[uri], crop=crop, seed=[seed, k], quiet=quiet, desc=f"{split} samples", **options)
            with atomic_path(path, suffix=".npz") as tmp:
                np.savez(tmp, key=np.array(key), **part)
        parts.append(part)
    return {name: np.concatenate([p[name] for p in parts]) for name in ("x", "y", "yaw_deg")}


# --------------------------------------------------------------------------------------------
# training


def evaluate(net: Any, x: np.ndarray, y: np.ndarray, mm_per_px: float) -> dict[str, float]:
    """On validation samples: one step's image-plane error on heads, median (mm) and share
    within WITHIN_MM (and before the step); the head / not-head decision's error rate."""
    import torch

    from models.refiner.runtime import DZ_SCALE_MM

    net.eval()
    with torch.no_grad():
        pred = np.concatenate([net(torch.from_numpy(x[k:k + 512])).numpy() for k in range(0, len(x), 512)])
    head = y[:, 3] > 0.5
    p, t = pred[head], y[head]
    err = np.hypot(p[:, 0] - t[:, 0], p[:, 1] - t[:, 1]) * mm_per_px
    before = np.hypot(t[:, 0], t[:, 1]) * mm_per_px
    said_head = pred[:, 3] > 0.0
    return {"val_error_mm_median": float(np.median(err)), "val_within": float(np.mean(err <= WITHIN_MM)),
            "val_within_before": float(np.mean(before <= WITHIN_MM)),
            "val_dz_mm_median": float(np.median(np.abs(p[:, 2] - t[:, 2]))) * DZ_SCALE_MM,
            "val_head_missed": float(np.mean(~said_head[head])),
            "val_false_head": float(np.mean(said_head[~head])) if (~head).any() else 0.0}


def train_refiner(cfg: RefinerTrainConfig, command: str | None = None,
                  stop: Callable[[], str | None] | None = None) -> int:
    """Train (or, with ``export_only``, only export) the refiner as ``cfg`` says. The run's
    config.json and the ONNX metadata record ``cfg`` as ``args``, with the ``launch.py`` command
    it ran under (``command``) first when given.

    ``stop()`` (``app.stops.poll``; polled before the first epoch and after every step) returns
    why to stop early or None: the epoch ends there, is validated and saved to ``last.pt`` (it
    counts as done; ``--resume`` continues), and the best so far is exported."""
    import torch
    from tqdm import tqdm

    from sensors.errors import ConfigError

    from models.refiner.net import RefinerNet
    from models.refiner.runtime import RefinerSpec

    recorded = {**({"command": command} if command else {}), **cfg.to_dict()}
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    spec = RefinerSpec()
    crop = spec.crop
    mm_per_px = crop.window_x_mm / crop.size_px
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.export_only:
        if not (out / "best.pt").is_file():
            raise ConfigError(f"--export-only: {out / 'best.pt'} does not exist")
        x = np.random.default_rng(0).integers(0, 256, (16, 2, crop.size_px, crop.size_px), dtype=np.uint8)
        return _export_best(out, RefinerNet(crop.size_px), spec, cfg, recorded, x)
    options = {"samples_per_frame": cfg.samples_per_frame, "perturb_mm": cfg.perturb_mm,
               "negatives_per_frame": cfg.negatives_per_frame, "ray_negatives_per_frame": cfg.ray_negatives_per_frame}
    train = cached_samples(out, "train", list(cfg.source), cfg.seed, crop, cfg.quiet, **options)
    val = cached_samples(out, "val", [cfg.val_source], cfg.seed + 1, crop, cfg.quiet, **options)
    print(f"samples: {len(train['y'])} train ({int(train['y'][:, 3].sum())} heads), {len(val['y'])} validation",
          flush=True)

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = RefinerNet(crop.size_px)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    steps = max(1, len(train["y"]) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps, pct_start=0.15)
    rows: list[dict[str, Any]] = []
    start, best = 1, None
    if cfg.resume:
        ck = load_checkpoint(out / "last.pt", "refiner")
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        rng.bit_generator.state = ck["numpy_rng"]
        rows, best, start = ck["curves"], ck["best"], ck["epoch"] + 1
    with open(out / "config.json", "w", encoding="utf-8") as f:
        json.dump({"command": "train-refiner", "args": recorded, "spec": spec.to_dict(),
                   "train_samples": len(train["y"]), "val_samples": len(val["y"])}, f, indent=1, default=str)
    x_all, y_all = torch.from_numpy(train["x"]), torch.from_numpy(train["y"])
    if stop is not None:
        stop()  # the first poll: from here on a stop signal waits for the end of the step
    for epoch in range(start, cfg.epochs + 1):
        net.train()
        t0 = time.perf_counter()
        order = rng.permutation(len(y_all))
        losses = []
        for b in tqdm(range(steps), desc=f"epoch {epoch}/{cfg.epochs}", disable=cfg.quiet, leave=False):
            idx = torch.from_numpy(order[b * cfg.batch_size:(b + 1) * cfg.batch_size])
            xb, yb = x_all[idx], y_all[idx].clone()
            flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
            xb[flip] = xb[flip].flip(-1)
            yb[flip, 0] = -yb[flip, 0]
            pred = net(xb)
            head = yb[:, 3] > 0.5
            loss = torch.nn.functional.binary_cross_entropy_with_logits(pred[:, 3], yb[:, 3])
            if bool(head.any()):
                loss = loss + torch.nn.functional.smooth_l1_loss(pred[head, :3], yb[head, :3])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if stop is not None and stop():
                break
        m = evaluate(net, val["x"], val["y"], mm_per_px)
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), **m, "epoch_s": time.perf_counter() - t0}
        rows.append(row)
        improved = best is None or m["val_error_mm_median"] < best["val_error_mm_median"]
        if improved:
            best = dict(row)
            save_checkpoint({"model": net.state_dict(), "epoch": epoch, "best": best}, out / "best.pt", "refiner")
        save_checkpoint({"model": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                         "epoch": epoch, "numpy_rng": rng.bit_generator.state, "curves": rows, "best": best},
                        out / "last.pt", "refiner")
        with open(out / "curves.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            w.writeheader()
            w.writerows(rows)
        print(f"epoch {epoch}: loss {row['train_loss']:.4f}  val error {m['val_error_mm_median']:.2f} mm  "
              f"within {WITHIN_MM:g} mm {m['val_within']:.3f} (before {m['val_within_before']:.3f})  "
              f"dz {m['val_dz_mm_median']:.1f} mm  heads missed {m['val_head_missed']:.3f} false heads "
              f"{m['val_false_head']:.3f}  ({row['epoch_s']:.0f} s){'  *best' if improved else ''}", flush=True)
        reason = stop() if stop is not None else None
        if reason:
            print(f"stopped by {reason} in epoch {epoch} (saved as done); --resume continues", flush=True)
            break
    return _export_best(out, net, spec, cfg, recorded, val["x"][:16])


def _export_best(out: Path, net: Any, spec: Any, cfg: RefinerTrainConfig, recorded: dict[str, Any],
                 parity_x: np.ndarray) -> int:
    from models.refiner.export import export_refiner

    ck = load_checkpoint(out / "best.pt", "refiner")
    net.load_state_dict(ck["model"])
    info = {"spec": spec.to_dict(), "training": {"sources": list(cfg.source), "val_source": cfg.val_source,
            "epoch": ck["epoch"], "best": ck["best"], "args": recorded}}
    parity = export_refiner(net, out / "head_refiner.onnx", info, parity_x)
    print(f"wrote {out / 'head_refiner.onnx'} (epoch {ck['epoch']}; ONNX vs PyTorch max diff {parity:.1e})")
    return 0
