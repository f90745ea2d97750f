"""The checks every source shares, on what a loader read: lengths, kinds, missing cells
(refused, or their rows dropped), whole-number class labels; and the classes' encoding."""

from typing import Any

import numpy as np

from handprop._types import Array
from handprop.data.dataset import DataError
from handprop.data.encoding import Encoding
from handprop.data.raw import RawTable, check_one_target, shown

_MISSING = "NaN, infinity or an empty cell"


def checked_rows(raw: RawTable, task: str, drop_nonfinite: bool, encoding: Encoding) -> Array:
    """The checks every source shares; a boolean mask (N,) of the rows to use."""
    if len(raw.x) != len(raw.y):
        raise DataError(
            f"{raw.source}: x has {len(raw.x)} rows but y has {len(raw.y)}; give both N rows"
        )
    if len(raw.x) == 0:
        raise DataError(f"{raw.source} holds no samples")
    _check_kinds(raw, task)
    keep = finite_rows(raw, encoding, drop_nonfinite)
    if task == "classification":
        _check_whole_labels(raw)
    return keep


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


def finite_rows(raw: RawTable, encoding: Encoding, drop_nonfinite: bool) -> Array:
    """A boolean mask (N,) of the rows without a missing cell (that no fill replaces) or label."""
    bad_y = np.equal(raw.y, "") if raw.y.dtype.kind in "UO" else ~np.isfinite(raw.y)
    bad = np.concatenate([encoding.missing(raw), bad_y], axis=1)
    bad_rows = np.asarray(bad.any(axis=1))
    count, n = int(bad_rows.sum()), len(bad_rows)
    if count and not drop_nonfinite:
        row, column = np.argwhere(bad)[0]
        name = (raw.feature_names + raw.target_names)[column]
        fill = '(impute="mean", "median" or "most-frequent") '
        if column >= len(raw.feature_names):  # imputing fills features, never a target
            name, fill = f"{shown(name)} (a target, which nothing fills)", ""
        else:
            name, fill = shown(name), f"fill them {fill}"
        raise DataError(
            f"{raw.source}: {count} of {n} rows hold {_MISSING}, the first at "
            f"{raw.locate(row)}, column {name}; fix them, {fill}or drop them "
            "(drop_nonfinite=True)"
        )
    if count == n:
        raise DataError(f"{raw.source}: all {n} rows hold {_MISSING}; none is left to use")
    return ~bad_rows


def _check_whole_labels(raw: RawTable) -> None:
    row = first_fractional(raw.y[:, 0])
    if row is not None:
        where = f"{raw.source} {raw.locate(row)}"
        raise fractional_label(where, raw.target_names[0], float(raw.y[row, 0]))


def first_fractional(labels: Array) -> int | None:
    """The index of the first finite label that is not a whole number (or lies beyond 2**53,
    where floats skip whole numbers), else None: class labels are whole numbers or text."""
    if labels.dtype.kind != "f":
        return None
    values = labels.astype(np.float64)  # float16 would overflow comparing with 2**53
    wrong = np.isfinite(values) & ((values != np.round(values)) | (np.abs(values) > 2.0**53))
    return int(np.argmax(wrong)) if wrong.any() else None


def fractional_label(where: str, column: str, value: float) -> DataError:
    """The error for a class label that is not a whole number, found at ``where``."""
    return DataError(
        f"{where}, column {shown(column)}: class labels must be whole numbers or text, "
        f'received {value!r}; for a continuous target use task="regression"'
    )


def encode_classes(labels: Array) -> tuple[tuple[Any, ...], Array]:
    """(the sorted distinct labels, each label's index among them)."""
    if labels.dtype.kind in "bf":
        labels = labels.astype(np.int64)
    classes, indices = np.unique(labels, return_inverse=True)
    return tuple(classes.tolist()), indices.reshape(-1).astype(np.int64)
