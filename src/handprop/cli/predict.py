"""``handprop predict``: a saved model's predictions for a data set, to a .csv or .npy file."""

import argparse
import csv
import io
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from handprop._types import Array
from handprop.cli.arguments import DATA_HELP, placement
from handprop.cli.evaluate import Reading, add_reading_options, model_encoding
from handprop.cli.outputs import check_distinct, check_output, data_file
from handprop.losses import log_softmax

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
    predict.add_argument(
        "--output", type=Path, required=True,
        help="a .csv or .npy file, or - for CSV on standard output",
    )  # fmt: skip
    predict.add_argument("--proba", action="store_true", help="class probabilities instead")
    add_reading_options(predict)
    predict.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from handprop.cli.saved import open_model

    # before anything is read: predictions never replace the data or the model
    if str(args.output) != "-":
        check_distinct(
            {"--output": args.output}, {"--data": data_file(args.data), "MODEL": args.model}
        )
    saved = open_model(args.model).to(placement(args))
    reading = Reading(saved.csv_format(args.delimiter, args.decimal), args.drop_nonfinite)
    return predict_file(saved, args.data, args.output, args.proba, reading)


def predict_file(
    saved: "SavedModel", data: str, output: Path, proba: bool,
    reading: Reading = Reading(),  # noqa: B008 (frozen)
) -> int:  # fmt: skip
    """Write predictions for ``data`` to ``output`` (.csv with a header, or .npy; ``-``: CSV
    on standard output, written once every prediction is made).

    Batch by batch into a temporary file renamed onto ``output`` at the end: memory grows
    with the batch, not the data, and a failure leaves ``output`` as it was. Predictions
    that are not finite (features beyond what the model can take) are refused.
    """
    from handprop.checkpoint import write_atomically
    from handprop.data import CsvFormat, load_features

    to_stdout = str(output) == "-"
    if not to_stdout and output.suffix not in (".csv", ".npy"):
        raise ValueError(f"--output must end in .csv or .npy, or be -, received {output.name!r}")
    if not to_stdout:
        check_output("--output", output)
    if proba and saved.classes is None:
        raise ValueError("--proba needs a classification model; this one does regression")
    names = saved.info.get("feature_names")
    x = load_features(
        data, names if isinstance(names, list) else None, encoding=model_encoding(saved, data),
        drop_nonfinite=reading.drop_nonfinite, form=reading.form or CsvFormat(),
    )  # fmt: skip
    tables = (_prediction_table(saved, start, scores, proba) for start, scores in
              saved.output_batches(x))  # fmt: skip
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite outputs are refused
        if to_stdout:
            text = b"".join(_encoded(tables, len(x), ".csv"))  # all, or nothing on an error
            sys.stdout.buffer.write(text)
            sys.stdout.flush()
        else:
            write_atomically(output, _encoded(tables, len(x), output.suffix))
    return 0


def _prediction_table(
    saved: "SavedModel", start: int, outputs: Array, proba: bool
) -> tuple[list[str], Array]:
    """The header and the rows of one batch whose first row is ``start``."""
    if not np.isfinite(outputs).all():
        row = start + int(np.argmin(np.isfinite(outputs).all(axis=1)))
        raise ValueError(
            f"the model's outputs for data row {row + 1} are not finite (features too large "
            "for it?); nothing was written"
        )
    classes = saved.classes
    if classes is None:
        scaler = saved.scaler("y_scaler")
        y_pred = outputs.copy() if scaler is None else scaler.inverse_transform(outputs)
        names = saved.info.get("target_names") or [f"y{i}" for i in range(y_pred.shape[1])]
        return [str(name) for name in names], y_pred
    if proba:
        return [f"p_{label}" for label in classes], np.exp(log_softmax(outputs))
    return ["label"], np.array(classes)[np.argmax(outputs, axis=1)]


def _encoded(tables: Iterator[tuple[list[str], Array]], rows: int, suffix: str) -> Iterator[bytes]:
    """The file's bytes, a batch at a time: a .npy header for ``rows`` rows, or CSV text."""
    for position, (header, table) in enumerate(tables):
        if position == 0:
            yield _npy_header(table, rows) if suffix == ".npy" else _csv_rows([header])
        if suffix == ".npy":
            yield np.ascontiguousarray(table).tobytes()
        else:
            yield _csv_rows(
                [_cell(value) for value in row] for row in table.reshape(len(table), -1)
            )


def _npy_header(first: Array, rows: int) -> bytes:
    """What ``np.save`` writes before the data of an array of ``rows`` rows like ``first``."""
    buffer = io.BytesIO()
    header = {
        "descr": np.lib.format.dtype_to_descr(first.dtype),
        "fortran_order": False,
        "shape": (rows, *first.shape[1:]),
    }
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def _csv_rows(rows: Iterable[Iterable[object]]) -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue().encode("utf-8")


def _cell(value: object) -> object:
    """Floats as the shortest text that reads back exactly; everything else as it is."""
    plain = value.item() if isinstance(value, np.generic) else value
    return repr(plain) if isinstance(plain, float) else plain
