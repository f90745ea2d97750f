"""handprop itself: ``handprop.train_step`` on a Sequential of Linear(bias=False) and ReLU.

Keyword options are passed on to ``train_step``; none means its defaults. The registry
offers ``exact=True`` (the folded update rounded as the tutorial rounds it, what
``handprop warmup`` runs) and ``fold=False`` (gradients stored, then ``optimizer.step()``).
"""

import handprop
from benchmarks.contender import Contender
from benchmarks.problem import Array, Problem


def make_handprop(problem: Problem, **options: bool) -> Contender:
    layers: list[handprop.Module] = []
    for index, w in enumerate(problem.weights):
        if index > 0:
            layers.append(handprop.ReLU())
        linear = handprop.Linear(
            w.shape[0], w.shape[1], bias=False, init=handprop.init.zeros, dtype=problem.dtype
        )
        linear.weight.data[...] = w
        layers.append(linear)
    model = handprop.Sequential(*layers)
    loss_fn = handprop.SumSquaredError()
    optimizer = handprop.SGD(model.parameters(), lr=problem.lr)
    x, y = problem.x.copy(), problem.y.copy()

    def step() -> float:
        return float(handprop.train_step(model, loss_fn, optimizer, x, y, **options))

    def weights() -> list[Array]:
        return [parameter.data.copy() for parameter in model.parameters()]

    note = ", ".join(f"{name}={value}" for name, value in options.items())
    return Contender(step, weights, True, f"train_step(..., {note})" if note else "")
