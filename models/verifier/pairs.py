"""The face-verification protocol: fixed pair lists and the verification metrics (numpy only).

Pair lists
    A :class:`PairList` holds index pairs into a crop dataset (``models.data.dataset``), half of
    them the same person (two different crops of one identity) and half different people,
    drawn only from identities disjoint from training (the validation or test split, or an
    explicit list of subjects such as Pandora's documented validation 9, 18, 21, 22 and test
    10, 14, 16, 20). Crops are drawn uniformly over each identity's frames, so every pose the
    data holds appears; identities take turns so each contributes about equally. The draw is
    deterministic given the seed, and the list is written to a JSON file so every evaluation
    scores the same pairs. The file records each pair's subjects and frame numbers and a
    fingerprint of the dataset, so a list made for other data is refused
    (:class:`~models.common.errors.VerificationError`).

    The same index pairs serve the three pair types: true-true (sensor depth of both crops),
    generated-generated (the generator's depth of both) and true-generated (true depth of the
    first crop against generated depth of the second), so the types differ only in where the
    depth came from.

Metrics (score = cosine similarity; a pair is accepted as the same person when
score >= threshold)
    ``roc_curve``: false and true accept rates over all thresholds, from (0, 0) to (1, 1).
    ``roc_auc``: the area under it, equal to P(same score > different score) with ties
    counting one half (Mann-Whitney).
    ``equal_error_rate``: candidate thresholds are the midpoints between consecutive distinct
    scores (plus one above the highest and one below the lowest, so no score ever equals a
    threshold); the EER threshold is the candidate where the false accept rate
    FAR = share of different pairs accepted and the false reject rate FRR = share of same
    pairs rejected are closest (ties: the lower FAR + FRR, then the higher threshold), and the
    EER is (FAR + FRR) / 2 there.
    ``accuracy_at``: share of pairs decided right at a given threshold.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.common.errors import VerificationError
from sensors.errors import FormatError

#: Pandora's subject-independent split used by its authors' verification work (docs/design.md,
#: "Face verification")
PANDORA_VAL_SUBJECTS = (9, 18, 21, 22)
PANDORA_TEST_SUBJECTS = (10, 14, 16, 20)
PAIR_TYPES = ("true-true", "generated-generated", "true-generated")
PAIR_FILE_VERSION = 1


def dataset_fingerprint(subject: np.ndarray, frame: np.ndarray) -> str:
    """A short hash of a dataset's (subject, frame) columns: pair lists are tied to it."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(np.asarray(subject, dtype=np.int64)).tobytes())
    h.update(np.ascontiguousarray(np.asarray(frame, dtype=np.int64)).tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class PairList:
    """Balanced verification pairs: ``first``/``second`` index the dataset, ``same`` says
    whether the two crops show one person. ``subjects`` are the identities drawn from."""

    first: np.ndarray          # (M,) int64 dataset indices
    second: np.ndarray         # (M,) int64
    same: np.ndarray           # (M,) bool
    subjects: tuple[int, ...]  # identities the pairs were drawn from
    seed: int
    fingerprint: str           # dataset_fingerprint of the data the indices point into
    pair_subjects: np.ndarray  # (M, 2) int64 subject of each crop (checked on load)
    pair_frames: np.ndarray    # (M, 2) int64 frame number of each crop (checked on load)

    def __len__(self) -> int:
        return len(self.first)

    @property
    def n_same(self) -> int:
        return int(self.same.sum())

    @property
    def n_different(self) -> int:
        return int((~self.same).sum())

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": PAIR_FILE_VERSION,
            "seed": self.seed,
            "subjects": list(self.subjects),
            "dataset_fingerprint": self.fingerprint,
            "score": "cosine similarity of the verifier's embeddings; same person when score >= threshold",
            "pairs": [
                {"i": int(i), "j": int(j), "same": bool(s),
                 "subjects": [int(a), int(b)], "frames": [int(fa), int(fb)]}
                for i, j, s, (a, b), (fa, fb) in zip(
                    self.first, self.second, self.same, self.pair_subjects, self.pair_frames)
            ],
        }

    def located_in(self, subject: np.ndarray, frame: np.ndarray, path: str | None = None) -> "PairList":
        """These pairs indexed into a dataset with these (subject, frame) columns: as they are when
        their indices point at the same crops, else found by each crop's (subject, frame) (a file
        that holds the same crops among others, or in another order). VerificationError when a
        crop is not there or not one of a kind."""
        n = len(subject)
        if len(self) and self.first.max() < n and self.second.max() < n:
            got_s = np.stack([subject[self.first], subject[self.second]], axis=1)
            got_f = np.stack([frame[self.first], frame[self.second]], axis=1)
            if np.array_equal(got_s, self.pair_subjects) and np.array_equal(got_f, self.pair_frames):
                return self
        index: dict[tuple[int, int], int] = {}
        for i, key in enumerate(zip(np.asarray(subject).tolist(), np.asarray(frame).tolist())):
            index[key] = -1 if key in index else i  # -1: more than one crop has it
        wanted = {(int(a), int(f)) for a, f in zip(self.pair_subjects.reshape(-1), self.pair_frames.reshape(-1))}
        if not all(index.get(k, -1) >= 0 for k in wanted):
            raise VerificationError(
                "pair list was made for another dataset (its crops' subjects and frames are not all there, "
                "once each); delete it or pass a new pair file to draw fresh pairs", path)
        at = np.vectorize(lambda a, f: index[(int(a), int(f))], otypes=[np.int64])
        first = at(self.pair_subjects[:, 0], self.pair_frames[:, 0])
        second = at(self.pair_subjects[:, 1], self.pair_frames[:, 1])
        return PairList(first, second, self.same, self.subjects, self.seed, dataset_fingerprint(subject, frame),
                        self.pair_subjects, self.pair_frames)


def make_pairs(
    subject: np.ndarray,
    frame: np.ndarray,
    candidates: np.ndarray,
    n_pairs: int,
    seed: int = 0,
    train_subjects: Sequence[int] = (),
) -> PairList:
    """Draw ``n_pairs`` balanced pairs (half same, half different) among the crops where
    ``candidates`` (bool mask) is set.

    Refuses (VerificationError) identities that appear in ``train_subjects``, fewer than two
    identities, or identities with a single crop only (they are left out of same pairs; if
    none has two crops there can be no same pair).
    """
    subject = np.asarray(subject).astype(np.int64)
    frame = np.asarray(frame).astype(np.int64)
    candidates = np.asarray(candidates, dtype=bool)
    if n_pairs < 2:
        raise VerificationError(f"need at least 2 pairs, got {n_pairs}")
    subs = np.unique(subject[candidates])
    overlap = sorted(set(subs.tolist()) & {int(s) for s in train_subjects})
    if overlap:
        raise VerificationError(f"pair identities overlap the training identities: {overlap}")
    if len(subs) < 2:
        raise VerificationError(f"need crops of at least 2 identities for pairs, got {len(subs)}")
    by_subject = {int(s): np.flatnonzero(candidates & (subject == s)) for s in subs}
    multi = [s for s in by_subject if len(by_subject[s]) >= 2]
    if not multi:
        raise VerificationError("no identity has two crops: no same-person pair can be drawn")
    rng = np.random.default_rng(seed)
    n_same = n_pairs // 2
    n_diff = n_pairs - n_same
    first, second, same = [], [], []
    order = [int(s) for s in rng.permutation(multi)]
    for k in range(n_same):
        s = order[k % len(order)]
        i, j = rng.choice(by_subject[s], size=2, replace=False)
        first.append(i), second.append(j), same.append(True)
    all_subs = [int(s) for s in subs]
    for k in range(n_diff):
        a = all_subs[k % len(all_subs)]
        others = [s for s in all_subs if s != a]
        b = others[int(rng.integers(len(others)))]
        first.append(rng.choice(by_subject[a])), second.append(rng.choice(by_subject[b])), same.append(False)
    perm = rng.permutation(n_pairs)
    f = np.asarray(first, dtype=np.int64)[perm]
    g = np.asarray(second, dtype=np.int64)[perm]
    return PairList(
        first=f, second=g, same=np.asarray(same, dtype=bool)[perm],
        subjects=tuple(all_subs), seed=int(seed), fingerprint=dataset_fingerprint(subject, frame),
        pair_subjects=np.stack([subject[f], subject[g]], axis=1),
        pair_frames=np.stack([frame[f], frame[g]], axis=1),
    )


def split_candidates(
    subject: np.ndarray, split: np.ndarray, which: str = "test", subjects: Sequence[int] | None = None,
) -> tuple[np.ndarray, tuple[int, ...]]:
    """(candidate mask, training identities) for pairs on a split.

    ``which`` is "val" or "test": the dataset's own split array decides. ``subjects`` (e.g.
    ``PANDORA_TEST_SUBJECTS``) overrides it with an explicit list of identities; the training
    identities are then every other identity of the split array's training split that is not
    in the list (a list that names training identities is refused by ``make_pairs``).
    """
    subject = np.asarray(subject).astype(np.int64)
    split = np.asarray(split)
    codes = {"val": 1, "test": 2}
    if which not in codes:
        raise VerificationError(f"pairs are drawn on 'val' or 'test' identities, not {which!r}")
    train = tuple(int(s) for s in np.unique(subject[split == 0]))
    if subjects is None:
        mask = split == codes[which]
    else:
        wanted = {int(s) for s in subjects}
        missing = sorted(wanted - set(np.unique(subject).tolist()))
        if missing:
            raise VerificationError(f"subjects {missing} are not in the dataset")
        mask = np.isin(subject, sorted(wanted))
    if not mask.any():
        raise VerificationError(f"the dataset holds no {which} identities (its split array marks none)")
    return mask, train


def save_pairs(pairs: PairList, path: str | os.PathLike[str]) -> None:
    from models.common.files import write_json

    write_json(path, pairs.to_dict())


def load_pairs(path: str | os.PathLike[str]) -> PairList:
    """Read a pair file; FormatError naming the file when it is missing or malformed."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FormatError("pair file does not exist", path)
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        if d.get("version") != PAIR_FILE_VERSION:
            raise FormatError(f"unsupported pair file version {d.get('version')!r}", path)
        rows = d["pairs"]
        first = np.array([int(r["i"]) for r in rows], dtype=np.int64)
        second = np.array([int(r["j"]) for r in rows], dtype=np.int64)
        same = np.array([bool(r["same"]) for r in rows], dtype=bool)
        ps = np.array([[int(x) for x in r["subjects"]] for r in rows], dtype=np.int64).reshape(-1, 2)
        pf = np.array([[int(x) for x in r["frames"]] for r in rows], dtype=np.int64).reshape(-1, 2)
        return PairList(first, second, same, tuple(int(s) for s in d["subjects"]), int(d["seed"]),
                        str(d["dataset_fingerprint"]), ps, pf)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"not a readable pair file ({type(exc).__name__}: {exc})", path) from None


# -- metrics ---------------------------------------------------------------------------------

def _check_scores(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    same = np.asarray(same, dtype=bool).reshape(-1)
    if scores.shape != same.shape:
        raise VerificationError(f"{len(scores)} scores for {len(same)} pair labels")
    if not np.all(np.isfinite(scores)):
        raise VerificationError("scores must be finite")
    if not same.any() or same.all():
        raise VerificationError("verification metrics need both same-person and different-person pairs")
    return scores, same


@dataclass(frozen=True)
class RocCurve:
    """False accept rate and true accept rate at each threshold (accept when score >= threshold),
    thresholds decreasing; the first point is (0, 0) at +inf, the last (1, 1)."""

    far: np.ndarray
    tar: np.ndarray
    thresholds: np.ndarray


def roc_curve(scores: np.ndarray, same: np.ndarray) -> RocCurve:
    scores, same = _check_scores(scores, same)
    thresholds = np.unique(scores)[::-1]
    # accepted at threshold t: score >= t
    pos = np.sort(scores[same])
    neg = np.sort(scores[~same])
    tar = (len(pos) - np.searchsorted(pos, thresholds, side="left")) / len(pos)
    far = (len(neg) - np.searchsorted(neg, thresholds, side="left")) / len(neg)
    return RocCurve(
        far=np.concatenate([[0.0], far]), tar=np.concatenate([[0.0], tar]),
        thresholds=np.concatenate([[np.inf], thresholds]),
    )


def roc_auc(scores: np.ndarray, same: np.ndarray) -> float:
    """P(score of a same pair > score of a different pair), ties counting one half."""
    scores, same = _check_scores(scores, same)
    neg = np.sort(scores[~same])
    pos = scores[same]
    below = np.searchsorted(neg, pos, side="left")
    ties = np.searchsorted(neg, pos, side="right") - below
    return float((below + 0.5 * ties).sum() / (len(pos) * len(neg)))


@dataclass(frozen=True)
class EqualErrorRate:
    eer: float
    threshold: float
    far: float
    frr: float


def _candidate_thresholds(scores: np.ndarray) -> np.ndarray:
    u = np.unique(scores)
    mids = (u[1:] + u[:-1]) / 2.0
    span = max(float(u[-1] - u[0]), 1e-6)
    return np.concatenate([[u[0] - span], mids, [u[-1] + span]])


def equal_error_rate(scores: np.ndarray, same: np.ndarray) -> EqualErrorRate:
    scores, same = _check_scores(scores, same)
    t = _candidate_thresholds(scores)
    pos = np.sort(scores[same])
    neg = np.sort(scores[~same])
    frr = np.searchsorted(pos, t, side="left") / len(pos)
    far = (len(neg) - np.searchsorted(neg, t, side="left")) / len(neg)
    # lexicographic: |FAR - FRR|, then FAR + FRR, then the higher threshold
    k = np.lexsort((-t, far + frr, np.abs(far - frr)))[0]
    return EqualErrorRate(eer=float((far[k] + frr[k]) / 2), threshold=float(t[k]), far=float(far[k]), frr=float(frr[k]))


def accuracy_at(scores: np.ndarray, same: np.ndarray, threshold: float) -> float:
    scores, same = _check_scores(scores, same)
    return float(np.mean((scores >= threshold) == same))


@dataclass(frozen=True)
class VerificationMetrics:
    """The protocol's numbers for one pair type."""

    accuracy: float      # at ``threshold`` (the verifier's, chosen on validation identities)
    threshold: float
    far: float           # false accept rate at the threshold
    frr: float           # false reject rate at the threshold
    eer: float
    eer_threshold: float
    auc: float
    n_pairs: int
    n_same: int

    def to_dict(self) -> dict[str, float | int]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def verification_metrics(scores: np.ndarray, same: np.ndarray, threshold: float) -> VerificationMetrics:
    scores, same = _check_scores(scores, same)
    accept = scores >= threshold
    e = equal_error_rate(scores, same)
    return VerificationMetrics(
        accuracy=float(np.mean(accept == same)), threshold=float(threshold),
        far=float(accept[~same].mean()), frr=float((~accept[same]).mean()),
        eer=e.eer, eer_threshold=e.threshold, auc=roc_auc(scores, same),
        n_pairs=int(len(scores)), n_same=int(same.sum()),
    )


#: pose-difference bins of ``rates_by_yaw_difference`` (|yaw_a - yaw_b|, degrees: [lo, hi))
YAW_DIFFERENCE_BINS_DEG = (0, 15, 30, 45, 180)


def rates_by_yaw_difference(scores: np.ndarray, same: np.ndarray, threshold: float,
                            yaw_difference_deg: np.ndarray) -> dict[str, dict[str, Any]]:
    """Where a verifier fails: per bin of the two crops' yaw difference, how many same-person
    pairs score at least ``threshold`` (``same_accepted``) and how many different-person pairs
    score below it (``different_rejected``), with the pair counts (rates are None for an empty
    bin; pairs without a yaw are left out)."""
    scores, same = _check_scores(scores, same)
    dy = np.abs(np.asarray(yaw_difference_deg, dtype=np.float64))
    accept = scores >= threshold
    out: dict[str, dict[str, Any]] = {}
    for lo, hi in zip(YAW_DIFFERENCE_BINS_DEG[:-1], YAW_DIFFERENCE_BINS_DEG[1:]):
        sel = (dy >= lo) & (dy < hi)
        s, d = sel & same, sel & ~same
        out[f"{lo}-{hi}"] = {"same_pairs": int(s.sum()),
                             "same_accepted": float(accept[s].mean()) if s.any() else None,
                             "different_pairs": int(d.sum()),
                             "different_rejected": float((~accept[d]).mean()) if d.any() else None}
    return out


def plot_roc(curves: dict[str, RocCurve], path: str | os.PathLike[str], title: str = "Face verification on depth",
             annotations: dict[str, str] | None = None) -> None:
    """Write a ROC figure (one line per named curve; ``annotations`` adds text to a legend entry)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 5.0), dpi=110)
    for name, c in curves.items():
        label = name + (f" ({annotations[name]})" if annotations and name in annotations else "")
        ax.plot(c.far, c.tar, lw=1.6, label=label)
    ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
    ax.set_xlim(0, 1), ax.set_ylim(0, 1.01)
    ax.set_xlabel("false accept rate"), ax.set_ylabel("true accept rate")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(os.fspath(path))
    plt.close(fig)
