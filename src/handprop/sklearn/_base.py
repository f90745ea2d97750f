"""What the two estimators share: training through ``handprop.fit``, fitted attributes,
pickling, and model files. The subclasses say how targets are checked and encoded.
"""

from typing import Any, ClassVar, Self

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import (
    check_is_fitted,
    check_random_state,
)

from handprop._types import Array
from handprop.checkpoint import PathLike, model_config, save_model
from handprop.data import Encoding
from handprop.init import get_initializer
from handprop.layers import Sequential, mlp
from handprop.losses import Loss
from handprop.optim import OPTIMIZERS, Optimizer
from handprop.parameter import Parameter
from handprop.sample_weight import WeightedTargets
from handprop.sklearn import files
from handprop.sklearn._frames import checked_x
from handprop.sklearn._training import (
    PrintEpochs,
    Settings,
    Training,
    check_settings,
    sample_weights,
    validation_split,
)
from handprop.training import FitOptions, TrainingState, fit


class HandpropEstimator(BaseEstimator):
    """Base class of HandpropRegressor and HandpropClassifier; not an estimator on its own."""

    _task: ClassVar[str]  # "regression" or "classification", as model files say
    _metric: ClassVar[str]  # what verbose=True prints for the validation set
    _losses: ClassVar[dict[str, type[Loss]]]
    _training: Training

    # ----- training: every fit and partial_fit ends here -----------------------------------

    def _train(
        self, X: Any, y: Any, sample_weight: Any, *, incremental: bool, classes: Any = None
    ) -> Self:
        settings = check_settings(type(self).__name__, self.get_params())
        continuing = self.__sklearn_is_fitted__() and (incremental or self.warm_start)
        training = self._training if continuing else None
        dtype = [np.float64, np.float32] if settings.dtype is None else settings.dtype
        if training is not None:
            dtype = training.input_dtype
        x, y = self._validate_xy(X, y, reset=training is None, dtype=dtype)
        x, y, weight = sample_weights(x, y, sample_weight)
        y, d_out = self._encode_targets(y, classes, training)
        if training is None:
            training = self._new_training(x.shape[1], d_out, x.dtype, settings)
        else:
            self._check_continuable(training, d_out, settings)
            self._apply_optimizer_settings(training, settings)
        targets = self._network_targets(training, y)
        training.loss_fn = self._weighted_loss(training, targets, weight)
        if weight is not None:
            targets = WeightedTargets(targets, weight)
        epochs = 1 if incremental else settings.max_epochs
        patience = None if incremental else settings.patience
        self._run(training, training.inputs(x), targets, epochs, patience, settings)
        self._training = training
        return self

    def _run(
        self,
        training: Training,
        x: Array,
        y: Array,
        epochs: int,
        patience: int | None,
        settings: Settings,
    ) -> None:
        validation = None
        if patience is not None:
            (x, y), validation = validation_split(x, y, settings.validation_fraction, training.rng)
        state = training.state
        state.best_epoch, state.best_parameters = None, None  # each call watches its own
        state.best_metric, state.best_loss = -np.inf, np.inf  # validation set
        state.base_lr = settings.learning_rate  # a changed learning_rate applies from now on
        first = state.epoch
        with np.errstate(over="ignore", invalid="ignore"):  # fit's epoch logs may overflow too
            history = fit(
                training.model, training.loss_fn, training.optimizer, (x, y),
                epochs=first + epochs, batch_size=settings.batch_size, rng=training.rng,
                validation=validation,
                callbacks=[PrintEpochs(self._metric)] if self.verbose else [],
                options=FitOptions(patience=patience), state=state,
            )  # fmt: skip
        if history.stop_reason == "diverged":
            raise ValueError(f"Solver produced non-finite parameter weights: {history.message}")
        overflowed = [log.epoch for log in history.logs[first:] if not np.isfinite(log.train_loss)]
        if overflowed:
            raise ValueError(
                f"Solver produced non-finite parameter weights: the training loss overflowed "
                f"after epoch {overflowed[0]}; try a smaller learning_rate, or standardise X"
            )

    def _new_training(
        self, d_in: int, d_out: int, dtype: np.dtype[Any], settings: Settings
    ) -> Training:
        rng = self._rng()
        model = self._network(d_in, d_out, dtype, settings, rng)
        optimizer = self._optimizer(model.parameters(), settings)
        return Training(model, self._loss(), optimizer, TrainingState(), rng)

    def _weighted_loss(self, training: Training, targets: Array, weight: Array | None) -> Loss:
        """The loss for this call's targets (the classifier weighs classes); by default as is."""
        return training.loss_fn

    def _rng(self) -> np.random.Generator:
        """The generator for weights, validation split and shuffling, seeded by random_state."""
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        return np.random.default_rng(seed)

    def _network(
        self,
        d_in: int,
        d_out: int,
        dtype: np.dtype[Any],
        settings: Settings,
        rng: np.random.Generator,
    ) -> Sequential:
        """``mlp()`` with the weights drawn by ``init`` (by default Glorot uniform, as sklearn)."""
        return mlp(
            d_in, settings.hidden, d_out, activation=self.activation, bias=self.bias,
            rng=rng, dtype=dtype, init=get_initializer(self.init),
        )  # fmt: skip

    def _loss(self) -> Loss:
        if self.loss not in self._losses:
            valid = ", ".join(repr(name) for name in self._losses)
            raise ValueError(
                f"{type(self).__name__} loss must be one of {valid}, received {self.loss!r}"
            )
        return self._losses[self.loss]()

    def _optimizer(self, params: list[Parameter], settings: Settings) -> Optimizer:
        try:
            kind = OPTIMIZERS[self.optimizer]
        except ValueError as error:
            raise ValueError(f"{type(self).__name__} {error}") from None
        return kind.from_options(
            params, lr=settings.learning_rate, momentum=self.momentum,
            weight_decay=self.weight_decay,
        )  # fmt: skip

    def _check_continuable(self, training: Training, d_out: int, settings: Settings) -> None:
        """warm_start and partial_fit go on with the kept network, loss and optimizer."""
        d_in, dtype = training.linears[0].in_features, settings.dtype or training.dtype
        wanted = self._network(d_in, d_out, dtype, settings, np.random.default_rng(0))
        kept = (model_config(training.model), type(training.loss_fn), type(training.optimizer))
        optimizer = self._optimizer(wanted.parameters(), settings)
        asked = (model_config(wanted), type(self._loss()), type(optimizer))
        if kept != asked:
            raise ValueError(
                f"{type(self).__name__} continues its trained network (warm_start=True or "
                "partial_fit), so hidden_layer_sizes, activation, bias, dtype, loss and optimizer "
                "cannot change; fit with warm_start=False to train a new one"
            )

    def _apply_optimizer_settings(self, training: Training, settings: Settings) -> None:
        """A changed momentum or weight_decay applies from now on, as learning_rate does.

        The optimizer is then made anew (momentum's velocities and Adam's moments start
        from zero); unchanged, it is kept, so that continuing stays exact.
        """
        kept, wanted = training.optimizer, self._optimizer(training.model.parameters(), settings)
        names = ("momentum", "weight_decay")
        if any(getattr(kept, n, None) != getattr(wanted, n, None) for n in names):
            training.optimizer = wanted

    # ----- what the subclasses define -----------------------------------------------------

    def _validate_xy(self, X: Any, y: Any, reset: bool, dtype: Any) -> tuple[Array, Array]:
        raise NotImplementedError

    def _encode_targets(
        self, y: Array, classes: Any, training: Training | None
    ) -> tuple[Array, int]:
        """(the targets as the loss takes them, the network's output width)."""
        raise NotImplementedError

    def _network_targets(self, training: Training, y: Array) -> Array:
        return y

    def _restore_outputs(self, info: dict[str, Any], d_out: int) -> None:
        """Set what a model file says about the outputs (``classes_``)."""

    # ----- fitted state -------------------------------------------------------------------

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "_training")

    def _fitted(self) -> Training:
        check_is_fitted(self)
        return self._training

    def _outputs(self, X: Any) -> Array:
        """The network's raw outputs (N, D_out) for the checked features."""
        training = self._fitted()
        x = checked_x(self, X, dtype=training.input_dtype, order="C")
        return training.model.predict(training.inputs(x))

    @property
    def model_(self) -> Sequential:
        """The trained handprop network: ``Linear, activation, ..., Linear``."""
        return self._fitted().model

    @property
    def coefs_(self) -> list[Array]:
        """Each Linear layer's weight, (D_in, D_out): the arrays training updates."""
        return [layer.weight.data for layer in self._fitted().linears]

    @property
    def intercepts_(self) -> list[Array]:
        """Each Linear layer's bias (D_out,); zeros with ``bias=False``."""
        training = self._fitted()
        return [
            np.zeros(layer.out_features, training.dtype) if layer.bias is None else layer.bias.data
            for layer in training.linears
        ]

    @property
    def loss_curve_(self) -> list[float]:
        """Each epoch's training loss: the mean of its batches' losses, each taken before its
        step's update, as scikit-learn's (all epochs of these weights, warm starts too)."""
        return [log.train_loss for log in self._fitted().state.logs]

    @property
    def n_iter_(self) -> int:
        """Epochs trained on these weights (partial_fit and warm_start count on)."""
        return self._fitted().state.epoch

    @property
    def validation_scores_(self) -> list[float] | None:
        """The validation accuracy / R² of each early-stopping epoch; None without one."""
        scores = [log.val_metric for log in self._fitted().state.logs if log.val_metric is not None]
        return scores or None

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()
        if "_training" in state:
            state["_training"] = state["_training"].without_caches()
        return state

    # ----- model files --------------------------------------------------------------------

    def save(self, path: PathLike) -> None:
        """Write the network as ``handprop train --out`` does (safetensors, PyTorch layout).

        ``handprop evaluate`` and ``handprop predict`` use the file; ``load`` reads it back.
        """
        training = self._fitted()
        names = getattr(self, "feature_names_in_", None)
        encoding: Encoding | None = getattr(self, "encoding_", None)
        if encoding is not None:  # the network's inputs: "color=red", ...
            names = encoding.feature_names
        metadata = files.metadata(
            type(self).__name__, self.get_params(), self._task, training,
            None if names is None else list(names), getattr(self, "classes_", None),
        )  # fmt: skip
        metadata["encoding"] = None if encoding is None else encoding.to_json()
        save_model(path, training.model, metadata=metadata)

    @classmethod
    def load(cls, path: PathLike) -> Self:
        """An estimator with the network of a file from ``save`` or ``handprop train --out``.

        It predicts as ``handprop predict`` does (applying the file's standardisation)
        and keeps training with ``partial_fit`` or ``warm_start=True``; the file's
        training settings become its hyperparameters.
        """
        model, info = files.read(path, cls._task)
        estimator = cls(**files.params(path, info, model, cls().get_params()))
        estimator._adopt(model, info)
        return estimator

    def _adopt(self, model: Sequential, info: dict[str, Any]) -> None:
        settings = check_settings(type(self).__name__, self.get_params())
        optimizer = self._optimizer(model.parameters(), settings)
        self._training = Training(
            model, self._loss(), optimizer, TrainingState(), self._rng(),
            *files.scalers(info), files.target_names(info),
        )  # fmt: skip
        linears = self._training.linears
        self.n_features_in_ = linears[0].in_features
        names = files.feature_names(info)
        self.encoding_ = files.encoding(info)
        if self.encoding_ is not None:  # the table's columns, before one-hot encoding
            names = list(self.encoding_.input_names)
            self.n_features_in_ = len(names)
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        self._restore_outputs(info, linears[-1].out_features)
