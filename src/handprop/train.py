"""One training step: the tutorial's loop body, made of library parts."""

from handprop._types import Array
from handprop.layers.module import Module
from handprop.losses import Loss
from handprop.optim import Optimizer


def train_step(model: Module, loss_fn: Loss, optimizer: Optimizer, x: Array, y: Array) -> float:
    """Forward, loss, zero_grad, backward, update; returns the loss before the update.

    Shape: x (N, D_in); y as ``loss_fn`` expects, e.g. (N, D_out).
    """
    y_pred = model.forward(x)
    loss = loss_fn.forward(y_pred, y)
    model.zero_grad()
    model.backward(loss_fn.backward())
    optimizer.step()
    return loss
