"""scikit-learn estimators: ``HandpropRegressor`` and ``HandpropClassifier``.

Thin clients of ``handprop.fit``: every ``fit`` and ``partial_fit`` is a call to
the library's training loop. They need scikit-learn >= 1.6, which
``import handprop`` never imports; this module does.
"""

try:
    import sklearn  # noqa: F401
except ImportError as error:
    raise ImportError(
        "handprop.sklearn needs scikit-learn >= 1.6: pip install 'scikit-learn>=1.6'"
    ) from error

from handprop.sklearn.classifier import HandpropClassifier
from handprop.sklearn.regressor import HandpropRegressor

__all__ = ["HandpropClassifier", "HandpropRegressor"]
