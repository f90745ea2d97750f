"""A saved model as ``evaluate`` and ``predict`` use it: its network and what it records.

The model file records what training did to the data (standardisation, class
names, target columns); both commands apply the same to the data given to them.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from handprop._types import Array
from handprop.checkpoint import load_model
from handprop.checkpoint.limits import BATCH
from handprop.cli.metadata import check_finite_weights, check_model_info, widths
from handprop.cli.prepared import check_input_width
from handprop.data import CsvFormat, Encoding, Standardizer
from handprop.data.encoding import plain_encoding
from handprop.data.images import load_image_dataset, load_image_features, standardize_channels
from handprop.layers import Sequential

if TYPE_CHECKING:
    from handprop.data import Dataset

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

    @property
    def input_shape(self) -> tuple[int, int, int] | None:
        """(C, H, W) for a network trained on images (checked by check_model_info), else None."""
        shape = self.info.get("input_shape")
        return None if shape is None else (int(shape[0]), int(shape[1]), int(shape[2]))

    def images(self, source: str) -> "Dataset":
        """The images of ``source`` (digits, or an .npz with x and y) as a Dataset of
        flattened rows, after checking they have the shape the network was trained on."""
        dataset, shape = load_image_dataset(source, self.task)
        self._check_image_shape(source, shape)
        return dataset

    def image_features(self, source: str) -> Array:
        """The images of ``source`` (digits, .npz's x, or a .npy (N, C, H, W)), flattened."""
        x, shape = load_image_features(source)
        self._check_image_shape(source, shape)
        return x

    def _check_image_shape(self, source: str, shape: tuple[int, int, int]) -> None:
        if shape != self.input_shape:
            raise ValueError(
                f"{source} holds images of shape {shape}, but {self.path} takes "
                f"{self.input_shape}; use the data the model was trained with"
            )

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
        """Raw features as the network takes them: standardised, in its dtype; flattened
        images as images (N, C, H, W), each channel standardised."""
        check_input_width(self.model, x.shape[1], self.path, "the data")
        scaler, shape = self.scaler("x_scaler"), self.input_shape
        if shape is None:
            x = x if scaler is None else scaler.transform(x)
        elif scaler is None:
            x = x.reshape(len(x), *shape)
        else:
            x = standardize_channels(x, scaler, shape)
        dtype = self.model.parameters()[0].dtype
        return np.ascontiguousarray(x, dtype=dtype)


def open_model(path: Path) -> SavedModel:
    """The model file at ``path``, every field of its metadata checked, its weights finite."""
    model, info = load_model(path)
    check_finite_weights(str(path), model)
    check_model_info(str(path), model, info)
    return SavedModel(str(path), model, info)
