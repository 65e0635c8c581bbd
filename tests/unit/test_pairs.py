"""The verification protocol: pair lists (disjoint from training, balanced, deterministic) and the
metrics (accuracy, EER, ROC, AUC) on hand-made scores worked out by hand."""
from __future__ import annotations

import json

import numpy as np
import pytest

from models.verifier.pairs import (
    PANDORA_TEST_SUBJECTS,
    PANDORA_VAL_SUBJECTS,
    accuracy_at,
    equal_error_rate,
    load_pairs,
    make_pairs,
    plot_roc,
    roc_auc,
    roc_curve,
    save_pairs,
    split_candidates,
    rates_by_yaw_difference,
    verification_metrics,
)
from models.common.errors import VerificationError
from sensors.errors import FormatError


def _data(n_subjects: int = 10, per: int = 20, test=(7, 8, 9), val=(5, 6)):
    subject = np.repeat(np.arange(n_subjects), per)
    frame = np.tile(np.arange(per), n_subjects) * 3 + 100
    split = np.zeros(len(subject), np.uint8)
    split[np.isin(subject, val)] = 1
    split[np.isin(subject, test)] = 2
    return subject, frame, split


# -- pair lists ------------------------------------------------------------------------------

def test_pairs_are_balanced_disjoint_from_training_and_well_formed():
    subject, frame, split = _data()
    mask, train = split_candidates(subject, split, "test")
    assert train == (0, 1, 2, 3, 4)
    pairs = make_pairs(subject, frame, mask, 301, seed=3, train_subjects=train)
    assert len(pairs) == 301 and pairs.n_same == 150 and pairs.n_different == 151
    a, b = subject[pairs.first], subject[pairs.second]
    assert set(a) | set(b) <= {7, 8, 9}
    assert not (set(a) | set(b)) & set(train)
    assert np.all(a[pairs.same] == b[pairs.same])
    assert np.all(pairs.first[pairs.same] != pairs.second[pairs.same])   # two different crops
    assert np.all(a[~pairs.same] != b[~pairs.same])
    # every test identity takes part in same and in different pairs about equally
    counts = np.bincount(a[pairs.same], minlength=10)[[7, 8, 9]]
    assert counts.min() >= 49
    assert pairs.subjects == (7, 8, 9)


def test_pairs_are_deterministic_given_the_seed():
    subject, frame, split = _data()
    mask, train = split_candidates(subject, split, "val")
    p1 = make_pairs(subject, frame, mask, 200, seed=11, train_subjects=train)
    p2 = make_pairs(subject, frame, mask, 200, seed=11, train_subjects=train)
    p3 = make_pairs(subject, frame, mask, 200, seed=12, train_subjects=train)
    assert np.array_equal(p1.first, p2.first) and np.array_equal(p1.second, p2.second)
    assert np.array_equal(p1.same, p2.same)
    assert not (np.array_equal(p1.first, p3.first) and np.array_equal(p1.second, p3.second))


def test_pairs_refuse_training_identities_and_too_few_identities():
    subject, frame, split = _data()
    with pytest.raises(VerificationError, match="overlap the training"):
        make_pairs(subject, frame, np.isin(subject, [4, 7]), 10, train_subjects=(0, 1, 2, 3, 4))
    with pytest.raises(VerificationError, match="at least 2 identities"):
        make_pairs(subject, frame, subject == 7, 10)
    with pytest.raises(VerificationError, match="no test identities"):
        split_candidates(subject, np.zeros_like(split), "test")


def test_explicit_subject_lists_pandora_split():
    # a Pandora-like dataset: subjects 1..22; the split array marks the documented split
    subject = np.repeat(np.arange(1, 23), 6)
    frame = np.tile(np.arange(6), 22)
    split = np.zeros(len(subject), np.uint8)
    split[np.isin(subject, PANDORA_VAL_SUBJECTS)] = 1
    split[np.isin(subject, PANDORA_TEST_SUBJECTS)] = 2
    by_split, train = split_candidates(subject, split, "test")
    by_list, train2 = split_candidates(subject, split, "test", subjects=PANDORA_TEST_SUBJECTS)
    assert np.array_equal(by_split, by_list) and train == train2
    assert set(train) == set(range(1, 23)) - set(PANDORA_VAL_SUBJECTS) - set(PANDORA_TEST_SUBJECTS)
    pairs = make_pairs(subject, frame, by_list, 40, seed=0, train_subjects=train)
    assert set(pairs.subjects) == {10, 14, 16, 20}
    # a list naming training identities is refused; unknown identities are named
    mask, train = split_candidates(subject, split, "test", subjects=(10, 1))
    with pytest.raises(VerificationError, match=r"\[1\]"):
        make_pairs(subject, frame, mask, 40, train_subjects=train)
    with pytest.raises(VerificationError, match=r"\[99\]"):
        split_candidates(subject, split, "test", subjects=(10, 99))


def test_pair_file_round_trip_and_dataset_check(tmp_path):
    subject, frame, split = _data()
    mask, train = split_candidates(subject, split, "test")
    pairs = make_pairs(subject, frame, mask, 50, seed=1, train_subjects=train)
    path = tmp_path / "pairs.json"
    save_pairs(pairs, path)
    back = load_pairs(path)
    for name in ("first", "second", "same", "pair_subjects", "pair_frames"):
        assert np.array_equal(getattr(back, name), getattr(pairs, name))
    assert back.subjects == pairs.subjects and back.seed == 1 and back.fingerprint == pairs.fingerprint
    assert back.located_in(subject, frame) is back          # the same data: the same indices
    other_frame = frame.copy()
    other_frame[subject == 8] += 1
    with pytest.raises(VerificationError, match="another dataset") as exc:
        back.located_in(subject, other_frame, str(path))
    assert str(exc.value).startswith(str(path))
    with pytest.raises(VerificationError, match="another dataset"):
        back.located_in(subject[:100], frame[:100])
    # the same crops in another file, after other crops and in another order: found by subject and frame
    order = np.random.default_rng(3).permutation(len(subject))
    moved_s = np.concatenate([np.full(7, 999), subject[order]])
    moved_f = np.concatenate([np.arange(7), frame[order]])
    moved = back.located_in(moved_s, moved_f)
    assert np.array_equal(moved_s[moved.first], subject[back.first]) and np.array_equal(moved_f[moved.second], frame[back.second])
    assert np.array_equal(moved.same, back.same)
    twice_s, twice_f = np.concatenate([moved_s, subject]), np.concatenate([moved_f, frame])
    with pytest.raises(VerificationError, match="once each"):  # which of two equal crops? refused
        back.located_in(twice_s, twice_f)


def test_malformed_pair_files_are_format_errors(tmp_path):
    with pytest.raises(FormatError, match="does not exist"):
        load_pairs(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(FormatError, match="not a readable pair file") as exc:
        load_pairs(bad)
    assert str(exc.value).startswith(str(bad))
    bad.write_text(json.dumps({"version": 1, "seed": 0, "subjects": [1], "dataset_fingerprint": "x",
                               "pairs": [{"i": 0}]}))
    with pytest.raises(FormatError):
        load_pairs(bad)


# -- metrics on hand-made scores -------------------------------------------------------------

SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
SAME = np.array([True, True, False, True, False, False])


def test_auc_by_hand():
    # same {0.9, 0.8, 0.6} vs different {0.7, 0.5, 0.4}: 0.9 and 0.8 beat all three, 0.6 beats two
    assert roc_auc(SCORES, SAME) == pytest.approx(8 / 9)
    # a tie counts one half: same {0.5} vs different {0.5, 0.3} -> (0.5 + 1) / 2
    assert roc_auc(np.array([0.5, 0.5, 0.3]), np.array([True, False, False])) == pytest.approx(0.75)
    # perfectly separated, and perfectly inverted
    assert roc_auc(np.array([0.9, 0.8, 0.1]), np.array([True, True, False])) == 1.0
    assert roc_auc(np.array([0.1, 0.2, 0.9]), np.array([True, True, False])) == 0.0


def test_roc_curve_by_hand():
    c = roc_curve(SCORES, SAME)
    assert np.allclose(c.thresholds[1:], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]) and c.thresholds[0] == np.inf
    assert np.allclose(c.tar, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    assert np.allclose(c.far, [0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    # the area under the curve is the AUC
    area = float(np.sum(np.diff(c.far) * (c.tar[1:] + c.tar[:-1]) / 2))
    assert area == pytest.approx(8 / 9)


def test_eer_by_hand():
    # threshold 0.65 (midway between 0.6 and 0.7) accepts 0.9, 0.8, 0.7: FAR 1/3 (0.7), FRR 1/3 (0.6)
    e = equal_error_rate(SCORES, SAME)
    assert e.threshold == pytest.approx(0.65)
    assert e.far == pytest.approx(1 / 3) and e.frr == pytest.approx(1 / 3) and e.eer == pytest.approx(1 / 3)
    # separable: the EER threshold is midway in the gap and the EER is 0
    e = equal_error_rate(np.array([0.9, 0.8, 0.3, 0.2]), np.array([True, True, False, False]))
    assert e.eer == 0.0 and e.threshold == pytest.approx(0.55)
    # no exact crossing: same {0.9, 0.5}, different {0.6, 0.1, 0.2, 0.3}
    # t=0.55: FAR 1/4, FRR 1/2 (|d| 1/4); t=0.75: FAR 0, FRR 1/2; t=0.4: FAR 1/4, FRR 0 (|d| 1/4, sum 1/4 wins)
    e = equal_error_rate(np.array([0.9, 0.5, 0.6, 0.1, 0.2, 0.3]), np.array([True, True, False, False, False, False]))
    assert e.threshold == pytest.approx(0.4) and e.far == pytest.approx(0.25) and e.frr == 0.0
    assert e.eer == pytest.approx(0.125)


def test_accuracy_and_metrics_at_a_threshold_by_hand():
    # at 0.65: right are 0.9, 0.8 (accepted same) and 0.5, 0.4 (rejected different): 4 of 6
    assert accuracy_at(SCORES, SAME, 0.65) == pytest.approx(4 / 6)
    # at 0.75: 0.9, 0.8 accepted; 0.7, 0.5, 0.4 rejected rightly; 0.6 wrongly: 5 of 6
    assert accuracy_at(SCORES, SAME, 0.75) == pytest.approx(5 / 6)
    # the decision is score >= threshold
    assert accuracy_at(SCORES, SAME, 0.6) == pytest.approx(5 / 6)
    m = verification_metrics(SCORES, SAME, 0.75)
    assert m.accuracy == pytest.approx(5 / 6) and m.far == 0.0 and m.frr == pytest.approx(1 / 3)
    assert m.eer == pytest.approx(1 / 3) and m.auc == pytest.approx(8 / 9)
    assert m.n_pairs == 6 and m.n_same == 3 and m.to_dict()["threshold"] == 0.75


def test_rates_by_yaw_difference_by_hand():
    scores = np.array([0.9, 0.3, 0.8, 0.7, 0.2, 0.6])
    same = np.array([True, True, True, False, False, False])
    # yaw differences: 5, 10 (bin 0-15); 20, 25 (15-30); 50, -60 (45-180)
    rates = rates_by_yaw_difference(scores, same, 0.65, np.array([5.0, -10.0, 20.0, 25.0, 50.0, -60.0]))
    assert rates["0-15"] == {"same_pairs": 2, "same_accepted": 0.5, "different_pairs": 0, "different_rejected": None}
    assert rates["15-30"] == {"same_pairs": 1, "same_accepted": 1.0, "different_pairs": 1, "different_rejected": 0.0}
    assert rates["30-45"] == {"same_pairs": 0, "same_accepted": None, "different_pairs": 0, "different_rejected": None}
    assert rates["45-180"] == {"same_pairs": 0, "same_accepted": None, "different_pairs": 2, "different_rejected": 1.0}


def test_metrics_refuse_one_class_and_bad_scores():
    with pytest.raises(VerificationError, match="both"):
        roc_auc(np.array([0.1, 0.2]), np.array([True, True]))
    with pytest.raises(VerificationError, match="finite"):
        equal_error_rate(np.array([0.1, np.nan]), np.array([True, False]))
    with pytest.raises(VerificationError, match="3 scores for 2"):
        accuracy_at(np.array([0.1, 0.2, 0.3]), np.array([True, False]), 0.5)


def test_roc_plot_writes_a_png(tmp_path):
    path = tmp_path / "roc.png"
    plot_roc({"true-true": roc_curve(SCORES, SAME)}, path, annotations={"true-true": "AUC 0.889"})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
