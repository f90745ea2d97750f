"""``fit`` over K ranks: each trains on its own rows of every global batch, scores are merged.

Rank r owns the r-th contiguous part of the training rows, ``comm.rows(n)`` (and of
each data set it scores), and reads no other row: it may hold only those
(``RowShard``, a memory map). Every rank draws the same permutation (the same seeded
generator), so the global batches are the single-process run's; each rank computes
the gradients of the rows of each batch that it owns, weighted by their share of the
batch, and one exchange sums them (``GradientExchange``: an Allreduce, or shared memory
when every rank runs on one machine). On one machine plain SGD's weights are not
exchanged: they live in shared memory, each rank moving its block of their rows
(``RowSplitSGD``).

Dropout draws the whole batch's masks on every rank, from its copy of the layer's
generator, and keeps the rows the rank owns (``BatchRows``): the single process's masks.
"""

from collections.abc import Callable
from typing import Any

import numpy as np

from handprop._types import Array
from handprop.distributed import Communicator, EveryRankError, GradientExchange
from handprop.layers import BatchNorm1d, BatchNorm2d, Dropout
from handprop.layers.module import Module
from handprop.losses import Loss
from handprop.optim import Optimizer
from handprop.training.row_split import RowSplitSGD, first_input, split_weights
from handprop.training.scores import PartScores, class_weights, share
from handprop.training.step import train_step


def sharded_step(
    exchange: GradientExchange,
    model: Module,
    loss_fn: Loss,
    optimizer: Optimizer,
    data: tuple[Array, Array],
    batch: Array,
    clip_norm: float | None,
    split: RowSplitSGD | None = None,
    on_predictions: Callable[[Array], object] | None = None,
) -> float:
    """One step on this rank's rows of the global ``batch`` (row indices); the batch's loss.
    ``on_predictions``: ``train_step``'s, called with the output on this rank's rows."""
    comm, x, y = exchange.comm, *data
    statistics = _batch_statistics(model)
    if statistics:
        check_batch_statistics(comm, len(x), batch)
    mine = comm.rows(len(x))
    owned = (batch >= mine.start) & (batch < mine.stop)  # this rank's positions in the batch
    rows = batch[owned]
    if split is not None:  # ranks < this one own the rows before ``mine``: theirs go first
        split.begin(int(np.count_nonzero(batch < mine.start)), len(rows), len(batch))
        x_rows = split.gather(x, rows)
    else:
        x_rows = x[rows]
    y_rows = y[rows]
    dropouts = [m for m in model.modules() if isinstance(m, Dropout) and m.training]
    for layer in dropouts:  # the whole batch's masks drawn, this rank's rows kept
        layer.rng = BatchRows(layer.rng, len(batch), np.flatnonzero(owned))  # type: ignore[assignment]
    try:
        if dropouts and not len(rows) and not statistics and mine.start < mine.stop:
            _draw_masks(model, dropouts, x[mine.start : mine.start + 1])
        return train_step(
            model, loss_fn, optimizer, x_rows, y_rows, clip_norm=clip_norm, exchange=exchange,
            share=share(loss_fn, y_rows, len(batch)), split=split, on_predictions=on_predictions,
        )  # fmt: skip
    finally:
        for layer in dropouts:
            layer.rng = layer.rng.rng  # type: ignore[attr-defined]


def _draw_masks(model: Module, dropouts: list[Dropout], one_row: Array) -> None:
    """Move the Dropout generators by the batch's masks, for a rank that owns no row of it.

    A forward pass of one row of the rank's own (an empty one is not every layer's input:
    a convolution's); its output and caches go unused.
    """
    for layer in dropouts:
        layer.rng.keep = np.zeros(1, dtype=np.int64)  # type: ignore[attr-defined]
    model.forward(one_row)


class BatchRows:
    """A Dropout layer's generator on one rank: the whole batch's draws, this rank's rows.

    The single process draws a mask for every row of the batch; so does every rank, from
    its copy of the same generator, and keeps the rows ``keep`` (positions in the batch of
    ``batch_rows`` rows): its masks are the single process's, and its generator moves as
    that one.
    """

    def __init__(self, rng: np.random.Generator, batch_rows: int, keep: Array) -> None:
        self.rng, self.batch_rows, self.keep = rng, batch_rows, keep

    def random(self, dtype: Any, out: Array) -> Array:
        """``out`` (this rank's rows, ...) filled as ``Generator.random(dtype=, out=)`` does."""
        whole = self.rng.random((self.batch_rows, *out.shape[1:]), dtype=dtype)
        out[...] = whole[self.keep]
        return out


def gradient_exchange(
    comm: Communicator,
    model: Module,
    optimizer: Optimizer,
    loss_fn: Loss,
    clip_norm: float | None = None,
    batch_rows: int = 0,
) -> tuple[RowSplitSGD | None, GradientExchange]:
    """The row split of plain SGD's weights (or None), and the exchange of the other gradients.

    The split where every rank runs on this machine and the update is plain SGD's, not
    clipped, over a loss whose shares every rank knows (no class weights); then the
    exchange leaves those weights out. ``batch_rows``: the most rows a batch has.
    Collective: every rank calls it, with the same arguments.
    """
    normalise = class_weights(loss_fn) is not None
    weights = [] if normalise or clip_norm is not None else split_weights(model, optimizer)
    window = None
    if weights and batch_rows:
        # one copy of them, rank 0's, for every rank: the end of fit could not tell otherwise
        comm.check_same([p.data for p in weights], "the weights before training")
        window = comm.shared_array(RowSplitSGD.size(weights, batch_rows), weights[0].dtype)
    if window is None:
        return None, GradientExchange(comm, optimizer.params, normalise=normalise)
    split = RowSplitSGD(window, weights, optimizer, batch_rows, first_input(model, weights))
    rest = [p for p in optimizer.params if id(p) not in split.slots]
    return split, GradientExchange(comm, rest, normalise=normalise, dtype=weights[0].dtype)


def _batch_statistics(model: Module) -> bool:
    """Whether a layer of ``model`` normalises with the batch's statistics (BatchNorm training)."""
    return any(isinstance(m, BatchNorm1d | BatchNorm2d) and m.training for m in model.modules())


def check_batch_statistics(comm: Communicator, n: int, batch: Array) -> None:
    """Raise EveryRankError on every rank alike if a rank owns one row of ``batch``.

    BatchNorm needs two rows or more (a rank with none skips the step); every rank
    counts every rank's rows, so every rank stops at the same step, none left waiting.
    """
    starts = [comm.shard_of(n, rank).start for rank in range(comm.size)]
    owners = np.searchsorted(starts, batch, side="right") - 1  # the rank owning each row
    counts = np.bincount(owners, minlength=comm.size)
    alone = np.flatnonzero(counts == 1)
    if len(alone):
        raise EveryRankError(
            f"BatchNorm needs 2 rows or more of each batch on every rank, but a batch of "
            f"{len(batch)} rows gives rank {alone[0]} of {comm.size} one row: use a larger "
            f"batch size (e.g. {8 * comm.size}), or fewer ranks"
        )


def sharded_evaluate(
    comm: Communicator | None,
    model: Module,
    loss_fn: Loss,
    x: Array,
    y: Array,
    metric: str,
    batch_size: int = 4096,
) -> tuple[float, float]:
    """(loss, metric) over every rank's slice of (x, y), as ``evaluate`` gives on the whole.

    Each rank reads its rows ``batch_size`` at a time; ``comm`` None: one process, which
    reads every row so (data behind a memory map). Metrics: "accuracy" and "r2".
    Shape: x (N, D_in); y (N, D_out) or (N,) labels.
    """
    parts = PartScores(loss_fn, metric)
    rows = slice(0, len(x)) if comm is None else comm.rows(len(x))
    for start in range(rows.start, rows.stop, batch_size):
        stop = min(start + batch_size, rows.stop)
        parts.add(model.predict(x[start:stop], batch_size), np.asarray(y[start:stop]))
    return parts.result(comm)
