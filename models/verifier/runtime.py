"""Face verification on depth, live and offline: the exported verifier run through ONNX Runtime,
enrolments, causal score smoothing, the headless report's summary and the protocol's
evaluation. numpy and onnxruntime only: this module is on the live path and never imports torch.

Score
    The cosine similarity of two crops' embeddings (``models.verifier.net``), in [-1, 1]. Two
    crops show the same person when score >= ``Verifier.threshold``, the threshold chosen on
    the validation identities when the verifier was trained (stored in the ONNX metadata).

Live scores, per frame with a face
    (a) predicted depth vs the true depth of the same frame (``Verifier.score``), when the
        source has depth: does the generator keep this person's identity?
    (b) predicted depth vs an enrolled reference (``Enrolment.score``): the mean cosine
        similarity to the enrolled crops' embeddings (the mean of pair scores, so the same
        threshold applies). An enrolment of true depth measures identity; one of predicted
        depth only (webcam, photos) measures the generator's self-consistency, and is labelled
        so (``Enrolment.label``).
    ``LiveScore`` smooths a stream of scores causally (exponential moving average) and gives
    the accept / reject decision; ``VerificationAggregator`` sums up a run for the report.

Enrolment files
    JSON: name, kind ("true-depth" or "predicted-depth"), the embeddings, the stamp of the
    verifier that made them (the sha256 of its ONNX file), the source and the time. Loading one
    with another verifier raises :class:`~models.common.errors.VerificationError` naming the file.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from models.common.errors import ModelError, VerificationError
from models.common.files import write_json
from models.common.runtime import open_session
from sensors.errors import FormatError

from models.verifier.pairs import (
    PairList,
    RocCurve,
    load_pairs,
    make_pairs,
    plot_roc,
    rates_by_yaw_difference,
    roc_curve,
    save_pairs,
    split_candidates,
    verification_metrics,
)

#: ONNX metadata key holding the verifier's JSON description
METADATA_KEY = "facedepth.verifier"
ENROLMENT_VERSION = 1
KINDS = ("true-depth", "predicted-depth")
SCORE_DEFINITION = "cosine similarity of L2-normalised embeddings; same person when score >= threshold"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (any length-E vectors)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 0.0
    return float(a @ b / (na * nb))


class Verifier:
    """The exported verifier branch (``verifier.onnx``) run with ONNX Runtime.

    ``embed(depth8)``: (S, S) or (N, S, S) uint8 crops -> (E,) or (N, E) unit embeddings.
    ``score(a, b)``: two crops -> cosine similarity (one batch of two).
    ``threshold``: accept as the same person when score >= threshold.
    ``stamp`` / ``sha256``: identifies the model file; enrolments carry it.
    ``crop_config_dict``: the crop geometry the verifier was trained on.
    ``provider``: "cpu" (default: the verifier is tiny) or another of
    :data:`models.common.runtime.PROVIDERS`; ``threads`` ONNX Runtime's intra-op threads.
    """

    def __init__(self, path: str | os.PathLike[str], threads: int = 1, provider: str = "cpu") -> None:
        opened = open_session(path, provider=provider, threads=threads, what="verifier",
                              missing_hint="train one with `launch.py train-verifier`")
        self.path = opened.path
        self._session = opened.session
        meta = opened.metadata
        if METADATA_KEY not in meta:
            raise ModelError("not a facedepth verifier (no verifier metadata in the ONNX file)", self.path)
        try:
            self.info: dict[str, Any] = json.loads(meta[METADATA_KEY])
            self.threshold = float(self.info["threshold"])
            self.embedding_dim = int(self.info["embedding_dim"])
            self.size_px = int(self.info["size_px"])
            self.crop_config_dict: dict[str, Any] = dict(self.info.get("crop", {}))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"verifier metadata is malformed ({type(exc).__name__}: {exc})", self.path) from None
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(uint8)":
            raise ModelError("verifier must take one uint8 (N, S, S) input", self.path)
        self._input = inputs[0].name
        self.provider = opened.provider
        self.sha256 = opened.sha256
        self.name = self.path.name

    @property
    def stamp(self) -> str:
        """What an enrolment records to say which verifier made it: the model file's sha256."""
        return self.sha256

    def _batch(self, depth8: np.ndarray) -> np.ndarray:
        x = np.asarray(depth8)
        if x.dtype != np.uint8:
            raise VerificationError(f"depth crops must be uint8 levels, got {x.dtype}", self.path)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[1:] != (self.size_px, self.size_px):
            raise VerificationError(
                f"depth crops must be ({self.size_px}, {self.size_px}) or (N, {self.size_px}, {self.size_px}), got {x.shape}",
                self.path)
        return np.ascontiguousarray(x)

    def embed(self, depth8: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(S, S) -> (E,) or (N, S, S) -> (N, E) float32 unit embeddings."""
        single = np.asarray(depth8).ndim == 2
        x = self._batch(depth8)
        out = [self._session.run(None, {self._input: x[k:k + batch_size]})[0] for k in range(0, len(x), batch_size)]
        emb = np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.embedding_dim), np.float32)
        return emb[0] if single else emb

    def score(self, a: np.ndarray, b: np.ndarray) -> float:
        """Cosine similarity of two (S, S) uint8 depth crops (embedded as one batch of two)."""
        emb = self.embed(np.stack([self._batch(a)[0], self._batch(b)[0]]))
        return cosine(emb[0], emb[1])

    def accepts(self, score: float) -> bool:
        return bool(score >= self.threshold)

    def load_enrolment(self, path: str | os.PathLike[str]) -> Enrolment:
        """Read an enrolment and check that it belongs to this verifier."""
        enrolment = Enrolment.load(path)
        enrolment.check(self)
        return enrolment

    def describe(self) -> dict[str, Any]:
        return {"file": str(self.path), "sha256": self.sha256, "threshold": self.threshold,
                "threshold_rule": self.info.get("threshold_rule"), "score": self.info.get("score", SCORE_DEFINITION),
                "training_data": self.info.get("training", {}).get("data"),
                "training_sources": self.info.get("training", {}).get("sources", [])}


# -- enrolment -------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Enrolment:
    """A person's reference: the embeddings of N depth crops, stamped with their verifier.

    ``kind`` "true-depth" (sensor depth: scores against it measure identity) or
    "predicted-depth" (the generator's own output: scores measure self-consistency).
    """

    name: str
    kind: str
    embeddings: np.ndarray          # (N, E) float32 unit vectors
    verifier_sha256: str
    verifier_name: str
    created_utc: str = ""
    source: str = ""
    path: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise VerificationError(f"enrolment kind must be one of {', '.join(KINDS)}, got {self.kind!r}", self.path)
        e = np.asarray(self.embeddings, dtype=np.float32)
        if e.ndim != 2 or len(e) == 0 or not np.all(np.isfinite(e)):
            raise VerificationError(f"enrolment needs a non-empty finite (N, E) embedding array, got shape {e.shape}", self.path)
        object.__setattr__(self, "embeddings", e)

    @classmethod
    def create(cls, name: str, kind: str, verifier: Verifier, depth8: np.ndarray, source: str = "") -> Enrolment:
        """Enrol ``name`` from (N, S, S) uint8 depth crops."""
        emb = verifier.embed(np.asarray(depth8).reshape(-1, verifier.size_px, verifier.size_px))
        return cls(name=name, kind=kind, embeddings=emb, verifier_sha256=verifier.sha256,
                   verifier_name=verifier.name, source=source,
                   created_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    @property
    def label(self) -> str:
        """What a score against this enrolment measures: "identity" or "self-consistency"."""
        return "identity" if self.kind == "true-depth" else "self-consistency"

    @property
    def mean_embedding(self) -> np.ndarray:
        m = self.embeddings.mean(axis=0)
        n = np.linalg.norm(m)
        return m / n if n > 0 else m

    def check(self, verifier: Verifier) -> None:
        if self.verifier_sha256 != verifier.sha256:
            raise VerificationError(
                f"enrolment of {self.name!r} was made with another verifier ({self.verifier_name}, "
                f"sha256 {self.verifier_sha256[:12]}) than {verifier.name} (sha256 {verifier.sha256[:12]}); "
                "enrol again with this verifier", self.path)

    def score_embedding(self, embedding: np.ndarray) -> float:
        """Mean cosine similarity of one embedding to the enrolled ones."""
        e = np.asarray(embedding, dtype=np.float64).reshape(-1)
        if e.shape[0] != self.embeddings.shape[1]:
            raise VerificationError(f"embedding of length {e.shape[0]} against an enrolment of length "
                                    f"{self.embeddings.shape[1]}", self.path)
        n = np.linalg.norm(e)
        if n == 0:
            return 0.0
        ref = self.embeddings.astype(np.float64)
        ref = ref / np.maximum(np.linalg.norm(ref, axis=1, keepdims=True), 1e-12)
        return float(np.mean(ref @ (e / n)))

    def score(self, verifier: Verifier, depth8: np.ndarray) -> float:
        """Score one (S, S) uint8 depth crop against this enrolment (checks the verifier stamp)."""
        self.check(verifier)
        return self.score_embedding(verifier.embed(depth8))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": ENROLMENT_VERSION, "name": self.name, "kind": self.kind,
            "label": self.label, "created_utc": self.created_utc, "source": self.source,
            "verifier": {"file": self.verifier_name, "sha256": self.verifier_sha256},
            "embedding_dim": int(self.embeddings.shape[1]), "frames": int(len(self.embeddings)),
            "embeddings": [[round(float(v), 7) for v in row] for row in self.embeddings],
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(path, self.to_dict(), indent=None)

    @classmethod
    def load(cls, path: str | os.PathLike[str], verifier: Verifier | None = None) -> Enrolment:
        """Read an enrolment file (FormatError when missing or malformed); with ``verifier``,
        also check it belongs to that verifier (VerificationError)."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FormatError("enrolment file does not exist (make one with `launch.py enrol`)", path)
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
            if not isinstance(d, dict) or d.get("version") != ENROLMENT_VERSION:
                raise FormatError(f"not a facedepth enrolment (version {d.get('version') if isinstance(d, dict) else None!r})", path)
            enrolment = cls(
                name=str(d["name"]), kind=str(d["kind"]), embeddings=np.asarray(d["embeddings"], dtype=np.float32),
                verifier_sha256=str(d["verifier"]["sha256"]), verifier_name=str(d["verifier"]["file"]),
                created_utc=str(d.get("created_utc", "")), source=str(d.get("source", "")), path=path,
            )
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"not a readable enrolment file ({type(exc).__name__}: {exc})", path) from None
        if verifier is not None:
            enrolment.check(verifier)
        return enrolment


# -- live smoothing and decisions ------------------------------------------------------------

class ScoreSmoother:
    """Causal exponential moving average: s_t = alpha * x_t + (1 - alpha) * s_(t-1).

    Missing scores (None, NaN: no face in the frame) leave the state alone; ``reset_after``
    consecutive missing scores forget it (a new face should not inherit the old one's score).
    """

    def __init__(self, alpha: float = 0.3, reset_after: int = 15) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"smoothing alpha must be in (0, 1], got {alpha}")
        self.alpha = float(alpha)
        self.reset_after = int(reset_after)
        self.value: float | None = None
        self._missing = 0

    def reset(self) -> None:
        self.value = None
        self._missing = 0

    def update(self, score: float | None) -> float | None:
        if score is None or not math.isfinite(score):
            self._missing += 1
            if self._missing >= self.reset_after:
                self.value = None
            return self.value
        self._missing = 0
        self.value = float(score) if self.value is None else self.alpha * float(score) + (1 - self.alpha) * self.value
        return self.value


@dataclass(frozen=True)
class VerificationReading:
    """One frame's verification score for display: raw, smoothed, and the decision."""

    score: float | None       # this frame's score (None: no face / no depth this frame)
    smoothed: float | None    # causal EMA of the scores so far
    threshold: float
    accepted: bool | None     # smoothed >= threshold (None until there is a score)
    label: str                # "same frame", "identity" or "self-consistency"

    @property
    def decision(self) -> str:
        return "-" if self.accepted is None else ("accept" if self.accepted else "reject")


class LiveScore:
    """A stream of one kind of score with its smoother and decision."""

    def __init__(self, threshold: float, label: str, alpha: float = 0.3) -> None:
        self.threshold = float(threshold)
        self.label = label
        self.smoother = ScoreSmoother(alpha)

    def update(self, score: float | None) -> VerificationReading:
        smoothed = self.smoother.update(score)
        accepted = None if smoothed is None else bool(smoothed >= self.threshold)
        return VerificationReading(score, smoothed, self.threshold, accepted, self.label)

    def reset(self) -> None:
        self.smoother.reset()


class VerificationAggregator:
    """Sums up a run's per-frame scores (predicted vs true depth of the same frame) for the report."""

    def __init__(self, threshold: float) -> None:
        self.threshold = float(threshold)
        self._scores: list[float] = []

    def add(self, score: float | None) -> None:
        if score is not None and math.isfinite(score):
            self._scores.append(float(score))

    def summary(self) -> dict[str, Any]:
        s = np.asarray(self._scores, dtype=np.float64)
        n = len(s)
        return {
            "threshold": self.threshold,
            "compares": "predicted vs true depth of the same frame",
            "score": SCORE_DEFINITION,
            "frames": n,
            "score_mean": float(s.mean()) if n else None,
            "score_std": float(s.std()) if n else None,
            "score_min": float(s.min()) if n else None,
            "accept_rate": float(np.mean(s >= self.threshold)) if n else None,
        }


# -- the offline protocol --------------------------------------------------------------------

class _Predictor(Protocol):
    def predict(self, color: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True, eq=False)
class VerificationEvaluation:
    """The protocol's results: metrics per pair type (and generator) and their ROC curves."""

    results: dict[str, Any]
    curves: dict[str, RocCurve]

    def to_dict(self) -> dict[str, Any]:
        return self.results

    def plot(self, path: str | os.PathLike[str]) -> None:
        notes = {}
        for key in self.curves:
            m = self._metrics(key)
            notes[key] = f"AUC {m['auc']:.3f}, EER {m['eer']:.3f}, acc {m['accuracy']:.3f}"
        plot_roc(self.curves, path, title=f"Face verification on depth ({self.results['pairs']['n_pairs']} pairs)",
                 annotations=notes)

    def _metrics(self, key: str) -> dict[str, Any]:
        if key == "true-true":
            return self.results["true-true"]
        model, _, kind = key.partition(": ")
        return self.results["models"][model][kind]


def default_pairs_file(data_path: str | os.PathLike[str], split: str = "test") -> Path:
    """Where the pair list of a dataset file lives unless told otherwise: beside the dataset
    (``crops.npz`` -> ``crops.test_pairs.json``), so every evaluation of it scores the same pairs."""
    p = Path(data_path)
    return p.with_name(f"{p.stem}.{split}_pairs.json")


def pairs_for(dataset: Any, pairs_file: str | os.PathLike[str] | None, split: str = "test",
              subjects: Sequence[int] | None = None, n_pairs: int = 2000, seed: int = 0) -> PairList:
    """The pair list an evaluation uses: read from ``pairs_file`` when it exists (checked against
    the dataset and the split: its identities must be the split's), else drawn (identities
    disjoint from training) and written there."""
    mask, train = split_candidates(dataset.subject, dataset.split, split, subjects)
    if pairs_file is not None and os.path.exists(pairs_file):
        pairs = load_pairs(pairs_file).located_in(dataset.subject, dataset.frame, os.fspath(pairs_file))
        outside = sorted(set(pairs.subjects) - set(np.unique(dataset.subject[mask]).tolist()))
        if outside:
            raise VerificationError(f"pair list holds identities {outside} that are not {split} identities of "
                                    "this dataset; pass another pair file", os.fspath(pairs_file))
        return pairs
    pairs = make_pairs(dataset.subject, dataset.frame, mask, n_pairs, seed=seed, train_subjects=train)
    if pairs_file is not None:
        save_pairs(pairs, pairs_file)
    return pairs


def evaluate_verification(
    dataset: Any,
    verifier: Verifier | str | os.PathLike[str],
    generators: Mapping[str, _Predictor | np.ndarray] | None = None,
    pairs_file: str | os.PathLike[str] | None = None,
    split: str = "test",
    subjects: Sequence[int] | None = None,
    n_pairs: int = 2000,
    seed: int = 0,
) -> VerificationEvaluation:
    """Run the protocol on a crop dataset (``models.data.dataset.CropDataset``).

    ``generators`` maps a model name to a predictor (``models.generator.runtime.DepthGenerator``: its
    ``predict`` turns (N, S, S, 3) colour crops into (N, S, S) levels) or to an (N, S, S) uint8
    array of predictions aligned with the dataset. True depth is the dataset's sensor depth.
    Accuracy is taken at the verifier's own threshold (from validation identities); EER and
    AUC need no threshold. ``subjects_in_verifier_training`` lists pair subjects whose numbers
    the verifier's training data also held (it should be empty when both come from one source).
    """
    if not isinstance(verifier, Verifier):
        verifier = Verifier(verifier)
    pairs = pairs_for(dataset, pairs_file, split, subjects, n_pairs, seed)
    needed = np.unique(np.concatenate([pairs.first, pairs.second]))
    where = np.full(len(dataset.subject), -1, dtype=np.int64)
    where[needed] = np.arange(len(needed))
    a, b = where[pairs.first], where[pairs.second]

    true_emb = verifier.embed(dataset.depth[needed])
    t = verifier.threshold
    same = pairs.same
    trained_on = {int(x) for x in verifier.info.get("training", {}).get("train_subjects", [])}
    overlap = sorted(trained_on & set(pairs.subjects))
    results: dict[str, Any] = {
        "verifier": verifier.describe(),
        # subject NUMBERS shared with the verifier's training data: the same people only when both
        # datasets come from the same source (compare report["verifier"] and the data's sources)
        "subjects_in_verifier_training": overlap,
        "pairs": {"file": None if pairs_file is None else os.fspath(pairs_file), "n_pairs": len(pairs),
                  "n_same": pairs.n_same, "subjects": list(pairs.subjects), "seed": pairs.seed,
                  "true_depth": "sensor depth crops"},
        "true-true": None,
        "models": {},
    }
    curves: dict[str, RocCurve] = {}
    tt = np.sum(true_emb[a] * true_emb[b], axis=1)
    results["true-true"] = verification_metrics(tt, same, t).to_dict()
    yaw = np.asarray(dataset.pose_deg[:, 0], dtype=np.float64)  # NaN (unknown) pairs fall in no bin
    results["true-true"]["by_yaw_difference_deg"] = rates_by_yaw_difference(
        tt, same, t, yaw[pairs.first] - yaw[pairs.second])
    curves["true-true"] = roc_curve(tt, same)
    for name, gen in (generators or {}).items():
        if isinstance(gen, np.ndarray):
            if gen.shape != dataset.depth.shape or gen.dtype != np.uint8:
                raise VerificationError(f"predictions for {name!r} must be {dataset.depth.shape} uint8, got {gen.shape} {gen.dtype}")
            pred = gen[needed]
        else:
            pred = np.concatenate([gen.predict(dataset.color[needed[k:k + 256]]) for k in range(0, len(needed), 256)])
        gen_emb = verifier.embed(pred)
        gg = np.sum(gen_emb[a] * gen_emb[b], axis=1)
        tg = np.sum(true_emb[a] * gen_emb[b], axis=1)
        results["models"][name] = {
            "generated-generated": verification_metrics(gg, same, t).to_dict(),
            "true-generated": verification_metrics(tg, same, t).to_dict(),
        }
        curves[f"{name}: generated-generated"] = roc_curve(gg, same)
        curves[f"{name}: true-generated"] = roc_curve(tg, same)
    return VerificationEvaluation(results, curves)
