"""One training step: the tutorial's loop body, made of library parts."""

from handprop._types import Array
from handprop.layers.module import Module
from handprop.losses import Loss
from handprop.optim import Optimizer


def train_step(
    model: Module,
    loss_fn: Loss,
    optimizer: Optimizer,
    x: Array,
    y: Array,
    *,
    fold: bool = True,
    exact: bool = False,
) -> float:
    """Forward, loss, zero_grad, backward, update; returns the loss before the update.

    Shape: x (N, D_in); y as ``loss_fn`` expects, e.g. (N, D_out).

    The first layer's input gradient is never computed. With plain SGD (no
    momentum, no weight decay) and ``fold=True`` the update is folded into the
    weight-gradient products, ``w += -lr * (x.T @ grad_h)`` in one BLAS call
    (one rounding where gradient-then-update has two), and ``.grad`` is left
    zero. ``exact=True`` rounds the folded update as gradient-then-update does
    (``w += round(-lr * (x.T @ grad_h))``, one more pass over the weights): the
    tutorial's arithmetic to the last bit. ``fold=False`` stores the gradients
    and then calls ``optimizer.step()``.
    """
    y_pred = model.forward(x)
    loss = loss_fn.forward(y_pred, y)
    model.zero_grad()
    grad_y_pred = loss_fn.backward()
    factor = optimizer.fold_factor() if fold else None
    if factor is not None and _shares_parameters(model):
        factor = None  # a weight used twice would be read after its folded update
    if factor is None:
        model.backward_parameters(grad_y_pred)
        optimizer.step()
        return loss
    for parameter in optimizer.params:
        parameter.fold, parameter.fold_exact = factor, exact
    try:
        model.backward_parameters(grad_y_pred)
    finally:
        for parameter in optimizer.params:
            parameter.fold = None
    return loss


def _shares_parameters(model: Module) -> bool:
    params = model.parameters()
    return len({id(p) for p in params}) != len(params)
