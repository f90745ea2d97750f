"""ModelFileError, and the helpers that word its messages."""

from collections.abc import Iterable


class ModelFileError(ValueError):
    """A model file or checkpoint that cannot be written or read; the message says why."""


def quoted(names: Iterable[str], limit: int = 8) -> str:
    names = list(names)
    shown = ", ".join(repr(name) for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def one_line(text: str) -> str:
    return " ".join(text.split())
