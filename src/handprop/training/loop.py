"""The training loop: epochs of shuffled mini-batches, with validation, early stopping,
learning-rate schedules, gradient clipping and divergence handling.

``fit`` prints nothing: callbacks observe (a progress bar, a log file, checkpoints).
"""

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import numpy as np

from handprop._types import Array, positive_int
from handprop.backend import NUMPY, namespace
from handprop.distributed import Communicator, EveryRankError, GradientExchange
from handprop.layers.module import Module
from handprop.losses import Loss
from handprop.optim import Optimizer
from handprop.sample_weight import WeightedTargets
from handprop.schedules import Schedule
from handprop.training.callbacks import Callback
from handprop.training.capture import CapturedStep, NotCapturable, capture_step
from handprop.training.graphed import GraphedStep, read_losses
from handprop.training.row_split import RowSplitSGD
from handprop.training.scores import EpochScores, score
from handprop.training.sharded import gradient_exchange, sharded_evaluate, sharded_step
from handprop.training.state import EpochLog, History, TrainingState
from handprop.training.step import train_step


class TrainingDiverged(RuntimeError):
    """A loss or weight became NaN or infinite; ``fit`` catches it and reports it."""


def evaluate(
    model: Module, loss_fn: Loss, x: Array, y: Array, metric: str, batch_size: int = 4096
) -> tuple[float, float]:
    """(loss, metric) of ``model`` on (x, y); the loss over the whole set, as ``loss_fn`` reduces.

    Targets with sample weights (``WeightedTargets``) weigh the metric's rows as the loss's.
    Shape: x (N, D_in); y (N, D_out) or (N,) labels.
    """
    return score(loss_fn, model.predict(x, batch_size), y, metric)


def batches(n: int, batch_size: int, rng: np.random.Generator | None) -> Iterator[Array]:
    """The index arrays of the mini-batches over ``n`` samples, each of at most ``batch_size``.

    With ``rng`` the order is one permutation drawn by this call (one per epoch),
    else 0, 1, ..., n - 1. The last batch may be smaller.
    """
    positive_int("batch_size", batch_size)
    if n < 0:
        raise ValueError(f"the number of samples must be >= 0, received {n!r}")
    order = np.arange(n) if rng is None else rng.permutation(n)
    return (order[start : start + batch_size] for start in range(0, n, batch_size))


@dataclass(frozen=True)
class FitOptions:
    """How ``fit`` trains, besides the epochs and the batch size."""

    patience: int | None = None  # early stopping on the monitored quantity; restores the best
    monitor: Literal["val_metric", "val_loss"] = "val_metric"  # what early stopping watches
    schedule: Schedule | None = None
    clip_norm: float | None = None  # rescale gradients whose global L2 norm exceeds this
    on_divergence: Literal["stop", "rollback"] = "stop"
    max_rollbacks: int = 3  # "rollback": restore the epoch's start, halve the rate, go on
    # a training loss above this many times the first epoch's (at least 1) counts as diverged
    divergence_factor: float = 1e6
    # replay full batches from a recorded step (training/capture.py), bit for bit the same;
    # what the tape cannot record trains eagerly
    capture: bool = True
    # the training loss and metric of each epoch: "steps", those of the predictions each
    # step made on its batch before its update (training mode; scikit-learn's loss_curve_,
    # Keras'); "full", one more pass over the training set with the epoch's last weights,
    # in evaluation mode (as validation data is scored): see training/scores.py
    train_scores: Literal["steps", "full"] = "steps"


def fit(
    model: Module,
    loss_fn: Loss,
    optimizer: Optimizer,
    data: tuple[Array, Array],
    *,
    epochs: int,
    batch_size: int = 32,
    rng: np.random.Generator | None = None,
    validation: tuple[Array, Array] | None = None,
    callbacks: Sequence[Callback] = (),
    options: FitOptions | None = None,
    state: TrainingState | None = None,
    comm: Communicator | None = None,
) -> History:
    """Train for ``epochs`` epochs of shuffled mini-batches and return the History.

    Shape: data = (x (N, D_in), y (N, D_out) or (N,) labels); validation alike.
    The metric is the loss's (``loss_fn.metric``: accuracy for SoftmaxCrossEntropy,
    R² for the squared errors). ``rng``
    shuffles (default: seeded with 0). Pass the ``state`` of an interrupted run
    (with its rng and optimizer restored) to continue it exactly.
    Training runs in training mode (``model.train()``: Dropout drops, BatchNorm uses
    the batch's statistics), validation's scores in evaluation mode; the model is left in
    the modes it came in. Each epoch's training scores are those of the predictions and
    losses its steps made, before their updates, and the final weights' loss on one batch
    tells whether they diverged (``FitOptions.train_scores``: "full" scores the epoch's
    final weights in evaluation mode instead, one more pass).

    ``comm`` (``handprop.distributed.world()``): train data-parallel on every rank of
    it, each rank passing the same arguments (the same data, a memory map of it, or
    ``RowShard.of(a, comm)``: its own rows alone): each computes the gradients of its
    rows of every batch, one exchange a step sums them (an Allreduce, or shared memory on
    one machine: see ``GradientExchange``), the scores are merged, BatchNorm's
    running statistics are averaged over the ranks after every epoch, and the weights and
    buffers end identical on every rank (checked).
    """
    options = options or FitOptions()
    _check_fit_arguments(epochs, batch_size, validation, options)
    _check_sample_weights(data, validation, optimizer, comm)
    if comm is not None and comm.size > 1 and optimizer.xp is not NUMPY:  # every rank alike
        raise EveryRankError(
            "training over ranks (mpiexec) exchanges numpy gradients: keep the model on numpy "
            "(--backend numpy), or train on torch in one process"
        )
    trainer = _Trainer(model, loss_fn, optimizer, options, list(callbacks), comm)
    state = state or TrainingState()
    if state.base_lr is None:
        state.base_lr = optimizer.lr
    rng = rng or np.random.default_rng(0)
    if optimizer.xp is not NUMPY:  # a model on torch: the data moves there once
        data, validation = (
            _moved(optimizer.xp, data),
            validation and _moved(optimizer.xp, validation),
        )
    modes = [(module, module.training) for module in model.modules()]
    model.train()  # training mode, scoring in evaluation mode; then the caller's modes again
    try:
        return trainer.run(data, validation, epochs, batch_size, rng, state)
    finally:
        for module, training in modes:
            module.training = training


def _moved(xp: Any, data: tuple[Array, Array]) -> tuple[Array, Array]:
    """(x, y) as arrays of namespace ``xp`` (torch tensors on the model's device)."""
    x, y = (xp.from_host(_on_host(a)) for a in data)
    return x, y


def _on_host(a: Array) -> Array:
    """``a`` as numpy data: a tensor's, or every row of a memory map (``a[:]``, MappedRows)."""
    if isinstance(a, np.ndarray) or hasattr(a, "device"):
        host: Array = namespace(a).to_numpy(a)
        return host
    return np.asarray(a[:])


def _deferred_steps(
    model: Module,
    loss_fn: Loss,
    optimizer: Optimizer,
    options: FitOptions,
    callbacks: list[Callback],
    exchange: GradientExchange | None,
) -> GraphedStep | None:
    """On torch, without clipping or callbacks that read every step's loss: a GraphedStep."""
    reads_steps = any(type(c).on_step_end is not Callback.on_step_end for c in callbacks)
    if optimizer.xp is NUMPY or exchange is not None or options.clip_norm or reads_steps:
        return None
    return GraphedStep(model, loss_fn, optimizer)


def _check_fit_arguments(
    epochs: int, batch_size: int, validation: tuple[Array, Array] | None, options: FitOptions
) -> None:
    if epochs < 0 or batch_size < 1:
        raise ValueError(
            f"fit needs epochs >= 0 and batch_size >= 1, received {epochs}, {batch_size}"
        )
    if options.patience is not None and (options.patience < 1 or validation is None):
        raise ValueError("early stopping needs patience >= 1 and validation data to watch")
    if options.train_scores not in ("steps", "full"):
        raise ValueError(
            f"train_scores must be 'steps' or 'full', received {options.train_scores!r}"
        )
    if options.clip_norm is not None and not (
        math.isfinite(options.clip_norm) and options.clip_norm > 0
    ):
        raise ValueError(f"clip_norm must be a finite number > 0, received {options.clip_norm!r}")


def _check_sample_weights(
    data: tuple[Array, Array],
    validation: tuple[Array, Array] | None,
    optimizer: Optimizer,
    comm: Communicator | None,
) -> None:
    """WeightedTargets train on one process on numpy: elsewhere their weights would be lost."""
    if not any(isinstance(part[1], WeightedTargets) for part in (data, validation) if part):
        return
    if optimizer.xp is not NUMPY:
        raise ValueError(
            "sample weights train on numpy only: the losses on torch do not weigh rows; "
            "keep the model on numpy (model.to('numpy'))"
        )
    if comm is not None and comm.size > 1:  # every rank alike: rank 0 says it
        raise EveryRankError(
            "sample weights train on one process only: over ranks each rank's loss would be "
            "normalised by its own rows' weights; train without mpiexec"
        )


class _Trainer:
    def __init__(
        self,
        model: Module,
        loss_fn: Loss,
        optimizer: Optimizer,
        options: FitOptions,
        callbacks: list[Callback],
        comm: Communicator | None = None,
    ) -> None:
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.options, self.callbacks = options, callbacks
        self.metric = loss_fn.metric
        self.params = model.parameters()
        # what a snapshot holds: the parameters, and the buffers (BatchNorm's running statistics)
        self.arrays = [p.data for p in self.params] + [b for _, b in model.named_buffers()]
        self.comm = comm if comm is not None and comm.size > 1 else None  # 1: the plain path
        self.exchange: GradientExchange | None = None  # made by run(), which knows the batch
        self.split: RowSplitSGD | None = None  # plain SGD's weights shared on one machine
        self.buffers = [b for _, b in model.named_buffers()]  # averaged over the ranks
        self.xp = optimizer.xp  # numpy, or torch on the model's device
        self.deferred = _deferred_steps(
            model, loss_fn, optimizer, options, callbacks, self.exchange
        )
        self.captured: dict[int, CapturedStep] | None = None  # by batch size, at the first epoch
        self.epoch_scores: EpochScores | None = None  # the steps' predictions (train_scores)

    def run(
        self,
        data: tuple[Array, Array],
        validation: tuple[Array, Array] | None,
        epochs: int,
        batch_size: int,
        rng: np.random.Generator,
        state: TrainingState,
    ) -> History:
        if self.comm is not None:
            batch_rows = min(batch_size, len(data[0]))
            self.split, self.exchange = gradient_exchange(
                self.comm, self.model, self.optimizer, self.loss_fn, self.options.clip_norm,
                batch_rows,
            )  # fmt: skip
            self.arrays = [p.data for p in self.params] + self.buffers  # the shared weights'
        if self.options.train_scores == "steps" and len(data[0]):
            self.epoch_scores = EpochScores(
                self.loss_fn, self.metric, data, self.comm, whole=self._whole(data)
            )
        together = False  # whether every rank leaves fit here: then the window can be freed
        try:
            history = self._run(data, validation, epochs, batch_size, rng, state)
            together = True  # check_same gathers every rank: it returns or raises on all
            if self.comm is not None:
                self.comm.check_same(self.arrays, "the weights and buffers after training")
        except EveryRankError:
            together = True
            raise
        finally:
            if self.split is not None:  # the weights back in the parameters' own arrays
                self.split.close(free=together)  # collective: not after one rank's exception
        if self.exchange is not None:
            self.exchange.close()  # the shared memory of the ranks of one machine
        return history

    def _run(
        self,
        data: tuple[Array, Array],
        validation: tuple[Array, Array] | None,
        epochs: int,
        batch_size: int,
        rng: np.random.Generator,
        state: TrainingState,
    ) -> History:
        while state.epoch < epochs:
            if self._patience_exhausted(state):  # a resumed run that had already stopped
                self._restore(state.best_parameters)
                return self._history(state, "early stopping")
            self._set_learning_rate(state)
            snapshot, step = [self.xp.copy(array) for array in self.arrays], state.step
            try:
                with np.errstate(over="ignore", invalid="ignore"):
                    self._epoch(data, batch_size, rng, state)
                    scores = self._scores(data, validation)
                    self._check_last_weights(state, scores, data, batch_size)
                self._check_growth(state, scores[0], batch_size)
            except TrainingDiverged as error:
                self._restore(snapshot)
                state.step = step
                if (
                    self.options.on_divergence == "rollback"
                    and state.rollbacks < self.options.max_rollbacks
                ):
                    state.rollbacks += 1
                    state.lr_scale /= 2
                    self.optimizer.reset_state()
                    continue
                return self._history(state, "diverged", f"{error}; {self._kept(state)}")
            log = self._log(scores, state)
            self._track_best(log, state)
            for callback in self.callbacks:  # after _track_best: a checkpoint sees the best so far
                callback.on_epoch_end(log, state)
            if self._patience_exhausted(state):
                self._restore(state.best_parameters)
                return self._history(state, "early stopping")
        if self.options.patience is not None:
            self._restore(state.best_parameters)
        return self._history(state, "completed")

    def _set_learning_rate(self, state: TrainingState) -> None:
        schedule = self.options.schedule
        factor = 1.0 if schedule is None else schedule.factor(state.epoch)
        assert state.base_lr is not None
        self.optimizer.lr = state.base_lr * state.lr_scale * factor

    def _epoch(
        self,
        data: tuple[Array, Array],
        batch_size: int,
        rng: np.random.Generator,
        state: TrainingState,
    ) -> None:
        x, y = data
        rows, kept = self.xp.rows, self.epoch_scores
        if kept is not None:
            kept.begin()
        if self.deferred is not None:
            self._deferred_epoch(x, y, batch_size, rng, state)
            return
        captured = self._captured(data, batch_size)
        for batch in batches(len(x), batch_size, rng):
            keep = self._keeper(batch)
            if self.exchange is not None:  # this rank's slice of the batch
                loss = sharded_step(
                    self.exchange, self.model, self.loss_fn, self.optimizer, data, batch,
                    self.options.clip_norm, self.split, keep,
                )  # fmt: skip
            elif len(batch) in captured:
                step = captured[len(batch)]
                x.take(batch, 0, step.x)  # x[batch], into the tape's input
                y.take(batch, 0, step.y)
                loss = step.replay(keep)
            else:
                loss = train_step(
                    self.model, self.loss_fn, self.optimizer, rows(x, batch), rows(y, batch),
                    clip_norm=self.options.clip_norm, on_predictions=keep,
                )  # fmt: skip
            state.step += 1
            if kept is not None:
                kept.add_loss(len(batch), loss)
            if not math.isfinite(loss):
                raise TrainingDiverged(self._divergence(state, loss, batch_size))
            for callback in self.callbacks:
                callback.on_step_end(state.step, loss)
        if self.comm is not None and self.buffers:  # BatchNorm's statistics of every rank's rows
            self.comm.average(self.buffers)
        if not all(self.xp.all_finite(p.data) for p in self.params):
            raise TrainingDiverged(self._divergence(state, math.nan, batch_size, "a weight"))

    def _captured(self, data: tuple[Array, Array], batch_size: int) -> dict[int, CapturedStep]:
        """Steps replayed from tapes, by batch size: the full one and the last, short one.

        Recorded once per ``fit``. None (every batch eager) with clipping or ranks, for
        data that is not a plain array, or for a model, loss or optimizer the tape cannot
        record. (The short batch's own tape also keeps the layers' buffers at the size
        the scores use.)
        """
        if self.captured is None:
            self.captured = self._capture(data, batch_size)
        return self.captured

    def _capture(self, data: tuple[Array, Array], batch_size: int) -> dict[int, CapturedStep]:
        x, y = data
        if (
            not self.options.capture
            or self.exchange is not None
            or self.options.clip_norm is not None
            # plain arrays only: a subclass (WeightedTargets) carries more than the tape copies
            or not (type(x) is np.ndarray and type(y) is np.ndarray)
            or not (x.flags.c_contiguous and y.flags.c_contiguous)
        ):
            return {}
        steps = {}
        for size in sorted({min(batch_size, len(x)), len(x) % batch_size} - {0}):
            shapes = (size, *x.shape[1:]), (size, *y.shape[1:])
            try:
                step = capture_step(
                    self.model, self.loss_fn, self.optimizer, *shapes, y_dtype=y.dtype
                )
            except NotCapturable:
                return {}
            if not (step.fits(x[:size], y[:size]) and step.fits_labels(y)):
                return {}  # the eager step says what is wrong, at the batch where it is
            steps[size] = step
        return steps

    def _deferred_epoch(
        self, x: Array, y: Array, batch_size: int, rng: np.random.Generator, state: TrainingState
    ) -> None:
        """The epoch on torch: losses stay on the device (a replayed CUDA graph where it can),
        read at once at the end; the first that is not finite is reported, as step by step."""
        assert self.deferred is not None
        rows, step, kept = self.xp.rows, self.deferred.step, self.epoch_scores
        parts = list(batches(len(x), batch_size, rng))
        losses = [step(rows(x, b), rows(y, b), self._keeper(b)) for b in parts]
        for batch, loss in zip(parts, read_losses(losses), strict=True):
            state.step += 1
            if kept is not None:
                kept.add_loss(len(batch), loss)
            if not math.isfinite(loss):
                raise TrainingDiverged(self._divergence(state, loss, batch_size))
        if not all(self.xp.all_finite(p.data) for p in self.params):
            raise TrainingDiverged(self._divergence(state, math.nan, batch_size, "a weight"))

    def _divergence(
        self, state: TrainingState, loss: float, batch_size: int, what: str = "the loss"
    ) -> str:
        lr = self.optimizer.lr
        advice = f"try a smaller learning rate, e.g. {lr / 10:g}"
        if self.loss_fn.reduction == "sum":
            advice += (
                f"; {type(self.loss_fn).__name__} sums over the batch, so its gradient grows "
                f"with the batch size ({batch_size}): a mean loss (MeanSquaredError) does not"
            )
        return (
            f"training diverged in epoch {state.epoch + 1} at step {state.step}: {what} became "
            f"{loss} with learning rate {lr:g}; {advice}"
        )

    def _keeper(self, batch: Array) -> Callable[[Array], None] | None:
        """What a step on ``batch`` hands its predictions to (``train_step``'s
        ``on_predictions``): the epoch's scores, which keep a copy; None without them."""
        if self.epoch_scores is None:
            return None
        return partial(self.epoch_scores.add_predictions, batch)

    def _check_last_weights(
        self,
        state: TrainingState,
        scores: tuple[float, float, float | None, float | None],
        data: tuple[Array, Array],
        batch_size: int,
    ) -> None:
        """Raise TrainingDiverged where every step was finite but the weights grew too far:
        finite weights whose outputs overflow. The "full" training loss tells; the steps'
        scores never see the last update, so the last weights' loss on a batch of training
        rows tells (rows the steps trained on with finite losses; not validation's, whose
        loss a bad row makes NaN with sound weights)."""
        loss, what = scores[0], "the training loss"
        if math.isfinite(loss) and self.epoch_scores is not None:  # the same on every rank
            loss, what = self._last_loss(data, batch_size), "the last weights' loss on a batch"
        if not math.isfinite(loss):
            raise TrainingDiverged(self._divergence(state, loss, batch_size, what))

    def _last_loss(self, data: tuple[Array, Array], batch_size: int) -> float:
        """The loss of the model, in evaluation mode, on the first ``batch_size`` training
        rows (over ranks: of each rank's own rows; the first that is not finite of every
        rank's). Collective: every rank calls it."""
        x, y = data
        mine = slice(0, len(x)) if self.comm is None else self.comm.rows(len(x))
        first = slice(mine.start, min(mine.start + batch_size, mine.stop))
        loss = 0.0
        if first.start < first.stop:
            self.model.eval()
            try:
                loss = self.loss_fn.forward(self.model.predict(x[first]), y[first])
            finally:
                self.model.train()
        losses = [loss] if self.comm is None else self.comm.allgather(loss)
        return next((value for value in losses if not math.isfinite(value)), loss)

    def _check_growth(self, state: TrainingState, loss: float, batch_size: int) -> None:
        """A finite loss that grew past ``divergence_factor`` times the first epoch's diverged."""
        if not state.logs:
            return
        first = state.logs[0].train_loss
        bound = self.options.divergence_factor * max(abs(first), 1.0)
        if loss > bound:
            what = f"the training loss (over {self.options.divergence_factor:g} times the first "
            what += f"epoch's, {first:.4g})"
            raise TrainingDiverged(self._divergence(state, loss, batch_size, what))

    def _kept(self, state: TrainingState) -> str:
        return f"kept the weights from the start of epoch {state.epoch + 1}, the last finite ones"

    def _scores(
        self, data: tuple[Array, Array], validation: tuple[Array, Array] | None
    ) -> tuple[float, float, float | None, float | None]:
        """The training set's loss and metric (``train_scores``: the steps' predictions, else
        scored as validation is); validation's in evaluation mode (Dropout off, BatchNorm's
        running statistics)."""
        steps = None if self.epoch_scores is None else self.epoch_scores.result()
        self.model.eval()
        try:
            train_loss, train_metric = steps or self._evaluate(data)
            if validation is None:
                return train_loss, train_metric, None, None
            return (train_loss, train_metric, *self._evaluate(validation))
        finally:
            self.model.train()

    def _evaluate(self, data: tuple[Array, Array]) -> tuple[float, float]:
        if not self._whole(data):
            return sharded_evaluate(self.comm, self.model, self.loss_fn, *data, self.metric)
        return evaluate(self.model, self.loss_fn, *data, self.metric)

    def _whole(self, data: tuple[Array, Array]) -> bool:
        """Whether this process scores ``data`` whole: it holds every row (numpy arrays, torch,
        or targets with sample weights, which scores summed part by part would drop), else
        part by part (``PartScores``: over ranks, or rows behind a memory map)."""
        in_memory = self.xp is not NUMPY or isinstance(data[0], np.ndarray)
        return self.comm is None and (in_memory or isinstance(data[1], WeightedTargets))

    def _log(
        self, scores: tuple[float, float, float | None, float | None], state: TrainingState
    ) -> EpochLog:
        state.epoch += 1
        log = EpochLog(state.epoch, *scores, self.optimizer.lr)
        state.logs.append(log)
        return log

    def _patience_exhausted(self, state: TrainingState) -> bool:
        patience = self.options.patience
        best = state.best_epoch
        return patience is not None and best is not None and state.epoch - best >= patience

    def _track_best(self, log: EpochLog, state: TrainingState) -> None:
        if self.options.patience is None or log.val_metric is None:
            return
        assert log.val_loss is not None
        if self.options.monitor == "val_loss":  # lower is better; ties: the better metric
            tie = log.val_loss == state.best_loss and log.val_metric > state.best_metric
            better = log.val_loss < state.best_loss or tie
        else:  # higher is better; ties: the lower loss
            tie = log.val_metric == state.best_metric and log.val_loss < state.best_loss
            better = log.val_metric > state.best_metric or tie
        if better:
            state.best_metric, state.best_loss, state.best_epoch = (
                log.val_metric, log.val_loss, log.epoch,
            )  # fmt: skip
            state.best_parameters = [self.xp.copy(array) for array in self.arrays]

    def _restore(self, saved: list[Array] | None) -> None:
        if saved is not None:
            if self.split is not None:  # no rank reads the shared weights (rank 0 saving them)
                self.split.barrier()
            for target, array in zip(self.arrays, saved, strict=True):
                self.xp.copyto(target, array)
            if self.split is not None:  # ... nor goes on before they are whole
                self.split.barrier()

    def _history(
        self,
        state: TrainingState,
        reason: Literal["completed", "early stopping", "diverged"],
        message: str = "",
    ) -> History:
        return History(self.metric, list(state.logs), reason, state.best_epoch, message)
