"""A saved model as ``evaluate`` and ``predict`` use it: its network and what it records.

The model file records what training did to the data (standardisation, class
names, target columns); both commands apply the same to the data given to them.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from handprop._types import Array
from handprop.checkpoint import load_model
from handprop.checkpoint.limits import BATCH
from handprop.cli.metadata import check_finite_weights, check_model_info, widths
from handprop.cli.prepared import check_input_width
from handprop.data import CsvFormat, Encoding, Standardizer
from handprop.data.encoding import plain_encoding
from handprop.layers import Sequential

#: The most outputs ``output_batches`` computes at once: 8 MiB of float64.
BATCH_VALUES = 2**20


@dataclass(frozen=True)
class SavedModel:
    """A model file's network and what it records about its training data."""

    path: str
    model: Sequential
    info: dict[str, Any]

    @property
    def task(self) -> str:
        return str(self.info.get("task", "regression"))

    @property
    def classes(self) -> list[Any] | None:
        classes = self.info.get("classes")
        return list(classes) if isinstance(classes, list) else None

    @property
    def encoding(self) -> Encoding | None:
        """How the model's inputs are made from a table's columns (None: not recorded)."""
        saved, names = self.info.get("encoding"), self.info.get("feature_names")
        if saved is not None:
            return Encoding.from_json(saved)
        return None if not isinstance(names, list) else plain_encoding(names)

    def csv_format(self, delimiter: str | None, decimal: str | None) -> CsvFormat:
        """The command line's, else the delimiter and decimal mark the model was trained with."""
        config = self.info.get("config")
        config = config if isinstance(config, dict) else {}
        saved_delimiter, saved_decimal = config.get("delimiter"), config.get("decimal")
        if delimiter is None and saved_delimiter in (",", ";", "\t"):
            delimiter = saved_delimiter
        if decimal is None and saved_decimal in (".", ","):
            decimal = saved_decimal
        return CsvFormat(delimiter, decimal or ".")

    def scaler(self, key: str) -> Standardizer | None:
        saved = self.info.get(key)
        return None if saved is None else Standardizer.from_json(saved)

    def to(self, xp: Any) -> "SavedModel":
        """Compute on the array namespace ``xp`` (``--backend``, ``--device``); returns self."""
        if xp.library != "numpy":
            self.model.to(xp.device)
        return self

    def outputs(self, x: Array) -> Array:
        """The network's raw outputs (class scores, or standardised targets) for raw features."""
        outputs = self.model.predict(self._on_model(self.inputs(x)), batch_size=BATCH)
        return self.model.xp.to_numpy(outputs)  # type: ignore[no-any-return]

    def output_batches(self, x: Array) -> Iterator[tuple[int, Array]]:
        """``(start, outputs)`` for each batch of rows of raw features ``x``.

        A batch has BATCH rows, fewer when the outputs are wide: at most BATCH_VALUES
        outputs, so memory grows with the batch, not with ``x`` (20,000 rows of 10,000
        class scores are 1.6 GB). Each ``outputs`` is the model's own buffer, valid until
        the next batch.
        """
        check_input_width(self.model, x.shape[1], self.path, "the data")
        shape = widths(self.model)
        rows = BATCH if shape is None else max(1, min(BATCH, BATCH_VALUES // shape[1]))
        for start in range(0, len(x), rows):
            inputs = self._on_model(self.inputs(x[start : start + rows]))
            yield start, self.model.xp.to_numpy(self.model.forward(inputs))

    def _on_model(self, x: Array) -> Array:
        """Host features where the model computes (a copy on a torch device)."""
        xp = self.model.xp
        return x if xp.library == "numpy" else xp.from_host(x)

    def inputs(self, x: Array) -> Array:
        """Raw features as the network takes them: standardised, in its dtype."""
        check_input_width(self.model, x.shape[1], self.path, "the data")
        scaler = self.scaler("x_scaler")
        x = x if scaler is None else scaler.transform(x)
        dtype = self.model.parameters()[0].dtype
        return np.ascontiguousarray(x, dtype=dtype)


def open_model(path: Path) -> SavedModel:
    """The model file at ``path``, every field of its metadata checked, its weights finite."""
    model, info = load_model(path)
    check_finite_weights(str(path), model)
    check_model_info(str(path), model, info)
    return SavedModel(str(path), model, info)
