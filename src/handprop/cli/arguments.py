"""argparse types: each turns a command-line string into a checked value, or says what was wrong."""

import argparse
import math
from typing import Any


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, received {text!r}")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, received {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, received {text!r}") from None


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (learning rates, momentum, fractions)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, received {text!r}")
    return value


def add_backend_options(parser: Any) -> None:
    """--backend numpy|torch and --device cpu|cuda: where the model computes."""
    parser.add_argument(
        "--backend",
        choices=["numpy", "torch"],
        help="the array library: numpy (the default) or torch (PyTorch tensors, no autograd)",
    )
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], help="cpu (the default) or cuda (implies torch)"
    )


def placement(args: Any) -> Any:
    """The array namespace that --backend and --device ask for; a ValueError (one line, exit
    2) when torch is not installed or CUDA is absent."""
    from handprop.backend import select

    try:
        return select(args.backend, args.device)
    except (ImportError, RuntimeError) as error:
        flags = " ".join(
            f"--{name} {value}" for name in ("backend", "device")
            if (value := getattr(args, name)) is not None
        )  # fmt: skip
        raise ValueError(f"{flags}: {error}") from None


def widths(text: str) -> tuple[int, ...]:
    """Hidden layer widths: "100", "100,50"; "" or "none" for no hidden layer."""
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated positive integers like 100,50, received {text!r}"
        )
    return values


#: The help of --data, for every command that reads a data set.
DATA_HELP = (
    "a .csv or .tsv file (header row), a .npy/.npz file (arrays x and y in a .npz), or a "
    "bundled data set: digits, iris, diabetes (need scikit-learn), warmup"
)


def names(text: str) -> tuple[str, ...]:
    """Column names separated by commas: "a,b" -> ("a", "b")."""
    values = tuple(name.strip() for name in text.split(","))
    if not all(values):
        raise argparse.ArgumentTypeError(
            f"must be column names separated by commas, received {text!r}"
        )
    return values


def delimiter(text: str) -> str:
    """A CSV delimiter: "," ";" or a tab (written "tab" or "\\t")."""
    value = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";"}.get(text, text)
    if value not in (",", ";", "\t"):
        raise argparse.ArgumentTypeError(f"must be , ; or tab, received {text!r}")
    return value


def add_csv_options(parser: Any) -> None:
    """--delimiter and --decimal, for every command that reads a CSV file."""
    parser.add_argument(
        "--delimiter", type=delimiter,
        help="a CSV's delimiter: , ; or tab; default: found in the header line (tab for .tsv)",
    )  # fmt: skip
    parser.add_argument(
        "--decimal", choices=[".", ","], help="the decimal mark of a CSV's numbers; default: ."
    )


def add_column_options(parser: Any) -> None:
    """How train picks and encodes a table's feature columns (saved with the model)."""
    add_csv_options(parser)
    parser.add_argument("--features", type=names, help="use only these columns: NAME[,NAME...]")
    parser.add_argument("--drop", type=names, help="leave out these columns: NAME[,NAME...]")
    parser.add_argument(
        "--categorical", type=names,
        help="one-hot encode these columns; default: the text columns with at most 50 distinct "
        "values (a text column with more, such as an ID, must be dropped or named here)",
    )  # fmt: skip
