"""Losses: ``forward(y_pred, y) -> float`` and ``backward() -> grad_y_pred``.

The reduction is in the name: ``SumSquaredError`` (the tutorial's Euclidean
error) sums over every element, ``MeanSquaredError`` averages over them, and
``SoftmaxCrossEntropy`` averages over the batch.
"""

from typing import ClassVar

import numpy as np

from handprop._types import Array, check_dtype, reuse
from handprop.layers.module import require_array
from handprop.registry import Registry

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


class _SquaredError(Loss):
    """Shared by the two squared-error losses: checks, and ``error = y_pred - y`` in a buffer."""

    def __init__(self) -> None:
        self.error: Array | None = None  # y_pred - y: the cache
        self.squared: Array | None = None  # work buffers
        self.grad_y_pred: Array | None = None

    def _squared_error(self, y_pred: Array, y: Array) -> Array:
        """``np.square(y_pred - y)``, into buffers, with ``y_pred - y`` kept for backward."""
        owner = type(self).__name__
        y_pred = require_array(owner, y_pred)
        y = require_array(f"{owner} target", y)
        if y_pred.shape != y.shape or y_pred.size == 0:
            raise ValueError(
                f"{owner} expected y_pred and y of the same non-empty shape, "
                f"received {y_pred.shape} and {y.shape}"
            )
        check_dtype(owner, "a target", y, y_pred.dtype)
        self.error = np.subtract(y_pred, y, out=reuse(self.error, y.shape, y.dtype))
        self.squared = np.square(self.error, out=reuse(self.squared, y.shape, y.dtype))
        return self.squared

    def _times_error(self, scale: float) -> Array:
        """``scale * (y_pred - y)``, into a work buffer."""
        error = self._require_cache(self.error)
        self.grad_y_pred = reuse(self.grad_y_pred, error.shape, error.dtype)
        return np.multiply(error, scale, out=self.grad_y_pred)


@LOSSES.register("sse")
class SumSquaredError(_SquaredError):
    """``loss = sum((y_pred - y)**2)``, the tutorial's loss; ``grad_y_pred = 2 * (y_pred - y)``.

    Shape: y_pred and y (N, D_out). The loss (and its gradient) grows with N.
    """

    reduction = "sum"

    def forward(self, y_pred: Array, y: Array) -> float:
        # loss = np.square(y_pred - y).sum()
        return float(self._squared_error(y_pred, y).sum())

    def backward(self) -> Array:
        # grad_y_pred = 2.0 * (y_pred - y): the derivative of (y_pred - y)**2
        return self._times_error(2.0)


@LOSSES.register("mse")
class MeanSquaredError(_SquaredError):
    """``loss = mean((y_pred - y)**2)`` over all N * D_out elements, as ``torch.nn.MSELoss()``.

    Shape: y_pred and y (N, D_out). ``grad_y_pred = 2 * (y_pred - y) / (N * D_out)``.
    """

    def forward(self, y_pred: Array, y: Array) -> float:
        # loss = np.square(y_pred - y).mean()
        return float(self._squared_error(y_pred, y).sum()) / y.size

    def backward(self) -> Array:
        # grad_y_pred = 2.0 * (y_pred - y) / y_pred.size
        error = self._require_cache(self.error)
        return self._times_error(2.0 / error.size)


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

    Shape: y_pred (N, C) unnormalised scores; y (N,) integer class labels in [0, C);
    ``weight`` (C,) per-class weights, as ``torch.nn.CrossEntropyLoss(weight=...)``: the
    mean becomes ``sum(w[y_i] * nll_i) / sum(w[y_i])``.
    ``grad_y_pred = (softmax(y_pred) - one_hot(y)) / N`` (with weights: each row times
    ``w[y_i] / sum(w[y])``). Computed from
    ``y_pred - max(y_pred)``, so large scores neither overflow nor warn.
    """

    task = "classification"
    metric = "accuracy"

    def __init__(self, weight: Array | None = None) -> None:
        self.weight = None if weight is None else _check_weight(weight)
        self.probs: Array | None = None  # softmax(y_pred)
        self.y: Array | None = None
        self.row_weight: Array | None = None  # weight[y] / sum(weight[y]), with a weight

    def forward(self, y_pred: Array, y: Array) -> float:
        y_pred = require_array("SoftmaxCrossEntropy", y_pred)
        y = _check_labels(y_pred, y)
        log_probs = log_softmax(y_pred)
        self.probs, self.y = np.exp(log_probs), y
        nll = -log_probs[np.arange(len(y)), y]
        if self.weight is None:
            return float(nll.mean())
        # torch's weighted mean: sum(w[y_i] * nll_i) / sum(w[y_i])
        if len(self.weight) != y_pred.shape[1]:
            raise ValueError(
                f"SoftmaxCrossEntropy has {len(self.weight)} class weights but the scores have "
                f"{y_pred.shape[1]} classes"
            )
        w_y = self.weight[y].astype(y_pred.dtype)
        self.row_weight = w_y / w_y.sum()
        return float((self.row_weight * nll).sum())

    def backward(self) -> Array:
        probs, y = self._require_cache(self.probs), self._require_cache(self.y)
        grad_y_pred = probs.copy()
        grad_y_pred[np.arange(len(y)), y] -= 1
        if self.weight is None:
            grad_y_pred /= len(y)
        else:
            grad_y_pred *= self._require_cache(self.row_weight)[:, None]
        return grad_y_pred

    def __repr__(self) -> str:
        return "SoftmaxCrossEntropy()" if self.weight is None else (
            f"SoftmaxCrossEntropy(weight={self.weight.tolist()})"
        )  # fmt: skip


def _check_weight(weight: object) -> Array:
    array = np.asarray(weight, dtype=np.float64)
    if array.ndim != 1 or len(array) == 0 or not (np.isfinite(array).all() and (array >= 0).all()):
        raise ValueError(
            "SoftmaxCrossEntropy expected weight to be a 1-D array (C,) of finite numbers >= 0"
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
