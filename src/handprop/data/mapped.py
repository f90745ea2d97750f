"""Training data larger than memory: a ``.npy`` file read through a memory map.

``open_table`` checks the header as every ``.npy`` read does, then scans the rows a
chunk at a time (NaN and infinity, class labels); under K ranks each scans its own
contiguous share and the findings are merged. ``MappedRows`` is x or y of some of
those rows: indexing it with a mini-batch's row indices gathers those rows alone
(a copy of the batch, never of the file), standardised, in the model's dtype.

Runs of rows are read through the map, whose touched pages are handed back to the
kernel every ``RELEASE_BYTES``. Scattered rows (a shuffled batch) are read with one
``preadv`` each, in file order, into the batch's array: measured on Linux 6.18, a
fault on a file mapping maps the page cache's whole large folio (~1.3 MB for one
random 512-byte row), so gathering one batch of 512 shuffled rows through the map
held up to the whole file in resident memory; the reads cost ~1.2 us a row.
"""

import mmap
import os
from typing import Any

import numpy as np

from handprop._types import Array
from handprop.data.arrays import npy_target_columns, open_npy
from handprop.data.checks import first_fractional, fractional_label
from handprop.data.dataset import TASKS, DataError
from handprop.data.npy_file import MappedNpy
from handprop.data.raw import check_one_target, shown
from handprop.data.sidecar import Columns, read_columns
from handprop.data.transform import Standardizer
from handprop.distributed import Communicator
from handprop.moments import Moments

CHUNK_BYTES = 2**24  # scan and measure 16 MiB of rows at a time
RELEASE_BYTES = 2**26  # hand back the touched pages after gathering 64 MiB


class MappedTable:
    """The rows of a 2-D .npy file, over a memory map; ``rows``: those kept (None: all).

    Shape: array (N, C); features and targets are column indices into C.
    """

    def __init__(
        self, mapped: MappedNpy, names: tuple[str, ...], targets: list[int], source: str
    ) -> None:
        self.mapped, self.array, self.source = mapped, mapped.array, source
        self.targets = targets
        self.features = [j for j in range(self.array.shape[1]) if j not in targets]
        self.feature_names = tuple(names[j] for j in self.features)
        self.target_names = tuple(names[j] for j in targets)
        self.rows: Array | None = None
        self.values: Array | None = None  # the labels found in the file, sorted
        self.classes: tuple[Any, ...] | None = None  # what each label stands for
        self.gathered = 0

    def __len__(self) -> int:
        return len(self.array) if self.rows is None else len(self.rows)

    def file_rows(self, index: Array | slice) -> Array | slice:
        """The rows of the file that rows ``index`` of the table are."""
        return index if self.rows is None else self.rows[index]

    def gather(self, index: Array | slice, columns: list[int]) -> Array:
        """Rows ``index`` of the table, ``columns`` of them, as a new array."""
        rows = self.file_rows(index)
        if isinstance(rows, slice) or not self.array.flags.c_contiguous:
            block = np.asarray(self.array[rows])  # a run of rows (or Fortran order): the map
            self.touched(block.nbytes + 2 * 2**21)  # and a large folio at either end
        else:
            block = self.read_rows(rows)
        first, last = columns[0], columns[-1]
        if last - first + 1 == len(columns):  # one run of columns
            return np.array(block[:, first : last + 1])
        return block[:, columns]

    def read_rows(self, rows: Array) -> Array:
        """Rows ``rows`` of the file, read one ``preadv`` each, in file order, not mapped."""
        block = np.empty((len(rows), self.array.shape[1]), dtype=self.array.dtype)
        row_bytes = block.shape[1] * block.itemsize
        into = block.data.cast("B")
        descriptor, offset = self.mapped.descriptor, self.mapped.offset
        order = np.argsort(rows, kind="stable")
        for i, row in zip(order.tolist(), rows[order].tolist(), strict=True):
            read = os.preadv(
                descriptor, [into[i * row_bytes : (i + 1) * row_bytes]], offset + row * row_bytes
            )
            if read != row_bytes:
                raise DataError(f"{self.source} was truncated while it was read")
        return block

    def touched(self, nbytes: int) -> None:
        """Count ``nbytes`` of the file read; past RELEASE_BYTES, release the pages."""
        self.gathered += nbytes
        if self.gathered > RELEASE_BYTES:
            self.release()

    def release(self) -> None:
        """Drop the pages of the file this process touched from its memory (not from disk)."""
        self.gathered = 0
        self.mapped.memory.madvise(mmap.MADV_DONTNEED)

    def chunks(self, rows: slice) -> range:
        """The starts of the chunks of ``rows`` (of the table), CHUNK_BYTES at a time."""
        step = max(1, CHUNK_BYTES // max(1, self.array.shape[1] * self.array.itemsize))
        start, stop, _ = rows.indices(len(self))
        return range(start, stop, step)

    def chunk(self, start: int, rows: slice) -> slice:
        step = self.chunks(rows).step
        return slice(start, min(start + step, rows.indices(len(self))[1]))


class MappedRows:
    """x or y of some rows of a MappedTable, gathered when indexed.

    Shape: (N, D) in ``dtype``, standardised with ``scaler``; or, for class labels,
    (N,) int64 indices into ``table.classes``.
    """

    def __init__(
        self, table: MappedTable, rows: Array, columns: list[int], scaler: Standardizer | None,
        dtype: str, labels: bool = False,
    ) -> None:  # fmt: skip
        self.table, self.rows, self.columns = table, rows, columns
        self.scaler, self.labels = scaler, labels
        self.dtype = np.dtype(np.int64 if labels else dtype)
        self.shape = (len(rows),) if labels else (len(rows), len(columns))
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: Array | slice) -> Array:
        block = self.table.gather(self.rows[index], self.columns)
        if self.labels:
            assert self.table.values is not None
            return np.searchsorted(self.table.values, block[:, 0]).astype(np.int64)
        with np.errstate(over="ignore"):
            if self.scaler is not None:
                block = self.scaler.transform(block.astype(np.float64))
            values = np.ascontiguousarray(block, dtype=self.dtype)
        if not np.isfinite(values).all():
            raise DataError(
                f"the rows of {self.table.source} overflow {self.dtype} once standardised with "
                "the training statistics (values near the float64 limit?): rescale the data"
            )
        return values

    def moments(self, comm: Communicator | None) -> Moments:
        """Of these rows as stored (not standardised); over K ranks, of every rank's share."""
        share = slice(None) if comm is None else comm.rows(len(self))
        start, stop, _ = share.indices(len(self))
        step = self.table.chunks(slice(None)).step
        local = Moments.empty(len(self.columns))
        for first in range(start, stop, step):
            rows = np.sort(self.rows[first : min(first + step, stop)])  # in file order
            local = local.merge(Moments.of(self.table.gather(rows, self.columns)))
        self.table.release()
        return local if comm is None else comm.merge_moments(local)


def open_table(
    path: str,
    *,
    target: str | None,
    task: str | None,
    drop_nonfinite: bool,
    comm: Communicator | None = None,
) -> MappedTable:
    """The .npy file at ``path`` over a memory map, its rows scanned and its labels found.

    ``target``: column names (with a sidecar, see ``handprop.data.sidecar``) or 0-based
    indices, default the sidecar's targets or the last column. Under ``comm`` each rank
    scans its share of the rows. ``task`` None: classification when the sidecar says the
    target holds class labels (``handprop convert`` of a CSV with text labels), else
    regression.
    """
    if task is not None and task not in TASKS:
        raise DataError(f"task must be one of {', '.join(TASKS)}, received {task!r}")
    mapped = open_npy(path)
    array = mapped.array
    if array.ndim != 2 or array.shape[1] < 2 or array.dtype.kind not in "biuf":
        raise DataError(
            f"{path} must hold one numeric 2-D array (N, features + targets) with at least 2 "
            f"columns, received shape {array.shape} of {array.dtype}"
        )
    if len(array) == 0:
        raise DataError(f"{path} holds no samples")
    columns = read_columns(path, array.shape[1])
    names = columns.names if columns else tuple(str(j) for j in range(array.shape[1]))
    targets = _targets(path, target, columns, array.shape[1])
    if len(targets) == array.shape[1]:
        raise DataError(f"{path}: every column is a target; at least one feature column is needed")
    if task is None:
        labelled = (
            columns is not None and len(targets) == 1 and names[targets[0]] in columns.classes
        )
        task = "classification" if labelled else "regression"
    table = MappedTable(mapped, names, targets, path)
    _scan(table, task, drop_nonfinite, comm)
    if task == "classification":
        _name_classes(table, columns)
    elif columns is not None and table.target_names[0] in columns.classes:
        raise DataError(
            f"{path}: the target {table.target_names[0]!r} holds class labels; "
            'use task="classification"'
        )
    return table


def _targets(path: str, target: str | None, columns: Columns | None, width: int) -> list[int]:
    if columns is None:
        return npy_target_columns(path, target, width)
    wanted = columns.targets if target is None else tuple(t.strip() for t in target.split(","))
    index = {name: j for j, name in enumerate(columns.names)}
    if all(name in index for name in wanted) and len(set(wanted)) == len(wanted):
        return [index[name] for name in wanted]
    return npy_target_columns(path, target, width)  # indices, or its error


def _scan(table: MappedTable, task: str, drop_nonfinite: bool, comm: Communicator | None) -> None:
    """Refuse (or drop) rows with NaN or infinity; check and collect the class labels."""
    share = slice(None) if comm is None else comm.rows(len(table.array))
    found = _Findings()
    for start in table.chunks(share):
        rows = table.chunk(start, share)
        block = np.asarray(table.array[rows])
        found.add(table, rows, block, task)
        table.touched(block.nbytes)
    table.release()
    n = len(range(len(table.array))[share])
    if found.bad and not drop_nonfinite:
        row, column = found.first
        names = table.feature_names + table.target_names
        name = names[(table.features + table.targets).index(column)]
        raise DataError(
            f"{table.source}: {found.bad} of {n} rows hold NaN, infinity or an empty cell, the "
            f"first at row index {row}, column {shown(name)}; fix them, or drop them "
            "(--drop-nonfinite)"
        )
    parts = (
        [found.summary(drop_nonfinite)]
        if comm is None
        else comm.allgather(found.summary(drop_nonfinite))
    )
    if sum(part[0] for part in parts) == len(table.array):
        raise DataError(
            f"{table.source}: all {len(table.array)} rows hold NaN, infinity or an empty cell; "
            "none is left to use"
        )
    if drop_nonfinite:
        table.rows = np.concatenate([part[1] for part in parts])
    if task == "classification":
        table.values = np.unique(np.concatenate([part[2] for part in parts]))


class _Findings:
    """What a scan of some rows found: bad rows, the rows kept, the distinct labels."""

    def __init__(self) -> None:
        self.bad = 0
        self.first = (0, 0)
        self.kept: list[Array] = []
        self.labels: list[Array] = []

    def add(self, table: MappedTable, rows: slice, block: Array, task: str) -> None:
        bad = ~np.isfinite(block)
        bad_rows = bad.any(axis=1)
        if bad_rows.any():
            if not self.bad:
                row, column = np.argwhere(bad)[0]
                self.first = (rows.start + int(row), int(column))
            self.bad += int(bad_rows.sum())
        self.kept.append(np.flatnonzero(~bad_rows) + rows.start)
        if task == "classification":
            check_one_target(table.source, table.target_names)
            labels = block[~bad_rows, table.targets[0]]
            _check_whole_labels(table, labels, rows.start + np.flatnonzero(~bad_rows))
            self.labels.append(np.unique(labels))

    def summary(self, drop_nonfinite: bool) -> tuple[int, Array, Array]:
        kept = np.concatenate(self.kept) if drop_nonfinite and self.kept else np.empty(0, int)
        labels = np.concatenate(self.labels) if self.labels else np.empty(0)
        return self.bad, kept, labels


def _check_whole_labels(table: MappedTable, labels: Array, rows: Array) -> None:
    at = first_fractional(labels)
    if at is not None:
        where = f"{table.source} row index {int(rows[at])}"
        raise fractional_label(where, table.target_names[0], float(labels[at]))


def _name_classes(table: MappedTable, columns: Columns | None) -> None:
    """``table.classes``: the labels the sidecar gives the codes, or the numbers themselves."""
    assert table.values is not None
    values = table.values.astype(np.int64)
    name = table.target_names[0]
    if columns is None or name not in columns.classes:
        table.classes = tuple(values.tolist())
        return
    labels = columns.classes[name]
    if values.min() < 0 or values.max() >= len(labels):
        raise DataError(
            f"{table.source}: the column {shown(name)} holds codes up to {values.max()}, but its "
            f"sidecar names {len(labels)} classes; convert the CSV file again"
        )
    table.classes = tuple(labels[v] for v in values)
