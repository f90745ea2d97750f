"""Reading a ``.csv`` file: a header row of column names, then one sample a row."""

import csv
from collections import Counter
from collections.abc import Sequence

import numpy as np

from handprop._types import Array
from handprop.data.dataset import DataError
from handprop.data.raw import RawTable, cannot_read, check_one_target, shown


def load_csv(path: str, target: str | None, task: str) -> RawTable:
    header, rows = _read_csv(path)
    targets = _csv_target_columns(path, header, target)
    features = [j for j in range(len(header)) if j not in targets]
    if not features:
        raise DataError(f"{path}: every column is a target; at least one feature column is needed")
    target_names = tuple(header[j] for j in targets)
    x = _csv_numbers(path, header, rows, features, "")
    if task == "classification":
        check_one_target(path, target_names)
        y = _csv_labels(rows, targets[0])
    else:
        y = _csv_numbers(path, header, rows, targets, ' (class labels need task="classification")')
    lines = [line for line, _ in rows]
    feature_names = tuple(header[j] for j in features)
    return RawTable(x, y, feature_names, target_names, path, lambda row: f"line {lines[row]}")


def load_csv_features(path: str, names: Sequence[str] | None) -> RawTable:
    """The columns called ``names`` (default: all); other columns, such as targets, are ignored."""
    header, rows = _read_csv(path)
    wanted = list(header) if names is None else list(names)
    index = {name: j for j, name in enumerate(header)}  # not header.index: a million columns
    missing = [name for name in wanted if name not in index]
    if missing:
        raise DataError(
            f"{path} lacks the feature column(s) {_listed(missing, 8)}; it has {_listed(header)}"
        )
    x = _csv_numbers(path, header, rows, [index[name] for name in wanted], "")
    lines = [line for line, _ in rows]
    return RawTable(
        x, np.empty((len(rows), 0)), tuple(wanted), (), path, lambda r: f"line {lines[r]}"
    )


def _read_csv(path: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header's column names and the (line number, cells) of every non-blank row."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            rows = [(reader.line_num, row) for row in reader if row]
    except OSError as error:
        raise DataError(cannot_read(path, error)) from None
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
        raise DataError(f"{path}: the header names column {shown(repeated[0])} twice; rename one")
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
            raise DataError(
                f"{path} has no column {shown(name)}; its columns are {_listed(header)}"
            )
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
                    f"{path} line {line}, column {shown(header[j])}: {_cell(row[j])} is not a "
                    f"number{hint}"
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
    """Class labels (N, 1): floats if every cell is a number, else str objects ("" when empty).

    Not numpy text (dtype U), whose every cell is as wide as the longest: one label of
    100,000 characters in 20,000 rows would take 8 GB.
    """
    cells = [row[column].strip() for _, row in rows]
    numbers = [_number(cell) for cell in cells]
    if all(number is not None for number in numbers):
        return np.array(numbers, dtype=np.float64)[:, None]
    labels = np.empty((len(cells), 1), dtype=object)
    labels[:, 0] = cells
    return labels


def _listed(names: Sequence[str], limit: int = 20) -> str:
    """The first ``limit`` names, quoted, and how many more there are."""
    listed = ", ".join(shown(name) for name in names[:limit])
    return listed + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _cell(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."
