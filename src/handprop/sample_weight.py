"""Sample weights that travel with the targets: scikit-learn's ``sample_weight`` for any loss.

``fit`` cuts its batches by taking rows of the targets; ``WeightedTargets`` takes the rows'
weights along, so each batch brings its own to the loss, and the losses (``losses.py``)
weigh their per-row terms with ``row_weights``. Nothing else in the training path changes.
"""

from typing import Any

import numpy as np

from handprop._types import Array


class WeightedTargets(np.ndarray):
    """Targets (N, ...) that carry one weight per row, ``sample_weight`` (N,), finite, >= 0.

    Taking rows (``y[rows]``, as ``fit`` cuts its batches) takes their weights along, so
    each batch brings its own to the loss; arithmetic on the targets gives plain arrays.
    A loss weighs row i by ``sample_weight[i]``: a mean becomes
    ``sum(sample_weight * loss_i) / sum(sample_weight)`` (over the batch), a sum
    ``sum(sample_weight * loss_i)``; so a whole weight k counts as k copies of the row,
    and 0 as none. Every loss in ``losses.py`` does; a loss of your own reads them with
    ``row_weights``.
    """

    sample_weight: Array

    def __new__(cls, y: Array, sample_weight: Array) -> "WeightedTargets":
        weight = np.asarray(sample_weight, dtype=np.float64)
        if weight.shape != (len(y),) or not (np.isfinite(weight).all() and (weight >= 0).all()):
            raise ValueError(
                f"sample weights must be {len(y)} finite numbers >= 0, one per row, received "
                f"shape {weight.shape}"
            )
        targets = np.asarray(y).view(cls)
        targets.sample_weight = weight
        return targets

    def __array_finalize__(self, obj: object) -> None:
        self.sample_weight = getattr(obj, "sample_weight", None)  # type: ignore[assignment]

    def __getitem__(self, index: Any) -> Any:
        taken = np.asarray(self)[index]
        rows = index[0] if isinstance(index, tuple) else index
        if isinstance(rows, int | np.integer) or np.ndim(taken) == 0:
            return taken
        return WeightedTargets(taken, self.sample_weight[rows])

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if "out" in kwargs:
            kwargs["out"] = tuple(_plain(a) for a in kwargs["out"])
        return getattr(ufunc, method)(*(_plain(a) for a in inputs), **kwargs)


def _plain(a: Any) -> Any:
    """``a`` as a plain ndarray view if it is WeightedTargets, else as it is."""
    return np.asarray(a) if isinstance(a, WeightedTargets) else a


def row_weights(y: Array, reduction: str, dtype: Any) -> Array | None:
    """The factor (N,) of each row's term in the loss of ``WeightedTargets`` (None: plain).

    For a mean, ``sample_weight * N / sum(sample_weight)``, so that the loss's own ``/ N``
    makes the weighted mean (all 0 when the weights sum to 0); for a sum, the weights.
    """
    if not isinstance(y, WeightedTargets):
        return None
    weight = y.sample_weight
    if reduction == "mean":
        total = weight.sum()
        weight = weight * (len(weight) / total) if total > 0 else np.zeros_like(weight)
    return weight.astype(dtype)
