"""``launch.py train-refiner``: train the head-centre refiner (``models.refiner.runtime``) on sources
with annotated head centres, and export it to ONNX::

    python launch.py train-refiner --source virtual:seed=31,subjects=1000-1399,frames=6000 \\
        --val-source virtual:seed=33,subjects=1500-1539,sequence=free,frames=900 --out runs/refiner

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

import argparse
import csv
import hashlib
import io
import json
import os
import time
import warnings
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np

from models.common.files import atomic_path
from sensors.errors import SensorError

#: the 95 % target's radius: 5 crop pixels of a 100-px crop over 240 mm (mm)
WITHIN_MM = 12.0
#: a centre this far (mm) from the true one is "not a head"
NEGATIVE_MM = 100.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", action="append", required=True, metavar="URI",
                   help="annotated training source (repeatable); its identities must not be evaluated on")
    p.add_argument("--val-source", required=True, metavar="URI", help="annotated source of other identities")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder")
    p.add_argument("--samples-per-frame", type=int, default=4, help="offsets per frame [4]")
    p.add_argument("--negatives-per-frame", type=int, default=2, help="not-a-head samples per frame [2]")
    p.add_argument("--ray-negatives-per-frame", type=int, default=1,
                   help="not-a-head samples per frame on the true centre's own ray, at another distance [1]")
    p.add_argument("--perturb-mm", type=float, default=30.0, help="largest offset standard deviation in x and y, mm [30]")
    p.add_argument("--epochs", type=int, default=12, help="epochs [12]")
    p.add_argument("--batch", type=int, default=64, help="batch size [64]")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate [2e-3]")
    p.add_argument("--seed", type=int, default=0, help="random seed [0]")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    p.add_argument("--resume", action="store_true", help="continue from DIR/last.pt")
    p.add_argument("--export-only", action="store_true",
                   help="no training: export DIR/best.pt to DIR/head_refiner.onnx (with this version's spec)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


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
    p = np.array([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, 1.0]) * (z + 100.0)
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
# the network


def build_net(size_px: int) -> Any:
    """The refiner: strided 3x3 convolutions with batch norm on (relative depth, mask, grey),
    64 -> 32 -> 16 -> 8 -> 4, flattened (where things are matters) into two linear layers."""
    import torch
    from torch import nn

    def cbr(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    class RefinerNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(*cbr(3, 24, 2), *cbr(24, 32, 1), *cbr(32, 48, 2), *cbr(48, 48, 1),
                                          *cbr(48, 64, 2), *cbr(64, 96, 2))
            side = size_px
            for _ in range(4):
                side = (side + 1) // 2
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(96 * side * side, 128), nn.ReLU(inplace=True),
                                      nn.Linear(128, 4))

        def forward(self, planes: torch.Tensor) -> torch.Tensor:
            p = planes.to(torch.float32)
            levels, grey = p[:, 0:1], p[:, 1:2]
            valid = (levels > 0).to(torch.float32)
            x = torch.cat([(levels / 128.0 - 1.0) * valid, valid, grey / 255.0 - 0.5], dim=1)
            return self.head(self.features(x))

    return RefinerNet()


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


def main(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from sensors.errors import ConfigError

    from models.refiner.runtime import RefinerSpec

    if args.negatives_per_frame < 0 or args.ray_negatives_per_frame < 0:
        raise ConfigError("--negatives-per-frame and --ray-negatives-per-frame must not be negative")
    if args.samples_per_frame < 1 or args.epochs < 1 or args.batch < 2 or not args.perturb_mm > 0:
        raise ConfigError("--samples-per-frame, --epochs must be >= 1, --batch >= 2 and --perturb-mm > 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = RefinerSpec()
    crop = spec.crop
    mm_per_px = crop.window_x_mm / crop.size_px
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.export_only:
        if not (out / "best.pt").is_file():
            raise ConfigError(f"--export-only: {out / 'best.pt'} does not exist")
        x = np.random.default_rng(0).integers(0, 256, (16, 2, crop.size_px, crop.size_px), dtype=np.uint8)
        return _export_best(out, build_net(crop.size_px), spec, args, x)
    options = {"samples_per_frame": args.samples_per_frame, "perturb_mm": args.perturb_mm,
               "negatives_per_frame": args.negatives_per_frame, "ray_negatives_per_frame": args.ray_negatives_per_frame}
    train = cached_samples(out, "train", args.source, args.seed, crop, args.quiet, **options)
    val = cached_samples(out, "val", [args.val_source], args.seed + 1, crop, args.quiet, **options)
    print(f"samples: {len(train['y'])} train ({int(train['y'][:, 3].sum())} heads), {len(val['y'])} validation",
          flush=True)

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    net = build_net(crop.size_px)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = max(1, len(train["y"]) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps, pct_start=0.15)
    rows: list[dict[str, Any]] = []
    start, best = 1, None
    if args.resume:
        ck = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        rng.bit_generator.state = ck["numpy_rng"]
        rows, best, start = ck["curves"], ck["best"], ck["epoch"] + 1
    with open(out / "config.json", "w", encoding="utf-8") as f:
        json.dump({"command": "train-refiner", "args": {k: v for k, v in vars(args).items() if not k.startswith("_")}, "spec": spec.to_dict(),
                   "train_samples": len(train["y"]), "val_samples": len(val["y"])}, f, indent=1, default=str)
    x_all, y_all = torch.from_numpy(train["x"]), torch.from_numpy(train["y"])
    for epoch in range(start, args.epochs + 1):
        net.train()
        t0 = time.perf_counter()
        order = rng.permutation(len(y_all))
        losses = []
        for b in tqdm(range(steps), desc=f"epoch {epoch}/{args.epochs}", disable=args.quiet, leave=False):
            idx = torch.from_numpy(order[b * args.batch:(b + 1) * args.batch])
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
        m = evaluate(net, val["x"], val["y"], mm_per_px)
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), **m, "epoch_s": time.perf_counter() - t0}
        rows.append(row)
        improved = best is None or m["val_error_mm_median"] < best["val_error_mm_median"]
        if improved:
            best = dict(row)
            torch.save({"model": net.state_dict(), "epoch": epoch, "best": best}, out / "best.pt")
        torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "epoch": epoch, "numpy_rng": rng.bit_generator.state, "curves": rows, "best": best},
                   out / "last.pt")
        with open(out / "curves.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            w.writeheader()
            w.writerows(rows)
        print(f"epoch {epoch}: loss {row['train_loss']:.4f}  val error {m['val_error_mm_median']:.2f} mm  "
              f"within {WITHIN_MM:g} mm {m['val_within']:.3f} (before {m['val_within_before']:.3f})  "
              f"dz {m['val_dz_mm_median']:.1f} mm  heads missed {m['val_head_missed']:.3f} false heads "
              f"{m['val_false_head']:.3f}  ({row['epoch_s']:.0f} s){'  *best' if improved else ''}", flush=True)
    return _export_best(out, net, spec, args, val["x"][:16])


def _export_best(out: Path, net: Any, spec: Any, args: argparse.Namespace, parity_x: np.ndarray) -> int:
    import torch

    ck = torch.load(out / "best.pt", map_location="cpu", weights_only=False)
    net.load_state_dict(ck["model"])
    info = {"spec": spec.to_dict(), "training": {"sources": args.source, "val_source": args.val_source,
            "epoch": ck["epoch"], "best": ck["best"], "args": {k: v for k, v in vars(args).items() if not k.startswith("_")}}}
    parity = export_refiner(net, out / "head_refiner.onnx", info, parity_x)
    print(f"wrote {out / 'head_refiner.onnx'} (epoch {ck['epoch']}; ONNX vs PyTorch max diff {parity:.1e})")
    return 0


def export_refiner(net: Any, path: str | os.PathLike[str], info: dict[str, Any], parity_x: np.ndarray) -> float:
    """Write the ONNX file with ``info`` in its metadata; returns the ONNX-vs-PyTorch max difference
    on ``parity_x`` (ModelError when above 1e-3 crop px)."""
    import onnx
    import onnxruntime as ort
    import torch

    from sensors.errors import ModelError

    from models.refiner.runtime import METADATA_KEY

    path = os.fspath(path)
    net = net.eval().cpu()
    with atomic_path(path, suffix=".onnx") as tmp:
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (torch.from_numpy(parity_x[:2]),), tmp, input_names=["planes"],
                              output_names=["offset"], dynamic_axes={"planes": {0: "batch"}, "offset": {0: "batch"}},
                              opset_version=17, dynamo=False)
        proto = onnx.load(tmp)
        proto.doc_string = "facedepth head-centre refiner"
        del proto.metadata_props[:]
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(info, default=str)
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        got = ort.InferenceSession(tmp, so, providers=["CPUExecutionProvider"]).run(None, {"planes": parity_x})[0]
        with torch.no_grad():
            want = net(torch.from_numpy(parity_x)).numpy()
        diff = float(np.abs(got - want).max())
        if not diff <= 1e-3:
            raise ModelError(f"exported refiner differs from PyTorch by {diff:.2e}", path)
    return diff
