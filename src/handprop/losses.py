"""Losses: ``forward(y_pred, y) -> float`` and ``backward() -> grad_y_pred``.

The reduction is in the name: ``SumSquaredError`` (the tutorial's Euclidean
error) sums over every element, ``MeanSquaredError`` averages over them, and
``SoftmaxCrossEntropy`` averages over the batch. Targets given as ``WeightedTargets``
weigh each row (scikit-learn's ``sample_weight``): a mean becomes a weighted mean.
"""

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from handprop._types import Array, check_dtype
from handprop.backend import NUMPY, follow
from handprop.registry import Registry
from handprop.sample_weight import row_weights

if TYPE_CHECKING:
    from handprop.training.tape import Tape

#: What a loss's ``record`` returns: how to read the loss after a replay, and grad_y_pred.
Recorded = tuple[Callable[[], float], Array]

#: Loss classes by the names the command line and model files use.
LOSSES: Registry[type["Loss"]] = Registry("loss")


class Loss:
    """Base class: ``forward`` caches what ``backward`` needs, as layers do.

    A loss says what it is for: ``task`` ("regression" or "classification"),
    ``metric`` (the score ``fit`` reports, a name in ``handprop.metrics.METRICS``)
    and ``reduction`` ("sum" grows with the batch size, "mean" does not).

    A built-in loss defines ``total(y_pred, y) -> (array, divisor)``: the loss is
    the 0-d array divided by the Python number ``divisor``, and ``forward`` returns
    it as a float. ``total`` leaves the value on the arrays' device (a captured
    step reads it later); ``xp`` is the array namespace, that of the last input.
    """

    task: ClassVar[str] = "regression"
    metric: ClassVar[str] = "r2"
    reduction: ClassVar[str] = "mean"
    xp: Any = NUMPY

    def forward(self, y_pred: Array, y: Array) -> float:
        """The loss, a float: ``total``'s value (one host sync on a GPU) over its divisor."""
        total, divisor = self.total(y_pred, y)
        return self.xp.item(total) / divisor  # type: ignore[no-any-return]

    def total(self, y_pred: Array, y: Array) -> tuple[Array, float]:
        """The loss as (0-d array, divisor), without leaving the device."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self) -> Array:
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    def __call__(self, y_pred: Array, y: Array) -> float:
        return self.forward(y_pred, y)

    def _require_cache(self, cache: Array | None) -> Array:
        if cache is None:
            name = type(self).__name__
            raise RuntimeError(f"{name}.backward was called before {name}.forward")
        return cache

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _ElementwiseError(Loss):
    """A loss of ``f(y_pred - y)`` elementwise: checks, and the error kept for backward."""

    def __init__(self) -> None:
        self.error: Array | None = None  # y_pred - y: the cache
        self.rows: Array | None = None  # (N, 1) row weights of WeightedTargets: the cache
        self.grad_y_pred: Array | None = None  # work buffer

    def _error(self, y_pred: Array, y: Array) -> Array:
        owner = type(self).__name__
        xp = self.xp = follow(self.xp, y_pred)
        y_pred = xp.require(owner, y_pred)
        y = xp.require(f"{owner} target", y)
        if y_pred.shape != y.shape or _size(y_pred) == 0:
            raise ValueError(
                f"{owner} expected y_pred and y of the same non-empty shape, "
                f"received {tuple(y_pred.shape)} and {tuple(y.shape)}"
            )
        check_dtype(owner, "a target", y, xp.dtype_of(y_pred))
        rows = row_weights(y, self.reduction, y.dtype)  # sample weights: numpy targets only
        self.rows = None if rows is None else rows.reshape(len(rows), *(1,) * (y.ndim - 1))
        self.error = xp.subtract(y_pred, y, out=xp.reuse(self.error, y.shape, y.dtype))
        return self.error

    def _weighed(self, values: Array) -> Array:
        """``values`` (N, D_out), each row times its weight (in place), if the rows have any."""
        if self.rows is not None:
            self.xp.multiply(values, self.rows, out=values)
        return values

    def _grad_buffer(self) -> tuple[Array, Array]:
        error = self._require_cache(self.error)
        self.grad_y_pred = self.xp.reuse(self.grad_y_pred, error.shape, error.dtype)
        return error, self.grad_y_pred


class _SquaredError(_ElementwiseError):
    """Shared by the two squared-error losses: ``np.square(y_pred - y)`` in a buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.squared: Array | None = None  # work buffer

    def _squared_error(self, y_pred: Array, y: Array) -> Array:
        """``np.square(y_pred - y)``, into a buffer, with ``y_pred - y`` kept for backward."""
        error = self._error(y_pred, y)
        xp = self.xp
        self.squared = xp.square(error, out=xp.reuse(self.squared, error.shape, error.dtype))
        return self.squared

    def _times_error(self, scale: float) -> Array:
        """``scale * (y_pred - y)``, into a work buffer."""
        error, grad_y_pred = self._grad_buffer()
        return self.xp.multiply(error, scale, out=grad_y_pred)  # type: ignore[no-any-return]

    def _record(self, tape: "Tape", y_pred: Array, y: Array, scale: float) -> tuple[Array, Array]:
        """``total`` and ``backward`` (``scale * (y_pred - y)``) on a tape's fixed buffers
        (a captured step, training/capture.py): the same calls, so the same bits.
        Returns the 0-d sum and grad_y_pred."""
        error, squared, total = tape.buffer(y.shape), tape.buffer(y.shape), tape.scalar()
        tape.record(np.subtract, y_pred, y, error)
        tape.record(np.square, error, squared)
        tape.record(np.add.reduce, squared, None, None, total)  # np.square(y_pred - y).sum()
        grad_y_pred = tape.buffer(y.shape)
        tape.record(np.multiply, error, tape.constant(scale), grad_y_pred)
        return total, grad_y_pred


@LOSSES.register("sse")
class SumSquaredError(_SquaredError):
    """``loss = sum((y_pred - y)**2)``, the tutorial's loss; ``grad_y_pred = 2 * (y_pred - y)``.

    Shape: y_pred and y (N, D_out). The loss (and its gradient) grows with N.
    """

    reduction = "sum"

    def total(self, y_pred: Array, y: Array) -> tuple[Array, float]:
        # loss = np.square(y_pred - y).sum()
        squared = self._squared_error(y_pred, y)  # sets self.xp, from the input
        return self.xp.sum(self._weighed(squared)), 1

    def backward(self) -> Array:
        # grad_y_pred = 2.0 * (y_pred - y): the derivative of (y_pred - y)**2
        return self._weighed(self._times_error(2.0))

    def record(self, tape: "Tape", y_pred: Array, y: Array) -> Recorded:
        """``total`` and ``backward`` recorded (see ``_SquaredError._record``)."""
        total, grad_y_pred = self._record(tape, y_pred, y, 2.0)
        return lambda: float(total), grad_y_pred


@LOSSES.register("mse")
class MeanSquaredError(_SquaredError):
    """``loss = mean((y_pred - y)**2)`` over all N * D_out elements, as ``torch.nn.MSELoss()``.

    Shape: y_pred and y (N, D_out). ``grad_y_pred = 2 * (y_pred - y) / (N * D_out)``.
    """

    def total(self, y_pred: Array, y: Array) -> tuple[Array, float]:
        # loss = np.square(y_pred - y).mean()
        squared = self._squared_error(y_pred, y)
        return self.xp.sum(self._weighed(squared)), _size(squared)

    def backward(self) -> Array:
        # grad_y_pred = 2.0 * (y_pred - y) / y_pred.size
        error = self._require_cache(self.error)
        return self._weighed(self._times_error(2.0 / _size(error)))

    def record(self, tape: "Tape", y_pred: Array, y: Array) -> Recorded:
        """``total`` and ``backward`` recorded (see ``_SquaredError._record``)."""
        size = _size(y)
        total, grad_y_pred = self._record(tape, y_pred, y, 2.0 / size)
        return lambda: float(total) / size, grad_y_pred


@LOSSES.register("mae")
class MeanAbsoluteError(_ElementwiseError):
    """``loss = mean(|y_pred - y|)``, as ``torch.nn.L1Loss()``.

    Shape: y_pred and y (N, D_out). ``grad_y_pred = sign(y_pred - y) / (N * D_out)``
    (0 where they are equal, as torch).
    """

    def total(self, y_pred: Array, y: Array) -> tuple[Array, float]:
        error = self._error(y_pred, y)  # sets self.xp, from the input
        return self.xp.sum(self._weighed(self.xp.abs(error))), _size(error)

    def backward(self) -> Array:
        error, grad_y_pred = self._grad_buffer()
        self.xp.sign(error, out=grad_y_pred)
        self.xp.divide(grad_y_pred, _size(error), out=grad_y_pred)
        return self._weighed(grad_y_pred)


@LOSSES.register("huber")
class Huber(_ElementwiseError):
    """The mean of ``0.5 * e**2`` where ``|e| <= delta``, else ``delta * (|e| - 0.5 * delta)``.

    ``e = y_pred - y``; as ``torch.nn.HuberLoss(delta=delta)``. Shape: y_pred and y
    (N, D_out). ``grad_y_pred = clip(e, -delta, delta) / (N * D_out)``.
    """

    def __init__(self, delta: float = 1.0) -> None:
        super().__init__()
        if isinstance(delta, bool) or not (
            isinstance(delta, int | float) and math.isfinite(delta) and delta > 0
        ):
            raise ValueError(f"Huber delta must be a finite number > 0, received {delta!r}")
        self.delta = float(delta)

    def total(self, y_pred: Array, y: Array) -> tuple[Array, float]:
        error = self._error(y_pred, y)  # sets self.xp, from the input
        xp = self.xp
        error = xp.abs(error)
        quadratic = xp.minimum(error, self.delta)  # the part of |e| inside delta
        linear = xp.subtract(error, quadratic)  # the part beyond
        # loss = 0.5 * quadratic**2 + delta * linear
        loss = xp.add(xp.multiply(0.5, xp.square(quadratic)), xp.multiply(self.delta, linear))
        return xp.sum(self._weighed(loss)), _size(error)

    def backward(self) -> Array:
        error, grad_y_pred = self._grad_buffer()
        self.xp.clip(error, -self.delta, self.delta, out=grad_y_pred)
        self.xp.divide(grad_y_pred, _size(error), out=grad_y_pred)
        return self._weighed(grad_y_pred)

    def __repr__(self) -> str:
        return f"Huber(delta={self.delta})"


def _size(array: Array) -> int:
    """The number of elements of a numpy array or a torch tensor."""
    return math.prod(array.shape)


def log_softmax(scores: Array, xp: Any = NUMPY) -> Array:
    """``log(softmax(scores))`` along the last axis, a new array, from ``scores - max(scores)``.

    Large scores neither overflow nor warn.
    """
    with xp.overflow_ignored():  # scores spanning beyond float64: -inf, exp gives 0
        shifted = xp.subtract(scores, xp.max(scores, axis=-1, keepdims=True))
    # log_probs = shifted - log(sum(exp(shifted)))
    total = xp.sum(xp.exp(shifted), axis=-1, keepdims=True)
    log_probs: Array = xp.subtract(shifted, xp.log(total))
    return log_probs


@LOSSES.register("cross-entropy")
class SoftmaxCrossEntropy(Loss):
    """Softmax of the scores followed by the negative log-likelihood, averaged over the batch.

    Shape: y_pred (N, C) unnormalised scores; y (N,) integer class labels in [0, C).
    ``grad_y_pred = (softmax(y_pred) - one_hot(y)) / N``. Computed from
    ``y_pred - max(y_pred)``, so large scores neither overflow nor warn.

    ``weight`` (C,), optional, weighs each class as ``torch.nn.CrossEntropyLoss(weight=)``
    does: ``loss = sum(weight[y] * nll) / sum(weight[y])``, and the gradient rows
    are scaled by ``weight[y] / sum(weight[y])`` instead of ``1 / N``. Labels given as
    ``WeightedTargets`` weigh each row too: ``weight[y] * sample_weight`` (scikit-learn's
    product of class and sample weights) in the same two formulas.
    """

    task = "classification"
    metric = "accuracy"

    def __init__(self, weight: Array | None = None) -> None:
        self.weight = None if weight is None else _class_weights(weight)
        self.probs: Array | None = None  # softmax(y_pred)
        self.y: Array | None = None

    def total(self, y_pred: Array, y: Array) -> tuple[Array, float]:
        return self.checked_total(y_pred, y, check_range=True)

    def checked_total(
        self, y_pred: Array, y: Array, check_range: bool = False
    ) -> tuple[Array, float]:
        """``total``; without ``check_range``, for labels whose values the caller has checked
        (``check_label_range``): it then reads nothing on the host (without class or sample
        weights), so a CUDA graph records it (training/graphed.py checks each batch's labels
        before a replay)."""
        xp = self.xp = follow(self.xp, y_pred)
        y_pred = xp.require("SoftmaxCrossEntropy", y_pred)
        y = _check_labels(y_pred, y, xp)
        if check_range:
            check_label_range(y, y_pred.shape[1], xp)
        log_probs = log_softmax(y_pred, xp)
        self.probs, self.y = xp.exp(log_probs), y
        nll = xp.negative(xp.pick(log_probs, y))  # -log_probs[arange(N), y]
        weights = self._sample_weights(y_pred)
        if weights is None:
            return xp.mean(nll), 1
        return xp.sum(xp.multiply(weights, nll)), 1

    def backward(self) -> Array:
        probs, y = self._require_cache(self.probs), self._require_cache(self.y)
        xp = self.xp
        grad_y_pred: Array = xp.copy(probs)
        xp.add_at(grad_y_pred, y, -1)  # grad_y_pred[arange(N), y] -= 1
        weights = self._sample_weights(probs)
        if weights is None:
            xp.divide(grad_y_pred, len(y), out=grad_y_pred)
        else:
            xp.multiply(grad_y_pred, weights[:, None], out=grad_y_pred)
        return grad_y_pred

    def record(self, tape: "Tape", scores: Array, y: Array) -> Recorded:
        """``total`` and ``backward`` on a tape's fixed buffers (a captured step,
        training/capture.py): log_softmax's calls, the same bits. Labels are checked before
        each replay; class weights are not recorded."""
        if self.weight is not None:
            raise tape.cannot("SoftmaxCrossEntropy with class weights")
        n, classes = scores.shape
        picks = tape.buffer((n,), np.intp)  # the flat index of y's score in each row
        tape.record(np.add, np.arange(n, dtype=np.intp) * classes, y, picks)
        largest, shifted, total = tape.buffer((n, 1)), tape.buffer(scores.shape), tape.scalar()
        tape.record(np.maximum.reduce, scores, -1, None, largest, True)
        tape.record(np.subtract, scores, largest, shifted)  # shifted = scores - max(scores)
        exp, log_sum = tape.buffer(scores.shape), tape.buffer((n, 1))
        tape.record(np.exp, shifted, exp)
        tape.record(np.add.reduce, exp, -1, None, log_sum, True)
        tape.record(np.log, log_sum, log_sum)
        log_probs, probs = tape.buffer(scores.shape), tape.buffer(scores.shape)
        tape.record(np.subtract, shifted, log_sum, log_probs)
        tape.record(np.exp, log_probs, probs)
        picked = tape.buffer((n,))  # log_probs[np.arange(N), y]
        tape.record(log_probs.reshape(-1).take, picks, None, picked, "clip")
        tape.record(np.add.reduce, picked, None, None, total)  # -sum(nll), nll = -picked
        grad_y_pred, one_hot = tape.buffer(scores.shape), np.zeros(scores.shape, tape.dtype)
        tape.record(one_hot.reshape(-1).put, picks, tape.constant(1))
        tape.record(np.subtract, probs, one_hot, grad_y_pred)  # probs, minus 1 at each label
        tape.record(one_hot.reshape(-1).put, picks, tape.constant(0))
        tape.record(np.true_divide, grad_y_pred, tape.constant(n), grad_y_pred)  # / N
        count = np.intp(n)  # nll.mean(): negating is exact, and a sum of negated numbers is
        return lambda: float(total.dtype.type(-total[()] / count)), grad_y_pred  # negated

    def _sample_weights(self, y_pred: Array) -> Array | None:
        """``weight[y] * sample_weight / sum(weight[y] * sample_weight)`` (N,) in the scores'
        dtype; None when neither is given; all 0 when sample weights sum to 0."""
        assert self.y is not None
        xp = self.xp
        rows = row_weights(self.y, "sum", y_pred.dtype)  # sample weights: numpy labels only
        if self.weight is None and rows is None:
            return None
        weights = rows
        if self.weight is not None:
            if len(self.weight) != y_pred.shape[1]:
                raise ValueError(
                    f"SoftmaxCrossEntropy has {len(self.weight)} class weights but the scores "
                    f"have {y_pred.shape[1]} classes"
                )
            weight = xp.take(xp.from_host(self.weight, xp.dtype_of(y_pred)), self.y)  # weight[y]
            weights = weight if rows is None else xp.multiply(rows, weight)
        total = xp.sum(weights)
        if rows is not None and not total > 0:  # (read on the host: numpy only)
            return xp.zeros_like(weights)  # type: ignore[no-any-return]
        return xp.divide(weights, total)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        weight = "" if self.weight is None else f"weight={self.weight.tolist()}"
        return f"SoftmaxCrossEntropy({weight})"


def _class_weights(weight: object) -> Array:
    array = np.asarray(weight, dtype=np.float64)
    if array.ndim != 1 or array.size == 0 or not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(
            f"SoftmaxCrossEntropy weight must be a non-empty 1-D array of finite numbers >= 0, "
            f"one per class, received {weight!r:.80}"
        )
    return array


def _check_labels(y_pred: Array, y: Any, xp: Any) -> Any:
    if y_pred.ndim != 2 or y_pred.shape[0] == 0 or y_pred.shape[1] == 0:
        raise ValueError(
            f"SoftmaxCrossEntropy expected scores of shape (N, C) with N, C >= 1, "
            f"received {tuple(y_pred.shape)}"
        )
    if not xp.owns(y) and (isinstance(y, np.ndarray) or type(y).__module__.startswith("torch")):
        xp.require("SoftmaxCrossEntropy labels", y)  # a TypeError naming both libraries
    if not xp.owns(y) or not xp.is_integer(y):
        kind = str(y.dtype).removeprefix("torch.") if xp.owns(y) else type(y).__name__
        raise TypeError(
            f"SoftmaxCrossEntropy expected integer class labels, received {kind}; "
            "convert with .astype(np.int64)"
        )
    n = y_pred.shape[0]
    if tuple(y.shape) != (n,):
        raise ValueError(
            f"SoftmaxCrossEntropy expected labels of shape ({n},), received {tuple(y.shape)}"
        )
    return y


def check_label_range(y: Any, classes: int, xp: Any) -> None:
    """A ValueError unless every label lies in [0, classes): SoftmaxCrossEntropy's check that
    reads the labels' values on the host (one device sync on a GPU)."""
    low, high = int(xp.item(xp.min(y))), int(xp.item(xp.max(y)))
    if low < 0 or high >= classes:
        raise ValueError(
            f"SoftmaxCrossEntropy expected labels in [0, {classes - 1}], "
            f"received values from {low} to {high}"
        )
