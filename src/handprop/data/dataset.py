"""A Dataset: N samples of features and targets, checked when built; and DataError."""

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from handprop._types import Array

TASKS = ("regression", "classification")


class DataError(ValueError):
    """A data problem the user can fix; the message is one line: what, where, and how."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """N samples: features, targets and their names.

    Shape: x (N, D_in) float64, C-contiguous; y (N, D_out) float64 for
    regression, or (N,) int64 indices into ``classes`` (the sorted original
    labels) for classification, where ``classes`` is not None.
    """

    x: Array
    y: Array
    feature_names: tuple[str, ...]
    target_names: tuple[str, ...]
    classes: tuple[Any, ...] | None
    source: str
    encoding: Any = None  # an Encoding when columns were one-hot encoded or filled
    task_note: str = ""  # why the task was chosen, when it was inferred

    def __post_init__(self) -> None:
        _check_dataset(self)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def task(self) -> str:
        """The task: "classification" when the dataset has classes, else "regression"."""
        return "regression" if self.classes is None else "classification"

    def take(self, rows: Array) -> "Dataset":
        """The samples at the index array ``rows``, in that order."""
        return replace(self, x=np.ascontiguousarray(self.x[rows]), y=self.y[rows])


def _check_dataset(data: Dataset) -> None:
    x, y, n = data.x, data.y, len(data.x)
    if x.ndim != 2 or x.dtype != np.float64 or not x.flags.c_contiguous:
        raise DataError(
            f"Dataset.x must be a C-contiguous float64 array (N, D_in), received {x.dtype} "
            f"of shape {x.shape}; convert it with np.ascontiguousarray(x, dtype=np.float64)"
        )
    if x.shape[1] != len(data.feature_names):
        raise DataError(f"Dataset has {x.shape[1]} features but {len(data.feature_names)} names")
    if data.classes is None:
        expected: tuple[int, ...] = (n, len(data.target_names))
        dtype: np.dtype[Any] = np.dtype(np.float64)
    else:
        expected, dtype = (n,), np.dtype(np.int64)
    if y.shape != expected or y.dtype != dtype:
        raise DataError(
            f"Dataset.y for {data.task} must be {dtype} of shape {expected}, received "
            f"{y.dtype} of shape {y.shape}"
        )
    if data.classes is not None and n and not (y.min() >= 0 and y.max() < len(data.classes)):
        raise DataError(f"Dataset.y must hold class indices in [0, {len(data.classes) - 1}]")
