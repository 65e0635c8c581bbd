"""``launch.py train``: train the depth generator, as a cGAN (the method) or as the AE baseline.

    python launch.py train --data data/train.npz --out runs/cgan --mode cgan
    python launch.py train --data data/train.npz --out runs/ae --mode ae
    python launch.py train --data my_kinect.npz --out runs/ft --init models/weights/generator.pt
    torchrun --nproc-per-node 2 launch.py train --data ... --out ...   (DistributedDataParallel)

Data: a crop dataset file (``models.data.dataset``); split 0 trains, split 1 validates after every
epoch. Targets are ``CropDataset.target``: the clean depth when the data has it (the virtual
Kinect), else the sensor depth. With sensor targets the invalid (0) pixels are masked out of
the loss (0 there means "no reading" as often as "background"). With clean targets a 0 is real
background and stays in the loss, at weight ``--background-weight`` (default 0.1, see
``BACKGROUND_WEIGHT``) against 1 for valid pixels: the model still learns to mark background
(level 0), but where it cannot tell background from a surface in the window (hair, a hand, a
wall just inside the range) it leans towards the surface. This matches how depth is scored
(docs/design.md, "Metrics": over valid ground-truth pixels only, so a surface predicted as
background is a large error and background predicted as a surface costs nothing); at weight 1
too many true surface pixels come out as background (models/README.md). Pixels that
augmentation moved in from outside the crop have weight 0 in both cases.

Losses (docs/design.md, "The generator and its training"), in the tanh range [-1, 1] of the
generator's output:
    L_G = L_MSE(G(x), y) + lambda * BCE(D(x, G(x)), 1)        (AE: lambda = 0, no D)
    L_D = BCE(D(x, y), 1 - s) + BCE(D(x, G(x)), 0)
with ``lambda`` = ``--adv-weight`` (default 0.002, see ``ADV_WEIGHT``) and one-sided label
smoothing ``s`` = 0.1 on the real label. BCE is taken on logits (``BCEWithLogitsLoss``): the
discriminator's sigmoid folded into the loss for numerical stability. Masked pixels are set to
-1 (level 0) in both the real and the generated depth the discriminator sees, so a hole is
never a tell.

Identity loss (optional, not in the paper): with ``--id-verifier CKPT`` (a ``train-verifier``
checkpoint, frozen) the generator loss gains ``--id-weight`` (default 0.5) times
``1 - cos(e(G(x)), e(y))``, the cosine distance between the verifier's embeddings of the
generated and the true depth of the same crop (``identity_loss``). It asks the generator to keep
what tells people apart, where the per-pixel MSE weighs every pixel alike. The verifier is
trained on true depth only and fixed; validation then also reports ``val_id_similarity`` (the
mean cosine similarity on the validation crops). ``--id-region face`` (the default) shows the
verifier the generated depth inside the true face's outline only; ``crop`` the whole generated
crop, which lets the generator shape its background to please the verifier. Evaluate with
ANOTHER verifier than the loss's: a generator trained against one network can learn that
network's blind spots. ``--id-negatives W`` adds W times a term that keeps each generated crop
from passing as the OTHER people of its batch: for every pair of a generated crop and the true
depth of another person's crop, ``max(0, cos - t)``, with ``t`` the loss verifier's own
validation threshold (stored in its checkpoint), summed over the other people and averaged over
the batch's crops (``identity_loss``). Only pairs that the loss's verifier would accept count;
``--id-margin M`` lowers that bar to ``t - M``, so near misses count too. ``--id-triplet W``
adds W times a relative form that needs no threshold: per generated crop, ``max(0, cos(hardest
other) - cos(same) + m)``, the most similar other person's true crop of the batch against the
crop's own true depth, with the margin ``m`` of ``--id-triplet-margin`` (averaged over the crops
whose batch holds another person). ``--id-verifier A,B`` takes several verifiers at once
(``BranchEnsemble``): every cosine above is then the mean of theirs (and ``t`` the mean of their
thresholds), so the generator cannot pass by exploiting one network's blind spot.

Optimisation: Adam for the generator (lr 1e-3, beta1 0.9, cosine decay to 2 % of it over the
epochs, batch 16) and for the discriminator (lr 2e-4, beta1 0.5, the usual GAN setting). For
the generator, batch 16 and beta1 0.9 lower the training loss faster per crop seen than batch 32
and beta1 0.5 (models/README.md).

Written to ``--out``: ``config.json`` (the resolved configuration), ``last.pt`` (every epoch,
with optimiser state, for ``--resume``), ``best.pt`` (the best validation
``--select-metric``), ``curves.csv`` / ``curves.png`` (losses and validation metrics per
epoch; TensorBoard event files too when the ``tensorboard`` package is installed) and
``samples/epoch_NNN.png`` (colour | true | predicted | |error| for fixed validation crops).

Devices: ``--device auto`` takes CUDA when present, else the CPU (``torch.set_num_threads`` =
the cores divided among the local processes, or ``--threads``). Under ``torchrun`` (RANK and
WORLD_SIZE in the environment) every process trains on its share of each epoch through
DistributedDataParallel (NCCL on CUDA, gloo on CPU); rank 0 validates and writes the files.
"""
from __future__ import annotations

import csv
import json
import math
import os
import random
import shlex
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from models.common.checkpoint import load_checkpoint, save_checkpoint
from models.common.errors import ModelError
from models.common.files import file_sha256
from sensors.errors import ConfigError, FormatError

#: default adversarial weight lambda: the adversarial term moves the generator towards sharp,
#: plausible surfaces without outweighing the per-pixel MSE (measured: see models/README.md)
ADV_WEIGHT = 0.002
#: default weight of the identity loss (``--id-verifier``); the MSE is ~0.03 in tanh units, the
#: loss ~0.3. Larger weights cost depth accuracy without keeping identity better (models/README.md)
ID_WEIGHT = 0.5
#: default margin of the triplet term (``--id-triplet``), in cosine similarity
ID_TRIPLET_MARGIN = 0.2
#: ``--id-region``: "face" shows the identity loss's verifier the generated depth inside the TRUE
#: face's outline only (the generated background stays the MSE's business); "crop" the whole
#: generated crop, as inference hands it over (the generator can then shape its background to
#: please the verifier: models/README.md, "What the identity loss buys")
ID_REGIONS = ("face", "crop")
#: one-sided label smoothing of the real label in the discriminator loss
REAL_LABEL = 0.9
#: loss weight of background (level 0) pixels of clean targets, relative to valid ones
BACKGROUND_WEIGHT = 0.1
#: fixed validation crops shown in the per-epoch sample grid
SAMPLE_ROWS = 6


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation of training crops, for real cameras (probabilities and ranges).

    Geometric changes (flip, shift, scale, rotation) apply to colour and depth alike; the
    photometric ones (colour jitter, blur, noise) to colour only. Depth values are never
    changed: a small shift or scale stands for an error of the head locator, not a new distance.
    Two more stand for real cameras: ``lowres`` resamples the colour down by a factor in
    ``lowres_scale`` and back up (a face that was 30-60 px wide in a depth camera's colour image
    or a far webcam, where the crop's face is about 60 px); ``misalign_px`` shifts the colour
    alone (colour from another camera than the depth, registered imperfectly).
    """

    enabled: bool = True
    flip_p: float = 0.5
    shift_px: float = 4.0
    scale: float = 0.05
    rotate_deg: float = 6.0
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.3
    channel_gain: float = 0.08
    blur_p: float = 0.3
    blur_sigma: tuple[float, float] = (0.4, 1.3)
    noise_p: float = 0.5
    noise_sigma: float = 6.0
    jpeg_p: float = 0.2
    jpeg_quality: tuple[int, int] = (40, 90)
    lowres_p: float = 0.3
    lowres_scale: tuple[float, float] = (0.5, 1.0)
    misalign_px: float = 1.5


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on; saved as ``config.json`` and inside every checkpoint."""

    data: str
    out: str
    #: more crop datasets whose training crops are added (``models.data.dataset.load_datasets``)
    extra_data: tuple[str, ...] = ()
    mode: str = "cgan"
    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    lr_d: float = 2e-4
    beta1: float = 0.9
    adv_weight: float = ADV_WEIGHT
    #: a train-verifier checkpoint whose embeddings give the identity loss (off when None)
    id_verifier: str | None = None
    id_weight: float = 0.0
    #: what of the generated crop the identity loss's verifier sees (``ID_REGIONS``)
    id_region: str = "face"
    #: weight of the identity loss's other-people term (``identity_loss``; 0: off)
    id_negatives: float = 0.0
    #: the other-people term counts pairs above the loss verifier's threshold minus this
    id_margin: float = 0.0
    #: weight of the identity loss's triplet term (``identity_loss``; 0: off) and its margin
    id_triplet: float = 0.0
    id_triplet_margin: float = ID_TRIPLET_MARGIN
    background_weight: float = BACKGROUND_WEIGHT
    #: loss weight of the face's pixels (the datasets' ``face_mask``) relative to the others' 1
    face_weight: float = 1.0
    #: weight of the relief term (``relief_loss``; 0: off)
    relief_weight: float = 0.0
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    threads: int = 0
    max_minutes: float = 0.0
    init: str | None = None
    select_metric: str = "l1_mm"
    generator: dict = field(default_factory=lambda: {})
    augment: AugmentConfig = AugmentConfig()
    max_train_samples: int = 0
    command: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        d = dict(d)
        aug = dict(d.pop("augment", {}))
        for k in ("blur_sigma", "jpeg_quality", "lowres_scale"):
            if k in aug:
                aug[k] = tuple(aug[k])
        d["extra_data"] = tuple(d.get("extra_data", ()))
        known = {f for f in cls.__dataclass_fields__}
        return cls(augment=AugmentConfig(**aug), **{k: v for k, v in d.items() if k in known})


# ----------------------------------------------------------------------------- reproducing a run


def command_for(cfg: TrainConfig) -> str:
    """The ``launch.py train`` command line that reproduces ``cfg`` (every result-defining option)."""
    parts = ["python", "launch.py", "train", "--data", cfg.data]
    for extra in cfg.extra_data:
        parts += ["--data", extra]
    parts += ["--out", cfg.out, "--mode", cfg.mode,
             "--epochs", str(cfg.epochs), "--batch-size", str(cfg.batch_size), "--lr", f"{cfg.lr:g}", "--beta1", f"{cfg.beta1:g}",
             "--seed", str(cfg.seed)]
    if cfg.mode == "cgan":
        parts += ["--lr-d", f"{cfg.lr_d:g}", "--adv-weight", f"{cfg.adv_weight:g}"]
    if cfg.generator:
        from models.generator.net import GeneratorConfig

        g = GeneratorConfig.from_dict(cfg.generator)
        if g != GeneratorConfig():
            parts += ["--widths", ",".join(str(w) for w in g.widths)]
    if cfg.id_verifier:
        parts += ["--id-verifier", cfg.id_verifier, "--id-weight", f"{cfg.id_weight:g}", "--id-region", cfg.id_region]
        if cfg.id_negatives:
            parts += ["--id-negatives", f"{cfg.id_negatives:g}"]
            if cfg.id_margin:
                parts += ["--id-margin", f"{cfg.id_margin:g}"]
        if cfg.id_triplet:
            parts += ["--id-triplet", f"{cfg.id_triplet:g}", "--id-triplet-margin", f"{cfg.id_triplet_margin:g}"]
    if cfg.background_weight != BACKGROUND_WEIGHT:
        parts += ["--background-weight", f"{cfg.background_weight:g}"]
    if cfg.face_weight != 1.0:
        parts += ["--face-weight", f"{cfg.face_weight:g}"]
    if cfg.relief_weight:
        parts += ["--relief-weight", f"{cfg.relief_weight:g}"]
    if cfg.init:
        parts += ["--init", cfg.init]
    if not cfg.augment.enabled:
        parts.append("--no-augment")
    if cfg.max_train_samples:
        parts += ["--max-train-samples", str(cfg.max_train_samples)]
    if cfg.select_metric != "l1_mm":
        parts += ["--select-metric", cfg.select_metric]
    return shlex.join(parts)


def generator_config_for_widths(widths: list[int]) -> dict:
    """A generator config with these channel widths per level, in the default's pattern."""
    from models.generator.net import GeneratorConfig

    n = len(widths)
    if n < 2 or any(w < 1 for w in widths):
        raise ConfigError(f"--widths needs at least two positive widths, got {widths}")
    # the default's pattern: extra convs and refinement below the top two levels
    enc = tuple(0 if i < 2 else 1 for i in range(n))
    dec = tuple(0 if i < 2 else 1 for i in range(n - 1))
    return GeneratorConfig(tuple(widths), enc, dec).to_dict()


# ----------------------------------------------------------------------------- data


def crop_config_from_meta(meta: Mapping[str, Any], size_px: int) -> dict:
    """The crop geometry a dataset was built with (``meta["crop"]`` or top-level keys), as a
    ``sensors.crop.CropConfig`` dict; missing values take CropConfig's defaults."""
    from sensors.crop import CropConfig

    src = meta.get("crop") if isinstance(meta.get("crop"), Mapping) else meta
    known = {"size_px", "window_x_mm", "window_y_mm", "half_range_mm", "depth_margin_mm"}
    d = {k: src[k] for k in known if k in src}
    d.setdefault("size_px", size_px)
    cfg = CropConfig.from_dict(d).to_dict()
    if cfg["size_px"] != size_px:
        raise FormatError(f"dataset metadata says {cfg['size_px']} px crops but the arrays are {size_px} px")
    return cfg


def data_is_synthetic(meta: Mapping[str, Any]) -> bool:
    """True when every source the dataset was built from is the virtual Kinect."""
    if isinstance(meta.get("synthetic"), bool):
        return meta["synthetic"]
    sources = meta.get("sources")
    if not isinstance(sources, list) or not sources:
        return False
    names = []
    for s in sources:
        if isinstance(s, Mapping):
            s = s.get("uri") or s.get("source") or s.get("scheme") or ""
        names.append(str(s))
    return all(n.split(":", 1)[0] == "virtual" for n in names)


def loss_masks(target: np.ndarray, clean: bool, background_weight: float = BACKGROUND_WEIGHT,
               face: np.ndarray | None = None, face_weight: float = 1.0) -> np.ndarray:
    """Per-pixel loss weights (float32): with clean targets 1 on valid pixels and
    ``background_weight`` on background (0) pixels; with sensor targets 1 on valid pixels and 0
    on invalid ones (a hole is not background). Valid pixels of the ``face`` mask weigh
    ``face_weight`` instead of 1."""
    valid = target > 0
    if clean:
        out = np.where(valid, np.float32(1.0), np.float32(background_weight)).astype(np.float32)
    else:
        out = valid.astype(np.float32)
    if face is not None and face_weight != 1.0:
        out[valid & face] = face_weight
    return out


def augment_sample(color: np.ndarray, target: np.ndarray, mask: np.ndarray, aug: AugmentConfig,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One augmented (colour, target, mask) triple; see :class:`AugmentConfig`."""
    import cv2

    s = color.shape[0]
    if rng.random() < aug.flip_p:
        color, target, mask = color[:, ::-1], target[:, ::-1], mask[:, ::-1]
    if aug.shift_px > 0 or aug.scale > 0 or aug.rotate_deg > 0:
        c = (s - 1) / 2.0
        m = cv2.getRotationMatrix2D((c, c), rng.uniform(-aug.rotate_deg, aug.rotate_deg),
                                    1.0 + rng.uniform(-aug.scale, aug.scale))
        m[:, 2] += rng.uniform(-aug.shift_px, aug.shift_px, size=2)
        color = cv2.warpAffine(np.ascontiguousarray(color), m, (s, s), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        target = cv2.warpAffine(np.ascontiguousarray(target), m, (s, s), flags=cv2.INTER_NEAREST,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        inside = cv2.warpAffine(np.ones((s, s), np.uint8), m, (s, s), flags=cv2.INTER_NEAREST,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        mask = cv2.warpAffine(np.ascontiguousarray(mask, dtype=np.float32), m, (s, s), flags=cv2.INTER_NEAREST,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0) * (inside > 0)
    if aug.misalign_px > 0:
        m = np.float32([[1, 0, rng.uniform(-aug.misalign_px, aug.misalign_px)],
                        [0, 1, rng.uniform(-aug.misalign_px, aug.misalign_px)]])
        color = cv2.warpAffine(np.ascontiguousarray(color), m, (s, s), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < aug.lowres_p:
        small = max(8, round(s * rng.uniform(*aug.lowres_scale)))
        color = cv2.resize(cv2.resize(np.ascontiguousarray(color), (small, small), interpolation=cv2.INTER_AREA),
                           (s, s), interpolation=cv2.INTER_LINEAR)
    x = np.asarray(color, dtype=np.float32)
    # colour jitter: brightness, contrast, saturation, white balance
    x = x * (1.0 + rng.uniform(-aug.brightness, aug.brightness))
    mean = x.mean()
    x = (x - mean) * (1.0 + rng.uniform(-aug.contrast, aug.contrast)) + mean
    grey = x.mean(axis=2, keepdims=True)
    x = (x - grey) * (1.0 + rng.uniform(-aug.saturation, aug.saturation)) + grey
    x = x * (1.0 + rng.uniform(-aug.channel_gain, aug.channel_gain, size=3)).astype(np.float32)
    if rng.random() < aug.blur_p:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(*aug.blur_sigma))
    if rng.random() < aug.noise_p:
        x = x + rng.normal(0.0, rng.uniform(0.0, aug.noise_sigma), size=x.shape).astype(np.float32)
    out = np.clip(x, 0, 255).astype(np.uint8)
    if rng.random() < aug.jpeg_p:
        ok, buf = cv2.imencode(".jpg", out[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(*aug.jpeg_quality))])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
    return np.ascontiguousarray(out), np.ascontiguousarray(target), np.ascontiguousarray(mask)


class _TrainSet:
    """Map-style dataset of augmented training crops (uint8 NHWC in, float tensors out)."""

    def __init__(self, color: np.ndarray, target: np.ndarray, subject: np.ndarray, clean: bool,
                 background_weight: float, aug: AugmentConfig, seed: int, face_mask: np.ndarray | None = None,
                 face_weight: float = 1.0) -> None:
        self.color, self.target, self.subject, self.aug, self.seed = color, target, subject, aug, seed
        self.clean, self.background_weight = clean, background_weight
        self.face_mask, self.face_weight = face_mask, face_weight
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.color)

    def __getitem__(self, i: int):
        import torch

        c, t = self.color[i], self.target[i]
        face = None if self.face_mask is None else self.face_mask[i]
        m = loss_masks(t, self.clean, self.background_weight, face, self.face_weight)
        if self.aug.enabled:
            rng = np.random.default_rng((self.seed, self.epoch, int(i)))
            c, t, m = augment_sample(c, t, m, self.aug, rng)
        return (torch.from_numpy(np.ascontiguousarray(c)), torch.from_numpy(np.ascontiguousarray(t)),
                torch.from_numpy(np.ascontiguousarray(m)), int(self.subject[i]))


def to_input(color_u8, device):
    """uint8 (N, S, S, 3) RGB tensor -> float (N, 3, S, S) in [-1, 1], the generator's input."""
    return color_u8.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def to_tanh(levels_u8, device):
    """uint8 (N, S, S) levels -> float (N, 1, S, S) in [-1, 1] (``sensors.encoding.levels_to_tanh``)."""
    return levels_u8.to(device, non_blocking=True).unsqueeze(1).float().div_(127.5).sub_(1.0)


# ----------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    epochs_done: int
    best_epoch: int
    best_metrics: dict[str, float]
    history: list[dict[str, float]]
    stopped: str
    rank: int = 0
    world_size: int = 1              # processes that trained together (DistributedDataParallel)
    samples_per_process: int = 0     # training crops each process saw per epoch


def _dist_env() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return rank, world, local


def resolve_device(name: str, local_rank: int = 0):
    import torch

    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available to this torch build")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name not in ("auto", "cpu"):
        raise ConfigError(f"unknown device {name!r}; expected auto, cpu or cuda")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_generator(ckpt_or_config: Mapping[str, Any] | None = None):
    """A Generator from a checkpoint (with its weights) or from a GeneratorConfig dict."""
    from models.generator.net import Generator, GeneratorConfig

    if ckpt_or_config and "generator_config" in ckpt_or_config:
        g = Generator(GeneratorConfig.from_dict(ckpt_or_config["generator_config"]))
        g.load_state_dict(ckpt_or_config["generator"])
        return g
    return Generator(GeneratorConfig.from_dict(ckpt_or_config) if ckpt_or_config else GeneratorConfig())


def id_verifier_files(value: str | None) -> list[str]:
    """The checkpoint files of ``--id-verifier`` (one, or a comma-separated list for an ensemble
    whose score is the mean of its members' cosine similarities); ConfigError on an empty entry."""
    if not value:
        return []
    files = [f.strip() for f in value.split(",")]
    if not all(files):
        raise ConfigError(f"--id-verifier {value!r}: an empty file name in the comma-separated list")
    return files


class IdentityLoss(NamedTuple):
    """The identity loss's terms (tensors): ``same``, the mean over the batch of 1 - cos(e(G(x_i)),
    e(y_i)); ``others``, per generated crop the sum over the true depth of OTHER people's crops of
    max(0, cos(e(G(x_i)), e(y_j)) - threshold), averaged over the batch; ``triplet``, per generated
    crop max(0, max_j cos(e(G(x_i)), e(y_j)) - cos(e(G(x_i)), e(y_i)) + margin) over the other
    people j, averaged over the crops that have one in the batch (each 0 when not asked for)."""

    same: Any
    others: Any
    triplet: Any


def identity_loss(verifier, fake, target_u8, region: str = "face", subject=None,
                  threshold: float | None = None, triplet_margin: float | None = None) -> IdentityLoss:
    """How far the verifier's embedding of the generated depth is from that of the true depth of
    the same crop (and, given the crops' ``subject`` ids, how far above a ``threshold`` the
    generated depth scores against other people's true depth, and how close the most similar
    other person comes to its own true depth's score, within ``triplet_margin``). ``fake``
    (N, 1, S, S) tanh output, ``target_u8`` (N, S, S) true levels; ``verifier`` a frozen
    ``VerifierBranch``. The generated depth reaches the verifier as inference hands it over
    (``tanh_to_levels``), without the rounding: what rounds to level 0 is background; with
    ``region`` "face" only inside the true depth's valid pixels (``ID_REGIONS``)."""
    import torch

    levels = ((fake[:, 0] + 1.0) * 127.5).clamp(max=255.0)
    levels = levels * (levels >= 0.5).detach()
    if region == "face":
        levels = levels * (target_u8 > 0)
    with torch.no_grad():
        e_true = verifier(target_u8)
    e_fake = verifier(levels)
    cos_same = (e_fake * e_true).sum(dim=1)
    others = triplet = torch.zeros((), device=fake.device)
    if subject is not None and (threshold is not None or triplet_margin is not None):
        subject = subject.to(fake.device)
        other = subject[:, None] != subject[None, :]
        cos = e_fake @ e_true.T
        if threshold is not None:
            others = (torch.relu(cos - threshold) * other).sum(dim=1).mean()
        if triplet_margin is not None:
            hardest = cos.masked_fill(~other, -2.0).max(dim=1).values
            has_other = other.any(dim=1)
            gap = torch.relu(hardest - cos_same + triplet_margin) * has_other
            triplet = gap.sum() / has_other.sum().clamp(min=1)
    return IdentityLoss((1.0 - cos_same).mean(), others, triplet)


def identity_similarity(verifier, pred8: np.ndarray, true8: np.ndarray, device, batch_size: int = 256) -> float:
    """Mean cosine similarity of the verifier's embeddings of predicted and true level crops."""
    import torch

    total = 0.0
    with torch.no_grad():
        for i in range(0, len(pred8), batch_size):
            a = verifier(torch.from_numpy(pred8[i:i + batch_size]).to(device))
            b = verifier(torch.from_numpy(true8[i:i + batch_size]).to(device))
            total += float((a * b).sum())
    return total / max(len(pred8), 1)


def masked_mse(pred, target, mask):
    """Weighted mean squared error: sum(w (p - t)^2) / sum(w)."""
    import torch

    m = mask.float()
    return ((pred - target) ** 2 * m).sum() / torch.clamp(m.sum(), min=1.0)


def relief_loss(pred, target, weights, step_px: int | None = None):
    """The relief term: weighted mean of |grad pred - grad target| (Euclidean norm), the gradients
    as forward differences over ``step_px`` pixels (the face-relief metric's step, so noise at one
    pixel does not drown the face's shape), over pixel pairs whose three points are all valid
    targets; each point weighs as its ``weights`` (the loss masks) at the pair's origin."""
    import torch

    from models.metrics import FACE_RELIEF_STEP_PX

    k = step_px or FACE_RELIEF_STEP_PX
    valid = target > -1.0 + 1e-3  # level 0 (no depth) is -1 in tanh units
    e = pred - target
    both = valid[..., :-k, :-k] & valid[..., :-k, k:] & valid[..., k:, :-k]
    ex = e[..., :-k, k:] - e[..., :-k, :-k]
    ey = e[..., k:, :-k] - e[..., :-k, :-k]
    w = weights[..., :-k, :-k] * both
    norm = torch.sqrt(ex ** 2 + ey ** 2 + 1e-12)
    return (norm * w).sum() / torch.clamp(w.sum(), min=1.0)


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True,
          stop: Callable[[], str | None] | None = None) -> TrainResult:
    """Train a generator as configured; returns the history and the best validation metrics.

    ``stop()`` (polled before the first epoch and after every step; ``app.stops.poll``) returns
    why to stop early (e.g. ``"SIGINT"``) or None: the epoch is cut short there, validated and
    saved to ``last.pt`` as with ``--max-minutes``, so ``--resume`` continues with the next epoch;
    the reason becomes ``TrainResult.stopped``.
    """
    import torch

    id_files = _check_config(cfg)
    procs = _start_processes(cfg)
    out = Path(cfg.out)
    data = _load_training_data(cfg, procs)
    init_ckpt = load_checkpoint(cfg.init, "generator") if cfg.init else None
    cfg = _resolve_config(cfg, init_ckpt, data.crop)
    # the order below fixes how the seeded random state is drawn: networks, then the resumed
    # state, then the identity verifier (a bit-identical run depends on it)
    nets = _build_networks(cfg, init_ckpt, procs.device)
    record = _resume(cfg, nets, out) if resume else _Record()
    ident = _load_identity_verifier(cfg, id_files, data.data.size_px, procs.device)
    nets = _distribute(nets, procs)
    data_info = _data_info(cfg, data, ident)
    synthetic_only = data_info["synthetic"] and (init_ckpt is None or bool(init_ckpt.get("synthetic_only")))
    tb = _open_run_folder(out, cfg) if procs.main else None

    t_start = time.monotonic()
    budget_s = cfg.max_minutes * 60.0 if cfg.max_minutes > 0 else math.inf
    stopped = "epochs"
    epoch = record.start_epoch
    bce = torch.nn.BCEWithLogitsLoss()
    if stop is not None:
        stop()  # the first poll: from here on a stop signal waits for the end of the step
    for epoch in range(record.start_epoch, cfg.epochs):
        t_epoch = time.monotonic()
        means, out_of_time = _train_epoch(cfg, nets, data, ident, procs, epoch, bce, progress, t_start, budget_s,
                                          stop)
        out_of_time = _agree(out_of_time, procs.distributed, procs.device)
        row = {"epoch": epoch + 1, "time_s": round(time.monotonic() - t_start, 2), "lr": nets.opt_g.param_groups[0]["lr"],
               **{f"train_{k}": v for k, v in means.items()}}
        if procs.main:
            val = _validate_epoch(cfg, nets, data, ident, procs.device, row)
            improved = _update_best(record, cfg, val, epoch)
            record.history.append(row)
            state = _checkpoint_state(cfg, nets, data, record, val, epoch, data_info, synthetic_only, init_ckpt)
            _write_epoch(out, state, improved, record.history, data, val, epoch, tb, row)
            _log_epoch(cfg, row, val, improved, nets.D is not None, ident is not None, t_epoch)
        reason = stop() if stop is not None else None
        if _agree(reason is not None, procs.distributed, procs.device):
            stopped = reason or "stopped"
            break
        if out_of_time:
            stopped = "max-minutes"
            break
        # stop before an epoch that would overrun the budget
        epoch_s = time.monotonic() - t_epoch
        if _agree(time.monotonic() - t_start + epoch_s > budget_s and epoch + 1 < cfg.epochs,
                  procs.distributed, procs.device):
            stopped = "max-minutes"
            break
    _end_processes(procs)
    if tb is not None:
        tb.close()
    return TrainResult(epochs_done=len(record.history) if procs.main else epoch + 1, best_epoch=record.best_epoch,
                       best_metrics=dict(record.best_metrics), history=record.history, stopped=stopped,
                       rank=procs.rank, world_size=procs.world,
                       samples_per_process=len(data.sampler) if data.sampler is not None else len(data.ds))


@dataclass(frozen=True)
class _Processes:
    """Where this process trains: its rank among ``world`` processes (DistributedDataParallel when
    ``world`` > 1) and its device; ``owns_group`` when this run started the process group."""

    rank: int
    world: int
    device: Any
    owns_group: bool

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0 validates and writes the run's files."""
        return self.rank == 0


@dataclass(frozen=True)
class _TrainingData:
    """The loaded crops: all files' dataset, its crop geometry, the splits and this process's loader."""

    data: Any
    crop: dict
    #: clean targets (background is level 0) rather than sensor depth (0 is "no reading")
    clean: bool
    train_set: Any
    val_set: Any
    ds: _TrainSet
    sampler: Any
    #: the loader's shuffle generator, reseeded every epoch
    shuffle: Any
    loader: Any


@dataclass(frozen=True)
class _Networks:
    """Generator, discriminator (None for the AE) and their optimisers; ``Gt`` / ``Dt`` are the
    networks as trained (wrapped in DistributedDataParallel under torchrun)."""

    G: Any
    D: Any
    opt_g: Any
    opt_d: Any
    Gt: Any
    Dt: Any


@dataclass(frozen=True)
class _IdentityVerifier:
    """The identity loss's frozen verifier (an ensemble of ``files``), the mean of their validation
    thresholds and the bar the other-people term counts above (both None without that term)."""

    net: Any
    files: list[str]
    threshold: float | None
    bar: float | None


@dataclass
class _Record:
    """What the run has recorded: the epoch it starts at, the history and the best epoch so far."""

    start_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_value: float | None = None
    best_epoch: int = -1
    best_metrics: dict[str, float] = field(default_factory=dict)


def _check_config(cfg: TrainConfig) -> list[str]:
    """ConfigError unless ``cfg`` is a valid run; returns the identity loss's verifier files."""
    from models.metrics import ALL_KEYS

    if cfg.mode not in ("cgan", "ae"):
        raise ConfigError(f"unknown mode {cfg.mode!r}; expected cgan or ae")
    if cfg.id_weight < 0 or (cfg.id_weight > 0 and not cfg.id_verifier):
        raise ConfigError(f"--id-weight {cfg.id_weight:g} needs --id-verifier CKPT and must not be negative")
    if cfg.id_negatives < 0 or (cfg.id_negatives > 0 and not cfg.id_verifier):
        raise ConfigError(f"--id-negatives {cfg.id_negatives:g} needs --id-verifier CKPT and must not be negative")
    if cfg.id_triplet < 0 or (cfg.id_triplet > 0 and not cfg.id_verifier):
        raise ConfigError(f"--id-triplet {cfg.id_triplet:g} needs --id-verifier CKPT and must not be negative")
    if cfg.id_margin < 0 or (cfg.id_margin > 0 and not cfg.id_negatives):
        raise ConfigError(f"--id-margin {cfg.id_margin:g} needs --id-negatives W and must not be negative")
    if cfg.id_triplet_margin < 0 or (cfg.id_triplet_margin != ID_TRIPLET_MARGIN and not cfg.id_triplet):
        raise ConfigError(f"--id-triplet-margin {cfg.id_triplet_margin:g} needs --id-triplet W and must not be negative")
    id_files = id_verifier_files(cfg.id_verifier)
    if cfg.id_region not in ID_REGIONS:
        raise ConfigError(f"unknown --id-region {cfg.id_region!r}; expected one of {', '.join(ID_REGIONS)}")
    for name in ("epochs", "batch_size"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}")
    if cfg.face_weight <= 0:
        raise ConfigError(f"--face-weight must be positive, got {cfg.face_weight:g}")
    if cfg.relief_weight < 0:
        raise ConfigError(f"--relief-weight must not be negative, got {cfg.relief_weight:g}")
    if cfg.select_metric not in ALL_KEYS and cfg.select_metric != "val_loss":
        raise ConfigError(f"unknown --select-metric {cfg.select_metric!r}; expected val_loss or one of {', '.join(ALL_KEYS)}")
    return id_files


def _start_processes(cfg: TrainConfig) -> _Processes:
    """Join the process group under torchrun, choose the device and CPU threads, seed this process."""
    import torch
    import torch.distributed as dist

    rank, world, local_rank = _dist_env()
    device = resolve_device(cfg.device, local_rank)
    owns_group = world > 1 and not dist.is_initialized()
    if owns_group:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cpu":
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // max(1, local_world)))
    else:
        torch.backends.cudnn.benchmark = True
    seed_everything(cfg.seed + rank)
    return _Processes(rank, world, device, owns_group)


def _end_processes(procs: _Processes) -> None:
    import torch.distributed as dist

    if procs.distributed:
        dist.barrier()
    if procs.owns_group:
        # on success only (after a failure other ranks may still wait in a collective); left to
        # interpreter shutdown, gloo's threads can abort the process after its work is done
        dist.destroy_process_group()


def _load_training_data(cfg: TrainConfig, procs: _Processes) -> _TrainingData:
    """The datasets, their splits (0 trains, 1 validates) and this process's share of the training crops."""
    import torch

    from models.data.dataset import load_datasets

    data = load_datasets([cfg.data, *cfg.extra_data])
    crop = crop_config_from_meta(data.meta, data.size_px)
    clean = data.depth_clean is not None
    train_set = data.select_split("train")
    val_set = data.select_split("val")
    if len(train_set) == 0:
        raise FormatError("the dataset has no training crops (split 0)", cfg.data)
    if len(val_set) == 0:
        raise FormatError("the dataset has no validation crops (split 1)", cfg.data)
    if cfg.max_train_samples:
        train_set = train_set.subset(np.arange(min(cfg.max_train_samples, len(train_set))))
    if cfg.face_weight != 1.0 and train_set.face_mask is None:
        raise FormatError("--face-weight needs face masks, and not every dataset has them (build-dataset of the "
                          "virtual Kinect writes them, format version 2)", cfg.data)
    ds = _TrainSet(train_set.color, train_set.target, train_set.subject, clean, cfg.background_weight, cfg.augment,
                   cfg.seed, train_set.face_mask, cfg.face_weight)
    sampler = None
    if procs.distributed:
        sampler = torch.utils.data.distributed.DistributedSampler(ds, num_replicas=procs.world, rank=procs.rank,
                                                                  shuffle=True, seed=cfg.seed, drop_last=True)
    shuffle = torch.Generator()
    shuffle.manual_seed(cfg.seed)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=cfg.batch_size, shuffle=sampler is None, sampler=sampler,
        drop_last=len(ds) >= cfg.batch_size * procs.world,
        num_workers=cfg.workers, generator=shuffle, pin_memory=procs.device.type == "cuda",
        persistent_workers=cfg.workers > 0,
    )
    return _TrainingData(data, crop, clean, train_set, val_set, ds, sampler, shuffle, loader)


def _resolve_config(cfg: TrainConfig, init_ckpt: Mapping[str, Any] | None, crop: Mapping[str, Any]) -> TrainConfig:
    """``cfg`` with the generator's architecture filled in (``--init``'s, else the configured or the
    default one) and the command line that reproduces it."""
    from models.generator.net import GeneratorConfig

    if init_ckpt is not None:
        _check_crop_compatible(init_ckpt, crop, cfg.init)
        # --widths with --init: _build_networks widens the checkpoint's network to it
        g_cfg = cfg.generator or init_ckpt["generator_config"]
    else:
        g_cfg = cfg.generator or GeneratorConfig().to_dict()
    cfg = replace(cfg, generator=g_cfg)
    return replace(cfg, command=command_for(cfg))


def _build_networks(cfg: TrainConfig, init_ckpt: Mapping[str, Any] | None, device) -> _Networks:
    """The generator (``--init``'s weights, or fresh), the discriminator for the cGAN and their optimisers."""
    import torch

    from models.generator.net import Discriminator, GeneratorConfig, widen

    G = build_generator(init_ckpt if init_ckpt is not None else cfg.generator)
    if GeneratorConfig.from_dict(cfg.generator) != G.config:  # only with --init and --widths
        try:
            G = widen(G, GeneratorConfig.from_dict(cfg.generator))
        except ValueError as e:
            raise ConfigError(f"--widths with --init {cfg.init}: {e}") from None
    G = G.to(device)
    D = Discriminator().to(device) if cfg.mode == "cgan" else None
    if D is not None and init_ckpt is not None and init_ckpt.get("discriminator"):
        D.load_state_dict(init_ckpt["discriminator"])
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999), weight_decay=cfg.weight_decay)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(0.5, 0.999)) if D is not None else None
    return _Networks(G, D, opt_g, opt_d, G, D)


def _resume(cfg: TrainConfig, nets: _Networks, out: Path) -> _Record:
    """Load the run's ``last.pt`` into ``nets`` and the random state; returns its record."""
    last = load_checkpoint(out / "last.pt", "generator")
    if last.get("mode") != cfg.mode:
        raise ConfigError(f"--resume: the run in {out} is {last.get('mode')}, not {cfg.mode}")
    nets.G.load_state_dict(last["generator"])
    nets.opt_g.load_state_dict(last["opt_g"])
    if nets.D is not None:
        nets.D.load_state_dict(last["discriminator"])
        nets.opt_d.load_state_dict(last["opt_d"])
    record = _Record(start_epoch=last["epoch"], history=list(last.get("history", [])), best_value=last.get("best_value"),
                     best_epoch=last.get("best_epoch", -1), best_metrics=last.get("best_metrics", {}))
    if "rng" in last:
        _set_rng_state(last["rng"])
    return record


def _load_identity_verifier(cfg: TrainConfig, files: list[str], size_px: int, device) -> _IdentityVerifier | None:
    """The identity loss's frozen verifier (None without ``--id-verifier``)."""
    if not files:
        return None
    from models.verifier.net import BranchEnsemble, load_verifier

    loaded = [load_verifier(f) for f in files]
    for f, one in zip(files, loaded):
        if one.branch.config.size_px != size_px:
            raise ConfigError(f"--id-verifier: the verifier takes {one.branch.config.size_px} px crops, the data "
                              f"has {size_px} px", f)
        if cfg.id_negatives and one.threshold is None:
            raise ModelError("--id-negatives: the verifier checkpoint holds no validation threshold "
                             "(launch.py train-verifier's best.pt)", f)
    net = BranchEnsemble([one.branch for one in loaded]).to(device).requires_grad_(False)  # one file: scores as its branch
    threshold = bar = None
    if cfg.id_negatives:  # an ensemble's score is the mean of its members', so is its threshold
        threshold = float(np.mean([one.threshold for one in loaded]))
        bar = threshold - cfg.id_margin  # what the other-people term counts above
    return _IdentityVerifier(net, files, threshold, bar)


def _distribute(nets: _Networks, procs: _Processes) -> _Networks:
    """``nets`` with the trained networks wrapped in DistributedDataParallel under torchrun."""
    if not procs.distributed:
        return nets
    from torch.nn.parallel import DistributedDataParallel as DDP

    return replace(nets, Gt=DDP(nets.G), Dt=DDP(nets.D) if nets.D is not None else None)


def _data_info(cfg: TrainConfig, data: _TrainingData, ident: _IdentityVerifier | None) -> dict[str, Any]:
    """What the run was trained on, as recorded in its checkpoints."""
    full, train_set, val_set = data.data, data.train_set, data.val_set
    info = {
        "file": os.path.basename(cfg.data), "sha256": file_sha256(cfg.data), "samples": len(full),
        "extra_training_files": [{"file": os.path.basename(p), "sha256": file_sha256(p)} for p in cfg.extra_data],
        "train": len(train_set), "val": len(val_set), "test": int((full.split == 2).sum()),
        "train_subjects": sorted(int(s) for s in np.unique(train_set.subject)),
        "val_subjects": sorted(int(s) for s in np.unique(val_set.subject)),
        "target": "depth_clean" if data.clean else "depth (sensor; invalid pixels masked)",
        "synthetic": data_is_synthetic(full.meta),
        "sources": full.meta.get("sources"), "build_command": full.meta.get("command"),
    }
    if ident is not None:
        info["id_verifier"] = {"file": ",".join(os.path.basename(f) for f in ident.files),
                               "sha256": ",".join(file_sha256(f) for f in ident.files),
                               "threshold": ident.threshold, "margin": cfg.id_margin,
                               "triplet_margin": cfg.id_triplet_margin if cfg.id_triplet else None}
    return info


def _open_run_folder(out: Path, cfg: TrainConfig):
    """Create the run folder and write its config.json; returns the TensorBoard writer (None
    without the tensorboard package)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "samples").mkdir(exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    return _tensorboard(out)


def _train_epoch(cfg: TrainConfig, nets: _Networks, data: _TrainingData, ident: _IdentityVerifier | None,
                 procs: _Processes, epoch: int, bce, progress: bool, t_start: float,
                 budget_s: float,
                 stop: Callable[[], str | None] | None = None) -> tuple[dict[str, float], bool]:
    """One pass over this process's training crops; returns the mean of each loss term and
    whether the time budget ran out during the pass. A ``stop()`` request ends the pass after
    the step in progress (rank 0's request, for every process together)."""
    import torch
    from tqdm import tqdm

    G, D, Gt, Dt, opt_g, opt_d = nets.G, nets.D, nets.Gt, nets.Dt, nets.opt_g, nets.opt_d
    device = procs.device
    for group in opt_g.param_groups:
        group["lr"] = lr_at(cfg.lr, epoch, cfg.epochs)
    data.ds.epoch = epoch
    data.shuffle.manual_seed(cfg.seed * 100003 + epoch)  # the epoch's shuffle depends on the epoch only: exact resume
    if data.sampler is not None:
        data.sampler.set_epoch(epoch)
    G.train()
    if D is not None:
        D.train()
    sums = {"loss_g": 0.0, "mse": 0.0, "relief": 0.0, "adv": 0.0, "loss_d": 0.0, "id": 0.0, "id_others": 0.0,
            "id_triplet": 0.0}
    steps = 0
    out_of_time = False
    bar = tqdm(data.loader, desc=f"{cfg.mode} epoch {epoch + 1}/{cfg.epochs}", leave=False, unit="batch",
               disable=not (progress and procs.main), dynamic_ncols=True)
    for color_u8, target_u8, mask, subject in bar:
        x = to_input(color_u8, device)
        y = to_tanh(target_u8, device)
        m = mask.to(device).unsqueeze(1).float()
        fake = Gt(x)
        mse = masked_mse(fake, y, m)
        relief = relief_loss(fake, y, m) if cfg.relief_weight else torch.zeros((), device=device)
        if D is not None:
            seen = m > 0
            real_in = torch.where(seen, y, torch.full_like(y, -1.0))
            fake_in = torch.where(seen, fake, torch.full_like(fake, -1.0))
            # discriminator step: real and generated pairs in one forward
            logits = Dt(torch.cat([x, x]), torch.cat([real_in, fake_in.detach()]))
            n = x.shape[0]
            loss_d = bce(logits[:n], torch.full_like(logits[:n], REAL_LABEL)) + bce(logits[n:], torch.zeros_like(logits[n:]))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            # generator step through the (frozen, unsynchronised) discriminator
            D.requires_grad_(False)
            adv = bce(D(x, fake_in), torch.ones(n, device=device))
            D.requires_grad_(True)
            loss_g = mse + cfg.relief_weight * relief + cfg.adv_weight * adv
        else:
            adv = loss_d = torch.zeros((), device=device)
            loss_g = mse + cfg.relief_weight * relief
        if ident is not None:
            id_terms = identity_loss(ident.net, fake, target_u8.to(device), cfg.id_region, subject, ident.bar,
                                     cfg.id_triplet_margin if cfg.id_triplet else None)
            id_loss, id_others, id_triplet = id_terms
            loss_g = loss_g + cfg.id_weight * id_loss + cfg.id_negatives * id_others + cfg.id_triplet * id_triplet
        else:
            id_loss = id_others = id_triplet = torch.zeros((), device=device)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        steps += 1
        for k, v in (("loss_g", loss_g), ("mse", mse), ("relief", relief), ("adv", adv), ("loss_d", loss_d), ("id", id_loss),
                     ("id_others", id_others), ("id_triplet", id_triplet)):
            sums[k] += float(v.detach())
        if progress and procs.main:
            bar.set_postfix(mse=f"{sums['mse'] / steps:.4f}", adv=f"{sums['adv'] / steps:.3f}")
        if time.monotonic() - t_start > budget_s:
            out_of_time = True
            break
        if stop is not None and _agree(stop() is not None, procs.distributed, procs.device):
            break
    bar.close()
    return {k: v / max(steps, 1) for k, v in sums.items()}, out_of_time


def _validate_epoch(cfg: TrainConfig, nets: _Networks, data: _TrainingData, ident: _IdentityVerifier | None,
                    device, row: dict[str, Any]) -> dict[str, Any]:
    """Validate the generator (``validate``) and add the validation columns to the epoch's ``row``."""
    val_target = data.val_set.target
    val = validate(nets.G, data.val_set.color, val_target, (data.clean, cfg.background_weight), data.val_set.distance_mm,
                   data.crop["half_range_mm"], device, cfg.batch_size * 2, data.val_set.face_mask)
    row.update({"val_loss": val["val_loss"], **{f"val_{k}": v for k, v in val["metrics"].items()}})
    if ident is not None:
        row["val_id_similarity"] = identity_similarity(ident.net, val["pred8"], val_target, device)
    return val


def _update_best(record: _Record, cfg: TrainConfig, val: Mapping[str, Any], epoch: int) -> bool:
    """Record the epoch as the best when its ``--select-metric`` improved; returns whether it did."""
    from models.metrics import HIGHER_IS_BETTER

    higher_better = cfg.select_metric in HIGHER_IS_BETTER
    current = val["val_loss"] if cfg.select_metric == "val_loss" else val["metrics"].get(cfg.select_metric)
    best = record.best_value
    if current is None or not (best is None or (current > best if higher_better else current < best)):
        return False
    record.best_value, record.best_epoch = current, epoch + 1
    record.best_metrics = {"val_loss": val["val_loss"], **val["metrics"]}
    return True


def _checkpoint_state(cfg: TrainConfig, nets: _Networks, data: _TrainingData, record: _Record, val: Mapping[str, Any],
                      epoch: int, data_info: dict[str, Any], synthetic_only: bool,
                      init_ckpt: Mapping[str, Any] | None) -> dict[str, Any]:
    """The checkpoint after ``epoch``: networks, optimisers, provenance, record and random state."""
    return {
        "mode": cfg.mode, "epoch": epoch + 1,
        "generator_config": cfg.generator, "generator": nets.G.state_dict(),
        "discriminator": nets.D.state_dict() if nets.D is not None else None,
        "opt_g": nets.opt_g.state_dict(), "opt_d": nets.opt_d.state_dict() if nets.opt_d is not None else None,
        "crop": data.crop, "train_config": cfg.to_dict(), "data": data_info, "synthetic_only": synthetic_only,
        "init": None if init_ckpt is None else {"file": os.path.basename(cfg.init), "mode": init_ckpt.get("mode"),
                                               "data": init_ckpt.get("data", {}).get("file")},
        "val_metrics": {"val_loss": val["val_loss"], **val["metrics"]},
        "history": record.history, "best_value": record.best_value, "best_epoch": record.best_epoch,
        "best_metrics": record.best_metrics,
        "rng": _get_rng_state(),
    }


def _write_epoch(out: Path, state: dict[str, Any], improved: bool, history: list[dict[str, Any]], data: _TrainingData,
                 val: Mapping[str, Any], epoch: int, tb, row: Mapping[str, Any]) -> None:
    """``last.pt`` (and ``best.pt`` when ``improved``), the curves, the epoch's sample grid and TensorBoard."""
    save_checkpoint(state, out / "last.pt", "generator")
    if improved:
        save_checkpoint(state, out / "best.pt", "generator")
    write_curves(history, out)
    val_set = data.val_set
    sample_idx = np.linspace(0, len(val_set) - 1, min(SAMPLE_ROWS, len(val_set))).astype(int)
    write_sample_grid(val_set.color[sample_idx], val_set.target[sample_idx], val["pred8"][sample_idx],
                      out / "samples" / f"epoch_{epoch + 1:03d}.png")
    if tb is not None:
        for k, v in row.items():
            if k != "epoch" and isinstance(v, float | int):
                tb.add_scalar(k, v, epoch + 1)
        tb.flush()


def _log_epoch(cfg: TrainConfig, row: Mapping[str, Any], val: Mapping[str, Any], improved: bool, has_d: bool,
               has_id: bool, t_epoch: float) -> None:
    """One line per epoch on stderr (through tqdm, so that it does not break a progress bar)."""
    from tqdm import tqdm

    epoch = row["epoch"]
    sel = row.get(f"val_{cfg.select_metric}", row.get(cfg.select_metric))
    tqdm.write(f"{cfg.mode} epoch {epoch}/{cfg.epochs}: train mse {row['train_mse']:.5f}"
               + (f" relief {row['train_relief']:.4f}" if cfg.relief_weight else "")
               + (f" adv {row['train_adv']:.3f} d {row['train_loss_d']:.3f}" if has_d else "")
               + (f" id {row['train_id']:.4f} (val similarity {row['val_id_similarity']:.4f})" if has_id else "")
               + (f" others {row['train_id_others']:.4f}" if cfg.id_negatives else "")
               + (f" triplet {row['train_id_triplet']:.4f}" if cfg.id_triplet else "")
               + f" | val loss {val['val_loss']:.5f} {cfg.select_metric} {sel if sel is None else round(sel, 4)}"
               + f" | {time.monotonic() - t_epoch:.0f} s" + (" *" if improved else ""), file=sys.stderr)


def lr_at(lr: float, epoch: int, epochs: int) -> float:
    """The generator's learning rate in ``epoch`` (0-based): cosine decay from ``lr`` to 2 % of
    it over ``epochs`` (a closed form, so a resumed or extended run follows it exactly)."""
    floor = 0.02 * lr
    return floor + (lr - floor) * 0.5 * (1.0 + math.cos(math.pi * epoch / max(epochs, 1)))


def _agree(flag: bool, distributed: bool, device) -> bool:
    """Every process takes rank 0's decision (stopping must be collective under DDP)."""
    if not distributed:
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def _check_crop_compatible(ckpt: Mapping[str, Any], crop: Mapping[str, Any], path: str) -> None:
    theirs = ckpt.get("crop", {})
    for k in ("size_px", "window_x_mm", "window_y_mm", "half_range_mm"):
        if k in theirs and abs(float(theirs[k]) - float(crop[k])) > 1e-6:
            raise ConfigError(
                f"--init: the checkpoint was trained on crops with {k}={theirs[k]:g} but the data has {crop[k]:g}; "
                f"build the dataset with the checkpoint's crop geometry", path)


def validate(G, color: np.ndarray, target: np.ndarray, weighting: tuple[bool, float], distance_mm: np.ndarray,
             half_range_mm: float, device, batch_size: int = 64, face_mask: np.ndarray | None = None) -> dict:
    """Validation loss (the MSE with ``weighting`` = (clean targets?, background weight), every
    face pixel at weight 1 so runs with another ``--face-weight`` stay comparable, in tanh units)
    and the mean metrics of ``models.metrics`` in both domains and the face region (``face_mask``
    where the data has one); also returns the predicted levels (``pred8``)."""
    import torch

    from models.metrics import MetricsAggregator, depth_metrics_batch
    from sensors.encoding import tanh_to_levels

    G.eval()
    preds = np.empty(target.shape, np.uint8)
    loss_sum, weight = 0.0, 0.0
    with torch.no_grad():
        for i in range(0, len(color), batch_size):
            x = to_input(torch.from_numpy(color[i:i + batch_size]), device)
            y = to_tanh(torch.from_numpy(target[i:i + batch_size]), device)
            m = torch.from_numpy(loss_masks(target[i:i + batch_size], *weighting)).to(device).unsqueeze(1)
            p = G(x)
            loss_sum += float(((p - y) ** 2 * m).sum())
            weight += float(m.sum())
            preds[i:i + batch_size] = tanh_to_levels(p[:, 0].cpu().numpy())
    agg = MetricsAggregator()
    for mtr in depth_metrics_batch(preds, target, distance_mm, half_range_mm, face_masks=face_mask):
        agg.add(mtr)
    G.train()
    return {"val_loss": loss_sum / max(weight, 1.0), "metrics": agg.session_mean(), "pred8": preds,
            "scored": agg.scored, "skipped": agg.skipped}


def _get_rng_state() -> dict:
    import torch

    return {"torch": torch.get_rng_state(), "numpy": json.dumps(np.random.get_state()[1].tolist()),
            "python": json.dumps(random.getstate()[1])}


def _set_rng_state(state: Mapping[str, Any]) -> None:
    import torch

    try:
        torch.set_rng_state(state["torch"])
        keys = np.array(json.loads(state["numpy"]), dtype=np.uint32)
        np.random.set_state(("MT19937", keys, 624, 0, 0.0))
        random.setstate((3, tuple(json.loads(state["python"])), None))
    except (KeyError, ValueError, TypeError, RuntimeError):
        pass  # an older or foreign checkpoint: the run continues with fresh random state


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(out / "tensorboard"))


def write_curves(history: list[dict[str, float]], out: Path) -> None:
    """``curves.csv`` (every column of every epoch) and ``curves.png`` (losses and key metrics)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    with open(out / "curves.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    ep = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    panels = [
        ("loss (tanh units)", ["train_mse", "train_relief", "val_loss"], True),
        ("adversarial, identity", ["train_adv", "train_loss_d", "train_id", "train_id_others", "val_id_similarity"], False),
        ("validation mm", ["val_l1_mm", "val_rmse_mm", "val_face_shape_l1_mm"], False),
        ("validation delta", ["val_delta<1.25^1/4", "val_delta<1.25^1/3", "val_delta<1.25^1/2", "val_delta<1.25"], False),
    ]
    for ax, (title, cols, log) in zip(axes, panels, strict=True):
        for c in cols:
            ys = [r.get(c, float("nan")) for r in history]
            if any(math.isfinite(y) and y != 0 for y in ys):
                ax.plot(ep, ys, marker=".", label=c)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if log and all(r.get("train_mse", 0) > 0 for r in history):
            ax.set_yscale("log")
        if ax.lines:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=80)
    plt.close(fig)


def write_sample_grid(color: np.ndarray, true8: np.ndarray, pred8: np.ndarray, path: Path, scale: int = 2) -> None:
    """Rows of colour | true depth | predicted depth | |error| (error x4, inverted colour map), as PNG."""
    import cv2

    rows = []
    for c, t, p in zip(color, true8, pred8, strict=True):
        err = np.abs(t.astype(np.int16) - p.astype(np.int16))
        err = np.where(t > 0, np.clip(err * 4, 0, 255), 0).astype(np.uint8)
        tiles = [c[:, :, ::-1], cv2.cvtColor(t, cv2.COLOR_GRAY2BGR), cv2.cvtColor(p, cv2.COLOR_GRAY2BGR),
                 cv2.applyColorMap(err, cv2.COLORMAP_INFERNO)]
        rows.append(np.concatenate([np.pad(tile, ((1, 1), (1, 1), (0, 0)), constant_values=255) for tile in tiles], axis=1))
    grid = np.concatenate(rows, axis=0)
    grid = cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    if not cv2.imwrite(str(path), grid):
        raise FormatError("could not write the sample grid", path)
