"""``handprop train --data FILE.npy``: the training data over a memory map, never loaded whole.

The rows held out for validation are those the in-memory path holds out (the same
seeded draw); the standardisation statistics are measured a chunk at a time (under K
ranks, each rank its share, merged); mini-batches gather their rows when indexed.
"""

from typing import Any, cast

import numpy as np

from handprop._types import Array
from handprop.cli.config import TrainConfig
from handprop.cli.prepared import Prepared, saved_scaler, scaler_from_moments
from handprop.data import Dataset, Standardizer
from handprop.data.mapped import MappedRows, MappedTable, open_table
from handprop.data.transform import hold_out
from handprop.distributed import Communicator


def prepare_mapped(
    config: TrainConfig, saved: dict[str, Any] | None, comm: Communicator | None
) -> Prepared:
    """As ``prepare``, with every array a ``MappedRows`` over ``config.data``."""
    table = open_table(
        config.data, target=config.target, task=config.task,
        drop_nonfinite=config.drop_nonfinite, comm=comm,
    )  # fmt: skip
    training, validation, test = _split(len(table), config)
    classification = table.classes is not None
    x_scaler = y_scaler = None
    if saved is not None:
        x_scaler, y_scaler = (
            saved_scaler(saved.get("x_scaler")),
            saved_scaler(saved.get("y_scaler")),
        )
    elif config.standardize:
        x_scaler = _scaler(MappedRows(table, training, table.features, None, "float64"), comm)
        if not classification:
            y_scaler = _scaler(MappedRows(table, training, table.targets, None, "float64"), comm)

    def arrays(rows: Array) -> tuple[Array, Array]:
        x = MappedRows(table, rows, table.features, x_scaler, config.dtype)
        y = MappedRows(table, rows, table.targets, y_scaler, config.dtype, classification)
        return cast(Array, x), cast(Array, y)  # indexable by rows, as fit needs

    train_x, train_y = arrays(training)
    held_out = None if validation is None else arrays(validation)
    tested = None if test is None else arrays(test)
    return Prepared(_described(table), train_x, train_y, held_out, x_scaler, y_scaler, tested)


def _split(n: int, config: TrainConfig) -> tuple[Array, Array | None, Array | None]:
    """(training, validation, test rows) of the table: those the in-memory path holds out
    (the test rows first, never seen in training)."""
    rows, test = hold_out(n, config.test_fraction, np.random.default_rng([config.seed, 3]))
    kept, held = hold_out(
        len(rows), config.validation_fraction, np.random.default_rng([config.seed, 0])
    )
    return rows[kept], None if held is None else rows[held], test


def _scaler(rows: MappedRows, comm: Communicator | None) -> Standardizer:
    return scaler_from_moments(rows.moments(comm), rows.table.source)


def _described(table: MappedTable) -> Dataset:
    """A Dataset of no rows that names the table's columns and classes (the rows stay mapped)."""
    width = len(table.target_names)
    y = np.empty((0, width)) if table.classes is None else np.empty(0, dtype=np.int64)
    x = np.empty((0, len(table.feature_names)))
    return Dataset(x, y, table.feature_names, table.target_names, table.classes, table.source)
