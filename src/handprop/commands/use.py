"""``handprop evaluate`` and ``handprop predict``: a saved model on new data.

The model file records what training did to the data (standardisation, class
names, target columns); both commands apply the same to the data given here.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from handprop._types import Array
from handprop.checkpoint import load_model
from handprop.commands import check_output
from handprop.commands.prepared import check_input_width
from handprop.data import Dataset, Standardizer, load_dataset, load_features
from handprop.layers import Sequential
from handprop.losses import LOSSES
from handprop.metrics import accuracy, mean_squared_error, r2_score


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

    def scaler(self, key: str) -> Standardizer | None:
        saved = self.info.get(key)
        return None if saved is None else Standardizer.from_json(saved)

    def outputs(self, x: Array) -> Array:
        """The network's raw outputs (class scores, or standardised targets) for raw features."""
        check_input_width(self.model, x.shape[1], self.path, "the data")
        scaler = self.scaler("x_scaler")
        x = x if scaler is None else scaler.transform(x)
        dtype = self.model.parameters()[0].dtype
        return self.model.predict(np.ascontiguousarray(x, dtype=dtype))


def open_model(path: Path) -> SavedModel:
    model, info = load_model(path)
    return SavedModel(str(path), model, info)


def evaluate(saved: SavedModel, data: str, target: str | None, as_json: bool, out: TextIO) -> int:
    """Print the model's metrics on ``data``: text, or exactly one JSON object with ``as_json``."""
    dataset = load_dataset(data, target=_target(saved, data, target), task=saved.task)
    outputs = saved.outputs(dataset.x)
    loss_fn = LOSSES[str(saved.info.get("loss", "mse"))]()
    if saved.classes is not None:
        labels = _model_labels(saved, dataset)
        scores = {"accuracy": accuracy(outputs, labels), "loss": loss_fn.forward(outputs, labels)}
    else:
        scores = _regression_scores(saved, outputs, dataset.y.astype(outputs.dtype), loss_fn)
    scores["n"] = len(dataset)
    if as_json:
        out.write(json.dumps(scores) + "\n")
    else:
        out.write("".join(f"{name}: {value:.6g}\n" for name, value in scores.items()))
    return 0


def _regression_scores(saved: SavedModel, outputs: Array, y: Array, loss_fn: Any) -> dict[str, Any]:
    scaler = saved.scaler("y_scaler")
    y_pred = outputs if scaler is None else scaler.inverse_transform(outputs)
    y_trained = y if scaler is None else scaler.transform(y).astype(outputs.dtype)
    return {
        "r2": r2_score(y_pred, y),
        "mse": mean_squared_error(y_pred, y),
        "loss": loss_fn.forward(outputs, y_trained),
    }


def predict_file(saved: SavedModel, data: str, output: Path, proba: bool) -> int:
    """Write predictions for ``data`` to ``output`` (.csv with a header, or .npy)."""
    if output.suffix not in (".csv", ".npy"):
        raise ValueError(f"--output must end in .csv or .npy, received {output.name!r}")
    check_output("--output", output)
    names = saved.info.get("feature_names")
    x = load_features(data, names if isinstance(names, list) else None)
    outputs = saved.outputs(x)
    header, table = _prediction_table(saved, outputs, proba)
    from handprop.checkpoint import write_atomically

    write_atomically(output, _encode(table, header, output.suffix))
    return 0


def _target(saved: SavedModel, data: str, target: str | None) -> str | None:
    """The target columns: as given, else (for a CSV file) the ones the model was trained on."""
    names = saved.info.get("target_names")
    if target is None and data.endswith(".csv") and isinstance(names, list) and names:
        return ",".join(str(name) for name in names)
    return target


def _model_labels(saved: SavedModel, dataset: Dataset) -> Array:
    """The data's labels as indices into the model's classes (the data may lack some classes)."""
    assert saved.classes is not None and dataset.classes is not None
    index = {label: i for i, label in enumerate(saved.classes)}
    present = [_plain(label) for label in dataset.classes]
    unknown = [label for label in present if label not in index]
    if unknown:
        raise ValueError(
            f"the data has labels the model never saw: {unknown[:5]}; "
            f"{saved.path} knows {saved.classes[:20]}"
        )
    lookup = np.array([index[label] for label in present], dtype=np.int64)
    labels: Array = lookup[dataset.y]
    return labels


def _prediction_table(saved: SavedModel, outputs: Array, proba: bool) -> tuple[list[str], Array]:
    classes = saved.classes
    if classes is None:
        if proba:
            raise ValueError("--proba needs a classification model; this one does regression")
        scaler = saved.scaler("y_scaler")
        y_pred = outputs if scaler is None else scaler.inverse_transform(outputs)
        names = saved.info.get("target_names") or [f"y{i}" for i in range(y_pred.shape[1])]
        return [str(name) for name in names], y_pred
    if proba:
        shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        return [f"p_{label}" for label in classes], shifted / shifted.sum(axis=1, keepdims=True)
    return ["label"], np.array(classes)[np.argmax(outputs, axis=1)]


def _encode(table: Array, header: list[str], suffix: str) -> bytes:
    import io

    if suffix == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, table, allow_pickle=False)
        return buffer.getvalue()
    import csv

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    rows = table.reshape(len(table), -1)
    writer.writerows([_cell(value) for value in row] for row in rows)
    return text.getvalue().encode("utf-8")


def _cell(value: object) -> object:
    """Floats as the shortest text that reads back exactly; everything else as it is."""
    plain = _plain(value)
    return repr(plain) if isinstance(plain, float) else plain


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value
