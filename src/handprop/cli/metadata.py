"""Checks on what a model file or checkpoint says about itself, before the CLI trusts it.

``handprop train`` writes, beside the architecture: task, loss, feature_names, target_names,
classes, x_scaler, y_scaler and config; a checkpoint adds state, rng and its optimizer's
scalars. A file can say anything: each field is checked here, and a wrong one is a
ValueError of one line that names the file and the field (exit code 2), never a traceback.
"""

import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeGuard

import numpy as np

from handprop.data import Encoding, Standardizer
from handprop.layers import Conv2d, Linear, Sequential
from handprop.losses import LOSSES
from handprop.training import EpochLog, TrainingState

#: Adam's step count t above this is refused: beta ** t needs a float, and 2**53 steps
#: (a step a nanosecond for 100 days) is more than any run takes.
MAX_OPTIMIZER_STEPS = 2**53

_TASKS = ("regression", "classification")


def widths(model: Sequential) -> tuple[int, int] | None:
    """The model's input and output widths (first and last Linear), or None without a Linear."""
    linears = [layer for layer in model.layers if isinstance(layer, Linear)]
    if not linears:
        return None
    return linears[0].in_features, linears[-1].out_features


def check_finite_weights(source: str, model: Sequential) -> None:
    """Refuse a model whose weights hold NaN or infinity: its predictions would too."""
    for name, parameter in model.named_parameters():
        if not np.isfinite(parameter.data).all():
            raise ValueError(
                f"{source}: tensor {name!r} holds NaN or infinite weights; this model cannot "
                "predict (a diverged run's weights? train it again)"
            )


def check_model_info(source: str, model: Sequential, info: Mapping[str, Any]) -> None:
    """The fields ``evaluate`` and ``predict`` read must be well-formed and fit the model."""
    task = info.get("task", "regression")
    if task not in _TASKS:
        raise ValueError(
            f"{source}: task must be one of {', '.join(_TASKS)}, received {task!r:.80}"
        )
    loss = info.get("loss", "mse")
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(
            f"{source}: loss must be one of {', '.join(LOSSES)}, received {loss!r:.80}"
        )
    if (task == "classification") != (loss == "cross-entropy"):
        raise ValueError(f"{source}: task {task!r} does not go with loss {loss!r}")
    shape = widths(model)
    d_in, d_out = shape if shape is not None else (None, None)
    if "input_shape" in info:  # images: the scaler has one value per channel, no names
        d_in = _check_input_shape(source, model, info["input_shape"])
    classes = info.get("classes")
    if task == "classification":
        _check_classes(source, classes, d_out)
        if info.get("y_scaler") is not None:
            raise ValueError(f"{source}: a classification model has no y_scaler")
    elif classes is not None:
        raise ValueError(f"{source}: a regression model has no classes, received {classes!r:.80}")
    _check_names(source, "feature_names", info.get("feature_names"), d_in)
    _check_names(
        source, "target_names", info.get("target_names"), d_out if task == "regression" else 1
    )
    _check_encoding(source, info.get("encoding"), info.get("feature_names"), d_in)
    _check_scaler(source, "x_scaler", info.get("x_scaler"), d_in)
    _check_scaler(source, "y_scaler", info.get("y_scaler"), d_out)


def _check_input_shape(source: str, model: Sequential, shape: object) -> int:
    """A list (C, H, W) of positive integers whose C the first convolution takes; returns C."""
    if not (isinstance(shape, list) and len(shape) == 3 and all(is_integer(v) for v in shape)
            and all(0 < v <= 2**20 for v in shape)):  # fmt: skip
        raise ValueError(
            f"{source}: input_shape must be [C, H, W], positive integers, received {shape!r:.80}"
        )
    first = next((layer for layer in model.layers if isinstance(layer, Conv2d)), None)
    if first is not None and first.in_channels != shape[0]:
        raise ValueError(
            f"{source}: input_shape has {shape[0]} channels, but its first Conv2d takes "
            f"{first.in_channels}"
        )
    return int(shape[0])


def _check_classes(source: str, classes: object, d_out: int | None) -> None:
    if not isinstance(classes, list) or not classes:
        raise ValueError(f"{source}: a classification model needs a list of classes")
    for label in classes:
        plain_number = isinstance(label, int | float) and not isinstance(label, bool)
        if not (isinstance(label, str) or plain_number) or (
            isinstance(label, float) and not math.isfinite(label)
        ):
            raise ValueError(
                f"{source}: classes must be strings or finite numbers, received {label!r:.80}"
            )
    if len(set(classes)) != len(classes):
        raise ValueError(f"{source}: classes has repeated labels")
    if d_out is not None and len(classes) != d_out:
        raise ValueError(
            f"{source}: classes has {len(classes)} labels, but the network outputs {d_out} scores"
        )


def _check_names(source: str, key: str, names: object, width: int | None) -> None:
    if names is None:
        return
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError(f"{source}: {key} must be a list of strings, received {names!r:.80}")
    if width is not None and len(names) != width:
        raise ValueError(f"{source}: {key} has {len(names)} names, the network {width} columns")


def _check_encoding(source: str, saved: object, names: object, width: int | None) -> None:
    if saved is None:
        return
    try:
        encoding = Encoding.from_json(saved)
    except ValueError as error:
        raise ValueError(f"{source}: encoding: {error}") from None
    if names is not None and list(encoding.feature_names) != names:
        raise ValueError(f"{source}: the encoding's columns do not make its feature_names")
    if width is not None and len(encoding.feature_names) != width:
        raise ValueError(
            f"{source}: encoding makes {len(encoding.feature_names)} inputs, the network {width}"
        )


def _check_scaler(source: str, key: str, saved: object, width: int | None) -> None:
    if saved is None:
        return
    if not isinstance(saved, Mapping):
        raise ValueError(f"{source}: {key} must be an object with mean and scale")
    try:
        scaler = Standardizer.from_json(saved)
    except ValueError as error:
        raise ValueError(f"{source}: {key}: {error}") from None
    if width is not None and len(scaler.mean) != width:
        raise ValueError(f"{source}: {key} has {len(scaler.mean)} columns, the network {width}")


def check_resume_info(source: str, info: Mapping[str, Any], scalars: object) -> None:
    """A checkpoint's state, rng and optimizer scalars, before ``handprop train`` resumes."""
    state = info.get("state")
    if not isinstance(state, Mapping):
        raise ValueError(f"{source} has no training state: resume from a --checkpoint file")
    _check_state(source, state)
    check_rng_state(source, info.get("rng"))
    if not isinstance(scalars, Mapping):
        raise ValueError(f"{source}: optimizer scalars must be an object")
    t = scalars.get("t", 0)
    if not is_integer(t) or not 0 <= t <= MAX_OPTIMIZER_STEPS:
        raise ValueError(
            f"{source}: optimizer step count t must be an integer in [0, 2**53], received {t!r:.40}"
        )


def check_rng_state(source: str, saved: object) -> None:
    if not isinstance(saved, Mapping):
        raise ValueError(f"{source} has no random generator state ('rng')")
    try:
        np.random.default_rng().bit_generator.state = dict(saved)
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        reason = " ".join(str(error).split())
        raise ValueError(
            f"{source}: its random generator state is not valid ({reason:.80})"
        ) from None


_STATE_FIELDS = {f.name for f in fields(TrainingState)}
_LOG_FIELDS = {f.name for f in fields(EpochLog)}


def _check_state(source: str, state: Mapping[str, Any]) -> None:
    where = f"{source}: training state"
    unknown = sorted(set(state) - _STATE_FIELDS)
    missing = sorted(_STATE_FIELDS - set(state) - {"best_parameters", "base_lr"})
    if unknown or missing:
        raise ValueError(f"{where}: unexpected {unknown} or missing {missing} fields")
    for key in ("epoch", "step", "rollbacks"):
        if not is_integer(state[key]) or state[key] < 0:
            raise ValueError(f"{where} {key} must be an integer >= 0, received {state[key]!r:.40}")
    if state.get("best_parameters") is not None:
        raise ValueError(f"{where}: best_parameters must be null (they live in CHECKPOINT.best)")
    if not is_finite_number(state["lr_scale"]) or state["lr_scale"] <= 0:
        raise ValueError(f"{where} lr_scale must be a finite number > 0")
    base_lr = state.get("base_lr")
    if base_lr is not None and (not is_finite_number(base_lr) or base_lr <= 0):
        raise ValueError(f"{where} base_lr must be null or a finite number > 0")
    best = state["best_epoch"]
    if best is not None and (not is_integer(best) or not 1 <= best <= state["epoch"]):
        raise ValueError(f"{where} best_epoch must be null or in [1, epoch], received {best!r:.40}")
    for key in ("best_metric", "best_loss"):
        if state[key] is not None and not isinstance(state[key], int | float):
            raise ValueError(f"{where} {key} must be a number or null")
    logs = state["logs"]
    if not isinstance(logs, list) or len(logs) > state["epoch"]:
        raise ValueError(f"{where} logs must be a list of at most one entry per epoch")
    for log in logs:
        _check_log(where, log)


def _check_log(where: str, log: object) -> None:
    if not isinstance(log, Mapping) or set(log) != _LOG_FIELDS:
        raise ValueError(f"{where}: each log must have exactly {sorted(_LOG_FIELDS)}")
    if not is_integer(log["epoch"]) or log["epoch"] < 1:
        raise ValueError(f"{where}: a log's epoch must be an integer >= 1")
    for key in _LOG_FIELDS - {"epoch"}:
        value = log[key]
        if not (value is None or (isinstance(value, int | float) and not isinstance(value, bool))):
            raise ValueError(f"{where}: a log's {key} must be a number or null")


def is_integer(value: object) -> TypeGuard[int]:
    """A JSON integer (not a boolean)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: object) -> TypeGuard[float]:
    """A finite JSON number (not a boolean)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
