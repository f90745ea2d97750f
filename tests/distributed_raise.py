"""A ``fit`` that raises on one rank (``mpiexec -n 2 python -m tests.distributed_raise OUT``).

Plain SGD on one machine keeps the weights in shared memory during ``fit``. Rank 1's
callback raises after the first epoch: rank 1 saves what its parameters hold then
(their own arrays again, or views of the shared memory) and ends the job, since rank 0
waits for it in the next step.
"""

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

import handprop as hp
from handprop.distributed import world
from handprop.training import Callback, EpochLog, TrainingState, fit
from tests.distributed_cases import CASES, problem


class FailsOnRank(Callback):
    def __init__(self, rank: int, failing: int) -> None:
        self.rank, self.failing = rank, failing

    def on_epoch_end(self, log: EpochLog, state: TrainingState) -> None:
        if self.rank == self.failing:
            raise RuntimeError(f"injected failure on rank {self.rank}")


def model_and_data() -> tuple[hp.Sequential, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(1)
    model = hp.Sequential(hp.Linear(4, 16, rng=rng), hp.Tanh(), hp.Linear(16, 2, rng=rng))
    return model, problem(CASES["sgd-mse"])[0]


def train(
    model: hp.Sequential,
    data: tuple[np.ndarray, np.ndarray],
    epochs: int,
    comm: Any = None,
    callbacks: Sequence[Callback] = (),
) -> None:
    fit(
        model, hp.MeanSquaredError(), hp.SGD(model.parameters(), lr=0.05), data,
        epochs=epochs, batch_size=32, rng=np.random.default_rng(2), callbacks=callbacks,
        comm=comm,
    )  # fmt: skip


def main(out: str) -> None:
    comm = world()
    assert comm is not None, "run under mpiexec -n 2"
    model, data = model_and_data()
    own = [p.data for p in model.parameters()]
    try:
        train(model, data, 3, comm, [FailsOnRank(comm.rank, failing=1)])
    except RuntimeError:
        held = [p.data for p in model.parameters()]
        is_own = [a is b for a, b in zip(own, held, strict=True)]
        np.savez(out, own=np.array(is_own), **{f"weight{i}": w for i, w in enumerate(held)})
        comm.abort(3)  # rank 0 waits for rank 1 in the next step


if __name__ == "__main__":
    main(sys.argv[1])
