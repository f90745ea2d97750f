"""What a loader read, before the checks that every source shares; the loaders' helpers."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from handprop._types import Array
from handprop.data.dataset import DataError


@dataclass(frozen=True)
class RawTable:
    """What a loader read, before the checks that every source shares."""

    x: Array  # (N, D_in), any numeric dtype
    y: Array  # (N, D_out), numeric, or text labels for classification
    feature_names: tuple[str, ...]
    target_names: tuple[str, ...]
    source: str
    locate: Callable[[int], str]  # row index -> where the row is, e.g. "line 7"
    # feature columns (by position) that hold text, as str objects ("" where missing);
    # x holds NaN in their cells that are not numbers
    text: Mapping[int, Array] = field(default_factory=dict)
    # feature columns the source itself calls categorical (a pandas category dtype)
    categorical: tuple[str, ...] = ()


def row_index(row: int) -> str:
    return f"row index {row}"


def shown(name: str, limit: int = 60) -> str:
    """``name`` in double quotes for a message: one line, at most ``limit`` characters."""
    short = name if len(name) <= limit else name[:limit] + "..."
    escaped = (c if c.isprintable() else c.encode("unicode_escape").decode() for c in short)
    return '"' + "".join(escaped) + '"'


def cannot_read(path: str, error: OSError) -> str:
    return f"cannot read {path}: {error.strerror or error}"


def check_one_target(source: str, target_names: tuple[str, ...]) -> None:
    if len(target_names) != 1:
        raise DataError(
            f"{source}: classification needs exactly one target column, received "
            f"{len(target_names)} ({', '.join(target_names)})"
        )
