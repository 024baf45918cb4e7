"""`ParityCheck` on synthetic outputs: robust to near-uniform classifiers."""

import numpy as np

from keras_neuronprune.export.parity_check import ParityCheck


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_near_uniform_classifier_passes_on_the_relative_bound():
    # An untrained 1000-class model: every top-1 is a coin toss, but the
    # int8 outputs agree with Keras to 1e-3 in probability.
    rng = np.random.default_rng(0)
    ref = _softmax(rng.normal(0, 0.01, (16, 1000)))
    exported = ref + rng.uniform(-1e-3, 1e-3, ref.shape)
    assert np.mean(ref.argmax(-1) == exported.argmax(-1)) < 0.5
    check = ParityCheck.compare([ref], [exported], "int8")
    assert check.passed, str(check)
    assert check.confident_samples == 0 and check.top1_agreement is None
    assert check.metric == "max_rel_diff"
    assert check.max_rel_diff < 1.1e-3


def test_confident_disagreement_fails_and_reads_correctly():
    ref = np.tile(np.array([[0.9, 0.05, 0.05]]), (10, 1))
    exported = np.tile(np.array([[0.05, 0.9, 0.05]]), (10, 1))
    check = ParityCheck.compare([ref], [exported], "int8")
    assert not check.passed
    assert check.metric == "top1_agreement" and check.value == 0.0
    assert check.failed == ["min_top1_agreement", "tolerance"]
    text = str(check)
    assert "top1_agreement=0.00 < required 0.90" in text
    assert "max_rel_diff=0.85 > allowed 0.1" in text
    assert text.startswith("parity FAILED")


def test_agreement_counts_only_confident_samples():
    confident = np.array([[0.9, 0.1]] * 8)
    unsure = np.array([[0.51, 0.49]] * 8)
    ref = np.concatenate([confident, unsure])
    exported = ref.copy()
    exported[8:] = [0.49, 0.51]  # flips only where Keras is unsure
    check = ParityCheck.compare([ref], [exported], "dynamic")
    assert check.passed
    assert check.confident_samples == 8 and check.top1_agreement == 1.0
    assert "top1_agreement=1.00 >= required 0.90 on 8 confident" in str(check)


def test_logits_use_the_output_scale_and_softmax_for_confidence():
    ref = np.array([[10.0, 0.0, -10.0], [0.0, 10.0, -10.0]])
    ok = ParityCheck.compare([ref], [ref + 0.5], "int8")
    assert ok.passed and ok.max_rel_diff == 0.05
    bad = ParityCheck.compare([ref], [ref + 2.0], "int8", tolerance=0.1)
    assert not bad.passed and bad.failed == ["tolerance"]


def test_float_bound_message():
    ref = np.zeros((2, 3))
    check = ParityCheck.compare([ref], [ref + 1e-3], "float32")
    assert not check.passed and check.failed == ["tolerance"]
    assert "max_abs_diff=0.001 > allowed 0.0001" in str(check)
