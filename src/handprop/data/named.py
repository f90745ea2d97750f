"""The bundled data sets: scikit-learn's digits, iris and diabetes, and the tutorial's warmup."""

import importlib
from collections.abc import Callable

import numpy as np

from handprop.data.dataset import DataError
from handprop.data.raw import RawTable, row_index

#: The task each bundled data set was made for.
DATASET_TASKS = {
    "diabetes": "regression",
    "digits": "classification",
    "iris": "classification",
    "warmup": "regression",
}


def _warmup() -> RawTable:
    """The tutorial's x (64, 1000) and y (64, 10), drawn in that order from RandomState(0)."""
    rng = np.random.RandomState(0)
    x = rng.standard_normal((64, 1000))
    y = rng.standard_normal((64, 10))
    features = tuple(f"x{j}" for j in range(1000))
    return RawTable(x, y, features, tuple(f"y{j}" for j in range(10)), "warmup", row_index)


def _sklearn(name: str, target_name: str) -> RawTable:
    try:
        datasets = importlib.import_module("sklearn.datasets")
    except ImportError:
        raise DataError(
            f"the data set {name!r} comes with scikit-learn, which is not installed; "
            "install it with: pip install 'handprop[datasets]'"
        ) from None
    bunch = getattr(datasets, f"load_{name}")()
    y = np.asarray(bunch.target)
    if name == "iris":  # the species' names, whose sorted order is scikit-learn's 0, 1, 2
        y = np.asarray(bunch.target_names)[y]
    features = tuple(str(feature) for feature in bunch.feature_names)
    return RawTable(bunch.data, y[:, None], features, (target_name,), name, row_index)


BUNDLED: dict[str, Callable[[], RawTable]] = {
    "diabetes": lambda: _sklearn("diabetes", "disease_progression"),
    "digits": lambda: _sklearn("digits", "digit"),
    "iris": lambda: _sklearn("iris", "species"),
    "warmup": _warmup,
}
