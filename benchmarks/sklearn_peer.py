"""scikit-learn's ``MLPRegressor.partial_fit`` on the whole batch. Imported only here.

Not the same arithmetic: it has biases (started at zero here) and its own reductions
(loss = mean squared error / 2; gradient averaged over the batch). With
``learning_rate_init = 2 * N * lr`` its first weight update equals the tutorial's.
"""

from typing import Any

from benchmarks.contender import Contender, Skipped
from benchmarks.problem import Array, Problem

NOTE = "has biases and a mean loss: same shape of work, not the same arithmetic"


def _regressor(problem: Problem) -> Any:
    try:
        from sklearn.neural_network import MLPRegressor
    except ImportError as error:
        raise Skipped("not installed") from error
    return MLPRegressor(
        hidden_layer_sizes=problem.size.hidden,
        activation="relu",
        solver="sgd",
        learning_rate_init=2 * problem.size.n * problem.lr,
        momentum=0.0,
        alpha=0.0,
        batch_size=problem.size.n,
        shuffle=False,
        random_state=0,
    )


def make_sklearn_mlp(problem: Problem) -> Contender:
    model = _regressor(problem)
    x, y = problem.x.copy(), problem.y.copy()
    model.partial_fit(x, y)  # allocates coefs_ and intercepts_; then the shared start:
    for coef, w in zip(model.coefs_, problem.weights, strict=True):
        coef[...] = w
    for intercept in model.intercepts_:
        intercept[...] = 0

    def step() -> float:
        model.partial_fit(x, y)
        return float(model.loss_)

    def weights() -> list[Array]:
        return [coef.copy() for coef in model.coefs_]

    return Contender(step, weights, True, NOTE)
