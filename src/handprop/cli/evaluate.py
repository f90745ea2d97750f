"""``handprop evaluate``: a saved model's metrics on a data set."""

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from handprop._types import Array
from handprop.cli.arguments import DATA_HELP
from handprop.losses import LOSSES
from handprop.metrics import accuracy, mean_squared_error, r2_score

if TYPE_CHECKING:
    from handprop.cli.saved import SavedModel
    from handprop.data import Dataset


def add_parser(commands: Any) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="print a saved model's metrics on a data set",
        description="Accuracy and loss (classification), or R², MSE and loss (regression).",
    )
    evaluate.add_argument("model", type=Path, help="a model file written by handprop train")
    evaluate.add_argument("--data", required=True, help=DATA_HELP)
    evaluate.add_argument("--target", help="target column(s); default: the model's")
    evaluate.add_argument("--json", action="store_true", help="print exactly one JSON object")
    evaluate.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from handprop.cli.saved import open_model

    return evaluate(open_model(args.model), args.data, args.target, args.json, sys.stdout)


def evaluate(saved: "SavedModel", data: str, target: str | None, as_json: bool, out: TextIO) -> int:
    """Print the model's metrics on ``data``: text, or exactly one JSON object with ``as_json``."""
    from handprop.data import load_dataset

    dataset = load_dataset(data, target=_target(saved, data, target), task=saved.task)
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
        finite = {k: v if math.isfinite(v) else None for k, v in scores.items()}
        out.write(json.dumps(finite, allow_nan=False) + "\n")
    else:
        out.write("".join(f"{name}: {value:.6g}\n" for name, value in scores.items()))
    return 0


def _classification_scores(
    saved: "SavedModel", x: Array, labels: Array, loss_fn: Any
) -> dict[str, Any]:
    """Accuracy and mean loss, batch by batch: memory grows with the batch, not the data."""
    correct, losses = 0, []
    for start, scores in saved.output_batches(x):
        batch = labels[start : start + len(scores)]
        correct += round(accuracy(scores, batch) * len(batch))
        losses.append((loss_fn.forward(scores, batch), len(batch)))
    loss = losses[0][0] if len(losses) == 1 else sum(m * n for m, n in losses) / len(labels)
    return {"accuracy": correct / len(labels), "loss": loss}


def _regression_scores(
    saved: "SavedModel", outputs: Array, y: Array, loss_fn: Any
) -> dict[str, Any]:
    scaler = saved.scaler("y_scaler")
    y_pred = outputs if scaler is None else scaler.inverse_transform(outputs)
    y_trained = y if scaler is None else scaler.transform(y).astype(outputs.dtype)
    return {
        "r2": r2_score(y_pred, y),
        "mse": mean_squared_error(y_pred, y),
        "loss": loss_fn.forward(outputs, y_trained),
    }


def _target(saved: "SavedModel", data: str, target: str | None) -> str | None:
    """The target columns: as given, else (for a CSV file) the ones the model was trained on."""
    names = saved.info.get("target_names")
    if target is None and data.endswith(".csv") and isinstance(names, list) and names:
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
