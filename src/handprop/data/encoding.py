"""Turning a table's columns into the numbers a network takes: numeric columns as they are,
categorical ones one-hot; missing cells filled (imputed) or left for the caller to refuse.

An ``Encoding`` is fitted on training data and saved with the model, so that evaluation and
prediction encode new data the same way.
"""

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from handprop._types import Array
from handprop.data.dataset import DataError
from handprop.data.raw import RawTable, shown

IMPUTE = ("mean", "median", "most-frequent")
#: A text column with at most this many distinct values is taken for a category.
MAX_DETECTED = 50
#: A column named categorical may have at most this many categories.
MAX_CATEGORIES = 10_000


@dataclass(frozen=True)
class ColumnCode:
    """One input column: a number (``categories`` None) or one of ``categories`` (one-hot);
    ``fill`` is what a missing cell becomes (None: a missing cell is refused)."""

    name: str
    categories: tuple[str, ...] | None = None
    fill: float | str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The network's input names for this column: its own, or ``name=category`` each."""
        if self.categories is None:
            return (self.name,)
        return tuple(f"{self.name}={category}" for category in self.categories)


@dataclass(frozen=True)
class Encoding:
    """How raw columns become the network's inputs. Shape: (N, D_raw) -> (N, D_in)."""

    columns: tuple[ColumnCode, ...]

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(name for column in self.columns for name in column.names)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def categorical(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.categories is not None)

    @property
    def is_plain(self) -> bool:
        """Every column a number, nothing filled: the encoding changes nothing."""
        return all(c.categories is None and c.fill is None for c in self.columns)

    def missing(self, raw: RawTable) -> Array:
        """A boolean mask (N, D_raw) of the cells missing that no fill replaces.

        Text in a numeric column raises DataError: it is not missing, it is wrong.
        """
        for k, column in enumerate(self.columns):
            if column.categories is None and k in raw.text:
                _check_numbers(raw, k, column.name)
        if self.is_plain:
            return ~np.isfinite(raw.x)
        mask = np.zeros(raw.x.shape, dtype=bool)
        for k, column in enumerate(self.columns):
            if column.fill is None:
                mask[:, k] = _cells_missing(raw, k, column)
        return mask

    def transform(self, raw: RawTable, rows: Array, unseen: str = "error") -> Array:
        """The network's inputs (len(rows), D_in) float64 for ``rows`` of ``raw``.

        Missing cells take their fill (NaN without one); a category the encoding does not
        know raises DataError, or (``unseen="zeros"``, for the rows held out of fitting)
        is encoded as all zeros: the network knows nothing of it.
        """
        if self.is_plain:
            if len(rows) == len(raw.x) and np.array_equal(rows, np.arange(len(rows))):
                return np.ascontiguousarray(raw.x, dtype=np.float64)  # every row: no copy
            return np.ascontiguousarray(raw.x[rows], dtype=np.float64)
        x = np.zeros((len(rows), len(self.feature_names)))
        start = 0
        for k, column in enumerate(self.columns):
            if column.categories is None:
                values = raw.x[rows, k].astype(np.float64)
                if column.fill is not None:
                    values[~np.isfinite(values)] = column.fill
                x[:, start] = values
                start += 1
            else:
                columns = x[:, start : start + len(column.categories)]
                _one_hot(raw, k, column, rows, columns, unseen == "zeros")
                start += len(column.categories)
        return x

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": [
                {"name": c.name, "categories": None if c.categories is None else
                 list(c.categories), "fill": c.fill}
                for c in self.columns
            ]
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: object) -> "Encoding":
        """The Encoding ``to_json`` described; a malformed one raises DataError."""
        columns = data.get("columns") if isinstance(data, Mapping) else None
        if not isinstance(columns, list) or not columns:
            raise DataError('an encoding needs "columns", a non-empty list')
        return cls(tuple(_column_from_json(column) for column in columns))


def plain_encoding(names: Sequence[str]) -> Encoding:
    return Encoding(tuple(ColumnCode(name) for name in names))


def fit_encoding(
    raw: RawTable, categorical: Sequence[str] | None, impute: str | None, rows: Array | None = None
) -> Encoding:
    """Each column's code: categorical if named in ``categorical`` (None: if it holds text
    with few distinct values), and its fill for ``impute`` (None: no filling).

    ``rows`` (indices): the training rows, whose categories and statistics the encoding
    takes (default: all); which columns are categorical is decided on every row.
    """
    if impute is not None and impute not in IMPUTE:
        raise DataError(f"impute must be one of {', '.join(IMPUTE)}, received {impute!r}")
    unknown = sorted(set(categorical or ()) - set(raw.feature_names))
    named = set(categorical or ()) | set(raw.categorical)
    if unknown:
        raise DataError(
            f"{raw.source}: categorical names {shown(unknown[0])}, which is not a feature column"
        )
    columns = []
    for k, name in enumerate(raw.feature_names):
        is_text = k in raw.text and (categorical is None or name in named)
        if name in named or is_text:
            found = _categories(raw, k, name, declared=name in named)
            column = ColumnCode(name, found if rows is None else _present(raw, k, name, rows))
        else:
            column = ColumnCode(name)
        if impute is not None:
            column = replace(column, fill=_fill(raw, k, column, impute, rows))
        columns.append(column)
    return Encoding(tuple(columns))


def select_columns(raw: RawTable, features: Sequence[str] | None, drop: Sequence[str]) -> RawTable:
    """``raw`` with only the feature columns ``features`` (default: all), less ``drop``."""
    if features is None and not drop:
        return raw
    index = {name: k for k, name in enumerate(raw.feature_names)}
    for name in [*(features or ()), *drop]:
        if name not in index:
            raise DataError(
                f"{raw.source} has no feature column {shown(name)}; its feature columns are "
                + ", ".join(shown(n) for n in raw.feature_names[:20])
            )
    kept = [k for k in (index[n] for n in features or raw.feature_names) if
            raw.feature_names[k] not in set(drop)]  # fmt: skip
    if not kept:
        raise DataError(f"{raw.source}: no feature column is left once the columns are chosen")
    text = {position: raw.text[k] for position, k in enumerate(kept) if k in raw.text}
    return replace(
        raw, x=raw.x[:, kept], feature_names=tuple(raw.feature_names[k] for k in kept), text=text
    )


# ----- helpers ------------------------------------------------------------------------------


def _texts(raw: RawTable, k: int) -> Array:
    """Column ``k`` as text: the file's own, or its numbers written shortly ("" where missing)."""
    if k in raw.text:
        return raw.text[k]
    values = raw.x[:, k]
    texts = np.empty(len(values), dtype=object)
    texts[:] = [number_text(v) for v in values.tolist()]
    return texts


def number_text(value: float) -> str:
    """A number as a category's text: ``1`` for 1.0, ``""`` for NaN or infinity."""
    if value != value or value in (float("inf"), float("-inf")):
        return ""
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(value)


def _cells_missing(raw: RawTable, k: int, column: ColumnCode) -> Array:
    if column.categories is None:
        return ~np.isfinite(raw.x[:, k])
    return np.equal(_texts(raw, k), "")


def _categories(raw: RawTable, k: int, name: str, declared: bool) -> tuple[str, ...]:
    texts = _texts(raw, k)
    present = texts[texts != ""]
    distinct = sorted(set(present.tolist()))
    if declared:
        if len(distinct) > MAX_CATEGORIES:
            raise DataError(
                f"{raw.source}: column {shown(name)} holds {len(distinct)} categories, more than "
                f"{MAX_CATEGORIES}; drop it: drop=[{shown(name)}]"
            )
        if not distinct:
            raise DataError(f"{raw.source}: column {shown(name)} holds no value to encode")
        return tuple(distinct)
    if decimal_commas(present):
        raise DataError(
            f"{raw.source}: column {shown(name)} holds numbers written with a decimal comma "
            f'({_cell(str(present[0]))}); read them as numbers: decimal=","'
        )
    numbers = int(np.isfinite(raw.x[:, k]).sum())
    if numbers >= len(present) - numbers:  # mostly numbers: a typo, not a category
        bad = np.argmax((texts != "") & np.isnan(raw.x[:, k]))
        raise DataError(
            f"{raw.source} {raw.locate(int(bad))}, column {shown(name)}: {_cell(texts[bad])} is "
            f"not a number; fix it, or declare the column categorical: categorical=[{shown(name)}]"
        )
    if len(distinct) > MAX_DETECTED or len(distinct) == len(present):
        raise DataError(
            f"{raw.source}: column {shown(name)} holds text with {len(distinct)} different "
            f"values in {len(present)} rows (an ID or free text?); drop it: drop=[{shown(name)}], "
            f"or declare it categorical: categorical=[{shown(name)}]"
        )
    return tuple(distinct)


def _present(raw: RawTable, k: int, name: str, rows: Array) -> tuple[str, ...]:
    """The categories of column ``k`` found in ``rows``."""
    texts = _texts(raw, k)[rows]
    distinct = sorted(set(texts[texts != ""].tolist()))
    if not distinct:
        raise DataError(f"{raw.source}: column {shown(name)} holds no value in the training rows")
    return tuple(distinct)


_DECIMAL_COMMA = re.compile(r"[+-]?(\d+,\d*|,\d+)([eE][+-]?\d+)?")


def decimal_commas(texts: Array) -> bool:
    """Whether every one of ``texts`` is a number with a decimal comma ("3,52"), and one is."""
    return len(texts) > 0 and all(_DECIMAL_COMMA.fullmatch(text) for text in texts.tolist())


def _check_numbers(raw: RawTable, k: int, name: str) -> None:
    wrong = (raw.text[k] != "") & np.isnan(raw.x[:, k])
    if wrong.any():
        row = int(np.argmax(wrong))
        raise DataError(
            f"{raw.source} {raw.locate(row)}, column {shown(name)}: {_cell(raw.text[k][row])} is "
            f"not a number; fix it, or declare the column categorical: categorical=[{shown(name)}]"
        )


def _fill(
    raw: RawTable, k: int, column: ColumnCode, impute: str, rows: Array | None
) -> float | str:
    """The fill of column ``k`` for ``impute``, from ``rows`` (None: every row)."""
    taken = slice(None) if rows is None else rows
    if column.categories is not None:  # a category's fill is its most frequent one
        texts = _texts(raw, k)[taken]
        seen: Counter[str] = Counter(texts[texts != ""].tolist())
        return str(min(seen, key=lambda value: (-seen[value], value)))
    values = raw.x[taken, k].astype(np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        raise DataError(
            f"{raw.source}: column {shown(column.name)} holds no number to impute from"
            + ("" if rows is None else " in the training rows")
        )
    if impute == "mean":
        return float(values.mean())
    if impute == "median":
        return float(np.median(values))
    distinct, counts = np.unique(values, return_counts=True)
    return float(distinct[np.argmax(counts)])  # the smallest of the most frequent


def _one_hot(
    raw: RawTable, k: int, column: ColumnCode, rows: Array, out: Array, zeros: bool
) -> None:
    assert column.categories is not None
    index = {category: i for i, category in enumerate(column.categories)}
    texts = _texts(raw, k)
    for position, row in enumerate(np.asarray(rows).tolist()):
        value = texts[row]
        if value == "" and column.fill is not None:
            value = column.fill
        if value == "":
            out[position] = np.nan
        elif value in index:
            out[position, index[value]] = 1.0
        elif not zeros:
            known = ", ".join(shown(c) for c in column.categories[:10])
            raise DataError(
                f"{raw.source} {raw.locate(row)}, column {shown(column.name)}: {_cell(value)} is "
                f"a category the model never saw; it knows {known}"
                + (
                    f" and {len(column.categories) - 10} more"
                    if len(column.categories) > 10
                    else ""
                )
            )


def _cell(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def _column_from_json(data: object) -> ColumnCode:
    if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
        raise DataError('each encoding column needs a "name" string')
    categories = data.get("categories")
    distinct = isinstance(categories, list) and len(set(categories)) == len(categories)
    if categories is not None and (
        not distinct or not categories or not all(isinstance(c, str) for c in categories)
    ):
        raise DataError(
            f"encoding column {shown(data['name'])}: categories must be distinct strings"
        )
    fill = data.get("fill")
    if categories is None:
        valid = fill is None or (isinstance(fill, int | float) and not isinstance(fill, bool)
                                 and np.isfinite(fill))  # fmt: skip
    else:
        valid = fill is None or fill in categories
    if not valid:
        raise DataError(f"encoding column {shown(data['name'])}: fill {fill!r:.40} does not fit")
    return ColumnCode(data["name"], None if categories is None else tuple(categories), fill)
