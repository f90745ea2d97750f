"""``handprop train``'s job: load data, standardise it, fit a network, save it, log and plot it."""

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from handprop._types import Array
from handprop.backend import NUMPY, namespace
from handprop.checkpoint import (
    build_model,
    build_optimizer,
    load_checkpoint,
    load_model,
    model_config,
    save_checkpoint,
    save_model,
)
from handprop.checkpoint.limits import check_architecture_size, mlp_layers
from handprop.cli.config import TrainConfig
from handprop.cli.errors import Interrupted, TrainingFailed
from handprop.cli.metadata import check_finite_weights, check_model_info, check_resume_info
from handprop.cli.outputs import best_path, check_outputs, diverged_path, output_paths
from handprop.cli.prepared import Prepared, collapse_warning, prepare
from handprop.cli.progress import JsonlLog, ProgressBar, epoch_record
from handprop.data.transform import balanced_class_weights
from handprop.distributed import Communicator
from handprop.layers import Sequential, build_layers, mlp
from handprop.losses import LOSSES, Loss, SoftmaxCrossEntropy
from handprop.optim import OPTIMIZERS, Optimizer
from handprop.schedules import CosineSchedule, Schedule, StepSchedule
from handprop.training import Callback, EpochLog, FitOptions, History, TrainingState, fit
from handprop.training.loop import evaluate


def train(
    config: TrainConfig,
    resume: Path | None,
    out: TextIO,
    comm: Communicator | None = None,
    xp: Any = NUMPY,
) -> int:
    """Run one training job; returns the exit code (1 if training diverged).

    With ``comm``, every rank of it runs this, data-parallel; rank 0 alone writes.
    ``xp``: the array namespace the model computes on (``--backend``, ``--device``).
    """
    # before any work: a typo in --out must not cost a training run, nor --out eat --data
    check_outputs(output_paths(config), config.data, resume)
    if resume is None:
        prepared = prepare(config, None, comm)
        config = config.with_task(prepared.dataset.task)
        if prepared.dataset.task_note and not config.quiet and (comm is None or comm.rank == 0):
            flag = "regression" if config.task == "classification" else "classification"
            print(
                f"task: {config.task} ({prepared.dataset.task_note}); --task {flag} overrides",
                file=sys.stderr,
            )
        model = _network(config, prepared)
        _place(model, xp)
        optimizer = _optimizer(config, model)
        state, rng = TrainingState(), np.random.default_rng([config.seed, 2])
    else:
        model, info, optimizer_state = load_checkpoint(resume)
        source = str(resume)
        check_finite_weights(source, model)
        check_model_info(source, model, info)
        check_resume_info(source, info, optimizer_state.config.get("scalars"))
        check_architecture_size(model_config(model)["layers"], config.batch_size)
        prepared = prepare(config, info, comm)
        prepared.check_width(model, source)
        _check_same_split(source, info, prepared)
        _place(model, xp)
        optimizer = build_optimizer(model.parameters(), optimizer_state, model=model)
        state, rng = _restored_state(info)
        state.best_parameters = _load_best(resume, state, model)
        if state.best_parameters is not None and xp is not NUMPY:
            state.best_parameters = [xp.from_host(array) for array in state.best_parameters]
    job = _Job(config, prepared, model, optimizer, rng, comm)
    try:
        history = job.run(state)
    except KeyboardInterrupt:
        raise Interrupted(job.interrupted_message(state)) from None
    return job.finish(history, out)


class _Job:
    def __init__(
        self,
        config: TrainConfig,
        prepared: Prepared,
        model: Sequential,
        optimizer: Optimizer,
        rng: np.random.Generator,
        comm: Communicator | None = None,
    ) -> None:
        self.config, self.prepared, self.model, self.optimizer, self.rng = (
            config, prepared, model, optimizer, rng,
        )  # fmt: skip
        self.comm = comm
        self.writes = comm is None or comm.rank == 0  # the other ranks write nothing
        self.loss_fn = _loss(config, prepared)
        # The last checkpoint this run wrote: its epoch and its file's identity.
        self.saved_epoch: int | None = None
        self.saved_file = self._checkpoint_file()  # before the run: another run's, or none

    def interrupted_message(self, state: TrainingState) -> str:
        """What Ctrl-C left behind, and how to go on."""
        checkpoint, saved = self.config.checkpoint, self.saved_epoch
        now = self._checkpoint_file()
        if now is not None and now != self.saved_file:  # Ctrl-C right after a save's rename
            saved = state.epoch
        if checkpoint is None or saved is None:
            return (
                f"interrupted after {state.epoch} epochs; nothing was saved (--checkpoint PATH "
                "--checkpoint-every K saves a run that can be resumed)"
            )
        return (
            f"interrupted after {state.epoch} epochs; {checkpoint} holds epoch "
            f"{saved}: go on with handprop train --resume {checkpoint} "
            f"--checkpoint {checkpoint} --checkpoint-every {self.config.checkpoint_every}"
        )

    def run(self, state: TrainingState) -> History:
        config, prepared = self.config, self.prepared
        callbacks: list[Callback] = []
        steps_per_epoch = -(-len(prepared.train_x) // config.batch_size)
        bar = ProgressBar(
            steps_per_epoch * max(0, config.epochs - state.epoch), config.epochs,
            self.loss_fn.metric, enabled=not config.quiet and self.writes,
        )  # fmt: skip
        callbacks.append(bar)
        checkpoints = config.checkpoint_every is not None and config.checkpoint is not None
        if checkpoints and self.writes:
            assert config.checkpoint_every is not None
            callbacks.append(_Checkpointer(config.checkpoint_every, self._save_checkpoint))
        log = None
        if config.log is not None and self.writes:
            log = JsonlLog(Path(config.log), self.loss_fn.metric)
        try:
            if log is not None:
                for past in state.logs:  # a resumed run's log starts with the epochs before
                    log.write(epoch_record(past, self.loss_fn.metric))
                callbacks.append(log)
            return fit(
                self.model, self.loss_fn, self.optimizer, (prepared.train_x, prepared.train_y),
                epochs=config.epochs, batch_size=config.batch_size, rng=self.rng,
                validation=prepared.validation, callbacks=callbacks,
                options=_fit_options(config), state=state, comm=self.comm,
            )  # fmt: skip
        finally:
            bar.close()
            if log is not None:
                log.file.close()

    def finish(self, history: History, out: TextIO) -> int:
        config = self.config
        diverged = history.stop_reason == "diverged"
        saved = None
        if not self.writes:  # rank 0 writes; every rank fails alike, rank 0 says why
            if diverged:
                raise TrainingFailed(history.message)
            return 0
        if config.out is not None:  # a diverged run never replaces a model at --out
            saved = diverged_path(config.out) if diverged else Path(config.out)
            save_model(saved, self.model, metadata=self.prepared.metadata(config))
        if config.plot is not None:
            _plot(Path(config.plot), history, config)
        if not config.quiet:
            out.write(_summary(history, config, saved, self._test_scores(history)))
            warning = collapse_warning(
                self.model, self.prepared, class_weighted=config.class_weight is not None
            )
            if warning:
                print(warning, file=sys.stderr)
        if diverged:
            kept = (
                f"; they are saved in {saved}, and {config.out} was left as it was" if saved else ""
            )
            raise TrainingFailed(history.message + kept)  # main() names the flags
        return 0

    def _test_scores(self, history: History) -> str:
        """The held-out part's line of the summary ("" without --test-fraction)."""
        test = self.prepared.test
        if test is None:
            return ""
        with np.errstate(over="ignore", invalid="ignore"):
            x, y = (self.model.xp.from_host(a[:]) for a in test)  # .npy's rows: read
            loss, metric = evaluate(self.model, self.loss_fn, x, y, history.metric)
        return f"test:       loss {loss:.6g}, {history.metric} {metric:.4f} ({len(test[0])} rows)"

    def _save_checkpoint(self, state: TrainingState) -> None:
        assert self.config.checkpoint is not None
        metadata = {
            **self.prepared.metadata(self.config),
            "state": state.to_json(),  # best_parameters: saved beside it, see best_path
            "rng": self.rng.bit_generator.state,
            "validation_digest": self.prepared.validation_digest(),
        }
        if state.best_parameters is not None:  # early stopping's best weights, beside it
            best = build_model(model_config(self.model))
            for target, array in zip(_snapshot(best), state.best_parameters, strict=True):
                target[...] = namespace(array).to_numpy(array)  # a CUDA tensor's, via the host
            save_model(best_path(self.config.checkpoint), best)
        save_checkpoint(self.config.checkpoint, self.model, self.optimizer, metadata=metadata)
        self.saved_epoch, self.saved_file = state.epoch, self._checkpoint_file()

    def _checkpoint_file(self) -> tuple[int, int] | None:
        """The checkpoint file's inode and modification time, or None if there is none."""
        try:
            found = os.stat(self.config.checkpoint or "")
        except OSError:
            return None
        return found.st_ino, found.st_mtime_ns


class _Checkpointer(Callback):
    def __init__(self, every: int, save: Callable[[TrainingState], None]) -> None:
        self.every, self.save = every, save

    def on_epoch_end(self, log: EpochLog, state: TrainingState) -> None:
        if log.epoch % self.every == 0:
            self.save(state)


def _place(model: Sequential, xp: Any) -> None:
    """Move the model to torch (``--backend torch``, ``--device``) before its optimizer is built."""
    if xp is not NUMPY:
        model.to(xp.device)


def _network(config: TrainConfig, prepared: Prepared) -> Sequential:
    d_in, d_out = prepared.train_x.shape[1], prepared.d_out
    if config.layers is not None:
        return _described_network(config, prepared)
    check_architecture_size(mlp_layers(d_in, config.hidden, d_out), config.batch_size)
    return mlp(
        prepared.train_x.shape[1], config.hidden, prepared.d_out, activation=config.activation,
        bias=config.bias, rng=np.random.default_rng([config.seed, 1]), dtype=config.dtype,
    )  # fmt: skip


def _described_network(config: TrainConfig, prepared: Prepared) -> Sequential:
    """The network of --layers, for inputs of the data's shape; its last layer must give
    one output per class (or target)."""
    assert config.layers is not None
    shape = prepared.input_shape or prepared.train_x.shape[1:]
    model = build_layers(
        config.layers, shape, rng=np.random.default_rng([config.seed, 1]), dtype=config.dtype
    )
    check_architecture_size(model_config(model)["layers"], config.batch_size)
    sample = np.zeros((1, *shape), dtype=config.dtype)  # a rank may hold no row 0
    outputs = model.eval().forward(sample).shape[1:]  # eval: no state moves
    model.train()
    if outputs != (prepared.d_out,):
        wanted = "classes" if prepared.dataset.classes is not None else "targets"
        raise ValueError(
            f"--layers gives outputs of shape {outputs} per sample, but the data has "
            f"{prepared.d_out} {wanted}: end it with linear {prepared.d_out}"
        )
    return model


def _loss(config: TrainConfig, prepared: Prepared) -> Loss:
    """The loss named by --loss (set by with_task before a job starts), with --class-weight."""
    if config.class_weight == "balanced":
        weight = prepared.class_weight  # measured before the ranks kept their own rows
        if weight is None:
            labels = prepared.train_y[:]  # a .npy's MappedRows read as one array
            weight = balanced_class_weights(labels, prepared.d_out)
        return SoftmaxCrossEntropy(weight=weight)
    return LOSSES[config.loss or "mse"]()


def _optimizer(config: TrainConfig, model: Sequential) -> Optimizer:
    """The optimizer named by --optimizer, with the flags it takes (--momentum is SGD's)."""
    return OPTIMIZERS[config.optimizer].from_options(
        model.parameters(), lr=config.lr, momentum=config.momentum,
        weight_decay=config.weight_decay,
    )  # fmt: skip


def _fit_options(config: TrainConfig) -> FitOptions:
    schedule: Schedule | None = None
    if config.schedule == "step":
        schedule = StepSchedule(config.step_size, config.gamma)
    elif config.schedule == "cosine":
        schedule = CosineSchedule(config.epochs)
    return FitOptions(
        patience=config.patience, schedule=schedule, clip_norm=config.clip_norm,
        monitor="val_loss" if config.monitor == "val-loss" else "val_metric",
        on_divergence="rollback" if config.on_divergence == "rollback" else "stop",
        train_scores="full" if config.train_scores == "full" else "steps",
    )  # fmt: skip


def _load_best(checkpoint: Path, state: TrainingState, model: Sequential) -> list[Array] | None:
    """Early stopping's best weights so far, saved beside the checkpoint.

    They must have the model's shapes and dtypes (numpy would broadcast other shapes into
    the weights), and be finite.
    """
    if state.best_epoch is None:
        return None
    path = best_path(checkpoint)
    if not path.exists():
        raise ValueError(f"{path} is missing: it holds the best weights that {checkpoint} needs")
    best, _ = load_model(path)
    check_finite_weights(str(path), best)
    expected = [(name, p.shape, p.dtype) for name, p in model.named_parameters()]
    found = [(name, p.shape, p.dtype) for name, p in best.named_parameters()]
    if found != expected:
        raise ValueError(
            f"{path} does not hold the weights of {checkpoint}'s network (another run's? "
            f"shapes {[s for _, s, _ in found]} vs {[s for _, s, _ in expected]}, dtypes "
            f"{found[0][2] if found else None} vs {expected[0][2] if expected else None})"
        )
    return [array.copy() for array in _snapshot(best)]


def _snapshot(model: Sequential) -> list[Array]:
    """The arrays ``fit`` keeps as the best epoch's: the parameters, then the buffers."""
    return [p.data for p in model.parameters()] + [b for _, b in model.named_buffers()]


def _check_same_split(source: str, info: dict[str, Any], prepared: Prepared) -> None:
    """The resumed run must hold out the validation rows the checkpoint's run held out."""
    saved = info.get("validation_digest")
    if saved is not None and saved != prepared.validation_digest():
        raise ValueError(
            f"{source}: the validation rows differ from those of the run that wrote it (its "
            "seed, validation fraction or data changed), so resuming would train on them"
        )


def _restored_state(info: dict[str, Any]) -> tuple[TrainingState, np.random.Generator]:
    """The checkpoint's TrainingState and generator (checked by check_resume_info)."""
    rng = np.random.default_rng()
    rng.bit_generator.state = info["rng"]
    return TrainingState.from_json(info["state"]), rng


def _summary(history: History, config: TrainConfig, saved: Path | None, test: str) -> str:
    if not history.logs:
        return "no epoch completed\n"
    last = history.logs[-1]
    lines = [f"epoch {last.epoch}/{config.epochs}: {history.stop_reason}"]
    if history.best_epoch is not None:
        best = history.logs[history.best_epoch - 1]
        watched = "loss" if config.monitor == "val-loss" else history.metric
        lines[0] += f", best epoch {history.best_epoch} by validation {watched} kept"
        last = best
    lines.append(
        f"train:      loss {last.train_loss:.6g}, {history.metric} {last.train_metric:.4f}"
    )
    if last.val_loss is not None and last.val_metric is not None:
        lines.append(
            f"validation: loss {last.val_loss:.6g}, {history.metric} {last.val_metric:.4f}"
        )
    if test:
        lines.append(test)
    lines.append(f"saved {saved}" if saved else "not saved (pass --out model.safetensors)")
    return "\n".join(lines) + "\n"


def _plot(path: Path, history: History, config: TrainConfig) -> None:
    from handprop.cli.plot import plot_losses  # imports matplotlib

    curves = {"training loss": [log.train_loss for log in history.logs]}
    if any(log.val_loss is not None for log in history.logs):
        curves["validation loss"] = [log.val_loss or np.nan for log in history.logs]
    marked = None
    if history.best_epoch is not None:
        watched = "loss" if config.monitor == "val-loss" else history.metric
        marked = (history.best_epoch, f"kept: epoch {history.best_epoch} (validation {watched})")
    plot_losses(
        path, curves, xlabel="epoch", ylabel=f"loss ({config.loss})", marked=marked,
        title=f"handprop train --data {config.data}: {config.optimizer}, lr {config.lr:g}",
    )  # fmt: skip
