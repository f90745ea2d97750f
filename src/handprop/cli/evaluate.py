"""``handprop evaluate``: a saved model's metrics on a data set."""

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from handprop._text import plain
from handprop._types import Array
from handprop.cli.arguments import DATA_HELP, add_backend_options, add_csv_options, placement
from handprop.losses import LOSSES
from handprop.metrics import (
    balanced_accuracy,
    confusion_matrix,
    mean_squared_error,
    per_class_scores,
    r2_score,
)

if TYPE_CHECKING:
    from handprop.cli.saved import SavedModel
    from handprop.data import CsvFormat, Dataset, Encoding


def add_parser(commands: Any) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="print a saved model's metrics on a data set",
        description=(
            "Classification: accuracy, balanced accuracy, loss, per-class precision, recall "
            "and F1, and the confusion matrix. Regression: R², MSE, RMSE and MAE in the "
            "target's units, and the loss on the scale the network was trained on."
        ),
    )
    evaluate.add_argument("model", type=Path, help="a model file written by handprop train")
    evaluate.add_argument("--data", required=True, help=DATA_HELP)
    evaluate.add_argument("--target", help="target column(s); default: the model's")
    evaluate.add_argument("--json", action="store_true", help="print exactly one JSON object")
    add_reading_options(evaluate)
    evaluate.set_defaults(run=run)


def add_reading_options(parser: Any) -> None:
    """--delimiter, --decimal (default: the model's), --drop-nonfinite, --backend, --device."""
    add_csv_options(parser)
    add_backend_options(parser)
    parser.add_argument(
        "--drop-nonfinite",
        action="store_true",
        help="drop rows with a missing cell the model does not impute, instead of refusing",
    )


def run(args: argparse.Namespace) -> int:
    from handprop.cli.saved import open_model

    xp = placement(args)
    saved = open_model(args.model).to(xp)
    reading = Reading(saved.csv_format(args.delimiter, args.decimal), args.drop_nonfinite)
    return evaluate(saved, args.data, args.target, args.json, sys.stdout, reading)


@dataclass(frozen=True)
class Reading:
    """How evaluate and predict read their data: a CSV's format, and whether to drop rows."""

    form: "CsvFormat | None" = None  # None: found in the file
    drop_nonfinite: bool = False


def model_encoding(saved: "SavedModel", data: str) -> "Encoding | None":
    """The encoding to apply to ``data``: the model's for a table of named columns, or one that
    imputes or one-hot encodes; None where the columns are taken as they are (arrays)."""
    encoding = saved.encoding
    if encoding is None or (encoding.is_plain and not data.lower().endswith((".csv", ".tsv"))):
        return None
    return encoding


def evaluate(
    saved: "SavedModel", data: str, target: str | None, as_json: bool, out: TextIO,
    reading: Reading = Reading(),
) -> int:  # fmt: skip
    """Print the model's metrics on ``data``: text, or exactly one JSON object with ``as_json``."""
    from handprop.data import CsvFormat, load_dataset

    dataset = load_dataset(
        data, target=_target(saved, data, target), task=saved.task,
        drop_nonfinite=reading.drop_nonfinite, form=reading.form or CsvFormat(),
        encoding=model_encoding(saved, data),
    )  # fmt: skip
    loss_fn = LOSSES[str(saved.info.get("loss", "mse"))]()
    with np.errstate(over="ignore", invalid="ignore"):  # a score that overflows is reported
        if saved.classes is not None:
            labels = _model_labels(saved, dataset)
            scores = _classification_scores(saved, dataset.x, labels, loss_fn)
        else:
            outputs = saved.outputs(dataset.x)
            scores = _regression_scores(saved, outputs, dataset.y.astype(outputs.dtype), loss_fn)
    scores["n"] = len(dataset)
    if as_json:  # JSON has no NaN or Infinity: null stands for a score that is not finite
        out.write(json.dumps(_finite(scores), allow_nan=False) + "\n")
    else:
        out.write(_text(scores))
    return 0


def _classification_scores(
    saved: "SavedModel", x: Array, labels: Array, loss_fn: Any
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, mean loss, per-class scores and the confusion matrix,
    batch by batch: memory grows with the batch, not the data."""
    assert saved.classes is not None
    n_classes = len(saved.classes)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    losses = []
    for start, scores in saved.output_batches(x):
        batch = labels[start : start + len(scores)]
        confusion += confusion_matrix(np.argmax(scores, axis=1), batch, n_classes)
        losses.append((loss_fn.forward(scores, batch), len(batch)))
    loss = losses[0][0] if len(losses) == 1 else sum(m * n for m, n in losses) / len(labels)
    per_class = per_class_scores(confusion)
    return {
        "accuracy": float(np.trace(confusion)) / len(labels),
        "balanced_accuracy": balanced_accuracy(confusion),
        "loss": loss,
        "per_class": [
            {"class": label, **{k: plain(v[i]) for k, v in per_class.items()}}
            for i, label in enumerate(saved.classes)
        ],
        "confusion_matrix": confusion.tolist(),
    }


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _text(scores: dict[str, Any]) -> str:
    """The scores a line each; per-class scores as a table, then the confusion matrix."""
    lines = [f"{k}: {v:.6g}" for k, v in scores.items() if isinstance(v, int | float)]
    if scores.get("loss_scale") == "standardized":
        lines.append(
            "(r2, mse, rmse and mae are in the target's units; loss is on the standardised "
            "targets the network was trained on)"
        )
    if "per_class" in scores:
        rows = scores["per_class"]
        width = max(len("class"), *(len(str(row["class"])) for row in rows)) + 2
        lines.append(f"{'class':<{width}}precision  recall  f1      support")
        lines += [
            f"{row['class']!s:<{width}}{row['precision']:<11.4f}{row['recall']:<8.4f}"
            f"{row['f1']:<8.4f}{row['support']}"
            for row in rows
        ]
        lines.append("confusion matrix (rows: true class, columns: predicted, in that order):")
        lines += ["  " + " ".join(f"{count:>6}" for count in row) for row in
                  scores["confusion_matrix"]]  # fmt: skip
    return "\n".join(lines) + "\n"


def _regression_scores(
    saved: "SavedModel", outputs: Array, y: Array, loss_fn: Any
) -> dict[str, Any]:
    scaler = saved.scaler("y_scaler")
    y_pred = outputs if scaler is None else scaler.inverse_transform(outputs)
    y_trained = y if scaler is None else scaler.transform(y).astype(outputs.dtype)
    mse = mean_squared_error(y_pred, y)
    return {  # r2, mse, rmse and mae in the target's own units; the loss as training saw it
        "r2": r2_score(y_pred, y),
        "mse": mse,
        "rmse": math.sqrt(mse) if mse >= 0 else math.nan,
        "mae": float(np.mean(np.abs(y_pred - y))),
        "loss": loss_fn.forward(outputs, y_trained),
        "loss_scale": "standardized" if scaler is not None else "original",
    }


def _target(saved: "SavedModel", data: str, target: str | None) -> str | None:
    """The target columns: as given, else (for a CSV file) the ones the model was trained on."""
    names = saved.info.get("target_names")
    if (
        target is None
        and data.lower().endswith((".csv", ".tsv"))
        and isinstance(names, list)
        and names
    ):
        return ",".join(str(name) for name in names)
    return target


def _model_labels(saved: "SavedModel", dataset: "Dataset") -> Array:
    """The data's labels as indices into the model's classes (the data may lack some classes)."""
    from handprop.cli.prepared import plain

    assert saved.classes is not None and dataset.classes is not None
    index = {label: i for i, label in enumerate(saved.classes)}
    present = [plain(label) for label in dataset.classes]
    unknown = [label for label in present if label not in index]
    if unknown:
        raise ValueError(
            f"the data has labels the model never saw: {unknown[:5]}; "
            f"{saved.path} knows {saved.classes[:20]}"
        )
    lookup = np.array([index[label] for label in present], dtype=np.int64)
    labels: Array = lookup[dataset.y]
    return labels
