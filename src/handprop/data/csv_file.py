"""Reading a ``.csv`` or ``.tsv`` file: a header row of column names, then one sample a row.

The delimiter (comma, semicolon or tab) is found in the header line unless given; a
decimal comma (``1,5``) can be declared. Cells that are all numbers make a numeric
column; any other column keeps its text, for the encoding (one-hot) to decide on.
"""

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from handprop._types import Array
from handprop.data.csv_pandas import read_plain_csv
from handprop.data.csv_table import MISSING_TEXT, CsvTable
from handprop.data.dataset import DataError
from handprop.data.raw import RawTable, cannot_read, check_one_target, shown

DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}


@dataclass(frozen=True)
class CsvFormat:
    """How a CSV file is written: ``delimiter`` None finds it in the header line (a ``.tsv``
    file's is a tab); ``decimal`` "." or "," (then the delimiter cannot be a comma)."""

    delimiter: str | None = None
    decimal: str = "."


def load_csv(
    path: str, target: str | None, task: str | None, form: CsvFormat, text: Sequence[str] = ()
) -> RawTable:
    """Features and targets; ``text``: columns kept as text even where they hold numbers."""
    table = _read_csv(path, form, plain=not text)
    header, delimiter = table.header, table.delimiter
    targets = _csv_target_columns(path, header, target)
    features = [j for j in range(len(header)) if j not in targets]
    if not features:
        raise DataError(
            f"{path}: every column is a target; at least one feature column is needed "
            f"(read with {DELIMITERS.get(delimiter, repr(delimiter))} as the delimiter; if the "
            'file uses another, name it: delimiter=";")'
        )
    target_names = tuple(header[j] for j in targets)
    keep_text = {j for j in features if header[j] in set(text)}
    x, columns_text = _columns(table, features, form.decimal, keep_text)
    if task == "regression":
        y = _csv_numbers(path, table, targets, form.decimal)
    else:
        if task == "classification":
            check_one_target(path, target_names)
        y = (
            _csv_labels(table, targets[0], form.decimal)
            if len(targets) == 1
            else _csv_numbers(path, table, targets, form.decimal)
        )
    feature_names = tuple(header[j] for j in features)
    return RawTable(x, y, feature_names, target_names, path, table.locate, columns_text)


def load_csv_features(path: str, names: Sequence[str] | None, form: CsvFormat,
                      text: Sequence[str] = ()) -> RawTable:  # fmt: skip
    """The columns called ``names`` (default: all); other columns, such as targets, are ignored."""
    table = _read_csv(path, form, plain=not text)
    header = table.header
    wanted = list(header) if names is None else list(names)
    index = {name: j for j, name in enumerate(header)}  # not header.index: a million columns
    missing = [name for name in wanted if name not in index]
    if missing:
        raise DataError(
            f"{path} lacks the feature column(s) {_listed(missing, 8)}; it has {_listed(header)}"
        )
    keep_text = {index[name] for name in text if name in index}
    x, columns_text = _columns(table, [index[name] for name in wanted], form.decimal, keep_text)
    return RawTable(x, np.empty((table.n, 0)), tuple(wanted), (), path, table.locate, columns_text)


def _delimiter(path: str, form: CsvFormat, first_line: str = "") -> str:
    """The given delimiter; a tab for ``.tsv``; else the most frequent of , ; tab in the header."""
    if form.delimiter is not None:
        return form.delimiter
    if path.lower().endswith(".tsv"):
        return "\t"
    counts = {d: first_line.count(d) for d in DELIMITERS if d != form.decimal}
    best = max(counts, key=lambda d: counts[d]) if counts else ","
    return best if counts.get(best) else ("," if form.decimal != "," else ";")


def _read_csv(path: str, form: CsvFormat, plain: bool = True) -> CsvTable:
    """The file's header and rows: through pandas (when installed) for a ``plain`` file (no
    quotes, one cell per column on every line), else Python's csv module, which also finds
    every problem a file can have and names it."""
    if form.decimal == "," and form.delimiter == ",":
        raise DataError(f"{path}: a decimal comma needs another delimiter, such as ';'")
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            delimiter = _delimiter(path, form, file.readline(1 << 20))
            fast = read_plain_csv(path, delimiter, form.decimal) if plain else None
            if fast is not None:
                return fast
            file.seek(0)  # resets the decoder, which drops the byte order mark again
            reader = csv.reader(file, delimiter=delimiter)
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
    by_column = list(zip(*(row for _, row in rows[1:]), strict=True))  # the rows turned, in C
    lines = [line for line, _ in rows[1:]]
    return CsvTable(header, delimiter, len(rows) - 1, lines, by_column.__getitem__)


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
    index = {name: j for j, name in enumerate(header)}
    for name in names:
        if name not in index:
            raise DataError(
                f"{path} has no column {shown(name)}; its columns are {_listed(header)}"
            )
    if len(set(names)) != len(names):
        raise DataError(f"target names a column twice: {target!r}")
    return [index[name] for name in names]


def _columns(
    table: CsvTable, columns: list[int], decimal: str, text: set[int]
) -> tuple[Array, dict[int, Array]]:
    """Numbers (N, len(columns)), NaN where a cell is missing or text; and the text of every
    column that is not all numbers (or is named in ``text``), by position in ``columns``."""
    numbers = np.empty((table.n, len(columns)))
    texts: dict[int, Array] = {}
    for k, j in enumerate(columns):
        cells = table.cells(j)
        fast = cells if isinstance(cells, np.ndarray) else _all_numbers(cells, decimal)
        if fast is not None and j not in text:
            numbers[:, k] = fast
            continue
        values = [_number(cell, decimal) for cell in cells]
        if j not in text and all(value is not None for value in values):
            numbers[:, k] = values
            continue
        column = np.empty(len(cells), dtype=object)
        stripped = (cell.strip() for cell in cells)
        column[:] = ["" if cell.lower() in MISSING_TEXT else cell for cell in stripped]
        texts[k] = column
        numbers[:, k] = [_NAN if value is None else value for value in values]
    return numbers, texts


_NAN = float("nan")


def _all_numbers(cells: Sequence[str], decimal: str) -> Array | None:
    """The cells as float64 (N,) when every one is a number Python's float reads (numpy's
    loop in C, 10x faster than one call per cell); None if any is not (missing, text)."""
    if decimal != ".":
        return None
    try:
        return np.array(cells, dtype=np.float64)
    except (ValueError, OverflowError):
        return None


def _number(cell: str, decimal: str = ".") -> float | None:
    text = cell.strip()
    if text.lower() in MISSING_TEXT:
        return _NAN
    if decimal == ",":
        if "." in text:
            return None
        text = text.replace(",", ".")
    try:
        return float(text)
    except ValueError:
        return None


def _csv_numbers(path: str, table: CsvTable, columns: list[int], decimal: str) -> Array:
    """The cells of ``columns`` as floats (N, len(columns)); a missing cell reads as NaN."""
    numbers = np.empty((table.n, len(columns)))
    for k, j in enumerate(columns):
        cells = table.cells(j)
        if isinstance(cells, np.ndarray):
            numbers[:, k] = cells
            continue
        for i, cell in enumerate(cells):
            value = _number(cell, decimal)
            if value is None:
                raise DataError(
                    f"{path} line {table.line(i)}, column {shown(table.header[j])}: {_cell(cell)} "
                    'is not a number (class labels need task="classification")'
                )
            numbers[i, k] = value
    return numbers


def _csv_labels(table: CsvTable, column: int, decimal: str) -> Array:
    """Class labels (N, 1): floats if every cell is a number, else str objects ("" when missing).

    Not numpy text (dtype U), whose every cell is as wide as the longest: one label of
    100,000 characters in 20,000 rows would take 8 GB.
    """
    found = table.cells(column)
    if isinstance(found, np.ndarray):
        return found[:, None]
    cells = [cell.strip() for cell in found]
    numbers = [_number(cell, decimal) for cell in cells]
    if all(number is not None for number in numbers):
        return np.array(numbers, dtype=np.float64)[:, None]
    labels = np.empty((len(cells), 1), dtype=object)
    labels[:, 0] = ["" if cell.lower() in MISSING_TEXT else cell for cell in cells]
    return labels


def _listed(names: Sequence[str], limit: int = 20) -> str:
    """The first ``limit`` names, quoted, and how many more there are."""
    listed = ", ".join(shown(name) for name in names[:limit])
    return listed + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _cell(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."
