"""The data layer: load a data set, split it, standardise it, cut it into mini-batches.

Shape: x (N, D_in) float64; y (N, D_out) float64 regression targets, or (N,)
int64 class indices into ``Dataset.classes``.

Sources: a ``.csv`` file (header row, read with the stdlib ``csv``), a ``.npy``
file (one 2-D array, targets picked by column), a ``.npz`` file (arrays ``x``
and ``y``), or a bundled name: ``digits``, ``iris``, ``diabetes`` (scikit-learn's
copies: ``pip install 'handprop[datasets]'``) and ``warmup`` (the tutorial's
data). Array files are read with ``allow_pickle=False``: nothing is unpickled.
Every problem a user can fix raises ``DataError`` with a one-line message.
"""

import csv
import importlib
import os
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from handprop._types import Array

TASKS = ("regression", "classification")
#: The task each bundled data set was made for.
DATASET_TASKS = {
    "diabetes": "regression",
    "digits": "classification",
    "iris": "classification",
    "warmup": "regression",
}
_NPY_SIGNATURE = (b"\x93NUMPY",)
_ZIP_SIGNATURE = (b"PK\x03\x04", b"PK\x05\x06")
_MISSING = "NaN, infinity or an empty cell"


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


@dataclass(frozen=True)
class _Raw:
    """What a loader read, before the checks that every source shares."""

    x: Array  # (N, D_in), any numeric dtype
    y: Array  # (N, D_out), numeric, or text labels for classification
    feature_names: tuple[str, ...]
    target_names: tuple[str, ...]
    source: str
    locate: Callable[[int], str]  # row index -> where the row is, e.g. "line 7"


def _row_index(row: int) -> str:
    return f"row index {row}"


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
    elif source in _BUNDLED:
        if target is not None:
            raise DataError(f"the bundled data set {source!r} has a fixed target; leave it unset")
        raw = _BUNDLED[source]()
    else:
        raise DataError(_unknown_source(source))
    return _finish(raw, task, drop_nonfinite)


def _unknown_source(source: str) -> str:
    if os.path.exists(source):
        return f"{source}: handprop reads .csv, .npy and .npz files; convert or rename it"
    return (
        f"unknown data set {source!r}: expected one of {', '.join(sorted(_BUNDLED))}, "
        "or the path of an existing file ending .csv, .npy or .npz"
    )


def _cannot_read(path: str, error: OSError) -> str:
    return f"cannot read {path}: {error.strerror or error}"


# ----- the checks that every source shares ----------------------------------------------


def _finish(raw: _Raw, task: str, drop_nonfinite: bool) -> Dataset:
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


def _check_kinds(raw: _Raw, task: str) -> None:
    if raw.x.dtype.kind not in "biuf":
        raise DataError(f"{raw.source}: the features have dtype {raw.x.dtype}, expected numbers")
    if task == "classification":
        _check_one_target(raw.source, raw.target_names)
    if raw.y.dtype.kind not in ("biufU" if task == "classification" else "biuf"):
        hint = '; class labels need task="classification"' if raw.y.dtype.kind == "U" else ""
        raise DataError(
            f"{raw.source}: the targets have dtype {raw.y.dtype}, expected numbers{hint}"
        )


def _check_one_target(source: str, target_names: tuple[str, ...]) -> None:
    if len(target_names) != 1:
        raise DataError(
            f"{source}: classification needs exactly one target column, received "
            f"{len(target_names)} ({', '.join(target_names)})"
        )


def _finite_rows(raw: _Raw, drop_nonfinite: bool) -> Array:
    """A boolean mask (N,) of the rows without NaN, infinity or an empty label."""
    bad_y = np.equal(raw.y, "") if raw.y.dtype.kind == "U" else ~np.isfinite(raw.y)
    bad = np.concatenate([~np.isfinite(raw.x), bad_y], axis=1)
    bad_rows = np.asarray(bad.any(axis=1))
    count, n = int(bad_rows.sum()), len(bad_rows)
    if count and not drop_nonfinite:
        row, column = np.argwhere(bad)[0]
        name = (raw.feature_names + raw.target_names)[column]
        raise DataError(
            f"{raw.source}: {count} of {n} rows hold {_MISSING}, the first at "
            f'{raw.locate(row)}, column "{name}"; fix them, or drop them with drop_nonfinite=True'
        )
    if count == n:
        raise DataError(f"{raw.source}: all {n} rows hold {_MISSING}; none is left to use")
    return ~bad_rows


def _check_whole_labels(raw: _Raw) -> None:
    labels = raw.y[:, 0]
    if labels.dtype.kind != "f":
        return
    finite = np.isfinite(labels)
    wrong = finite & ((labels != np.round(labels)) | (np.abs(labels) > 2.0**53))
    if wrong.any():
        row = int(np.argmax(wrong))
        raise DataError(
            f'{raw.source} {raw.locate(row)}, column "{raw.target_names[0]}": class labels '
            f"must be whole numbers or text, received {float(labels[row])!r}; "
            'for a continuous target use task="regression"'
        )


def _encode_classes(labels: Array) -> tuple[tuple[Any, ...], Array]:
    """(the sorted distinct labels, each label's index among them)."""
    if labels.dtype.kind in "bf":
        labels = labels.astype(np.int64)
    classes, indices = np.unique(labels, return_inverse=True)
    return tuple(classes.tolist()), indices.reshape(-1).astype(np.int64)


# ----- CSV ------------------------------------------------------------------------------


def _load_csv(path: str, target: str | None, task: str) -> _Raw:
    header, rows = _read_csv(path)
    targets = _csv_target_columns(path, header, target)
    features = [j for j in range(len(header)) if j not in targets]
    if not features:
        raise DataError(f"{path}: every column is a target; at least one feature column is needed")
    target_names = tuple(header[j] for j in targets)
    x = _csv_numbers(path, header, rows, features, "")
    if task == "classification":
        _check_one_target(path, target_names)
        y = _csv_labels(rows, targets[0])
    else:
        y = _csv_numbers(path, header, rows, targets, ' (class labels need task="classification")')
    lines = [line for line, _ in rows]
    feature_names = tuple(header[j] for j in features)
    return _Raw(x, y, feature_names, target_names, path, lambda row: f"line {lines[row]}")


def _read_csv(path: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header's column names and the (line number, cells) of every non-blank row."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            rows = [(reader.line_num, row) for row in reader if row]
    except OSError as error:
        raise DataError(_cannot_read(path, error)) from None
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text; save it as a UTF-8 CSV file") from None
    except csv.Error as error:
        raise DataError(f"{path} is not a valid CSV file: {error}") from None
    if not rows:
        raise DataError(f"{path} is empty; expected a header row of column names, then the data")
    header = [name.strip() for name in rows[0][1]]
    _check_csv_shape(path, header, rows[1:])
    return header, rows[1:]


def _check_csv_shape(path: str, header: list[str], rows: list[tuple[int, list[str]]]) -> None:
    repeated = sorted(name for name, count in Counter(header).items() if count > 1)
    if repeated:
        raise DataError(f'{path}: the header names column "{repeated[0]}" twice; rename one')
    if not rows:
        raise DataError(f"{path} has a header row but no data rows")
    for line, row in rows:
        if len(row) != len(header):
            raise DataError(
                f"{path} line {line} has {len(row)} cells, but the header has {len(header)} "
                "columns; every row needs one cell per column"
            )


def _csv_target_columns(path: str, header: list[str], target: str | None) -> list[int]:
    if target is None:
        return [len(header) - 1]
    names = [name.strip() for name in target.split(",")]
    for name in names:
        if name not in header:
            columns = ", ".join(f'"{column}"' for column in header)
            raise DataError(f'{path} has no column "{name}"; its columns are {columns}')
    if len(set(names)) != len(names):
        raise DataError(f"target names a column twice: {target!r}")
    return [header.index(name) for name in names]


def _csv_numbers(
    path: str, header: list[str], rows: list[tuple[int, list[str]]], columns: list[int], hint: str
) -> Array:
    """The cells of ``columns`` as floats (N, len(columns)); an empty cell reads as NaN."""
    numbers = np.empty((len(rows), len(columns)))
    for i, (line, row) in enumerate(rows):
        for k, j in enumerate(columns):
            value = _number(row[j])
            if value is None:
                raise DataError(
                    f'{path} line {line}, column "{header[j]}": {row[j]!r} is not a number{hint}'
                )
            numbers[i, k] = value
    return numbers


def _number(cell: str) -> float | None:
    text = cell.strip()
    if not text:
        return float("nan")
    try:
        return float(text)
    except ValueError:
        return None


def _csv_labels(rows: list[tuple[int, list[str]]], column: int) -> Array:
    """Class labels (N, 1): floats if every cell is a number, else text ("" when empty)."""
    cells = [row[column].strip() for _, row in rows]
    numbers = [_number(cell) for cell in cells]
    if all(number is not None for number in numbers):
        return np.array(numbers, dtype=np.float64)[:, None]
    return np.array(cells, dtype=str)[:, None]


# ----- NumPy files ----------------------------------------------------------------------


def _check_signature(path: str, signatures: tuple[bytes, ...], kind: str) -> None:
    try:
        with open(path, "rb") as file:
            start = file.read(6)
    except OSError as error:
        raise DataError(_cannot_read(path, error)) from None
    if not start.startswith(signatures):
        raise DataError(f"{path} is not a valid {kind} file (it lacks the {kind} signature)")


def _array_error(path: str, kind: str, error: Exception) -> DataError:
    if "pickle" in str(error):  # numpy refused an object array: loading it would unpickle
        return DataError(
            f"{path} holds Python objects (an object array, stored as pickle data), which "
            "handprop did not unpickle: unpickling can run any code; save numeric arrays instead"
        )
    return DataError(f"{path} is not a valid {kind} file: {error}")


def _load_npy(path: str, target: str | None, task: str) -> _Raw:
    _check_signature(path, _NPY_SIGNATURE, ".npy")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise _array_error(path, ".npy", error) from None
    if array.ndim != 2 or array.shape[1] < 2:
        raise DataError(
            f"{path} must hold one 2-D array (N, features + targets) with at least 2 columns, "
            f"received shape {array.shape}; or save x and y with np.savez(path, x=x, y=y)"
        )
    targets = _npy_target_columns(path, target, array.shape[1])
    features = [j for j in range(array.shape[1]) if j not in targets]
    if not features:
        raise DataError(f"{path}: every column is a target; at least one feature column is needed")
    feature_names, target_names = tuple(map(str, features)), tuple(map(str, targets))
    return _Raw(
        array[:, features], array[:, targets], feature_names, target_names, path, _row_index
    )


def _npy_target_columns(path: str, target: str | None, width: int) -> list[int]:
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


def _load_npz(path: str, target: str | None, task: str) -> _Raw:
    if target is not None:
        raise DataError(f"{path}: a .npz file's targets are its array 'y'; leave target unset")
    _check_signature(path, _ZIP_SIGNATURE, ".npz")
    try:
        # Our own handle: np.load leaks the one it opens when the archive is broken.
        with open(path, "rb") as file, np.load(file, allow_pickle=False) as archive:
            names = list(archive.files)
            arrays = {name: archive[name] for name in ("x", "y") if name in names}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        raise _array_error(path, ".npz", error) from None
    missing = [name for name in ("x", "y") if name not in arrays]
    if missing:
        raise DataError(
            f"{path} lacks the array(s) {', '.join(missing)}: it holds {names or 'nothing'}; "
            "save the data with np.savez(path, x=x, y=y)"
        )
    return _npz_raw(path, arrays["x"], arrays["y"])


def _npz_raw(path: str, x: Any, y: Any) -> _Raw:
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        raise DataError(f"{path}: x and y must be arrays saved with np.savez(path, x=x, y=y)")
    if x.ndim != 2 or y.ndim not in (1, 2) or 0 in x.shape[1:] + y.shape[1:]:
        raise DataError(
            f"{path}: x must be 2-D (N, D_in) and y 1-D (N,) or 2-D (N, D_out), with D_in, D_out "
            f">= 1; received {x.shape} and {y.shape} (one feature: x.reshape(-1, 1))"
        )
    target_names = ("y",) if y.ndim == 1 else tuple(f"y{j}" for j in range(y.shape[1]))
    feature_names = tuple(f"x{j}" for j in range(x.shape[1]))
    return _Raw(x, y if y.ndim == 2 else y[:, None], feature_names, target_names, path, _row_index)


_FILE_LOADERS: dict[str, Callable[[str, str | None, str], _Raw]] = {
    ".csv": _load_csv,
    ".npy": _load_npy,
    ".npz": _load_npz,
}


# ----- bundled data sets ----------------------------------------------------------------


def _warmup() -> _Raw:
    """The tutorial's x (64, 1000) and y (64, 10), drawn in that order from RandomState(0)."""
    rng = np.random.RandomState(0)
    x = rng.standard_normal((64, 1000))
    y = rng.standard_normal((64, 10))
    features = tuple(f"x{j}" for j in range(1000))
    return _Raw(x, y, features, tuple(f"y{j}" for j in range(10)), "warmup", _row_index)


def _sklearn(name: str, target_name: str) -> _Raw:
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
    return _Raw(bunch.data, y[:, None], features, (target_name,), name, _row_index)


_BUNDLED: dict[str, Callable[[], _Raw]] = {
    "diabetes": lambda: _sklearn("diabetes", "disease_progression"),
    "digits": lambda: _sklearn("digits", "digit"),
    "iris": lambda: _sklearn("iris", "species"),
    "warmup": _warmup,
}


# ----- splitting, scaling, batching -----------------------------------------------------


def train_validation_split(
    dataset: Dataset, fraction: float, rng: np.random.Generator
) -> tuple[Dataset, Dataset | None]:
    """Shuffle with ``rng``, then hold out ``round(fraction * N)`` samples for validation.

    ``fraction`` 0 returns ``(dataset, None)`` and draws nothing.
    """
    if not 0 <= fraction < 1:
        raise DataError(f"the validation fraction must be in [0, 1), received {fraction!r}")
    if fraction == 0:
        return dataset, None
    n = len(dataset)
    n_validation = round(fraction * n)
    if not 1 <= n_validation <= n - 1:
        raise DataError(
            f"a validation fraction of {fraction!r} of {n} samples leaves {n - n_validation} "
            f"for training and {n_validation} for validation; each side needs at least 1"
        )
    order = rng.permutation(n)
    return dataset.take(order[n_validation:]), dataset.take(order[:n_validation])


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
        scale = np.where(constant, 1.0, a.std(axis=0))
        return cls(a.mean(axis=0).astype(np.float64), scale.astype(np.float64))

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


def batches(n: int, batch_size: int, rng: np.random.Generator | None) -> Iterator[Array]:
    """The index arrays of the mini-batches over ``n`` samples, each of at most ``batch_size``.

    With ``rng`` the order is one permutation drawn by this call (one per epoch),
    else 0, 1, ..., n - 1. The last batch may be smaller.
    """
    if batch_size < 1:
        raise DataError(f"batch_size must be an integer >= 1, received {batch_size!r}")
    if n < 0:
        raise DataError(f"the number of samples must be >= 0, received {n!r}")
    order = np.arange(n) if rng is None else rng.permutation(n)
    return (order[start : start + batch_size] for start in range(0, n, batch_size))
