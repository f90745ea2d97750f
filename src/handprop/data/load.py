"""``load_dataset``: pick the loader for a source, then the checks that every source shares."""

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from handprop._types import Array
from handprop.data.arrays import load_npy, load_npy_features, load_npz, load_npz_features
from handprop.data.csv_file import load_csv, load_csv_features
from handprop.data.dataset import TASKS, DataError, Dataset
from handprop.data.named import BUNDLED
from handprop.data.raw import RawTable, check_one_target, shown

_MISSING = "NaN, infinity or an empty cell"


_FILE_LOADERS: dict[str, Callable[[str, str | None, str], RawTable]] = {
    ".csv": load_csv,
    ".npy": load_npy,
    ".npz": load_npz,
}


def load_dataset(
    source: str,
    *,
    target: str | None = None,
    task: str = "regression",
    drop_nonfinite: bool = False,
) -> Dataset:
    """Load a file (``.csv``, ``.npy``, ``.npz``) or a bundled data set by name.

    ``target`` picks the target columns: CSV names (``"a"`` or ``"a,b"``) or
    ``.npy`` 0-based column indices (``"3"`` or ``"3,4"``); default the last
    column. ``task`` is "regression" or "classification". Rows holding NaN or
    infinity are refused, or dropped with ``drop_nonfinite=True``.

    Shape: returns x (N, D_in); y (N, D_out) or (N,) class indices.
    """
    if task not in TASKS:
        raise DataError(f"task must be one of {', '.join(TASKS)}, received {task!r}")
    extension = os.path.splitext(source)[1].lower()
    if extension in _FILE_LOADERS:
        raw = _FILE_LOADERS[extension](source, target, task)
    elif source in BUNDLED:
        if target is not None:
            raise DataError(f"the bundled data set {source!r} has a fixed target; leave it unset")
        raw = BUNDLED[source]()
    else:
        raise DataError(_unknown_source(source))
    return _finish(raw, task, drop_nonfinite)


def load_features(source: str, feature_names: Sequence[str] | None = None) -> Array:
    """The features alone, for prediction, as float64 (N, D_in).

    A ``.csv`` file's columns called ``feature_names`` (default: all; other
    columns, such as targets, are ignored), every column of a ``.npy`` file,
    the array ``x`` of a ``.npz`` file, or the features of a bundled data set.
    Rows holding NaN, infinity or an empty cell are refused.
    """
    extension = os.path.splitext(source)[1].lower()
    if extension == ".csv":
        raw = load_csv_features(source, feature_names)
    elif extension == ".npy":
        raw = load_npy_features(source)
    elif extension == ".npz":
        raw = load_npz_features(source)
    elif source in BUNDLED:
        raw = BUNDLED[source]()
    else:
        raise DataError(_unknown_source(source))
    _finite_rows(raw, drop_nonfinite=False)
    return np.ascontiguousarray(raw.x, dtype=np.float64)


def _unknown_source(source: str) -> str:
    if os.path.exists(source):
        return f"{source}: handprop reads .csv, .npy and .npz files; convert or rename it"
    return (
        f"unknown data set {source!r}: expected one of {', '.join(sorted(BUNDLED))}, "
        "or the path of an existing file ending .csv, .npy or .npz"
    )


# ----- the checks that every source shares ----------------------------------------------


def _finish(raw: RawTable, task: str, drop_nonfinite: bool) -> Dataset:
    x, y = raw.x, raw.y
    if len(x) != len(y):
        raise DataError(f"{raw.source}: x has {len(x)} rows but y has {len(y)}; give both N rows")
    if len(x) == 0:
        raise DataError(f"{raw.source} holds no samples")
    _check_kinds(raw, task)
    keep = _finite_rows(raw, drop_nonfinite)
    classes = None
    if task == "classification":
        _check_whole_labels(raw)
        classes, y = _encode_classes(y[keep, 0])
    else:
        y = np.ascontiguousarray(y[keep], dtype=np.float64)
    x = np.ascontiguousarray(x[keep], dtype=np.float64)
    return Dataset(x, y, raw.feature_names, raw.target_names, classes, raw.source)


def _check_kinds(raw: RawTable, task: str) -> None:
    if raw.x.dtype.kind not in "biuf":
        raise DataError(f"{raw.source}: the features have dtype {raw.x.dtype}, expected numbers")
    if task == "classification":
        check_one_target(raw.source, raw.target_names)
    if raw.y.dtype.kind not in ("biufUO" if task == "classification" else "biuf"):
        hint = '; class labels need task="classification"' if raw.y.dtype.kind in "UO" else ""
        raise DataError(
            f"{raw.source}: the targets have dtype {raw.y.dtype}, expected numbers{hint}"
        )


def _finite_rows(raw: RawTable, drop_nonfinite: bool) -> Array:
    """A boolean mask (N,) of the rows without NaN, infinity or an empty label."""
    bad_y = np.equal(raw.y, "") if raw.y.dtype.kind in "UO" else ~np.isfinite(raw.y)
    bad = np.concatenate([~np.isfinite(raw.x), bad_y], axis=1)
    bad_rows = np.asarray(bad.any(axis=1))
    count, n = int(bad_rows.sum()), len(bad_rows)
    if count and not drop_nonfinite:
        row, column = np.argwhere(bad)[0]
        name = (raw.feature_names + raw.target_names)[column]
        raise DataError(
            f"{raw.source}: {count} of {n} rows hold {_MISSING}, the first at "
            f"{raw.locate(row)}, column {shown(name)}; fix them, or drop them (--drop-nonfinite)"
        )
    if count == n:
        raise DataError(f"{raw.source}: all {n} rows hold {_MISSING}; none is left to use")
    return ~bad_rows


def _check_whole_labels(raw: RawTable) -> None:
    if raw.y.dtype.kind != "f":
        return
    labels = raw.y[:, 0].astype(np.float64)  # float16 would overflow comparing with 2**53
    finite = np.isfinite(labels)
    wrong = finite & ((labels != np.round(labels)) | (np.abs(labels) > 2.0**53))
    if wrong.any():
        row = int(np.argmax(wrong))
        raise DataError(
            f"{raw.source} {raw.locate(row)}, column {shown(raw.target_names[0])}: class labels "
            f"must be whole numbers or text, received {float(labels[row])!r}; "
            'for a continuous target use task="regression"'
        )


def _encode_classes(labels: Array) -> tuple[tuple[Any, ...], Array]:
    """(the sorted distinct labels, each label's index among them)."""
    if labels.dtype.kind in "bf":
        labels = labels.astype(np.int64)
    classes, indices = np.unique(labels, return_inverse=True)
    return tuple(classes.tolist()), indices.reshape(-1).astype(np.int64)
