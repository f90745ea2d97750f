"""The library's messages name its parameters (``task="classification"``); the command line's
name its flags (``--task classification``). ``as_flags`` rewrites the one into the other."""

import re

_REWRITES: tuple[tuple[str, str], ...] = (
    (r'task="(\w+)"', r"--task \1"),
    (r"drop_nonfinite=True", "--drop-nonfinite"),
    (r'impute="mean", "median" or "most-frequent"', "--impute mean|median|most-frequent"),
    (r'impute="([\w-]+)"', r"--impute \1"),
    (r'delimiter="([^"]+)"', r'--delimiter "\1"'),
    (r'decimal=","', "--decimal ,"),
    (r'(drop|categorical|features)=\[("(?:[^"\\]|\\.)*")\]', r"--\1 \2"),
    (r"validation_fraction=(\w+)", r"--validation-fraction \1"),
    (r'class_weight="(\w+)"', r"--class-weight \1"),
    (r"\(MeanSquaredError\)", "(--loss mse)"),
)


def as_flags(message: str) -> str:
    """``message`` with every library parameter it names written as its command-line flag."""
    for pattern, flag in _REWRITES:
        message = re.sub(pattern, flag, message)
    return message
