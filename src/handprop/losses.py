"""Losses: ``forward(y_pred, y) -> float`` and ``backward() -> grad_y_pred``.

The reduction is in the name: ``SumSquaredError`` (the tutorial's Euclidean
error) sums over every element, ``MeanSquaredError`` averages over them, and
``SoftmaxCrossEntropy`` averages over the batch. Targets given as ``WeightedTargets``
weigh each row (scikit-learn's ``sample_weight``): a mean becomes a weighted mean.
"""

import math
from typing import ClassVar

import numpy as np

from handprop._types import Array, check_dtype, reuse
from handprop.layers.module import require_array
from handprop.registry import Registry
from handprop.sample_weight import row_weights

#: Loss classes by the names the command line and model files use.
LOSSES: Registry[type["Loss"]] = Registry("loss")


class Loss:
    """Base class: ``forward`` caches what ``backward`` needs, as layers do.

    A loss says what it is for: ``task`` ("regression" or "classification"),
    ``metric`` (the score ``fit`` reports, a name in ``handprop.metrics.METRICS``)
    and ``reduction`` ("sum" grows with the batch size, "mean" does not).
    """

    task: ClassVar[str] = "regression"
    metric: ClassVar[str] = "r2"
    reduction: ClassVar[str] = "mean"

    def forward(self, y_pred: Array, y: Array) -> float:
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
        y_pred = require_array(owner, y_pred)
        y = require_array(f"{owner} target", y)
        if y_pred.shape != y.shape or y_pred.size == 0:
            raise ValueError(
                f"{owner} expected y_pred and y of the same non-empty shape, "
                f"received {y_pred.shape} and {y.shape}"
            )
        check_dtype(owner, "a target", y, y_pred.dtype)
        rows = row_weights(y, self.reduction, y.dtype)
        self.rows = None if rows is None else rows.reshape(len(rows), *(1,) * (y.ndim - 1))
        self.error = np.subtract(y_pred, y, out=reuse(self.error, y.shape, y.dtype))
        return self.error

    def _weighed(self, values: Array) -> Array:
        """``values`` (N, D_out), each row times its weight (in place), if the rows have any."""
        if self.rows is not None:
            values *= self.rows
        return values

    def _grad_buffer(self) -> tuple[Array, Array]:
        error = self._require_cache(self.error)
        self.grad_y_pred = reuse(self.grad_y_pred, error.shape, error.dtype)
        return error, self.grad_y_pred


class _SquaredError(_ElementwiseError):
    """Shared by the two squared-error losses: ``np.square(y_pred - y)`` in a buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.squared: Array | None = None  # work buffer

    def _squared_error(self, y_pred: Array, y: Array) -> Array:
        """``np.square(y_pred - y)``, into a buffer, with ``y_pred - y`` kept for backward."""
        error = self._error(y_pred, y)
        self.squared = np.square(error, out=reuse(self.squared, error.shape, error.dtype))
        return self.squared

    def _times_error(self, scale: float) -> Array:
        """``scale * (y_pred - y)``, into a work buffer."""
        error, grad_y_pred = self._grad_buffer()
        return np.multiply(error, scale, out=grad_y_pred)


@LOSSES.register("sse")
class SumSquaredError(_SquaredError):
    """``loss = sum((y_pred - y)**2)``, the tutorial's loss; ``grad_y_pred = 2 * (y_pred - y)``.

    Shape: y_pred and y (N, D_out). The loss (and its gradient) grows with N.
    """

    reduction = "sum"

    def forward(self, y_pred: Array, y: Array) -> float:
        # loss = np.square(y_pred - y).sum()
        return float(self._weighed(self._squared_error(y_pred, y)).sum())

    def backward(self) -> Array:
        # grad_y_pred = 2.0 * (y_pred - y): the derivative of (y_pred - y)**2
        return self._weighed(self._times_error(2.0))


@LOSSES.register("mse")
class MeanSquaredError(_SquaredError):
    """``loss = mean((y_pred - y)**2)`` over all N * D_out elements, as ``torch.nn.MSELoss()``.

    Shape: y_pred and y (N, D_out). ``grad_y_pred = 2 * (y_pred - y) / (N * D_out)``.
    """

    def forward(self, y_pred: Array, y: Array) -> float:
        # loss = np.square(y_pred - y).mean()
        return float(self._weighed(self._squared_error(y_pred, y)).sum()) / y.size

    def backward(self) -> Array:
        # grad_y_pred = 2.0 * (y_pred - y) / y_pred.size
        error = self._require_cache(self.error)
        return self._weighed(self._times_error(2.0 / error.size))


@LOSSES.register("mae")
class MeanAbsoluteError(_ElementwiseError):
    """``loss = mean(|y_pred - y|)``, as ``torch.nn.L1Loss()``.

    Shape: y_pred and y (N, D_out). ``grad_y_pred = sign(y_pred - y) / (N * D_out)``
    (0 where they are equal, as torch).
    """

    def forward(self, y_pred: Array, y: Array) -> float:
        return float(self._weighed(np.abs(self._error(y_pred, y))).sum()) / y.size

    def backward(self) -> Array:
        error, grad_y_pred = self._grad_buffer()
        np.sign(error, out=grad_y_pred)
        grad_y_pred /= error.size
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

    def forward(self, y_pred: Array, y: Array) -> float:
        error = np.abs(self._error(y_pred, y))
        quadratic = np.minimum(error, self.delta)  # the part of |e| inside delta
        linear = error - quadratic  # the part beyond
        loss = 0.5 * quadratic**2 + self.delta * linear
        return float(self._weighed(loss).sum()) / y.size

    def backward(self) -> Array:
        error, grad_y_pred = self._grad_buffer()
        np.clip(error, -self.delta, self.delta, out=grad_y_pred)
        grad_y_pred /= error.size
        return self._weighed(grad_y_pred)

    def __repr__(self) -> str:
        return f"Huber(delta={self.delta})"


def log_softmax(scores: Array) -> Array:
    """``log(softmax(scores))`` along the last axis, a new array, from ``scores - max(scores)``.

    Large scores neither overflow nor warn.
    """
    with np.errstate(over="ignore"):  # scores spanning beyond float64: -inf, exp gives 0
        shifted = scores - scores.max(axis=-1, keepdims=True)
    log_probs: Array = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
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

    def forward(self, y_pred: Array, y: Array) -> float:
        y_pred = require_array("SoftmaxCrossEntropy", y_pred)
        y = _check_labels(y_pred, y)
        log_probs = log_softmax(y_pred)
        self.probs, self.y = np.exp(log_probs), y
        nll = -log_probs[np.arange(len(y)), y]
        weights = self._sample_weights(y_pred)
        if weights is None:
            return float(nll.mean())
        return float((weights * nll).sum())

    def backward(self) -> Array:
        probs, y = self._require_cache(self.probs), self._require_cache(self.y)
        grad_y_pred = probs.copy()
        grad_y_pred[np.arange(len(y)), y] -= 1
        weights = self._sample_weights(probs)
        if weights is None:
            grad_y_pred /= len(y)
        else:
            grad_y_pred *= weights[:, None]
        return grad_y_pred

    def _sample_weights(self, y_pred: Array) -> Array | None:
        """``weight[y] * sample_weight / sum(weight[y] * sample_weight)`` (N,) in the scores'
        dtype; None when neither is given; all 0 when they sum to 0 (nothing to learn)."""
        assert self.y is not None
        rows = row_weights(self.y, "sum", y_pred.dtype)
        if self.weight is None and rows is None:
            return None
        weights = np.ones(len(self.y), y_pred.dtype) if rows is None else rows
        if self.weight is not None:
            if len(self.weight) != y_pred.shape[1]:
                raise ValueError(
                    f"SoftmaxCrossEntropy has {len(self.weight)} class weights but the scores "
                    f"have {y_pred.shape[1]} classes"
                )
            weights = weights * self.weight[np.asarray(self.y)].astype(y_pred.dtype)
        total = weights.sum()
        return weights / total if total > 0 else np.zeros_like(weights)

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


def _check_labels(y_pred: Array, y: object) -> Array:
    if y_pred.ndim != 2 or y_pred.shape[0] == 0 or y_pred.shape[1] == 0:
        raise ValueError(
            f"SoftmaxCrossEntropy expected scores of shape (N, C) with N, C >= 1, "
            f"received {y_pred.shape}"
        )
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu":
        kind = y.dtype.name if isinstance(y, np.ndarray) else type(y).__name__
        raise TypeError(
            f"SoftmaxCrossEntropy expected integer class labels, received {kind}; "
            "convert with .astype(np.int64)"
        )
    n, classes = y_pred.shape
    if y.shape != (n,):
        raise ValueError(f"SoftmaxCrossEntropy expected labels of shape ({n},), received {y.shape}")
    if y.min() < 0 or y.max() >= classes:
        raise ValueError(
            f"SoftmaxCrossEntropy expected labels in [0, {classes - 1}], "
            f"received values from {y.min()} to {y.max()}"
        )
    return y
