"""HandpropClassifier: a fully-connected network on softmax cross-entropy, as a scikit-learn
classifier. Labels of any kind are mapped to 0..C-1 through the sorted ``classes_``.
"""

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import (
    check_classification_targets,
    unique_labels,
)

from handprop._types import Array
from handprop.data.transform import balanced_class_weights
from handprop.losses import Loss, SoftmaxCrossEntropy, log_softmax
from handprop.sklearn._base import HandpropEstimator
from handprop.sklearn._frames import checked_xy
from handprop.sklearn._training import Training


class HandpropClassifier(ClassifierMixin, HandpropEstimator):
    """``mlp(D_in, hidden_layer_sizes, C)`` trained by ``handprop.fit`` on softmax cross-entropy.

    Shape: X (N, D_in); y (N,) labels; ``predict`` returns (N,) labels from
    ``classes_``, ``predict_proba`` (N, C) in the network's dtype. X is not
    standardised here: put a ``StandardScaler`` before it in a Pipeline.

    The hyperparameters are HandpropRegressor's, with ``loss="cross_entropy"``
    (the only one) and early stopping on the validation accuracy. ``class_weight``:
    None, "balanced" (``N / (C * count)`` from each fit's y, as scikit-learn) or a dict
    label -> weight (1 for the labels it leaves out); the loss is then the weighted mean
    ``sum(w[y_i] nll_i) / sum(w[y_i])``, as torch's ``CrossEntropyLoss(weight=...)``.
    ``fit(X, y, sample_weight)`` multiplies each row's class weight by its own. The first
    ``partial_fit`` needs ``classes=``, every label there will ever be.
    Fitted: as HandpropRegressor, with ``classes_`` instead of ``n_outputs_``.
    """

    _task = "classification"
    _metric = "accuracy"
    _losses: ClassVar[dict[str, type[Loss]]] = {"cross_entropy": SoftmaxCrossEntropy}

    def __init__(
        self,
        *,
        hidden_layer_sizes: int | Sequence[int] = (100,),
        activation: str = "relu",
        bias: bool = True,
        init: str = "glorot_uniform",
        loss: str = "cross_entropy",
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        batch_size: int | str = "auto",
        max_epochs: int = 200,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        patience: int = 10,
        dtype: str | None = None,
        random_state: int | np.random.RandomState | None = None,
        warm_start: bool = False,
        verbose: bool = False,
        class_weight: str | Mapping[Any, float] | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.bias = bias
        self.init = init
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.dtype = dtype
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.class_weight = class_weight

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.multi_label = False
        tags.input_tags.allow_nan = False
        return tags

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Self:
        """Train for ``max_epochs`` epochs: a new network, or (``warm_start``) the trained one.

        ``sample_weight`` (N,), optional: each row's weight in the loss (a weighted mean;
        weight k counts as k copies of the row, 0 as none).
        """
        return self._train(X, y, sample_weight, incremental=False)

    def partial_fit(self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None) -> Self:
        """One epoch over (X, y), going on from the network, optimizer and rng kept so far.

        ``classes``: every label, required on the first call (the network's width).
        """
        if classes is None and not self.__sklearn_is_fitted__():
            raise ValueError(
                "the first partial_fit needs classes=, every label there will be "
                "(e.g. classes=np.unique(y_all)): the network has one output per class"
            )
        return self._train(X, y, sample_weight, incremental=True, classes=classes)

    def predict(self, X: Any) -> Array:
        """The most probable label of each row, (N,)."""
        scores = self._outputs(X)
        labels: Array = self.classes_[np.argmax(scores, axis=1)]
        return labels

    def predict_proba(self, X: Any) -> Array:
        """Softmax of the network's scores, (N, C), columns in the order of ``classes_``."""
        return np.exp(self.predict_log_proba(X))

    def predict_log_proba(self, X: Any) -> Array:
        """Log of ``predict_proba``, computed from the scores without overflow, (N, C)."""
        return log_softmax(self._outputs(X))

    def _validate_xy(self, X: Any, y: Any, reset: bool, dtype: Any) -> tuple[Array, Array]:
        _check_label_kinds(y)
        x, y = checked_xy(self, X, y, reset, dtype=dtype, order="C")
        check_classification_targets(y)
        return x, y

    def _encode_targets(
        self, y: Array, classes: Any, training: Training | None
    ) -> tuple[Array, int]:
        if training is None:
            self.classes_ = unique_labels(y if classes is None else classes)
        elif classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
            raise ValueError(
                f"classes={classes!r} differs from classes_={self.classes_!r} of the "
                "network being trained; fit with warm_start=False to train a new one"
            )
        index = np.minimum(np.searchsorted(self.classes_, y), len(self.classes_) - 1)
        unknown = self.classes_[index] != y
        if unknown.any():
            raise ValueError(
                f"y holds labels that are not in classes_={self.classes_!r}: "
                f"{np.unique(y[unknown])[:5]!r}; give every label in the first call"
            )
        return index.astype(np.int64), len(self.classes_)

    def _weighted_loss(self, training: Training, targets: Array, rows: Array | None) -> Loss:
        """Softmax cross-entropy with this fit's class weights (None: every sample alike).

        "balanced" counts each class by its rows' ``sample_weight`` (``rows``), as scikit-learn.
        """
        weight = self.class_weight
        if weight is None:
            return SoftmaxCrossEntropy()
        if isinstance(weight, str) and weight == "balanced":
            balanced = balanced_class_weights(targets, len(self.classes_), rows)
            return SoftmaxCrossEntropy(weight=balanced)
        if not isinstance(weight, Mapping):
            raise ValueError(
                f"class_weight must be None, 'balanced' or a dict label -> weight, received "
                f"{weight!r:.80}"
            )
        unknown = [label for label in weight if label not in set(self.classes_.tolist())]
        if unknown:
            raise ValueError(f"class_weight names labels not in classes_: {unknown[:5]!r}")
        index = {label: i for i, label in enumerate(self.classes_.tolist())}
        weights = np.ones(len(self.classes_))
        for label, value in weight.items():
            weights[index[label]] = value
        return SoftmaxCrossEntropy(weight=weights)

    def _restore_outputs(self, info: dict[str, Any], d_out: int) -> None:
        classes = info.get("classes")
        if not isinstance(classes, list) or len(classes) != d_out:
            raise ValueError(
                f"a classification file needs 'classes', a list of the network's {d_out} "
                f"labels; received {classes!r:.80}"
            )
        self.classes_ = np.asarray(classes)


def _check_label_kinds(y: Any) -> None:
    """Refuse labels that mix text and numbers: numpy would turn 1 into '1' or fail to sort."""
    dtype = getattr(y, "dtype", None)
    if isinstance(dtype, np.dtype) and dtype.kind != "O":
        return  # one kind by construction
    try:
        values = np.asarray(y, dtype=object).ravel()
    except (TypeError, ValueError):
        return  # validate_data says what is wrong
    text = [v for v in values if isinstance(v, str)]
    if text and len(text) != len(values):
        other = next(v for v in values if not isinstance(v, str))
        raise ValueError(
            f"y mixes text and other labels (e.g. {text[0]!r} and {other!r}); give labels "
            "of one kind, e.g. all strings"
        )
