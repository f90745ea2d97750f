"""What an estimator keeps between calls: the network, its optimizer, its TrainingState, its rng.

``partial_fit``, ``warm_start`` and unpickling continue from these objects, so
they travel together; a model file holds only the network and its scalers.
"""

import copy
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeGuard

import numpy as np
from sklearn.utils.validation import _check_sample_weight

from handprop._types import Array, float_dtype, positive_int
from handprop.data import Standardizer
from handprop.data.transform import split_indices
from handprop.layers import Linear, Module, Sequential
from handprop.losses import Loss
from handprop.optim import Optimizer
from handprop.training import Callback, EpochLog, TrainingState


@dataclass
class Training:
    """A network being trained, and how to feed it.

    ``x_scaler`` / ``y_scaler`` come from a file written by ``handprop train``
    (None for a network the estimator trained itself): inputs are standardised
    with them before the network sees them, outputs turned back into targets.
    """

    model: Sequential
    loss_fn: Loss
    optimizer: Optimizer
    state: TrainingState
    rng: np.random.Generator
    x_scaler: Standardizer | None = None
    y_scaler: Standardizer | None = None
    target_names: tuple[str, ...] | None = None  # a loaded file's, written back by save

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.model.parameters()[0].dtype

    @property
    def input_dtype(self) -> np.dtype[Any]:
        """What features are converted to: float64 when a scaler standardises them first."""
        return np.dtype(np.float64) if self.x_scaler is not None else self.dtype

    @property
    def linears(self) -> list[Linear]:
        return [layer for layer in self.model.layers if isinstance(layer, Linear)]

    def inputs(self, x: Array) -> Array:
        """Features as the network takes them: standardised if a file said so, in its dtype."""
        if self.x_scaler is not None:
            x = self.x_scaler.transform(x)
        return np.ascontiguousarray(x, dtype=self.dtype)

    def without_caches(self) -> "Training":
        """A copy for pickling that shares the Parameters but not the layers' caches.

        The layers of ``mlp()`` keep arrays only as caches and work buffers (the
        last batch they saw, which may be training data); their Parameters are
        shared, so the optimizer still updates this copy's weights after unpickling.
        """
        layers = [_without_arrays(layer) for layer in self.model.layers]
        return replace(self, model=Sequential(*layers), loss_fn=type(self.loss_fn)())


def _without_arrays(layer: Module) -> Module:
    stripped = copy.copy(layer)
    for name, value in list(vars(stripped).items()):
        if isinstance(value, np.ndarray):
            setattr(stripped, name, None)
    return stripped


@dataclass(frozen=True)
class Settings:
    """The hyperparameters that ``fit`` checks itself (the layers and optimizers check theirs)."""

    hidden: tuple[int, ...]
    learning_rate: float
    batch_size: int
    max_epochs: int
    patience: int | None  # None: no early stopping
    validation_fraction: float
    dtype: np.dtype[Any] | None  # None: follow the input, float32 stays float32


def check_settings(owner: str, params: dict[str, Any]) -> Settings:
    """The checked hyperparameters; a ValueError (or TypeError) names the one that is wrong."""
    hidden = params["hidden_layer_sizes"]
    hidden = (hidden,) if _is_int(hidden) else hidden
    if not isinstance(hidden, Sequence) or not all(_is_int(h) and h >= 1 for h in hidden):
        raise ValueError(
            f"{owner} hidden_layer_sizes must be a positive integer or a sequence of them, "
            f"e.g. (100,) or (64, 32); received {params['hidden_layer_sizes']!r}"
        )
    rate = params["learning_rate"]
    if not _is_real(rate) or not 0 < rate < math.inf:
        raise ValueError(f"{owner} learning_rate must be a finite number > 0, received {rate!r}")
    batch_size = params["batch_size"]
    if batch_size != "auto" and not (_is_int(batch_size) and batch_size >= 1):
        raise ValueError(
            f"{owner} batch_size must be 'auto' (200) or an integer >= 1, received {batch_size!r}"
        )
    _check_size(owner, tuple(int(h) for h in hidden), 200 if batch_size == "auto" else batch_size)
    fraction = params["validation_fraction"]
    if params["early_stopping"] and not (_is_real(fraction) and 0 < fraction < 1):
        raise ValueError(
            f"{owner} early_stopping needs validation_fraction in (0, 1), received {fraction!r}"
        )
    dtype = params["dtype"]
    return Settings(
        hidden=tuple(int(h) for h in hidden),
        learning_rate=float(rate),
        batch_size=200 if batch_size == "auto" else int(batch_size),
        max_epochs=positive_int(f"{owner} max_epochs", params["max_epochs"]),
        patience=positive_int(f"{owner} patience", params["patience"])
        if params["early_stopping"]
        else None,
        validation_fraction=float(fraction),
        dtype=None if dtype is None else float_dtype(dtype),
    )


def _check_size(owner: str, hidden: tuple[int, ...], batch_size: int) -> None:
    """Refuse a network beyond handprop.checkpoint.limits before anything is allocated.

    The input and output widths are not known yet: 1 stands for them.
    """
    from handprop.checkpoint.limits import check_architecture_size, mlp_layers

    try:
        check_architecture_size(mlp_layers(1, hidden, 1), batch_size)
    except ValueError as error:
        raise ValueError(f"{owner} hidden_layer_sizes={hidden!r:.80}: {error}") from None


def _is_int(value: object) -> TypeGuard[int | np.integer[Any]]:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_real(value: object) -> TypeGuard[float]:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def sample_weights(x: Array, y: Array, sample_weight: Any) -> tuple[Array, Array, Array | None]:
    """(x, y, weights) with the rows of weight 0 left out, as if they were not there.

    ``sample_weight``: None, a number, or (N,) finite numbers >= 0 not all 0, as
    scikit-learn's ``_check_sample_weight`` checks them. Weights all alike weigh nothing:
    None then, so that the loss is the unweighted one to the last bit.
    """
    if sample_weight is None:
        return x, y, None
    weight = _check_sample_weight(sample_weight, x, dtype=np.float64, ensure_non_negative=True)
    if not weight.any():
        raise ValueError(
            "sample_weight is zero for every row, so no sample would count; give at least one "
            "row a weight > 0"
        )
    kept = weight > 0
    if not kept.all():
        x, y, weight = x[kept], y[kept], weight[kept]
    return x, y, None if (weight == weight[0]).all() else weight


def validation_split(
    x: Array, y: Array, fraction: float, rng: np.random.Generator
) -> tuple[tuple[Array, Array], tuple[Array, Array]]:
    """(training, validation): ``round(fraction * N)`` random rows held out for early stopping."""
    kept, held = split_indices(len(x), fraction, rng)
    return (x[kept], y[kept]), (x[held], y[held])


class PrintEpochs(Callback):
    """``verbose=True``: one line per epoch on stdout."""

    def __init__(self, metric: str) -> None:
        self.metric = metric

    def on_epoch_end(self, log: EpochLog, state: TrainingState) -> None:
        line = f"epoch {log.epoch}: loss {log.train_loss:.6g}"
        if log.val_metric is not None:
            line += f", validation {self.metric} {log.val_metric:.4f}"
        print(line)
