"""``fit`` over K ranks: each takes its slice of every global batch, scores are merged.

Every rank draws the same permutation (the same seeded generator), so the global
batches are the single-process run's; rank r trains on the r-th contiguous slice of
each one, and evaluates the r-th contiguous slice of each data set.
"""

from typing import Any

import numpy as np

from handprop._types import Array
from handprop.distributed import Communicator, GradientExchange
from handprop.layers.module import Module
from handprop.losses import Loss
from handprop.moments import Moments
from handprop.optim import Optimizer
from handprop.training.step import train_step


def sharded_step(
    exchange: GradientExchange,
    model: Module,
    loss_fn: Loss,
    optimizer: Optimizer,
    data: tuple[Array, Array],
    batch: Array,
    clip_norm: float | None,
) -> float:
    """One step on this rank's slice of the global ``batch`` (row indices); the batch's loss."""
    rows = batch[exchange.comm.rows(len(batch))]
    share = 1.0 if loss_fn.reduction == "sum" else len(rows) / len(batch)
    x, y = data
    return train_step(
        model, loss_fn, optimizer, x[rows], y[rows],
        clip_norm=clip_norm, exchange=exchange, share=share,
    )  # fmt: skip


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
    if metric not in ("accuracy", "r2"):
        raise ValueError(f"sharded scores know the metrics accuracy and r2, received {metric!r}")
    rows = slice(0, len(x)) if comm is None else comm.rows(len(x))
    local = _local_scores(model, loss_fn, x, y, metric, rows, batch_size)
    parts = [local] if comm is None else comm.allgather(local)
    total_rows = sum(part[0] for part in parts)
    total_loss = sum(part[1] for part in parts)
    if loss_fn.reduction != "sum":
        total_loss /= total_rows
    given = [part[2] for part in parts if part[0]]
    if metric == "accuracy":
        return total_loss, sum(given) / total_rows
    return total_loss, _r2(given)


def _local_scores(
    model: Module, loss_fn: Loss, x: Array, y: Array, metric: str, rows: slice, batch_size: int
) -> tuple[int, float, Any]:
    """(rows, loss summed as the loss reduces, what the metric needs) of ``rows``."""
    n, loss = 0, 0.0
    statistics: Any = None  # the correct count, or (residual sums, target moments)
    for start in range(rows.start, rows.stop, batch_size):
        x_part = x[start : min(start + batch_size, rows.stop)]
        y_part = np.asarray(y[start : min(start + batch_size, rows.stop)])
        y_pred = model.predict(x_part, batch_size)
        part_loss = loss_fn.forward(y_pred, y_part)
        loss += part_loss * (1.0 if loss_fn.reduction == "sum" else len(x_part))
        n += len(x_part)
        if metric == "accuracy":
            statistics = int(np.sum(np.argmax(y_pred, axis=1) == y_part)) + (statistics or 0)
        else:
            residual, moments = np.square(y_part - y_pred).sum(axis=0), Moments.of(y_part)
            if statistics is not None:
                residual, moments = residual + statistics[0], statistics[1].merge(moments)
            statistics = (residual, moments)
    return n, loss, statistics


def _r2(parts: list[tuple[Array, Moments]]) -> float:
    """r2_score from each rank's residual sums and target moments (see ``metrics.r2_score``)."""
    residual = np.sum([part[0] for part in parts], axis=0)
    moments = parts[0][1]
    for part in parts[1:]:
        moments = moments.merge(part[1])
    total = moments.m2
    constant = total == 0
    scores = np.where(
        constant, np.where(residual == 0, 1.0, 0.0), 1 - residual / np.where(constant, 1, total)
    )
    return float(scores.mean())
