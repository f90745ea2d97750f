"""A training step recorded once on fixed buffers, then replayed: ``capture_step``.

At batch 32 through 64 -> 100 -> 10, much of ``train_step``'s time is Python around the
arithmetic (checks, buffer look-ups, one call per line per parameter; docs/speed.md has
the figures). ``capture_step`` records the step's array calls once (a ``Tape``, tape.py),
on buffers allocated once; ``step(x, y)`` copies the batch in and replays them: the same
numpy functions, in the same order, on the same shapes and dtypes as ``train_step``, so
the results are equal bit for bit. What changes between steps is read live: the learning
rate and every other number of the optimizer, Adam's step count and bias corrections.

What it records: a layer or loss whose class states its captured form, a ``record``
method beside the forward and backward it records (``Sequential``, ``Linear``, ``ReLU``,
``Tanh``, ``Identity``; ``SumSquaredError``, ``MeanSquaredError``, ``SoftmaxCrossEntropy``
without class weights; a subclass only with its own, see ``Tape.layer``); an optimizer
whose class states its captured form the same way, ``record`` beside ``step`` (``SGD``,
fused or not, and ``Adam``; where the gradients go is in capture_update.py). Anything
else raises ``NotCapturable``: train it with ``train_step`` (``fit`` does so by itself).
"""

from collections.abc import Callable
from typing import Any

import numpy as np

from handprop._types import Array
from handprop.layers.module import Module
from handprop.losses import Loss
from handprop.optim import Optimizer
from handprop.parameter import Parameter
from handprop.training.capture_update import record_destination
from handprop.training.step import train_step
from handprop.training.tape import NotCapturable, Tape

__all__ = ["CapturedStep", "NotCapturable", "Tape", "capture_step"]


class CapturedStep:
    """``step(x, y) -> loss``: ``train_step`` replayed from a tape (see ``capture_step``).

    ``x`` and ``y`` are its input buffers: ``replay()`` trains on what is in them (``fit``
    gathers each batch straight into them); ``y_pred`` is the model's output buffer, which
    holds the batch's predictions (before the update) after each replay (nothing the tape
    records after the forward writes it). A batch of another shape or dtype, and a
    model or optimizer changed in a way the tape did not record, train eagerly.
    """

    def __init__(
        self,
        tape: Tape,
        inputs: tuple[Array, Array],
        y_pred: Array,
        read_loss: Callable[[], float],
        guard: Callable[[], bool],
        eager: Callable[..., float],  # train_step(x, y[, on_predictions])
        classes: int | None,
    ) -> None:
        self.tape, self.x, self.y, self.y_pred = tape, *inputs, y_pred
        self.read_loss, self.guard, self.eager = read_loss, guard, eager
        self.classes = classes  # labels must lie in [0, classes) (cross-entropy)
        # the labels' bits as unsigned: a negative label reads as a huge one, so one max
        # checks both ends
        self.y_bits = self.y if classes is None else self.y.view(f"u{self.y.itemsize}")
        # what a batch of the tape's own kind looks like, compared at once (``fits`` says
        # the rest: labels of another integer dtype, an ndarray subclass)
        self.batch = (self.x.shape, self.x.dtype, self.y.shape, self.y.dtype)

    def __call__(self, x: Array, y: Array) -> float:
        if not (
            type(x) is np.ndarray
            and type(y) is np.ndarray
            and (x.shape, x.dtype, y.shape, y.dtype) == self.batch
        ) and not self.fits(x, y):
            return self.eager(x, y)
        np.copyto(self.x, x)
        np.copyto(self.y, y)
        if self.classes is not None and not self.classes > _largest(self.y_bits):
            return self.eager(x, y)  # a label out of range: train_step says which
        return self.replay()

    def fits(self, x: object, y: object) -> bool:
        """Whether (x, y) has the shapes and dtypes the tape trains on as ``train_step``
        would (labels: any integer dtype; their values are checked as they are copied in)."""
        if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
            return False
        if x.shape != self.x.shape or x.dtype != self.x.dtype or y.shape != self.y.shape:
            return False
        if self.classes is None:
            return bool(y.dtype == self.y.dtype)
        return y.dtype.kind in "iu"

    def fits_labels(self, y: Array) -> bool:
        """Whether every label of ``y`` names a class (always, for a loss without labels)."""
        if self.classes is None:
            return True
        return bool(len(y) > 0 and y.min() >= 0 and y.max() < self.classes)

    def replay(self, on_predictions: Callable[[Array], object] | None = None) -> float:
        """One step on the batch in ``self.x``, ``self.y``; the loss before the update.
        ``on_predictions``: ``train_step``'s, called with the predictions (``y_pred``)."""
        if not self.guard():
            return self.eager(self.x, self.y, on_predictions)
        for function, args in self.tape.calls:  # Tape.replay, a call less
            function(*args)
        if on_predictions is not None:
            on_predictions(self.y_pred)
        return self.read_loss()


_largest = np.maximum.reduce  # labels.max() without the method's Python wrapper


def capture_step(
    model: Module,
    loss_fn: Loss,
    optimizer: Optimizer,
    x_shape: tuple[int, ...],
    y_shape: tuple[int, ...],
    *,
    y_dtype: Any = None,
    fold: bool = True,
    exact: bool = False,
) -> CapturedStep:
    """``train_step(model, loss_fn, optimizer, x, y, fold=fold, exact=exact)`` as a replay.

    Shape: x_shape (N, D_in); y_shape as ``loss_fn`` expects, (N, D_out) or (N,) labels.
    ``y_dtype``: the labels' integer dtype (default int64) or the targets' (default the
    model's). Raises ``NotCapturable`` for a part the tape cannot record.
    """
    params = _check_parameters(model, optimizer)
    dtype = params[0].dtype
    tape = Tape(dtype)
    x = tape.buffer(tuple(x_shape))
    labels = loss_fn.task == "classification"  # (N,) integer labels
    y = tape.buffer(tuple(y_shape), y_dtype or (np.int64 if labels else dtype))
    if labels and not (y.dtype.kind in "iu" and np.can_cast(y.dtype, np.intp)):
        raise NotCapturable(f"capture needs integer labels, received dtype {y.dtype.name}")
    y_pred, backward = tape.layer(model, x)
    read_loss, grad_y_pred = tape.loss(loss_fn, y_pred, y)
    destination = record_destination(tape, optimizer, params, fold, exact)
    backward(grad_y_pred, False, destination)
    destination.finish(params)
    guard = tape.optimizer(optimizer, destination.flat_grad)
    weights = [(parameter, parameter.data) for parameter in params]

    def unchanged() -> bool:
        for parameter, data in weights:  # the model's arrays are still the tape's
            if parameter.data is not data:
                return False
        return guard()

    def eager(x: Array, y: Array, on_predictions: Callable[[Array], object] | None = None) -> float:
        return train_step(
            model, loss_fn, optimizer, x, y, fold=fold, exact=exact, on_predictions=on_predictions
        )  # fmt: skip

    classes = y_pred.shape[1] if labels else None
    return CapturedStep(tape, (x, y), y_pred, read_loss, unchanged, eager, classes)


def _check_parameters(model: Module, optimizer: Optimizer) -> list[Parameter]:
    params = model.parameters()
    if not params:
        raise NotCapturable("capture needs a model with parameters")
    if not all(isinstance(p.data, np.ndarray) and p.dtype.kind == "f" for p in params):
        raise NotCapturable("capture records numpy arrays; a model on torch trains eagerly")
    if [id(p) for p in params] != [id(p) for p in optimizer.params]:
        raise NotCapturable("capture needs an optimizer built on model.parameters(), in order")
    if len({id(p) for p in params}) != len(params) or len({p.dtype for p in params}) != 1:
        raise NotCapturable("capture needs distinct parameters of one dtype")
    return params
