"""Review of plain SGD's row split on one machine (``training/row_split.py``).

Some cases run under ``mpiexec -n 2 python -m tests.test_review_scale OUT``: every rank
trains with ``fit(comm=...)``, rank 0 saves every rank's weights.
"""

import sys
from pathlib import Path
from typing import Any

import numpy as np

import handprop as hp
from handprop.layers.module import Module
from handprop.parameter import ACCUMULATE, Gradients, Parameter
from handprop.training import fit
from handprop.training.row_split import split_weights
from tests.test_distributed import launch


class PerToken(Module):
    """One Linear on each of T tokens: (N, T * D) -> (N * T, D) -> (N * T, H) -> (N, T * H).

    A user's layer whose Linear sees N * T rows, not the batch's N.
    """

    def __init__(self, tokens: int, d: int, h: int, rng: np.random.Generator) -> None:
        self.tokens, self.d, self.h = tokens, d, h
        self.linear = hp.Linear(d, h, rng=rng)

    def forward(self, x: Any) -> Any:
        n = len(x)
        return self.linear.forward(x.reshape(n * self.tokens, self.d)).reshape(n, -1)

    def backward(self, grad_y: Any, grads: Gradients = ACCUMULATE) -> Any:
        n = len(grad_y)
        grad_x = self.linear.backward(grad_y.reshape(n * self.tokens, self.h), grads)
        return grad_x.reshape(n, -1)

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        return [(f"linear.{name}", p) for name, p in self.linear.named_parameters()]

    def modules(self) -> Any:
        yield self
        yield from self.linear.modules()


def per_token_model() -> hp.Sequential:
    rng = np.random.default_rng(1)
    return hp.Sequential(PerToken(3, 2, 4, rng), hp.Tanh(), hp.Linear(12, 2, rng=rng))


def train_per_token(comm: Any = None) -> list[np.ndarray]:
    model = per_token_model()
    x = np.random.default_rng(0).standard_normal((20, 6))
    fit(
        model, hp.MeanSquaredError(), hp.SGD(model.parameters(), lr=0.05), (x, 2 * x[:, :2]),
        epochs=2, batch_size=8, rng=np.random.default_rng(2), comm=comm,
    )  # fmt: skip
    return [p.data for p in model.parameters()]


def test_a_linear_inside_a_users_layer_is_not_split_by_rows() -> None:
    """Its rows need not be the batch's (here N * T): it stays with the exchange."""
    model = per_token_model()
    weights = split_weights(model, hp.SGD(model.parameters(), lr=0.05))
    assert [id(w) for w in weights] == [id(model.layers[2].weight)]  # type: ignore[attr-defined]


def test_two_ranks_train_a_users_layer_whose_linear_sees_more_rows(tmp_path: Path) -> None:
    out = tmp_path / "per-token.npz"
    done = launch(2, "-m", "tests.test_review_scale", out, timeout=60)
    assert done.returncode == 0, done.stderr
    with np.load(out) as saved:
        for index, expected in enumerate(train_per_token()):
            for rank in range(2):
                got = saved[f"rank{rank}/{index}"]
                assert np.abs(got - expected).max() <= 1e-12 * np.abs(expected).max()


def main(out: str) -> None:
    from handprop.distributed import world

    comm = world()
    assert comm is not None, "run under mpiexec -n 2"
    everyone = comm.allgather(train_per_token(comm))
    if comm.rank == 0:
        arrays = {
            f"rank{r}/{i}": a for r, weights in enumerate(everyone) for i, a in enumerate(weights)
        }
        np.savez(out, **arrays)  # type: ignore[arg-type]


if __name__ == "__main__":
    main(sys.argv[1])
