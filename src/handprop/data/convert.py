"""``convert_csv``: a CSV file to a ``.npy`` file and its sidecar, streamed in chunks.

The CSV file is read twice, a chunk of rows at a time, so memory stays bounded
whatever its size: the first pass checks every row and finds which target columns
hold text labels (and which labels), the second writes float64 rows. A text label
is stored as its index among the column's sorted labels; the sidecar
(``handprop.data.sidecar``) keeps the column names, the targets and those labels, so
that ``train --data data.npy`` names things as ``train --data data.csv`` did. An
empty cell is stored as NaN, as the CSV reader reads it.
"""

import csv
import io
import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from handprop._types import Array
from handprop.checkpoint.files import write_atomically
from handprop.data.dataset import DataError
from handprop.data.raw import cannot_read, shown
from handprop.data.sidecar import Columns, sidecar_path

CHUNK_CELLS = 2**19  # cells parsed at a time (~40 MB of Python strings)


def convert_csv(source: str, destination: str, target: str | None = None) -> Columns:
    """Write the CSV file ``source`` as the .npy file ``destination`` and its sidecar.

    ``target``: the target column(s), ``"a"`` or ``"a,b"``; default the last column.
    Shape: the .npy holds (N, C) float64, the CSV's C columns in their order.
    """
    header = _header(source)
    targets = _targets(source, header, target)
    count, labels = 0, {name: set[str]() for name in targets}
    for lines, rows in _chunks(source, header):
        count += len(rows)
        _check_chunk(source, header, targets, lines, rows, labels)
    if count == 0:
        raise DataError(f"{source} has a header row but no data rows")
    text = {name: tuple(sorted(found)) for name, found in labels.items() if found}
    columns = Columns(tuple(header), tuple(targets), text)
    write_atomically(Path(destination), _npy_bytes(source, header, count, text))
    write_atomically(sidecar_path(destination), columns.to_json())
    return columns


def _header(source: str) -> list[str]:
    with _opened(source) as file:
        first = next((row for row in csv.reader(file) if row), None)
    if first is None:
        raise DataError(f"{source} is empty; expected a header row of column names, then the data")
    header = [name.strip() for name in first]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise DataError(f"{source}: the header names column {shown(repeated[0])} twice; rename one")
    return header


def _targets(source: str, header: list[str], target: str | None) -> list[str]:
    names = [header[-1]] if target is None else [name.strip() for name in target.split(",")]
    for name in names:
        if name not in header:
            raise DataError(f"{source} has no column {shown(name)}")
    if len(set(names)) != len(names) or len(names) == len(header):
        raise DataError(f"target must name distinct columns, not all of them: {target!r}")
    return names


def _opened(source: str) -> io.TextIOWrapper:
    try:
        return open(source, newline="", encoding="utf-8-sig")
    except OSError as error:
        raise DataError(cannot_read(source, error)) from None


def _chunks(source: str, header: list[str]) -> Iterator[tuple[list[int], list[list[str]]]]:
    """(line numbers, cells) of the data rows, ``CHUNK_CELLS`` cells at a time."""
    size = max(1, CHUNK_CELLS // len(header))
    with _opened(source) as file:
        reader = csv.reader(file)
        try:
            next(row for row in reader if row)  # the header
            while True:
                chunk = [(reader.line_num, row) for row in itertools.islice(reader, size) if row]
                if not chunk:
                    return
                for line, row in chunk:
                    if len(row) != len(header):
                        raise DataError(
                            f"{source} line {line} has {len(row)} cells, but the header has "
                            f"{len(header)} columns; every row needs one cell per column"
                        )
                yield [line for line, _ in chunk], [row for _, row in chunk]
        except UnicodeDecodeError:
            raise DataError(f"{source} is not UTF-8 text; save it as a UTF-8 CSV file") from None
        except csv.Error as error:
            raise DataError(f"{source} is not a valid CSV file: {error}") from None


def _check_chunk(
    source: str, header: list[str], targets: list[str], lines: list[int],
    rows: list[list[str]], labels: dict[str, set[str]],
) -> None:  # fmt: skip
    """Every feature cell a number; the distinct labels of targets that hold text."""
    if not any(labels.values()) and _all_floats(rows) is not None:  # the usual chunk
        return
    for j, name in enumerate(header):
        cells = [row[j] for row in rows]
        if name in targets and (labels[name] or not _numbers(cells)):
            labels[name].update(cell.strip() for cell in cells if cell.strip())
        elif name not in targets:
            _parse(source, name, cells, lines)


def _numbers(cells: list[str]) -> bool:
    try:
        _as_floats(cells)
    except ValueError:
        return False
    return True


def _all_floats(rows: list[list[str]]) -> Array | None:
    """Every cell of the rows as float64 (N, C), or None if one is empty or not a number."""
    try:
        values = np.array(list(map(float, itertools.chain.from_iterable(rows))))
    except ValueError:
        return None
    return values.reshape(len(rows), -1)


def _as_floats(cells: list[str]) -> Array:
    """The cells as float64; an empty cell is NaN, as the CSV reader reads it."""
    return np.array([float(cell.strip() or "nan") for cell in cells])


def _parse(source: str, name: str, cells: list[str], lines: list[int]) -> Array:
    try:
        return _as_floats(cells)
    except ValueError:
        for line, cell in zip(lines, cells, strict=True):
            try:
                float(cell.strip() or "nan")
            except ValueError:
                shown_cell = repr(cell) if len(cell) <= 60 else repr(cell[:60]) + "..."
                raise DataError(
                    f"{source} line {line}, column {shown(name)}: {shown_cell} is not a number"
                ) from None
        raise


def _npy_bytes(
    source: str, header: list[str], count: int, text: dict[str, tuple[str, ...]]
) -> Iterator[bytes]:
    """The .npy file: its header, then float64 rows a chunk at a time."""
    start = io.BytesIO()
    npy_format.write_array_header_1_0(
        start, {"descr": "<f8", "fortran_order": False, "shape": (count, len(header))}
    )
    yield start.getvalue()
    codes = {
        name: {label: float(k) for k, label in enumerate(labels)} for name, labels in text.items()
    }
    written = 0
    for lines, rows in _chunks(source, header):
        block = None if codes else _all_floats(rows)
        if block is not None:
            written += len(rows)
            yield block.astype("<f8", copy=False).tobytes()
            continue
        block = np.empty((len(rows), len(header)), dtype="<f8")
        for j, name in enumerate(header):
            cells = [row[j] for row in rows]
            if name in codes:
                block[:, j] = [codes[name].get(cell.strip(), np.nan) for cell in cells]
            else:
                block[:, j] = _parse(source, name, cells, lines)
        written += len(rows)
        yield block.tobytes()
    if written != count:
        raise DataError(f"{source} changed while it was converted; convert it again")
