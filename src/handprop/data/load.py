"""``load_dataset``: pick the loader for a source, then the checks that every source shares."""

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from handprop._types import Array
from handprop.data.arrays import load_npy, load_npy_features, load_npz, load_npz_features
from handprop.data.checks import checked_rows, encode_classes, finite_rows
from handprop.data.csv_file import CsvFormat, load_csv, load_csv_features
from handprop.data.dataset import TASKS, DataError, Dataset
from handprop.data.encoding import (
    Encoding,
    decimal_commas,
    fit_encoding,
    plain_encoding,
    select_columns,
)
from handprop.data.frame import Frame, frame_features, frame_table, is_frame
from handprop.data.named import BUNDLED, DATASET_TASKS
from handprop.data.raw import RawTable, shown

_FILE_LOADERS: dict[str, Callable[[str, str | None, str], RawTable]] = {
    ".npy": load_npy,
    ".npz": load_npz,
}
#: A target of whole numbers with at most this many distinct values is taken for classes.
MAX_INFERRED_CLASSES = 20


@dataclass(frozen=True)
class Columns:
    """Which feature columns a table gives the network, and how.

    ``features``: the columns to use (default: all but the targets); ``drop``: columns to
    leave out; ``categorical``: columns to one-hot encode (None: the text columns with few
    distinct values); ``impute``: "mean", "median" or "most-frequent" fills missing cells
    (None: rows with a missing cell are refused, or dropped with ``drop_nonfinite``).
    """

    features: tuple[str, ...] | None = None
    drop: tuple[str, ...] = ()
    categorical: tuple[str, ...] | None = None
    impute: str | None = None


def load_dataset(
    source: str | Frame,
    *,
    target: str | None = None,
    task: str | None = "regression",
    drop_nonfinite: bool = False,
    columns: Columns = Columns(),
    form: CsvFormat = CsvFormat(),  # noqa: B008 (frozen)
    encoding: Encoding | None = None,
) -> Dataset:
    """Load a file (``.csv``, ``.tsv``, ``.npy``, ``.npz``), a bundled data set by name, or a
    pandas DataFrame (its column names; ``category`` and text columns one-hot encoded).

    ``target`` picks the target columns: CSV names (``"a"`` or ``"a,b"``) or
    ``.npy`` 0-based column indices (``"3"`` or ``"3,4"``); default the last
    column. ``task`` is "regression" (the default) or "classification"; None infers it
    from the target (text, booleans, or a few whole numbers: classification) and says why in
    ``Dataset.task_note``. Rows holding NaN or infinity are refused, or dropped with
    ``drop_nonfinite=True``, unless ``columns.impute`` fills them. ``form``: a CSV's
    delimiter and decimal mark. ``encoding``: a trained model's, applied instead of
    fitting one (the columns it names are used, encoded as in training).

    The encoding (categories, fills) is fitted on every row: to fit it on a training part
    alone, use ``read_table(...).dataset(fit_rows)``.

    Shape: returns x (N, D_in); y (N, D_out) or (N,) class indices.
    """
    table = read_table(
        source, target=target, task=task, drop_nonfinite=drop_nonfinite, columns=columns,
        form=form, encoding=encoding,
    )  # fmt: skip
    return table.dataset()


@dataclass(frozen=True, eq=False)
class Table:
    """A source read and checked, before its columns are encoded: ``read_table``'s result.

    ``len(table)`` rows are usable (those with a missing cell that nothing fills are left
    out); ``dataset(fit_rows)`` encodes them, the encoding fitted on ``fit_rows`` alone.
    """

    raw: RawTable
    task: str
    note: str
    usable: Array  # (N_raw,) bool: the rows kept
    layout: Encoding  # the columns' kinds and fills: the given encoding, or one from every row
    columns: Columns | None  # how to fit the encoding; None: ``layout`` is a trained model's

    def __len__(self) -> int:
        return int(self.usable.sum())

    def dataset(self, fit_rows: Array | None = None) -> Dataset:
        """The usable rows as a Dataset, encoded by an encoding whose categories and imputed
        values come from ``fit_rows`` (indices into the usable rows; default: all of them).

        A category seen only outside ``fit_rows`` (in a held-out part) is encoded as all
        zeros there. A trained model's encoding is applied as it is.
        """
        raw, rows = self.raw, np.flatnonzero(self.usable)
        encoding, unseen = self.layout, "error"
        if self.columns is not None and fit_rows is not None:
            columns = self.columns
            encoding = fit_encoding(raw, columns.categorical, columns.impute, rows[fit_rows])
            unseen = "zeros"
        classes, y = None, raw.y[rows]
        if self.task == "classification":
            classes, y = encode_classes(y[:, 0])
        else:
            y = np.ascontiguousarray(y, dtype=np.float64)
        x = encoding.transform(raw, rows, unseen)
        return Dataset(
            x, y, encoding.feature_names, raw.target_names, classes, raw.source,
            None if encoding.is_plain else encoding, self.note,
        )  # fmt: skip


def read_table(
    source: str | Frame,
    *,
    target: str | None = None,
    task: str | None = "regression",
    drop_nonfinite: bool = False,
    columns: Columns = Columns(),
    form: CsvFormat = CsvFormat(),  # noqa: B008 (frozen)
    encoding: Encoding | None = None,
) -> Table:
    """``load_dataset``'s reading and checks, with the encoding left to ``Table.dataset``."""
    if task is not None and task not in TASKS:
        raise DataError(f"task must be one of {', '.join(TASKS)}, received {task!r}")
    if encoding is not None:
        columns = Columns(encoding.input_names, (), encoding.categorical)
    raw = _read(source, target, task, columns, form)
    note = ""
    if task is None:
        task, note = infer_task(raw)
    raw = select_columns(raw, columns.features, columns.drop)
    trained = encoding is not None
    if encoding is None:
        encoding = fit_encoding(raw, columns.categorical, columns.impute)
    usable = checked_rows(raw, task, drop_nonfinite, encoding)
    return Table(raw, task, note, usable, encoding, None if trained else columns)


def load_features(
    source: str | Frame,
    feature_names: Sequence[str] | None = None,
    *,
    encoding: Encoding | None = None,
    drop_nonfinite: bool = False,
    form: CsvFormat = CsvFormat(),  # noqa: B008 (frozen)
) -> Array:
    """The features alone, for prediction, as float64 (N, D_in): ``read_features(...).x``."""
    features = read_features(
        source, feature_names, encoding=encoding, drop_nonfinite=drop_nonfinite, form=form
    )
    return features.x


@dataclass(frozen=True, eq=False)
class Features:
    """The features of a source's rows: x (N_kept, D_in) float64 for the rows ``kept``
    (N_kept,), indices among the source's ``n_rows`` (the others held a missing cell)."""

    x: Array
    kept: Array
    n_rows: int


def read_features(
    source: str | Frame,
    feature_names: Sequence[str] | None = None,
    *,
    encoding: Encoding | None = None,
    drop_nonfinite: bool = False,
    form: CsvFormat = CsvFormat(),  # noqa: B008 (frozen)
) -> Features:
    """The features alone, for prediction, and which of the source's rows they are.

    With ``encoding`` (a trained model's), the file's (or DataFrame's) columns it names,
    encoded as in training; else a ``.csv`` file's or a DataFrame's columns called
    ``feature_names`` (default: all; other columns, such as targets, are ignored), every
    column of a ``.npy`` file, the array ``x`` of a ``.npz`` file, or the features of a
    bundled data set. Rows holding a missing cell that the encoding does not fill are
    refused, or dropped with ``drop_nonfinite``.
    """
    names = encoding.input_names if encoding is not None else feature_names
    text = () if encoding is None else encoding.categorical
    extension = ".frame" if is_frame(source) else os.path.splitext(source)[1].lower()
    if extension == ".frame":
        raw = frame_features(source, None if names is None else tuple(names))
    elif extension in (".csv", ".tsv"):
        raw = load_csv_features(source, names, form, text)
    elif extension == ".npy":
        raw = load_npy_features(source)
    elif extension == ".npz":
        raw = load_npz_features(source)
    elif source in BUNDLED:
        raw = BUNDLED[source]()
    else:
        raise DataError(_unknown_source(source))
    if encoding is None or extension not in (".csv", ".tsv", ".frame"):
        encoding = encoding or plain_encoding(raw.feature_names)
        if len(encoding.columns) != raw.x.shape[1]:
            raise DataError(
                f"{source} has {raw.x.shape[1]} feature columns, the model takes "
                f"{len(encoding.columns)}"
            )
    kept = np.flatnonzero(finite_rows(raw, encoding, drop_nonfinite))
    return Features(encoding.transform(raw, kept), kept, len(raw.x))


def infer_task(raw: RawTable) -> tuple[str, str]:
    """(the task, why): classification for text, booleans or a few whole numbers."""
    if raw.source in DATASET_TASKS:
        return DATASET_TASKS[raw.source], f"{raw.source} is a {DATASET_TASKS[raw.source]} data set"
    y = raw.y
    if y.shape[1] != 1:
        return "regression", f"{y.shape[1]} target columns"
    name = shown(raw.target_names[0])
    if y.dtype.kind in "UOSb":
        labels = {label for label in y[:, 0].tolist() if label != ""}
        if y.dtype.kind != "b" and decimal_commas(np.array(sorted(labels), dtype=object)):
            raise DataError(
                f"{raw.source}: the target {name} holds numbers written with a decimal comma "
                f'({sorted(labels)[0]!r:.40}); read them as numbers: decimal=","'
            )
        if y.dtype.kind != "b" and len(labels) < 2:
            raise DataError(
                f"{raw.source}: the target {name} holds the text {len(labels)} label(s) "
                f"{sorted(labels)[:1]!r:.60}; a classifier needs two classes or more"
            )
        return (
            "classification",
            f"the target {name} holds {'text' if y.dtype.kind != 'b' else 'true/false'} labels",
        )
    values = y[:, 0].astype(np.float64)
    values = values[np.isfinite(values)]
    distinct = np.unique(values)
    if (
        len(distinct) >= 2
        and (distinct == np.round(distinct)).all()
        and len(distinct) <= MAX_INFERRED_CLASSES
    ):
        return "classification", f"the target {name} holds {len(distinct)} distinct whole numbers"
    return "regression", f"the target {name} holds numbers, not a few classes"


def _read(
    source: str | Frame,
    target: str | None,
    task: str | None,
    columns: Columns,
    form: CsvFormat,
) -> RawTable:
    if is_frame(source):
        return frame_table(source, target, task)
    extension = os.path.splitext(source)[1].lower()
    if extension in (".csv", ".tsv"):
        return load_csv(source, target, task, form, columns.categorical or ())
    if extension in _FILE_LOADERS:
        return _FILE_LOADERS[extension](source, target, task or "classification")
    if source in BUNDLED:
        if target is not None:
            raise DataError(f"the bundled data set {source!r} has a fixed target; leave it unset")
        return BUNDLED[source]()
    raise DataError(_unknown_source(source))


def _unknown_source(source: str) -> str:
    if os.path.exists(source):
        return f"{source}: handprop reads .csv, .tsv, .npy and .npz files; convert or rename it"
    return (
        f"unknown data set {source!r}: expected one of {', '.join(sorted(BUNDLED))}, "
        "or the path of an existing file ending .csv, .tsv, .npy or .npz"
    )
