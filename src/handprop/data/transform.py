"""Splitting, scaling and batching a data set: train_validation_split, Standardizer, batches."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from handprop._types import Array
from handprop.data.dataset import DataError, Dataset


def train_validation_split(
    dataset: Dataset, fraction: float, rng: np.random.Generator
) -> tuple[Dataset, Dataset | None]:
    """Shuffle with ``rng``, then hold out ``round(fraction * N)`` samples for validation.

    ``fraction`` 0 returns ``(dataset, None)`` and draws nothing.
    """
    training, validation = hold_out(len(dataset), fraction, rng)
    if validation is None:
        return dataset, None
    return dataset.take(training), dataset.take(validation)


def hold_out(n: int, fraction: float, rng: np.random.Generator) -> tuple[Array, Array | None]:
    """(the rows kept, the rows held out) as ``train_validation_split`` draws them from ``n``;
    ``fraction`` 0: (every row, None), nothing drawn."""
    if not 0 <= fraction < 1:
        raise DataError(f"the validation fraction must be in [0, 1), received {fraction!r}")
    if fraction == 0:
        return np.arange(n), None
    return split_indices(n, fraction, rng)


def split_indices(n: int, fraction: float, rng: np.random.Generator) -> tuple[Array, Array]:
    """(training rows, validation rows): ``round(fraction * n)`` random rows held out."""
    n_validation = round(fraction * n)
    if not 1 <= n_validation <= n - 1:
        raise DataError(
            f"a validation fraction of {fraction!r} of {n} samples leaves {n - n_validation} "
            f"for training and {n_validation} for validation; each side needs at least 1 (or "
            "train without a validation part: validation_fraction=0)"
        )
    order = rng.permutation(n)
    return order[n_validation:], order[:n_validation]


def balanced_class_weights(y: Array, n_classes: int, sample_weight: Array | None = None) -> Array:
    """scikit-learn's "balanced" weights (C,): ``N / (C * count(c))`` for labels ``y`` (N,).

    With ``sample_weight`` (N,), N and the counts are sums of the rows' weights. A class
    absent from ``y`` counts as one sample (its weight is then never used).
    """
    counts = np.bincount(y, weights=sample_weight, minlength=n_classes).astype(np.float64)
    total = len(y) if sample_weight is None else counts.sum()
    return total / (n_classes * np.where(counts > 0, counts, 1.0))


@dataclass(frozen=True, eq=False)
class Standardizer:
    """Per-column ``(a - mean) / scale``, fitted on training data.

    Shape: mean (D,), scale (D,); transforms arrays (N, D).
    """

    mean: Array
    scale: Array

    @classmethod
    def fit(cls, a: Array) -> "Standardizer":
        """Mean and standard deviation of each column of ``a`` (N, D); 1 for a constant column."""
        a = np.asarray(a, dtype=np.float64)
        if a.ndim != 2 or len(a) == 0 or not np.isfinite(a).all():
            raise DataError(
                f"Standardizer.fit expected a finite 2-D array (N, D) with N >= 1, received "
                f"shape {a.shape}"
            )
        constant = a.max(axis=0) == a.min(axis=0)
        # In units of each column's largest magnitude, so that squaring neither
        # underflows (values near 1e-300) nor overflows (near 1e200).
        unit = np.abs(a).max(axis=0)
        unit[unit == 0] = 1.0
        with np.errstate(over="ignore"):
            mean = a.mean(axis=0)
        if not np.isfinite(mean).all():  # the sum of values near the float64 limit overflowed
            mean = (a / unit).mean(axis=0) * unit
        std = (a / unit).std(axis=0) * unit
        scale = np.where(constant | (std == 0), 1.0, std)
        return cls(mean.astype(np.float64), scale.astype(np.float64))

    def transform(self, a: Array) -> Array:
        """``(a - mean) / scale``, a new array (N, D)."""
        return (self._checked(a) - self.mean) / self.scale

    def inverse_transform(self, a: Array) -> Array:
        """``a * scale + mean``, a new array (N, D)."""
        return self._checked(a) * self.scale + self.mean

    def _checked(self, a: Array) -> Array:
        if a.ndim != 2 or a.shape[1] != len(self.mean):
            raise DataError(
                f"Standardizer expected an array of shape (N, {len(self.mean)}), received {a.shape}"
            )
        return a

    def to_json(self) -> dict[str, list[float]]:
        """``{"mean": [...], "scale": [...]}`` as Python floats, which JSON keeps exactly."""
        return {"mean": [float(v) for v in self.mean], "scale": [float(v) for v in self.scale]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Standardizer":
        """The Standardizer that ``to_json`` described; a malformed one raises DataError."""
        mean, scale = _json_floats(data, "mean"), _json_floats(data, "scale")
        if len(mean) != len(scale) or len(mean) == 0:
            raise DataError(
                f'a standardizer\'s "mean" and "scale" must have the same length >= 1, '
                f"received {len(mean)} and {len(scale)}"
            )
        if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise DataError('a standardizer needs finite "mean" and finite, positive "scale"')
        return cls(mean, scale)


def _json_floats(data: Mapping[str, Any], key: str) -> Array:
    values = data.get(key) if isinstance(data, Mapping) else None
    numbers = isinstance(values, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    )
    if not numbers:
        raise DataError(f'a standardizer needs "{key}", a list of numbers; received {values!r:.60}')
    return np.array(values, dtype=np.float64)
