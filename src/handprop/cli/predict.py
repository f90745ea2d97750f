"""``handprop predict``: a saved model's predictions for a data set, to a .csv or .npy file."""

import argparse
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from handprop._types import Array
from handprop.cli.arguments import DATA_HELP
from handprop.cli.outputs import check_output

if TYPE_CHECKING:
    from handprop.cli.saved import SavedModel


def add_parser(commands: Any) -> None:
    predict = commands.add_parser(
        "predict",
        help="write a saved model's predictions for a data set",
        description=(
            "Predict for every row: class labels (classification) or targets in their original "
            "units (regression). A CSV needs the model's feature columns (others are ignored); "
            "a .npy holds the features only; a .npz its array x."
        ),
    )
    predict.add_argument("model", type=Path, help="a model file written by handprop train")
    predict.add_argument("--data", required=True, help=DATA_HELP)
    predict.add_argument("--output", type=Path, required=True, help="a .csv or .npy file")
    predict.add_argument("--proba", action="store_true", help="class probabilities instead")
    predict.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from handprop.cli.saved import open_model

    return predict_file(open_model(args.model), args.data, args.output, args.proba)


def predict_file(saved: "SavedModel", data: str, output: Path, proba: bool) -> int:
    """Write predictions for ``data`` to ``output`` (.csv with a header, or .npy)."""
    from handprop.checkpoint import write_atomically
    from handprop.data import load_features

    if output.suffix not in (".csv", ".npy"):
        raise ValueError(f"--output must end in .csv or .npy, received {output.name!r}")
    check_output("--output", output)
    names = saved.info.get("feature_names")
    x = load_features(data, names if isinstance(names, list) else None)
    outputs = saved.outputs(x)
    header, table = _prediction_table(saved, outputs, proba)
    write_atomically(output, _encode(table, header, output.suffix))
    return 0


def _prediction_table(saved: "SavedModel", outputs: Array, proba: bool) -> tuple[list[str], Array]:
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
    plain = value.item() if isinstance(value, np.generic) else value
    return repr(plain) if isinstance(plain, float) else plain
