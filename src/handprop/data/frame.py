"""pandas DataFrames as sources: the columns' names, numbers as numbers, and text, booleans
kept as numbers, ``category`` columns as categories, for the same encoding as a CSV file's.

pandas is never imported here: a DataFrame is recognised only when the caller's pandas is
already loaded (no DataFrame can exist otherwise), so the plain install needs none.
"""

import sys
from typing import Any

import numpy as np

from handprop._types import Array
from handprop.data.csv_table import MISSING_TEXT
from handprop.data.dataset import DataError
from handprop.data.encoding import number_text
from handprop.data.raw import RawTable, check_one_target, row_index, shown

#: A pandas DataFrame (pandas is optional: not imported for its type).
Frame = Any
#: What a DataFrame is called in messages.
SOURCE = "the DataFrame"


def is_frame(data: object) -> bool:
    """Whether ``data`` is a pandas DataFrame (False when pandas was never imported)."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(data, pandas.DataFrame)


def frame_table(frame: Frame, target: str | None, task: str | None) -> RawTable:
    """Features and targets of ``frame``; ``target``: column name(s) as ``"a"`` or ``"a,b"``,
    default the last column."""
    names = _names(frame)
    if target is None:
        targets = [len(names) - 1]
    else:
        wanted = [name.strip() for name in target.split(",")]
        missing = [name for name in wanted if name not in names]
        if missing:
            raise DataError(f"{SOURCE} has no column {shown(missing[0])}; it has {names[:20]}")
        targets = [names.index(name) for name in wanted]
    features = [j for j in range(len(names)) if j not in targets]
    if not features:
        raise DataError(f"{SOURCE}: every column is a target; at least one feature is needed")
    target_names = tuple(names[j] for j in targets)
    if task == "classification":
        check_one_target(SOURCE, target_names)
    table = _columns(frame, features)
    if len(targets) == 1 and task != "regression":
        y = _labels(frame.iloc[:, targets[0]])
    else:
        y = np.column_stack([_numbers(frame.iloc[:, j], names[j]) for j in targets])
    return RawTable(table.x, y, table.feature_names, target_names, SOURCE, row_index,
                    table.text, table.categorical)  # fmt: skip


def frame_features(frame: Frame, names: tuple[str, ...] | None = None) -> RawTable:
    """The feature columns ``names`` of ``frame`` (default: all), for prediction."""
    found = _names(frame)
    wanted = list(found) if names is None else list(names)
    missing = [name for name in wanted if name not in found]
    if missing:
        raise DataError(
            f"{SOURCE} lacks the feature column(s) {', '.join(shown(n) for n in missing[:8])}"
        )
    return _columns(frame, [found.index(name) for name in wanted])


def _names(frame: Any) -> list[str]:
    names = [str(name) for name in frame.columns]
    if len(set(names)) != len(names):
        raise DataError(f"{SOURCE} names a column twice; rename one")
    if len(frame) == 0 or not names:
        raise DataError(f"{SOURCE} holds no samples")
    return names


def _columns(frame: Any, columns: list[int]) -> RawTable:
    """Numbers (N, len(columns)), NaN where missing or text; the text of the other columns."""
    names = tuple(str(frame.columns[j]) for j in columns)
    x = np.empty((len(frame), len(columns)))
    text: dict[int, Array] = {}
    categorical = []
    for k, j in enumerate(columns):
        series = frame.iloc[:, j]
        if str(series.dtype) == "category":
            categorical.append(names[k])
        elif series.dtype.kind in "biuf":
            x[:, k] = _numbers(series, names[k])
            continue
        text[k], x[:, k] = _texts(series)
    empty = np.empty((len(frame), 0))
    return RawTable(x, empty, names, (), SOURCE, row_index, text, tuple(categorical))


def _numbers(series: Any, name: str) -> Array:
    """A numeric column as float64, NaN where missing (pandas' nullable types too)."""
    try:
        return np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan))
    except (TypeError, ValueError):
        raise DataError(f"{SOURCE}: column {shown(name)} does not hold numbers") from None


def _texts(series: Any) -> tuple[Array, Array]:
    """(each cell as text, "" where missing; each cell as a number, NaN where it is not one)."""
    values = series.astype(object).tolist()
    texts = np.empty(len(values), dtype=object)
    texts[:] = [_text(value) for value in values]
    numbers = np.array([_number(value) for value in values], dtype=np.float64)
    return texts, numbers


def _text(value: object) -> str:
    if _missing(value):
        return ""
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        return number_text(float(value))  # 1 and 1.0 alike, as a CSV file's "1"
    text = str(value).strip()
    return "" if text.lower() in MISSING_TEXT else text


def _number(value: object) -> float:
    if isinstance(value, bool | np.bool_) or _missing(value):
        return np.nan
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return np.nan


def _missing(value: object) -> bool:
    return (
        value is None
        or (isinstance(value, float) and value != value)
        or (type(value).__name__ in ("NAType", "NaTType"))
    )


def _labels(series: Any) -> Array:
    """Class labels (N, 1): numbers as float64 (NaN where missing), else text ("" missing)."""
    if series.dtype.kind in "biuf" and str(series.dtype) != "category":
        if series.dtype.kind == "b":
            return np.asarray(series.to_numpy(dtype=bool))[:, None]
        return _numbers(series, str(series.name))[:, None]
    texts, numbers = _texts(series)
    if all(t == "" or n == n for t, n in zip(texts, numbers, strict=True)):
        return numbers[:, None]
    return texts[:, None]
