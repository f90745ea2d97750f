"""Scores: a loss and a metric over a set, from predictions; an epoch's training scores.

After each epoch ``fit`` reports the training set's loss and metric. By default
(``FitOptions(train_scores="steps")``) they are the steps' own (``EpochScores``): the loss
is the mean of the batches' losses, weighted by their rows, as scikit-learn's
``loss_curve_``, Keras and PyTorch Lightning report it, and the metric is that of the
predictions each step made before its update, kept as the epoch runs: every training row
once, in training mode (Dropout dropping, BatchNorm on the batch's statistics). That
costs a copy of each batch's outputs (and one batch's forward pass with the last weights:
``fit`` checks that their outputs are finite, which no step saw). ``train_scores="full"``
scores the weights the epoch ends with, in evaluation mode: one more forward pass over
the whole training set (about a third of an epoch's arithmetic at batch 32), as
validation data is scored.

Over ranks, or on data read through a memory map, each process sums what the metric needs
part by part (``PartScores``) and the parts are merged: no process holds every row.
"""

from typing import Any

import numpy as np

from handprop._types import Array
from handprop.backend import namespace
from handprop.distributed import Communicator
from handprop.losses import Loss
from handprop.metrics import METRICS
from handprop.moments import Moments

#: Predictions an ``EpochScores`` keeps at most before summing them up, over ranks or on
#: mapped data (then an epoch's rows may not fit in memory)
CHUNK_ROWS = 65536


def score(loss_fn: Loss, y_pred: Array, y: Array, metric: str) -> tuple[float, float]:
    """(loss, metric) of predictions ``y_pred`` against ``y``; the loss as ``loss_fn`` reduces.

    Shape: y_pred (N, D_out); y (N, D_out) or (N,) labels.
    """
    return loss_fn.forward(y_pred, y), measure(metric, y_pred, y)


def measure(metric: str, y_pred: Array, y: Array) -> float:
    """``METRICS[metric]`` of predictions ``y_pred`` (numpy or torch) against ``y``, on the
    host. Targets with sample weights (``WeightedTargets``) weigh its rows as the loss's."""
    xp, weights = namespace(y_pred), getattr(y, "sample_weight", None)
    if weights is not None:
        return METRICS[metric](xp.to_numpy(y_pred), np.asarray(y), sample_weight=weights)
    return METRICS[metric](xp.to_numpy(y_pred), xp.to_numpy(y))


class PartScores:
    """A loss and a metric summed part by part over a set, and merged over ranks.

    ``add(y_pred, y)`` for each part (numpy arrays); ``result(comm)`` gives what ``score``
    gives on the whole set, up to rounding (the loss 0 when ``loss_fn`` is None: the metric
    alone). Metrics: "accuracy" and "r2".
    """

    def __init__(self, loss_fn: Loss | None, metric: str) -> None:
        if metric not in ("accuracy", "r2"):
            raise ValueError(
                f"scores summed by parts know the metrics accuracy and r2, received {metric!r}"
            )
        self.loss_fn, self.metric = loss_fn, metric
        self.rows, self.loss, self.weight = 0, 0.0, 0.0  # the loss times each part's weight
        self.statistics: Any = None  # the correct count, or (residual sums, target moments)

    def add(self, y_pred: Array, y: Array) -> None:
        """Add the part (y_pred, y): y_pred (n, D_out), y (n, D_out) or (n,) labels."""
        if self.loss_fn is not None:
            weight = share(self.loss_fn, y, 1)
            self.loss += self.loss_fn.forward(y_pred, y) * weight
            self.weight += weight
        self.rows += len(y)
        if self.metric == "accuracy":
            self.statistics = int(np.sum(np.argmax(y_pred, axis=1) == y)) + (self.statistics or 0)
            return
        residual, moments = np.square(y - y_pred).sum(axis=0), Moments.of(y)
        if self.statistics is not None:
            residual, moments = residual + self.statistics[0], self.statistics[1].merge(moments)
        self.statistics = (residual, moments)

    def result(self, comm: Communicator | None) -> tuple[float, float]:
        """(loss, metric) over every part of every rank of ``comm`` (None: this process's).
        Collective: every rank calls it."""
        local = (self.rows, self.loss, self.weight, self.statistics)
        parts = [local] if comm is None else comm.allgather(local)
        total_rows = sum(part[0] for part in parts)
        total_loss = sum(part[1] for part in parts)
        if self.loss_fn is not None and self.loss_fn.reduction != "sum":
            total_loss /= sum(part[2] for part in parts)
        given = [part[3] for part in parts if part[0]]
        if self.metric == "accuracy":
            return total_loss, sum(given) / total_rows
        return total_loss, _r2(given)


def share(loss_fn: Loss, y_rows: Array, batch_rows: int) -> float:
    """The weight of ``y_rows``' loss in the loss of a batch of ``batch_rows`` rows.

    A sum: 1. A mean: its rows / the batch's. A class-weighted mean (sum of weight[y] *
    loss over sum of weight[y]): its rows' class weights, normalised by the caller.
    """
    if loss_fn.reduction == "sum":
        return 1.0
    weight = class_weights(loss_fn)
    if weight is None:
        return len(y_rows) / batch_rows
    return float(np.sum(weight[np.asarray(y_rows, dtype=np.int64)]))


def class_weights(loss_fn: Loss) -> Array | None:
    """A mean loss's class weights (SoftmaxCrossEntropy's ``weight``), else None."""
    return getattr(loss_fn, "weight", None) if loss_fn.reduction != "sum" else None


def _r2(parts: list[tuple[Array, Moments]]) -> float:
    """r2_score from each part's residual sums and target moments (see ``metrics.r2_score``)."""
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


class EpochScores:
    """The training scores of an epoch from what its steps computed (see above).

    ``begin()`` at the epoch's start; in each step ``add_predictions(batch, y_pred)``, the
    batch's row indices and the model's output on this process's rows of them (over ranks:
    the rows it owns, ``comm.rows``) before the update (``train_step``'s
    ``on_predictions``), then ``add_loss(len(batch), loss)``, the step's loss (of every
    rank's rows); ``result()`` at the epoch's end, None if the epoch had no row.

    The loss is the steps' own, the mean of the batches' losses weighted by their rows (a
    sum of them for a sum loss); where rows weigh differently (class or sample weights) it
    is computed again over the predictions, as the metric is. In one process with the set
    in memory the predictions are kept whole and measured at once (any metric; sample
    weights); over ranks, or on mapped data, ``CHUNK_ROWS`` at a time are summed up
    (``PartScores``) and ``result`` merges the ranks' (collective).
    """

    def __init__(
        self,
        loss_fn: Loss,
        metric: str,
        data: tuple[Array, Array],
        comm: Communicator | None = None,
        *,
        whole: bool,
        chunk_rows: int = CHUNK_ROWS,
    ) -> None:
        x, self.y = data
        self.loss_fn, self.metric, self.comm = loss_fn, metric, comm
        self.mine = slice(0, len(x)) if comm is None else comm.rows(len(x))
        rows = self.mine.stop - self.mine.start
        self.whole = whole and comm is None  # the set in memory: its predictions kept whole
        self.capacity = rows if self.whole else min(rows, chunk_rows)
        self.predictions: Array | None = None  # (capacity, D_out), made by the first add
        self.xp: Any = None  # the predictions' namespace (numpy, or torch on the model's device)
        weighted = class_weights(loss_fn) is not None or hasattr(self.y, "sample_weight")
        self.steps_loss = not weighted  # else the loss over the predictions
        self.sum = loss_fn.reduction == "sum"
        self.filled = 0  # predictions kept
        self.batches: list[Array] = []  # their rows' indices, batch by batch
        self.total, self.count = 0.0, 0  # the steps' losses times their rows; the rows
        self.parts: PartScores | None = None  # what was summed up (not whole)

    def begin(self) -> None:
        """Forget the last epoch's: nothing kept, nothing counted."""
        self.filled, self.batches, self.total, self.count = 0, [], 0.0, 0
        if not self.whole:
            self.parts = PartScores(None if self.steps_loss else self.loss_fn, self.metric)

    def add_loss(self, rows: int, loss: float) -> None:
        """A step's loss, of a batch of ``rows`` rows (every rank's)."""
        self.total += loss if self.sum else loss * rows
        self.count += rows

    def add_predictions(self, batch: Array, y_pred: Array) -> None:
        """A step's output on this process's rows of ``batch``, before the update."""
        rows = batch
        if self.comm is not None:  # the rows of the batch that this rank trains on
            rows = batch[(batch >= self.mine.start) & (batch < self.mine.stop)]
        end = self.filled + len(rows)
        if end > self.capacity:
            self._sum_up()
            end = len(rows)
        if self.predictions is None or end > len(self.predictions):
            xp = self.xp = namespace(y_pred)
            shape = (max(self.capacity, len(rows)), *y_pred.shape[1:])
            self.predictions = xp.empty(shape, xp.dtype_of(y_pred))
        self.xp.copyto(self.predictions[self.filled : end], y_pred)
        self.filled = end
        self.batches.append(rows)

    def result(self) -> tuple[float, float] | None:
        """The epoch's (loss, metric), None without a step. Collective over ranks."""
        if not self.count:
            return None
        loss = self.total if self.sum else self.total / self.count
        if self.parts is None:  # whole
            assert self.predictions is not None
            order = np.concatenate(self.batches)  # WeightedTargets take their weights along
            y = self.y[order] if isinstance(self.y, np.ndarray) else self.xp.rows(self.y, order)
            y_pred = self.predictions[: self.filled]
            if not self.steps_loss:
                loss = self.loss_fn.forward(y_pred, y)
            return loss, measure(self.metric, y_pred, y)
        self._sum_up()
        parts_loss, metric = self.parts.result(self.comm)
        return loss if self.steps_loss else parts_loss, metric

    def _sum_up(self) -> None:
        """Add the kept predictions to the parts' sums, and keep none (not whole)."""
        if self.filled and self.parts is not None:
            assert self.predictions is not None
            y = np.asarray(self.y[np.concatenate(self.batches)])
            self.parts.add(self.predictions[: self.filled], y)
        self.filled, self.batches = 0, []
