"""How messages show names and values: one line each, whatever a file held."""

from collections.abc import Iterable

import numpy as np


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) as one space."""
    return " ".join(text.split())


def quoted(names: Iterable[str], limit: int = 8) -> str:
    """``'a', 'b' and 3 more``: the first ``limit`` names, repr-quoted."""
    names = list(names)
    shown = ", ".join(repr(name) for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def plain(value: object) -> object:
    """numpy scalars as Python numbers (for JSON and CSV); anything else as it is."""
    return value.item() if isinstance(value, np.generic) else value
