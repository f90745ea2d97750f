"""MeanAbsoluteError, Huber and class-weighted cross-entropy: values worked by hand,
central differences, and the registry building each with no arguments."""

import numpy as np
import pytest

import handprop as hp


def test_mean_absolute_error_by_hand() -> None:
    loss = hp.MeanAbsoluteError()
    # |1 - 0| + |-2 - 1| + |0.5 - 0.5| + |3 - 1| = 1 + 3 + 0 + 2 = 6, over 4 elements
    y_pred, y = np.array([[1.0, -2.0], [0.5, 3.0]]), np.array([[0.0, 1.0], [0.5, 1.0]])
    assert loss.forward(y_pred, y) == 1.5
    np.testing.assert_array_equal(loss.backward(), [[0.25, -0.25], [0.0, 0.25]])


def test_huber_by_hand() -> None:
    loss = hp.Huber(delta=1.0)
    # errors 0.5 (inside: 0.5 * 0.25 = 0.125) and -3 (outside: 1 * (3 - 0.5) = 2.5)
    assert loss.forward(np.array([[0.5, -3.0]]), np.zeros((1, 2))) == pytest.approx(2.625 / 2)
    np.testing.assert_allclose(loss.backward(), [[0.25, -0.5]])  # clip(e, -1, 1) / 2


def test_weighted_cross_entropy_by_hand() -> None:
    # equal scores: every log-probability is log(1/2); weights 1 and 3, labels [0, 1, 1]
    loss = hp.SoftmaxCrossEntropy(weight=np.array([1.0, 3.0]))
    value = loss.forward(np.zeros((3, 2)), np.array([0, 1, 1]))
    assert value == pytest.approx(np.log(2))  # (1 + 3 + 3) * log 2 / (1 + 3 + 3)
    # rows: (softmax - one_hot) * weight[y] / 7
    expected = np.array([[-0.5, 0.5], [1.5, -1.5], [1.5, -1.5]]) / 7
    np.testing.assert_allclose(loss.backward(), expected)


def test_unweighted_cross_entropy_is_unchanged() -> None:
    scores, labels = np.random.default_rng(0).standard_normal((5, 3)), np.array([0, 2, 1, 1, 0])
    log_probs = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    plain, ones = hp.SoftmaxCrossEntropy(), hp.SoftmaxCrossEntropy(weight=np.ones(3))
    assert plain.forward(scores, labels) == pytest.approx(-log_probs[range(5), labels].mean())
    np.testing.assert_allclose(ones.forward(scores, labels), plain.forward(scores, labels))


@pytest.mark.parametrize(
    "loss",
    [hp.MeanAbsoluteError(), hp.Huber(0.7), hp.SoftmaxCrossEntropy(np.array([0.2, 1.0, 2.5]))],
    ids=repr,
)
def test_losses_match_central_differences(loss: hp.Loss) -> None:
    rng = np.random.default_rng(3)
    y_pred = 2 * rng.standard_normal((6, 3))
    y = rng.integers(0, 3, 6) if loss.task == "classification" else rng.standard_normal((6, 3))
    report = hp.check_gradients(loss, y_pred, y)
    assert report.passed, report


@pytest.mark.parametrize("name", ["mae", "huber", "cross-entropy"])
def test_registry_builds_each_with_defaults(name: str) -> None:
    loss = hp.LOSSES[name]()
    assert isinstance(loss, hp.Loss)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="Huber delta must be a finite number > 0"):
        hp.Huber(0)
    with pytest.raises(ValueError, match="weight must be a non-empty 1-D array"):
        hp.SoftmaxCrossEntropy(weight=np.array([1.0, -1.0]))
    loss = hp.SoftmaxCrossEntropy(weight=np.ones(2))
    with pytest.raises(ValueError, match="2 class weights but the scores have 3 classes"):
        loss.forward(np.zeros((1, 3)), np.array([0]))
