"""Sample weights that travel with the targets: each loss weighs its rows, and ``fit``'s
batches take the rows' weights along."""

from collections.abc import Callable

import numpy as np
import pytest

from handprop.losses import (
    Huber,
    Loss,
    MeanAbsoluteError,
    MeanSquaredError,
    SoftmaxCrossEntropy,
    SumSquaredError,
)
from handprop.sample_weight import WeightedTargets

N, C = 7, 3
WEIGHTS = np.array([0.0, 1.0, 2.0, 3.0, 1.0, 0.0, 2.0])
REPEATED = np.repeat(np.arange(N), WEIGHTS.astype(int))  # row i, weight(i) times


def _regression(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal((N, C))


def _labels(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, C, N)


CASES: list[tuple[Callable[[], Loss], Callable[[np.random.Generator], np.ndarray]]] = [
    (MeanSquaredError, _regression),
    (SumSquaredError, _regression),
    (MeanAbsoluteError, _regression),
    (Huber, _regression),
    (SoftmaxCrossEntropy, _labels),
    (lambda: SoftmaxCrossEntropy(weight=np.array([1.0, 2.0, 0.5])), _labels),
]


@pytest.mark.parametrize(("make", "targets"), CASES)
def test_whole_weights_count_as_repeated_rows(make: Callable[[], Loss], targets: Callable) -> None:
    rng = np.random.default_rng(0)
    y_pred, y = rng.standard_normal((N, C)), targets(rng)
    weighted = make()
    loss = weighted.forward(y_pred, WeightedTargets(y, WEIGHTS))
    grad_y_pred = weighted.backward().copy()
    repeated = make()
    expected = repeated.forward(y_pred[REPEATED], y[REPEATED])
    expected_grad = np.zeros_like(y_pred)
    np.add.at(expected_grad, REPEATED, repeated.backward())  # each copy's gradient, summed
    np.testing.assert_allclose(loss, expected, rtol=1e-13)
    np.testing.assert_allclose(grad_y_pred, expected_grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("make", "targets"), CASES)
def test_weights_all_zero_leave_nothing_to_learn(
    make: Callable[[], Loss], targets: Callable
) -> None:
    rng = np.random.default_rng(1)
    y_pred, y = rng.standard_normal((N, C)), targets(rng)
    loss_fn = make()
    assert loss_fn.forward(y_pred, WeightedTargets(y, np.zeros(N))) == 0.0
    assert not loss_fn.backward().any()


def test_taking_rows_takes_their_weights_and_arithmetic_gives_plain_arrays() -> None:
    y = WeightedTargets(np.arange(12.0).reshape(6, 2), np.arange(6.0))
    batch = y[np.array([4, 1])]
    assert isinstance(batch, WeightedTargets)
    np.testing.assert_array_equal(batch.sample_weight, [4.0, 1.0])
    np.testing.assert_array_equal(y[1:3].sample_weight, [1.0, 2.0])
    assert type(y - 1.0) is np.ndarray and type(y.mean(axis=0)) is np.ndarray
    assert type(y[2]) is np.ndarray  # one row: no weights to carry


@pytest.mark.parametrize("weight", [[1.0, -1.0], [1.0, np.nan], [1.0], [[1.0, 1.0]]])
def test_weights_must_be_one_finite_non_negative_number_per_row(weight: list) -> None:
    with pytest.raises(ValueError, match="sample weights must be 2 finite numbers >= 0"):
        WeightedTargets(np.zeros(2), np.array(weight))


def test_writing_into_weighted_targets_writes_their_values() -> None:
    y = WeightedTargets(np.arange(4.0), np.ones(4))
    np.add(y, 1.0, out=y)  # was endless recursion before out= was made plain
    np.testing.assert_array_equal(np.asarray(y), [1.0, 2.0, 3.0, 4.0])


@pytest.mark.parametrize("kind", ["accuracy", "r2"])
def test_scores_weigh_rows_as_the_loss_does(kind: str) -> None:
    # Was: the validation loss weighted, its metric (what early stopping watches) not.
    from sklearn.metrics import accuracy_score, r2_score

    from handprop import Linear
    from handprop.training.loop import evaluate

    rng = np.random.default_rng(5)
    x, weight = rng.standard_normal((60, 4)), rng.uniform(0.0, 3.0, 60)
    weight[:10] = 0.0
    model = Linear(4, 3, rng=1)
    scores = model(x)
    if kind == "accuracy":
        y, loss, oracle = rng.integers(0, 3, 60), SoftmaxCrossEntropy(), accuracy_score
        expected = oracle(y, scores.argmax(axis=1), sample_weight=weight)
        plain = oracle(y, scores.argmax(axis=1))
    else:
        y, loss, oracle = rng.standard_normal((60, 3)), MeanSquaredError(), r2_score
        expected, plain = oracle(y, scores, sample_weight=weight), oracle(y, scores)
    _, metric = evaluate(model, loss, x, WeightedTargets(y, weight), kind)
    assert metric == pytest.approx(expected, rel=1e-12)
    assert metric != pytest.approx(plain, rel=1e-6)  # the weights change the score here
    assert evaluate(model, loss, x, y, kind)[1] == pytest.approx(plain, rel=1e-12)
