"""Metrics: how good the predictions are, higher is better for each one's primary score.

Shape: y_pred (N, D_out) predictions or class scores; y (N, D_out) targets or
(N,) integer labels.
"""

from typing import Protocol

import numpy as np

from handprop._types import Array
from handprop.registry import Registry


class Metric(Protocol):
    """``metric(y_pred, y) -> float``; with ``sample_weight`` (N,) when rows carry weights."""

    def __call__(self, y_pred: Array, y: Array, sample_weight: Array | None = None) -> float: ...


#: Metrics by the names losses (``Loss.metric``), ``fit`` and the command line use.
METRICS: Registry[Metric] = Registry("metric")


@METRICS.register("accuracy")
def accuracy(y_pred: Array, y: Array, sample_weight: Array | None = None) -> float:
    """The fraction of rows whose highest score is the true label.

    ``sample_weight`` (N,): each row counts its weight instead of 1 (scikit-learn's);
    NaN if every weight is 0 (no row counts).
    """
    if _weighs_nothing(sample_weight):
        return float("nan")
    return float(np.average(np.argmax(y_pred, axis=1) == y, weights=sample_weight))


@METRICS.register("r2")
def r2_score(y_pred: Array, y: Array, sample_weight: Array | None = None) -> float:
    """Coefficient of determination, averaged over outputs (scikit-learn's default).

    1 is perfect, 0 is the mean's score; a constant output column counts 1 if
    predicted exactly, else 0, as scikit-learn does. ``sample_weight`` (N,): each row's
    squares count its weight, around the weighted mean (scikit-learn's); NaN if every
    weight is 0. Shape: y and y_pred (N,) or (N, D_out).
    """
    if _weighs_nothing(sample_weight):
        return float("nan")
    w = 1.0 if sample_weight is None else np.reshape(sample_weight, (-1,) + (1,) * (y.ndim - 1))
    mean = np.average(y, axis=0, weights=sample_weight)
    residual = (w * np.square(y - y_pred)).sum(axis=0)
    total = (w * np.square(y - mean)).sum(axis=0)
    constant = total == 0
    scores = np.where(
        constant, np.where(residual == 0, 1.0, 0.0), 1 - residual / np.where(constant, 1, total)
    )
    return float(scores.mean())


def _weighs_nothing(sample_weight: Array | None) -> bool:
    """Whether there are weights and all are 0 (a weighted mean of nothing)."""
    return sample_weight is not None and not np.any(sample_weight)


def mean_squared_error(y_pred: Array, y: Array) -> float:
    """The mean over all N * D_out elements of (y_pred - y)**2."""
    return float(np.mean(np.square(y_pred - y)))


def confusion_matrix(predicted: Array, y: Array, n_classes: int) -> Array:
    """Counts (C, C): row = true class, column = predicted class; integer labels (N,)."""
    counts = np.bincount(y * n_classes + predicted, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


def per_class_scores(confusion: Array) -> dict[str, Array]:
    """Precision, recall, F1 and support (C,) of each class, from a confusion matrix (C, C).

    A class never predicted has precision 0; a class absent has recall 0 (scikit-learn's
    zero_division=0).
    """
    true_positives = np.diag(confusion).astype(np.float64)
    predicted, support = confusion.sum(axis=0), confusion.sum(axis=1)
    precision = np.divide(true_positives, predicted, out=np.zeros_like(true_positives),
                          where=predicted > 0)  # fmt: skip
    recall = np.divide(true_positives, support, out=np.zeros_like(true_positives),
                       where=support > 0)  # fmt: skip
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def balanced_accuracy(confusion: Array) -> float:
    """The mean recall over the classes present in the data (scikit-learn's definition)."""
    support = confusion.sum(axis=1)
    recall = np.diag(confusion)[support > 0] / support[support > 0]
    return float(recall.mean())
