"""The face verifier's Siamese branch (docs/design.md, "Face verification"): one small
convolutional network that maps a 100x100 8-bit depth crop to an L2-normalised embedding. Two
crops show the same person when the cosine similarity of their embeddings is at least the
verifier's threshold. PyTorch only; the live app runs the exported branch through ONNX
Runtime (``models.verifier.runtime``).

Input and normalisation (inside the network, so training, export and the live path share the
one implementation)
    The branch takes the raw 8-bit levels, (N, S, S) uint8, 0 = invalid. Per crop it takes the
    mean level ``mu`` of the crop's own valid pixels and feeds two channels:
    ``(level - mu) / LEVEL_SCALE`` on valid pixels (0 elsewhere) and the valid mask. Depth is
    thus relative to the face's own surface: the crop distance D and where the head centre
    landed in the window cannot leak identity, while the relief (nose height, eye sockets,
    chin) keeps its scale in millimetres (``LEVEL_SCALE`` levels = 38 mm at H = 150 mm).

Branch
    Strided 3x3 convolutions with batch norm and ReLU, 100 -> 50 -> 25 -> 13 -> 7 -> 4, then
    the 4x4 map is flattened (the face's layout matters: no global pooling) into a linear
    layer to ``embedding_dim`` and L2-normalised. Batch norm folds into the convolutions on
    export, so the exported graph is a plain chain. The default widths keep one embedding
    well under 1 ms on one CPU core with ONNX Runtime (``branch_macs`` counts the
    multiply-accumulates), so one pair costs under 2 ms.

Loss (``supervised_contrastive_loss``, the default; ``batch_hard_triplet_loss`` as the alternative)
    Each batch holds P identities x K crops. The supervised contrastive loss (Khosla et al.
    2020) treats every other crop of the anchor's identity as a positive and all remaining
    crops of the batch as negatives, a softmax over cosine similarities / temperature: it
    pulls same-identity crops together and pushes EVERY other identity away, so the
    embeddings spread over the sphere and the cosine score uses its whole range. Chosen over:
    the contrastive pair loss (one pair at a time and a margin to tune); the batch-hard
    triplet loss (Hermans et al. 2017; measured here: it collapses to nearly one point early,
    all scores near 1, and learns the ranking much more slowly: toy-data validation EER 0.08
    after 300 steps against 0.00 after 90 for this loss); and margin-based softmax losses
    (ArcFace, CosFace), whose classifier head learns the training identities, few on real
    data (14 on Pandora), rather than a metric that transfers to unseen ones.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from models.common.checkpoint import load_checkpoint
from models.common.errors import ModelError

#: levels that map to one unit of the normalised depth channel (38 mm at H = 150 mm)
LEVEL_SCALE = 32.0


@dataclass(frozen=True)
class VerifierConfig:
    """The branch's shape: ``widths[i]`` channels after the i-th strided conv; ``extra_convs[i]``
    unstrided 3x3 convs after it; ``embedding_dim`` the embedding's length."""

    size_px: int = 100
    widths: tuple[int, ...] = (16, 32, 48, 64, 96)
    extra_convs: tuple[int, ...] = (0, 1, 1, 1, 0)
    embedding_dim: int = 128

    def __post_init__(self) -> None:
        if not self.widths or len(self.extra_convs) != len(self.widths):
            raise ValueError(f"verifier config needs one extra_convs entry per width; got {self.widths}, {self.extra_convs}")
        if self.size_px < 8 or self.embedding_dim < 2:
            raise ValueError(f"verifier config: size_px {self.size_px} and embedding_dim {self.embedding_dim} too small")

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> VerifierConfig:
        return cls(
            size_px=int(d["size_px"]),
            widths=tuple(int(x) for x in d["widths"]),
            extra_convs=tuple(int(x) for x in d["extra_convs"]),
            embedding_dim=int(d["embedding_dim"]),
        )

    def map_sizes(self) -> list[int]:
        """Spatial size after each strided conv (3x3, stride 2, padding 1)."""
        sizes, s = [], self.size_px
        for _ in self.widths:
            s = (s + 1) // 2
            sizes.append(s)
        return sizes


def normalise_levels(depth8: torch.Tensor) -> torch.Tensor:
    """(N, S, S) levels (any dtype; 0 = invalid) -> (N, 2, S, S) float: relative depth and mask."""
    x = depth8.to(torch.float32)
    mask = (x > 0).to(torch.float32)
    count = mask.sum(dim=(1, 2), keepdim=True).clamp(min=1.0)
    mean = (x * mask).sum(dim=(1, 2), keepdim=True) / count
    rel = (x - mean) * mask / LEVEL_SCALE
    return torch.stack([rel, mask], dim=1)


def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class VerifierBranch(nn.Module):
    """One branch of the Siamese pair: (N, S, S) 8-bit levels -> (N, E) unit-length embeddings."""

    def __init__(self, config: VerifierConfig | None = None) -> None:
        super().__init__()
        self.config = config or VerifierConfig()
        layers: list[nn.Module] = []
        cin = 2
        for width, extra in zip(self.config.widths, self.config.extra_convs):
            layers.append(_conv_bn(cin, width, 2))
            layers.extend(_conv_bn(width, width, 1) for _ in range(extra))
            cin = width
        self.features = nn.Sequential(*layers)
        side = self.config.map_sizes()[-1]
        self.embed = nn.Linear(cin * side * side, self.config.embedding_dim)

    def forward(self, depth8: torch.Tensor) -> torch.Tensor:
        x = self.features(normalise_levels(depth8))
        return F.normalize(self.embed(torch.flatten(x, 1)), dim=1, eps=1e-6)


class BranchEnsemble(nn.Module):
    """Several branches as one: their unit embeddings side by side, scaled by 1/sqrt(k), so the
    cosine similarity of two ensemble embeddings is the MEAN of the members' cosine
    similarities (and the ensemble's embedding is unit-length too; an ensemble of one scores
    exactly as its branch). The generator's identity loss takes one (``train --id-verifier
    A,B``): a generator trained against one network can learn that network's blind spots;
    against several independently trained ones, one network's blind spot earns it only part of
    the score."""

    def __init__(self, branches: list[VerifierBranch]) -> None:
        super().__init__()
        if not branches:
            raise ValueError("an ensemble needs at least one branch")
        self.members = nn.ModuleList(branches)

    def forward(self, depth8: torch.Tensor) -> torch.Tensor:
        return torch.cat([m(depth8) for m in self.members], dim=1) / len(self.members) ** 0.5

def branch_macs(config: VerifierConfig) -> int:
    """Multiply-accumulates of one forward pass of the branch at batch 1."""
    macs, cin = 0, 2
    for width, extra, side in zip(config.widths, config.extra_convs, config.map_sizes()):
        macs += side * side * width * cin * 9
        macs += extra * side * side * width * width * 9
        cin = width
    side = config.map_sizes()[-1]
    return macs + cin * side * side * config.embedding_dim


def cosine_similarity_matrix(emb: torch.Tensor) -> torch.Tensor:
    """(N, E) unit embeddings -> (N, N) cosine similarities."""
    return emb @ emb.t()


def batch_hard_triplet_loss(emb: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Soft-margin batch-hard triplet loss on cosine distance (see the module docstring).

    ``emb`` (N, E) unit embeddings, ``labels`` (N,) identities; every identity in the batch
    needs at least two crops and the batch at least two identities. ``temperature`` scales the
    distance gap before the softplus (the cosine distance lives in [0, 2]).
    """
    dist = 1.0 - cosine_similarity_matrix(emb)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=emb.device)
    pos_mask = same & ~eye
    if not bool(pos_mask.any(dim=1).all()) or bool(same.all()):
        raise ValueError("batch-hard triplet loss needs >= 2 crops of every identity and >= 2 identities per batch")
    hardest_pos = dist.masked_fill(~pos_mask, float("-inf")).amax(dim=1)
    hardest_neg = dist.masked_fill(same, float("inf")).amin(dim=1)
    return F.softplus((hardest_pos - hardest_neg) / temperature).mean()


def supervised_contrastive_loss(emb: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, the "L_out" form) on cosine similarity.

    For every anchor i: -mean over its positives p of log( exp(s_ip / T) / sum_{a != i} exp(s_ia / T) ).
    """
    sim = cosine_similarity_matrix(emb) / temperature
    n = len(labels)
    eye = torch.eye(n, dtype=torch.bool, device=emb.device)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    if not bool(pos.any(dim=1).all()) or bool(pos.all(dim=1).any()):
        raise ValueError("supervised contrastive loss needs >= 2 crops of every identity and >= 2 identities per batch")
    sim = sim.masked_fill(eye, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    return -(log_prob.masked_fill(~pos, 0.0).sum(dim=1) / pos.sum(dim=1)).mean()


#: the training losses by name (``train-verifier --loss``)
LOSSES = {"supcon": supervised_contrastive_loss, "triplet": batch_hard_triplet_loss}


# -- checkpoints (``launch.py train-verifier``'s best.pt / last.pt) ------------------------------

def branch_from_checkpoint(ck: Mapping[str, Any]) -> VerifierBranch:
    """The trained branch (eval mode) of a loaded ``train-verifier`` checkpoint."""
    model = VerifierBranch(VerifierConfig.from_dict(ck["branch"]))
    model.load_state_dict(ck["model"])
    return model.eval()


class LoadedVerifier(NamedTuple):
    """A ``train-verifier`` checkpoint's trained branch (eval mode) and the decision threshold its
    best epoch chose on the validation identities (None when the file holds none)."""

    branch: VerifierBranch
    threshold: float | None


def load_verifier(path: str | os.PathLike[str]) -> LoadedVerifier:
    """The branch and validation threshold of a ``train-verifier`` checkpoint file (best.pt /
    last.pt), read once; ModelError if not one."""
    ck = load_checkpoint(path, "verifier")
    if "branch" not in ck or "model" not in ck:
        raise ModelError("not a verifier checkpoint (launch.py train-verifier's best.pt or last.pt)", path)
    threshold = (ck.get("best") or {}).get("threshold")
    return LoadedVerifier(branch_from_checkpoint(ck), None if threshold is None else float(threshold))


def load_branch(path: str | os.PathLike[str]) -> VerifierBranch:
    """The trained branch of a ``train-verifier`` checkpoint file (best.pt / last.pt); ModelError if not one."""
    return load_verifier(path).branch
