"""Reading a plain CSV file with pandas' C parser (``pip install 'handprop[csv]'``): 20,000 rows
x 50 numbers in a fraction of the time and memory of Python's csv module.

Only a file that nothing can go wrong with comes this way: no quotes, no carriage returns,
no blank lines, and exactly one cell per column on every line (counted before parsing). Any
other file, and any file pandas stumbles on, returns None: Python's csv module then reads it
and names whatever is wrong, so messages and results never depend on pandas being installed.
Columns pandas does not read as numbers are handed on as texts, for the same checks.
"""

import csv
import importlib
from typing import Any

import numpy as np

from handprop._types import Array
from handprop.data.csv_table import MISSING_TEXT, CsvTable

#: Wider files go through the csv module: pandas keeps a Series per column (slow at 200,000).
_MAX_WIDTH = 4096
#: pandas' missing markers: the case variants of MISSING_TEXT that people write.
_NA = sorted({v for m in MISSING_TEXT for v in (m, m.upper(), m.capitalize())} - {""})


def read_plain_csv(path: str, delimiter: str, decimal: str) -> CsvTable | None:
    """The table through pandas, or None (pandas missing, or a file it should not read)."""
    try:
        pandas = importlib.import_module("pandas")
    except ImportError:
        return None
    try:
        return _read(pandas, path, delimiter, decimal)
    except Exception:  # anything pandas raises: the csv module reads it and says what is wrong
        return None


def _read(pandas: Any, path: str, delimiter: str, decimal: str) -> CsvTable | None:
    with open(path, "rb") as file:
        data = file.read()
    data = data.removeprefix(b"\xef\xbb\xbf")
    # counted in bytes: in UTF-8 no byte of a longer character is "\n" or a delimiter
    if b'"' in data or b"\r" in data:
        return None
    newlines, delimiters = _count(data, b"\n", delimiter.encode())
    lines = newlines + (not data.endswith(b"\n"))
    first = data[: data.find(b"\n") if newlines else len(data)].decode("utf-8")
    header = [name.strip() for name in next(csv.reader([first], delimiter=delimiter))]
    width = len(header)
    if not 2 <= width <= _MAX_WIDTH or len(set(header)) != width or lines < 2:
        return None
    # Too few or too many cells. A line with too few (a blank one too) would need another
    # with too many to make up the count, and pandas' C parser refuses a line with too many.
    if delimiters != lines * (width - 1):
        return None
    del data
    frame = pandas.read_csv(
        path, sep=delimiter, header=None, skiprows=1, names=list(range(width)), index_col=False,
        na_values=_NA, keep_default_na=False, decimal=decimal, encoding="utf-8-sig",
        engine="c", skip_blank_lines=False,
    )  # fmt: skip
    if len(frame) != lines - 1:
        return None
    found = [_column(frame[j]) for j in range(width)]
    columns = [column for column in found if column is not None]
    if len(columns) != width:
        return None
    return CsvTable(header, delimiter, len(frame), None, columns.__getitem__)


def _count(data: bytes, newline: bytes, delimiter: bytes) -> tuple[int, int]:
    """How many times ``data`` holds the byte ``newline`` and ``delimiter``: numpy's compare,
    a MiB at a time (4-8x ``bytes.count`` for bytes as frequent as these, no large temporary)."""
    if len(delimiter) != 1:  # a character beyond ASCII
        return data.count(newline), data.count(delimiter)
    found, step = np.zeros(2, dtype=np.int64), 1 << 20
    codes = np.frombuffer(data, dtype=np.uint8)
    for start in range(0, len(codes), step):
        block = codes[start : start + step]
        found += np.count_nonzero(block == newline[0]), np.count_nonzero(block == delimiter[0])
    return int(found[0]), int(found[1])


def _column(series: Any) -> Array | list[str] | None:
    """Numbers as float64, texts as str ("" where pandas found a missing marker); None for
    what pandas turned into something else (true/false), whose texts it did not keep."""
    kind = series.dtype.kind
    if kind in "iuf":
        numbers: Array = series.to_numpy(dtype=np.float64)
        return numbers
    if kind in "OUT" or str(series.dtype) in ("str", "string"):
        return ["" if value is None or value != value else str(value) for value in series.tolist()]
    return None
