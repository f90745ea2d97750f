"""HandpropRegressor: a fully-connected network on squared error, as a scikit-learn regressor."""

from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np
from sklearn.base import RegressorMixin

from handprop._types import Array
from handprop.losses import Loss, MeanSquaredError, SumSquaredError
from handprop.sklearn._base import HandpropEstimator
from handprop.sklearn._frames import checked_xy
from handprop.sklearn._training import Training


class HandpropRegressor(RegressorMixin, HandpropEstimator):
    """``mlp(D_in, hidden_layer_sizes, D_out)`` trained by ``handprop.fit`` on squared error.

    Shape: X (N, D_in); y (N,) or (N, D_out); ``predict`` returns (N,) for one
    output, else (N, D_out), in the network's dtype. Neither X nor y is
    standardised here: put a ``StandardScaler`` in a Pipeline, and a target
    scaler in a ``TransformedTargetRegressor``, as for ``MLPRegressor``.

    Hyperparameters (all keyword-only, checked in ``fit``):
        hidden_layer_sizes: widths of the hidden layers, default (100,).
        activation: "relu", "leaky_relu", "tanh", "sigmoid" or "identity".
        bias: Linear layers with biases (which start at zero).
        init: how the weights are drawn, a ``handprop.init`` name; "glorot_uniform",
            U(+-sqrt(6 / (D_in + D_out))), is scikit-learn's MLP's (``mlp()`` uses
            "he_normal" after ReLU).
        loss: "squared_error" (MeanSquaredError) or "sum_squared_error".
        optimizer: "adam" or "sgd" (with ``momentum``); ``learning_rate``;
            ``weight_decay``: L2 penalty added to the gradient, ``w * weight_decay``.
        batch_size: "auto" (200) or an integer; max_epochs: epochs per ``fit``.
        early_stopping: hold out ``validation_fraction`` of the data, stop after
            ``patience`` epochs without a better validation R², keep the best weights.
        dtype: None (float32 input trains in float32, anything else in float64),
            "float32" or "float64".
        random_state: seeds the weights, the validation split and the shuffling.
        warm_start: ``fit`` goes on from the trained weights and optimizer state.
        verbose: print one line per epoch.

    Fitted: ``model_`` (the handprop network), ``coefs_`` (D_in, D_out) and
    ``intercepts_`` per layer, ``loss_curve_``, ``n_iter_``, ``validation_scores_``,
    ``n_outputs_``, ``n_features_in_``, ``feature_names_in_`` (DataFrames), ``encoding_``
    (a DataFrame's category and text columns one-hot, as ``handprop train`` encodes a CSV
    file's; None for numbers alone: make a column a pandas ``category`` to encode it).
    """

    _task = "regression"
    _metric = "R²"
    _losses: ClassVar[dict[str, type[Loss]]] = {
        "squared_error": MeanSquaredError,
        "sum_squared_error": SumSquaredError,
    }

    def __init__(
        self,
        *,
        hidden_layer_sizes: int | Sequence[int] = (100,),
        activation: str = "relu",
        bias: bool = True,
        init: str = "glorot_uniform",
        loss: str = "squared_error",
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

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.input_tags.allow_nan = False
        return tags

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Self:
        """Train for ``max_epochs`` epochs: a new network, or (``warm_start``) the trained one.

        ``sample_weight`` (N,), optional: each row's weight in the loss (a weighted mean;
        weight k counts as k copies of the row, 0 as none).
        """
        return self._train(X, y, sample_weight, incremental=False)

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> Self:
        """One epoch over (X, y), going on from the network, optimizer and rng kept so far."""
        return self._train(X, y, sample_weight, incremental=True)

    def predict(self, X: Any) -> Array:
        """Predicted targets: (N,) for one output, else (N, D_out)."""
        training = self._fitted()
        y_pred = self._outputs(X)
        if training.y_scaler is not None:
            y_pred = training.y_scaler.inverse_transform(y_pred).astype(training.dtype)
        return y_pred.ravel() if y_pred.shape[1] == 1 else y_pred

    @property
    def n_outputs_(self) -> int:
        return self._fitted().linears[-1].out_features

    def _validate_xy(self, X: Any, y: Any, reset: bool, dtype: Any) -> tuple[Array, Array]:
        x, y = checked_xy(
            self, X, y, reset, dtype=dtype, order="C", multi_output=True, y_numeric=True
        )
        return x, y

    def _encode_targets(
        self, y: Array, classes: Any, training: Training | None
    ) -> tuple[Array, int]:
        y = y.reshape(len(y), -1)  # (N,) -> (N, 1)
        if training is not None and y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y has {y.shape[1]} output(s), but this {type(self).__name__} predicts "
                f"{self.n_outputs_}; fit with warm_start=False to train a new network"
            )
        return y, y.shape[1]

    def _network_targets(self, training: Training, y: Array) -> Array:
        if training.y_scaler is not None:  # a network from `handprop train` learns scaled targets
            y = training.y_scaler.transform(y)
        return np.ascontiguousarray(y, dtype=training.dtype)
