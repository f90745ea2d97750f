"""One training step: the tutorial's loop body, made of library parts."""

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from handprop._types import Array
from handprop.layers.module import Module
from handprop.losses import Loss
from handprop.optim import Optimizer
from handprop.parameter import ACCUMULATE

if TYPE_CHECKING:  # only a data-parallel run has one; a plain run never imports MPI's module
    from handprop.distributed import GradientExchange
    from handprop.training.row_split import RowSplitSGD


def train_step(
    model: Module,
    loss_fn: Loss,
    optimizer: Optimizer,
    x: Array,
    y: Array,
    *,
    fold: bool = True,
    exact: bool = False,
    clip_norm: float | None = None,
    exchange: "GradientExchange | None" = None,
    share: float = 1.0,
    split: "RowSplitSGD | None" = None,
    on_predictions: Callable[[Array], object] | None = None,
) -> float:
    """Forward, loss, zero_grad, backward, update; returns the loss before the update.

    Shape: x (N, D_in); y as ``loss_fn`` expects, e.g. (N, D_out).

    The tutorial's body, in the same order::

        y_pred = model.forward(x)               # h = x.dot(w1); h_relu = ...; y_pred = ...
        loss = loss_fn.forward(y_pred, y)       # np.square(y_pred - y).sum()
        grad_y_pred = loss_fn.backward()        # 2.0 * (y_pred - y)
        model.backward_parameters(grad_y_pred, grads)   # grad_w2, ..., grad_w1
        optimizer.step()                        # w1 -= learning_rate * grad_w1; ...

    ``grads`` is where backward puts the parameter gradients: their ``.grad``,
    or, with ``fold=True`` and an optimizer that offers one
    (``optimizer.fused_gradients``: plain SGD), a path that applies the update
    inside the weight-gradient products. ``exact=True`` makes that path round
    as gradient-then-update does (the tutorial to the last bit). The first
    layer's input gradient is never computed. ``clip_norm`` rescales the
    gradients whose global L2 norm exceeds it before the update (no fusion then).

    Data-parallel (``exchange``, see ``handprop.distributed``): (x, y) is this rank's
    part of the global batch and ``share`` its weight in the batch's loss (its rows /
    the batch's rows for a mean loss, 1 for a sum); the gradients of every rank are
    summed with these weights before the update (no fusion then: it would update
    before the exchange), and the batch's loss is returned. A rank with no rows adds 0.
    On one machine ``split`` may take plain SGD's weights instead: each rank moves its
    block of their rows over the whole batch (``training/row_split.py``), and the
    exchange sums the other gradients.

    ``on_predictions(y_pred)`` is called with the model's output right after the forward
    pass, before anything else (``fit`` keeps a copy to score the epoch, training/scores.py):
    a layer's work buffer, which its next forward overwrites, so keep a copy, not ``y_pred``.
    """
    if exchange is not None:
        return _exchanged_step(
            model, loss_fn, optimizer, x, y, clip_norm, exchange, share, split, on_predictions
        )  # fmt: skip
    y_pred = model.forward(x)
    if on_predictions is not None:
        on_predictions(y_pred)
    loss = loss_fn.forward(y_pred, y)
    optimizer.zero_grad()
    grad_y_pred = loss_fn.backward()
    fused = optimizer.fused_gradients(exact) if fold and clip_norm is None else None
    if fused is not None and _shares_parameters(model):
        fused = None  # a weight used twice would be read after its fused update
    model.backward_parameters(grad_y_pred, fused or ACCUMULATE)
    if clip_norm is not None:
        clip_gradients(optimizer, clip_norm)
    optimizer.step()
    return loss


def _exchanged_step(
    model: Module,
    loss_fn: Loss,
    optimizer: Optimizer,
    x: Array,
    y: Array,
    clip_norm: float | None,
    exchange: "GradientExchange",
    share: float,
    split: "RowSplitSGD | None" = None,
    on_predictions: Callable[[Array], object] | None = None,
) -> float:
    """``train_step`` on one rank's rows: backward, one exchange, then the same update.

    The share scales ``grad_y_pred`` (N, D_out), not every gradient after backward:
    backward is linear in it, and the gradients can be far larger (36 MB at the medium
    size, a pass over them as long as a third of the Allreduce). Summed in shared
    memory, ``.grad`` views the sum every rank of the machine reads until ``collect``:
    clipping, which rescales it, gets a private copy.
    """
    exchange.collect()  # .grad may view the last step's sum, which other ranks read
    optimizer.zero_grad()
    loss = 0.0
    if len(x):
        y_pred = model.forward(x)
        if on_predictions is not None:
            on_predictions(y_pred)
        loss = loss_fn.forward(y_pred, y)
        grad_y_pred = loss_fn.backward()
        if share != 1.0:
            grad_y_pred = grad_y_pred * share
        model.backward_parameters(grad_y_pred, split or ACCUMULATE)
    if split is not None:
        split.update()  # every rank's rows of the shared weights, moved over the whole batch
    loss = exchange.average(loss * share, share, private=clip_norm is not None)
    if clip_norm is not None:
        clip_gradients(optimizer, clip_norm)
    optimizer.step()
    return loss


def clip_gradients(optimizer: Optimizer, clip_norm: float) -> float:
    """Rescale the gradients so that their global L2 norm is at most ``clip_norm``; the norm."""
    xp = optimizer.xp
    norm = math.sqrt(sum(xp.item(xp.dot(p.grad, p.grad)) for p in optimizer.params))
    if norm > clip_norm:
        for parameter in optimizer.params:
            xp.multiply(parameter.grad, clip_norm / norm, out=parameter.grad)
    return norm


def _shares_parameters(model: Module) -> bool:
    params = model.parameters()
    return len({id(p) for p in params}) != len(params)
