"""Training runs that tests/test_distributed.py makes on one process and under mpiexec.

Run as a script under ``mpiexec -n K``, every rank trains each case with ``fit(comm=...)``;
rank 0 saves every rank's weights (gathered), the history and the Allreduce count per step.
"""

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import handprop as hp
import handprop.distributed
from handprop.training import FitOptions, History, fit


@dataclass(frozen=True)
class Case:
    loss: Callable[[], Any]
    optimizer: Callable[[list[hp.Parameter]], hp.Optimizer]
    classification: bool
    batch_size: int
    epochs: int
    validation: bool = False
    options: FitOptions | None = None
    rows: int = 300
    shards: bool = False  # each rank holds its own rows alone (RowShard)
    dropout: float = 0.0  # a Dropout layer after the hidden layer's Tanh
    bias: bool = True


CASES = {
    # plain SGD offers the fused update: it must not skip the exchange
    "sgd-mse": Case(hp.MeanSquaredError, lambda p: hp.SGD(p, lr=0.05), False, 32, 3),
    "adam-cross-entropy-early-stopping": Case(
        hp.SoftmaxCrossEntropy,
        lambda p: hp.Adam(p, lr=5e-2),
        True,
        30,
        30,
        True,
        FitOptions(patience=1),
    ),
    "momentum-sse-clipped": Case(
        hp.SumSquaredError,
        lambda p: hp.SGD(p, lr=1e-3, momentum=0.9),
        False,
        64,
        3,
        True,
        FitOptions(clip_norm=1.0),
    ),
    # batches of 2 on 3 ranks: one rank has no rows in every step
    "batches-smaller-than-the-world": Case(
        hp.MeanSquaredError, lambda p: hp.SGD(p, lr=0.05), False, 2, 1, rows=21
    ),
    # the loss divides by the batch's class weights, which no rank knows alone
    "class-weighted-cross-entropy-on-shards": Case(
        lambda: hp.SoftmaxCrossEntropy(weight=np.array([1.0, 3.0, 0.5])),
        lambda p: hp.Adam(p, lr=5e-2),
        True,
        30,
        3,
        True,
        shards=True,
    ),
    "row-shards-sgd-mse": Case(
        hp.MeanSquaredError, lambda p: hp.SGD(p, lr=0.05), False, 32, 3, True, shards=True
    ),
    # every rank draws the whole batch's masks and keeps its rows: the single process's
    "dropout-adam-cross-entropy": Case(
        hp.SoftmaxCrossEntropy, lambda p: hp.Adam(p, lr=5e-2), True, 30, 3, True, dropout=0.3
    ),
    # ranks with no row of a batch draw its masks all the same
    "dropout-batches-smaller-than-the-world": Case(
        hp.MeanSquaredError, lambda p: hp.SGD(p, lr=0.05), False, 2, 1, rows=21, dropout=0.3
    ),
    # no bias: every parameter moves by rows in shared memory, the exchange sums the loss alone
    "sgd-no-bias": Case(
        hp.MeanSquaredError, lambda p: hp.SGD(p, lr=0.05), False, 32, 2, bias=False
    ),
    # early stopping writes the best weights back into the shared ones
    "sgd-cross-entropy-early-stopping": Case(
        hp.SoftmaxCrossEntropy,
        lambda p: hp.SGD(p, lr=0.5),
        True,
        30,
        30,
        True,
        FitOptions(patience=1),
    ),
}

#: The cases whose Linear weights move by rows in shared memory on one machine (plain SGD,
#: unclipped, no class weights): ``RowSplitSGD``.
ROW_SPLIT = {
    "sgd-mse",
    "batches-smaller-than-the-world",
    "row-shards-sgd-mse",
    "dropout-batches-smaller-than-the-world",
    "sgd-no-bias",
    "sgd-cross-entropy-early-stopping",
}


def problem(
    case: Case,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((case.rows, 4))
    y: np.ndarray = np.stack([2 * x[:, 0] - x[:, 1], np.sin(x[:, 2])], axis=1)
    if case.classification:
        y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    if not case.validation:
        return (x, y), None
    return (x[:240], y[:240]), (x[240:], y[240:])


def steps_per_epoch(name: str) -> int:
    case = CASES[name]
    return -(-len(problem(case)[0][0]) // case.batch_size)


def train(name: str, comm: Any = None) -> tuple[list[np.ndarray], History]:
    case = CASES[name]
    rng = np.random.default_rng(1)
    d_out = 3 if case.classification else 2
    layers = [
        hp.Linear(4, 16, rng=rng, bias=case.bias),
        hp.Tanh(),
        hp.Linear(16, d_out, rng=rng, bias=case.bias),
    ]
    if case.dropout:
        layers.insert(2, hp.Dropout(case.dropout, rng=5))
    model = hp.Sequential(*layers)
    data, validation = problem(case)
    if comm is not None and case.shards:  # each rank keeps its own rows alone
        data = own_rows(data, comm)
        validation = None if validation is None else own_rows(validation, comm)
    history = fit(
        model, case.loss(), case.optimizer(model.parameters()), data, epochs=case.epochs,
        batch_size=case.batch_size, rng=np.random.default_rng(2), validation=validation,
        options=case.options, comm=comm,
    )  # fmt: skip
    return [p.data for p in model.parameters()] + [b for _, b in model.named_buffers()], history


def own_rows(data: tuple[np.ndarray, np.ndarray], comm: Any) -> tuple[Any, Any]:
    from handprop.distributed import RowShard

    return RowShard.of(data[0], comm), RowShard.of(data[1], comm)


def batch_norm_run(
    batch_size: int, comm: Any = None, momentum: float = 0.9
) -> tuple[list[np.ndarray], str]:
    """A BatchNorm network trained 2 epochs: its weights and running statistics, or its
    weights where fit raised, and the error."""
    rng = np.random.default_rng(1)
    model = hp.Sequential(
        hp.Linear(4, 8, rng=rng), hp.BatchNorm1d(8), hp.Tanh(), hp.Linear(8, 2, rng=rng)
    )
    data, _ = problem(CASES["sgd-mse"])
    try:
        fit(
            model, hp.MeanSquaredError(), hp.SGD(model.parameters(), lr=0.05, momentum=momentum),
            data, epochs=2, batch_size=batch_size, rng=np.random.default_rng(2), comm=comm,
        )  # fmt: skip
    except ValueError as error:
        return [p.data for p in model.parameters()], str(error)
    return [p.data for p in model.parameters()] + [b for _, b in model.named_buffers()], ""


def main(out: str) -> None:
    from mpi4py import MPI

    from handprop.distributed import Communicator, GradientExchange, SharedSum, world
    from handprop.training.row_split import RowSplitSGD

    comm = world()
    assert comm is not None, "run under mpiexec -n K with K > 1"
    calls = {"allreduce": 0, "shared": 0, "split": 0}

    def counted(method: Callable[..., None], path: str) -> Callable[..., None]:
        def counting(*args: Any) -> None:
            calls[path] += 1
            method(*args)

        return counting

    Communicator.allreduce_sum = counted(Communicator.allreduce_sum, "allreduce")  # type: ignore[method-assign]
    SharedSum.add_up = counted(SharedSum.add_up, "shared")  # type: ignore[method-assign]
    RowSplitSGD.update = counted(RowSplitSGD.update, "split")  # type: ignore[method-assign]
    saved: dict[str, Any] = {}
    # the ranks of one machine sum in shared memory; the Allreduce is the path between machines
    paths = {"shared": comm, "allreduce": Communicator(MPI.COMM_WORLD, shared_memory=False)}
    for path, world_of_path in paths.items():
        for name in CASES:
            calls.update(allreduce=0, shared=0, split=0)
            weights, history = train(name, world_of_path)
            # after fit every parameter holds its own array again, not a view of shared memory
            own = all(w.flags.owndata for w in weights)
            everyone = comm.allgather((weights, own))
            for rank, (arrays, owned) in enumerate(everyone):
                for index, array in enumerate(arrays):
                    saved[f"{path}/{name}/rank{rank}/{index}"] = array
                saved[f"{path}/{name}/rank{rank}/owndata"] = np.array(owned)
            saved[f"{path}/{name}/calls"] = np.array(
                [calls["allreduce"], calls["shared"], calls["split"]]
            )
            saved[f"{path}/{name}/steps"] = np.array(len(history.logs) * steps_per_epoch(name))
            saved[f"{path}/{name}/logs"] = np.array(
                [[log.train_loss, log.train_metric, log.val_loss or 0, log.val_metric or 0]
                 for log in history.logs]
            )  # fmt: skip
            saved[f"{path}/{name}/stop"] = np.array(history.stop_reason)
    # 2: some batch gives a rank one row; momentum 0: plain SGD, the weights in shared memory
    for key, batch_size, momentum in (("64", 64, 0.9), ("2", 2, 0.9), ("2-plain", 2, 0.0)):
        arrays, error = batch_norm_run(batch_size, comm, momentum)
        owned = all(a.flags.owndata for a in arrays)
        for rank, (held, said, own) in enumerate(comm.allgather((arrays, error, owned))):
            saved[f"batch-norm-{key}/rank{rank}/error"] = np.array(said)
            saved[f"batch-norm-{key}/rank{rank}/owndata"] = np.array(own)
            for index, array in enumerate(held):
                saved[f"batch-norm-{key}/rank{rank}/{index}"] = array
    # ranks that start from different weights: refused by every rank before the weights
    # go into one shared copy (the end of fit could not tell then)
    model = hp.Sequential(hp.Linear(4, 2, rng=np.random.default_rng(comm.rank)))
    data, _ = problem(CASES["sgd-mse"])
    try:
        fit(model, hp.MeanSquaredError(), hp.SGD(model.parameters(), lr=0.05), data, epochs=1,
            comm=comm)  # fmt: skip
        error = ""
    except RuntimeError as raised:
        error = str(raised)
    for rank, said in enumerate(comm.allgather(error)):
        saved[f"different-weights/rank{rank}"] = np.array(said)
    for path, world_of_path in paths.items():  # the exchange alone: rank r adds (r + 1) * g
        params = [hp.Parameter(np.zeros((5, 7))), hp.Parameter(np.zeros(3))]
        exchange = GradientExchange(world_of_path, params)
        exchange.collect()
        for parameter in params:
            parameter.grad[...] = (comm.rank + 1) * np.arange(parameter.data.size).reshape(
                parameter.shape
            )
        loss = exchange.average(float(comm.rank), 1.0)
        on_one_machine = exchange.shared is not None
        exchange.close()  # the grads become copies, the shared memory is freed
        for rank, said in enumerate(
            comm.allgather(
                (
                    [p.grad for p in params],
                    [loss, on_one_machine, all(p.grad.flags.owndata for p in params)],
                )
            )
        ):
            for index, grad in enumerate(said[0]):
                saved[f"exchange-{path}/rank{rank}/{index}"] = grad
            saved[f"exchange-{path}/rank{rank}/facts"] = np.array(said[1], dtype=float)
    room = handprop.distributed.shared_memory_room
    handprop.distributed.shared_memory_room = lambda: 1e6  # /dev/shm of 1 MB on rank 1 alone
    if comm.rank != 1:
        handprop.distributed.shared_memory_room = room
    big = [hp.Parameter(np.zeros((300, 300)))]  # 3 rows of 90002 numbers: 2.2 MB on 2 ranks
    saved[f"no-room/rank{comm.rank}"] = np.array(GradientExchange(comm, big).shared is None)
    handprop.distributed.shared_memory_room = room
    for rank, said in enumerate(comm.allgather(saved[f"no-room/rank{comm.rank}"])):
        saved[f"no-room/rank{rank}"] = said
    averaged = [np.full(3, float(comm.rank)), np.array([comm.rank], dtype=np.int64)]
    comm.average(averaged)
    saved["average"] = np.concatenate([a.astype(float) for a in averaged])
    if comm.rank == 0:
        np.savez(out, **saved)


if __name__ == "__main__":
    main(sys.argv[1])
