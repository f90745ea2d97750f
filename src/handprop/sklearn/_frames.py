"""pandas DataFrames in the estimators: scikit-learn's checks on the frame's own columns
(``feature_names_in_``, ``n_features_in_``), and its category and text columns one-hot
encoded by the ``Encoding`` that ``handprop train`` saves, fitted by the first ``fit``.

A DataFrame of numbers alone goes through ``validate_data`` as an array would: the same
numbers, the same results.
"""

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_array, check_X_y, validate_data

from handprop._types import Array
from handprop.data import Encoding
from handprop.data.encoding import fit_encoding
from handprop.data.frame import frame_features, is_frame


def checked_xy(
    estimator: BaseEstimator, X: Any, y: Any, reset: bool, **check: Any
) -> tuple[Array, Array]:
    """``validate_data(estimator, X, y, reset=reset, **check)``, encoding X's categories."""
    encoded = _encoded(estimator, X, reset)
    if encoded is None:
        x, y = validate_data(estimator, X, y, reset=reset, **check)
        return x, y
    return check_X_y(encoded, y, **check)  # type: ignore[no-any-return]


def checked_x(estimator: BaseEstimator, X: Any, **check: Any) -> Array:
    """``validate_data(estimator, X, reset=False, **check)``, encoding X's categories."""
    encoded = _encoded(estimator, X, reset=False)
    if encoded is None:
        return validate_data(estimator, X, reset=False, **check)  # type: ignore[no-any-return]
    return check_array(encoded, **check)  # type: ignore[no-any-return]


def _encoded(estimator: BaseEstimator, X: Any, reset: bool) -> Array | None:
    """X one-hot encoded (N, D_in) float64, once its columns are checked; None when X is no
    DataFrame or (first fit) holds numbers alone: scikit-learn's own checks do the rest."""
    if reset:
        estimator.encoding_ = None
    encoding: Encoding | None = getattr(estimator, "encoding_", None)
    if not is_frame(X):
        if encoding is not None and encoding.categorical:
            raise ValueError(
                f"{type(estimator).__name__} one-hot encodes the column(s) "
                f"{', '.join(encoding.categorical)}: give X as a pandas DataFrame with the "
                f"columns {list(encoding.input_names)}"
            )
        return None
    if encoding is None and not reset:
        return None
    raw = frame_features(X)
    if encoding is None:
        if not raw.text:
            return None  # numbers alone
        encoding = fit_encoding(raw, None, None)
        estimator.encoding_ = encoding
    validate_data(estimator, X, reset=reset, skip_check_array=True)  # the names, the count
    if not reset:
        raw = frame_features(X, encoding.input_names)
    return encoding.transform(raw, np.arange(len(X)))
