"""Reading ``.npy`` and ``.npz`` files with ``allow_pickle=False``: nothing is unpickled."""

import tokenize
import zipfile
import zlib
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from handprop._text import one_line
from handprop.data.dataset import DataError
from handprop.data.npy_file import MappedNpy, map_npy, read_npy, read_npz
from handprop.data.raw import RawTable, cannot_read, row_index

_NPY_SIGNATURE = (b"\x93NUMPY",)
_ZIP_SIGNATURE = (b"PK\x03\x04", b"PK\x05\x06")


def _check_signature(path: str, signatures: tuple[bytes, ...], kind: str) -> None:
    try:
        with open(path, "rb") as file:
            start = file.read(6)
    except OSError as error:
        raise DataError(cannot_read(path, error)) from None
    if not start.startswith(signatures):
        raise DataError(f"{path} is not a valid {kind} file (it lacks the {kind} signature)")


#: What numpy's reader and zipfile raise for malformed bytes. numpy lets tokenize's
#: TokenError out of its parser for headers written by Python 2.
_MALFORMED = (
    OSError, ValueError, EOFError, TypeError, KeyError, IndexError, OverflowError,
    NotImplementedError, tokenize.TokenError, zipfile.BadZipFile, zlib.error,
)  # fmt: skip
_T = TypeVar("_T")


def _reading(path: str, kind: str, read: Callable[[], _T]) -> _T:
    """``read()``, with whatever a malformed file makes it raise as one DataError."""
    try:
        return read()
    except DataError:
        raise
    except _MALFORMED as error:
        reason = one_line(str(error) or type(error).__name__)
        if len(reason) > 200:
            reason = reason[:200] + "..."
        raise DataError(f"{path} is not a valid {kind} file: {reason}") from None


def load_npy(path: str, target: str | None, task: str) -> RawTable:
    _check_signature(path, _NPY_SIGNATURE, ".npy")
    array = _reading(path, ".npy", lambda: read_npy(path))
    if array.ndim != 2 or array.shape[1] < 2:
        raise DataError(
            f"{path} must hold one 2-D array (N, features + targets) with at least 2 columns, "
            f"received shape {array.shape}; or save x and y with np.savez(path, x=x, y=y)"
        )
    targets = npy_target_columns(path, target, array.shape[1])
    features = [j for j in range(array.shape[1]) if j not in targets]
    if not features:
        raise DataError(f"{path}: every column is a target; at least one feature column is needed")
    feature_names, target_names = tuple(map(str, features)), tuple(map(str, targets))
    return RawTable(
        array[:, features], array[:, targets], feature_names, target_names, path, row_index
    )


def open_npy(path: str) -> MappedNpy:
    """The array of a .npy file over a read-only memory map: nothing read yet."""
    _check_signature(path, _NPY_SIGNATURE, ".npy")
    return _reading(path, ".npy", lambda: map_npy(path))


def npy_target_columns(path: str, target: str | None, width: int) -> list[int]:
    """The 0-based columns that ``target`` ("3" or "3,4", negatives count from the end) names."""
    if target is None:
        return [width - 1]
    try:
        columns = [int(text) for text in target.split(",")]
    except ValueError:
        raise DataError(
            f"target for a .npy file is one 0-based column index or several separated by "
            f"commas, such as '3' or '3,4'; received {target!r}"
        ) from None
    for column in columns:
        if not -width <= column < width:
            raise DataError(
                f"{path} has no column {column}: its {width} columns are 0 to {width - 1}"
            )
    columns = [column % width for column in columns]
    if len(set(columns)) != len(columns):
        raise DataError(f"target names a column twice: {target!r}")
    return columns


def load_npz(path: str, target: str | None, task: str) -> RawTable:
    if target is not None:
        raise DataError(f"{path}: a .npz file's targets are its array 'y'; leave target unset")
    arrays = _npz_arrays(path, ("x", "y"))
    return _npz_raw(path, arrays["x"], arrays["y"])


def _npz_arrays(path: str, wanted: tuple[str, ...]) -> dict[str, Any]:
    _check_signature(path, _ZIP_SIGNATURE, ".npz")
    names, arrays = _reading(path, ".npz", lambda: read_npz(path, wanted))
    missing = [name for name in wanted if name not in arrays]
    if missing:
        held = f"{names[:8]}" + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        raise DataError(
            f"{path} lacks the array(s) {', '.join(missing)}: it holds "
            f"{held if names else 'nothing'}; save the data with np.savez(path, x=x, y=y)"
        )
    return arrays


def load_npz_features(path: str) -> RawTable:
    x = _npz_arrays(path, ("x",))["x"]
    return _features_raw(path, x, "its array x")


def load_npy_features(path: str) -> RawTable:
    _check_signature(path, _NPY_SIGNATURE, ".npy")
    x = _reading(path, ".npy", lambda: read_npy(path))
    return _features_raw(path, x, "its array")


def _features_raw(path: str, x: Any, what: str) -> RawTable:
    if x.ndim != 2 or x.dtype.kind not in "biuf" or 0 in x.shape:  # the kinds training takes
        raise DataError(
            f"{path}: {what} must be a numeric 2-D array (N, features) with N, features >= 1, "
            f"received shape {x.shape} of {x.dtype}"
        )
    names = tuple(str(j) for j in range(x.shape[1]))
    return RawTable(x, np.empty((len(x), 0)), names, (), path, row_index)


def _npz_raw(path: str, x: Any, y: Any) -> RawTable:
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        raise DataError(f"{path}: x and y must be arrays saved with np.savez(path, x=x, y=y)")
    if x.ndim != 2 or y.ndim not in (1, 2) or 0 in x.shape[1:] + y.shape[1:]:
        raise DataError(
            f"{path}: x must be 2-D (N, D_in) and y 1-D (N,) or 2-D (N, D_out), with D_in, D_out "
            f">= 1; received {x.shape} and {y.shape} (one feature: x.reshape(-1, 1))"
        )
    target_names = ("y",) if y.ndim == 1 else tuple(f"y{j}" for j in range(y.shape[1]))
    feature_names = tuple(f"x{j}" for j in range(x.shape[1]))
    return RawTable(
        x, y if y.ndim == 2 else y[:, None], feature_names, target_names, path, row_index
    )
