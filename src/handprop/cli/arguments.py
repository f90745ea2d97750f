"""argparse types: each turns a command-line string into a checked value, or says what was wrong."""

import argparse
import math


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
    "a .csv file (header row), a .npy/.npz file (arrays x and y in a .npz), or a bundled data "
    "set: digits, iris, diabetes (need scikit-learn), warmup"
)
