"""Checkpoints: a model file plus an optimizer's state, to resume training bit for bit."""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handprop._types import Array
from handprop.checkpoint.errors import ModelFileError
from handprop.checkpoint.files import PathLike, _serialize, write_atomically
from handprop.checkpoint.model_file import (
    _check_tensors,
    _file_shape,
    _from_file,
    _handprop_metadata,
    _load,
    _model_tensors,
    _to_file,
)
from handprop.layers.sequential import Sequential
from handprop.optim import SGD, Adam, Optimizer
from handprop.parameter import Parameter

_OPTIMIZERS: dict[str, type[Optimizer]] = {"SGD": SGD, "Adam": Adam}


def save_checkpoint(
    path: PathLike,
    model: Sequential,
    optimizer: Optimizer,
    *,
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """``save_model`` plus ``optimizer``'s state, to resume training bit for bit.

    Put the training state (epoch, step, ``rng.bit_generator.state``, history)
    in ``metadata``. The optimizer (SGD or Adam, built on ``model``'s
    parameters) adds tensors ``optimizer.<i>.<slot>`` (i: position in
    ``optimizer.params``; slot: ``velocity``, ``m`` or ``v``), which PyTorch's
    strict ``load_state_dict`` refuses: the ``save_model`` file is the one for PyTorch.
    """
    kind, hyperparameters, slots = _describe(optimizer)
    config = {
        "type": kind,
        "hyperparameters": hyperparameters,
        "scalars": {"t": optimizer.t} if isinstance(optimizer, Adam) else {},
        "parameters": _parameter_names(model, optimizer),
    }
    tensors = _model_tensors(model)
    tensors.update({name: _to_file(array) for name, array in _slot_arrays(slots).items()})
    info = _handprop_metadata(model, metadata, {"optimizer": config})
    write_atomically(Path(path), _serialize(tensors, info))


@dataclass(frozen=True)
class OptimizerState:
    """An optimizer as a checkpoint holds it; ``restore_optimizer`` puts it back.

    ``config``: ``{"type": "Adam", "hyperparameters": {"lr": ...}, "scalars":
    {"t": 12}, "parameters": ["0.weight", ...]}``; ``tensors``: the arrays,
    ``optimizer.<i>.<slot>`` in the file's layout; ``source``: the file, for messages.
    """

    config: dict[str, Any]
    tensors: dict[str, Array]
    source: str


def load_checkpoint(path: PathLike) -> tuple[Sequential, dict[str, Any], OptimizerState]:
    """The model, the handprop metadata and the optimizer state that ``save_checkpoint`` wrote.

    Resume with ``build_optimizer(model.parameters(), state)``, or build the
    optimizer yourself and call ``restore_optimizer(optimizer, state)``.
    """
    model, info, tensors = _load(path, "relu", None)
    config = info.get("optimizer")
    if not isinstance(config, dict):
        raise ModelFileError(
            f"{path} holds no optimizer state: it is a model file, not a checkpoint "
            "(checkpoints are written by save_checkpoint)"
        )
    return model, info, OptimizerState(config, tensors, str(path))


def build_optimizer(params: Iterable[Parameter], state: OptimizerState) -> Optimizer:
    """A new optimizer over ``params`` with the checkpoint's type and hyper-parameters, restored."""
    kind = state.config.get("type")
    if not isinstance(kind, str) or kind not in _OPTIMIZERS:
        valid = ", ".join(_OPTIMIZERS)
        raise ModelFileError(f"{state.source}: optimizer type {kind!r} is not one of {valid}")
    hyperparameters = _saved(state, "hyperparameters", dict)
    if isinstance(hyperparameters.get("betas"), list):
        hyperparameters = {**hyperparameters, "betas": tuple(hyperparameters["betas"])}
    try:
        optimizer = _OPTIMIZERS[kind](params, **hyperparameters)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{state.source}: cannot build its {kind}: {error}") from error
    restore_optimizer(optimizer, state)
    return optimizer


def restore_optimizer(optimizer: Optimizer, state: OptimizerState) -> None:
    """Copy ``state`` into ``optimizer`` in place: its arrays and Adam's step count ``t``.

    ``optimizer`` must be built on the loaded model's parameters, with the
    checkpoint's type and hyper-parameters; ModelFileError says what differs.
    """
    kind, hyperparameters, slots = _describe(optimizer)
    _check_same_optimizer(state, kind, json.loads(json.dumps(hyperparameters)))
    names = _saved(state, "parameters", list)
    if len(names) != len(optimizer.params):
        raise ModelFileError(
            f"{state.source}: the checkpoint's {kind} updates {len(names)} parameters, "
            f"this one {len(optimizer.params)}; build it with model.parameters()"
        )
    arrays = _slot_arrays(slots)
    specs = {name: (_file_shape(array), array.dtype.name) for name, array in arrays.items()}
    _check_tensors(state.source, f"this {kind}", specs, state.tensors)
    scalars = _saved(state, "scalars", dict)
    if isinstance(optimizer, Adam):
        optimizer.t = _step_count(state, scalars.get("t"))
    for name, array in arrays.items():
        array[...] = _from_file(state.tensors[name])


def _check_same_optimizer(
    state: OptimizerState, kind: str, hyperparameters: dict[str, Any]
) -> None:
    saved_kind = state.config.get("type")
    saved = _saved(state, "hyperparameters", dict)
    if saved_kind != kind:
        raise ModelFileError(
            f"{state.source}: the checkpoint holds {saved_kind!r} state, the optimizer is "
            f"{kind!r}; build a {saved_kind} with {saved}"
        )
    differ = [
        key for key in {**saved, **hyperparameters} if saved.get(key) != hyperparameters.get(key)
    ]
    if differ:
        changes = ", ".join(
            f"{key}: checkpoint {saved.get(key)!r}, optimizer {hyperparameters.get(key)!r}"
            for key in differ
        )
        raise ModelFileError(
            f"{state.source}: the {kind} hyper-parameters differ ({changes}); build it with {saved}"
        )


def _saved(state: OptimizerState, key: str, kind: type) -> Any:
    value = state.config.get(key)
    if not isinstance(value, kind):
        raise ModelFileError(
            f"{state.source}: optimizer {key!r} must be a {kind.__name__}, received {value!r:.80}"
        )
    return value


def _step_count(state: OptimizerState, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ModelFileError(
            f"{state.source}: Adam step count t must be an integer >= 0, received {value!r}"
        )
    return value


def _describe(optimizer: Optimizer) -> tuple[str, dict[str, Any], dict[str, list[Array]]]:
    """Type name, hyper-parameters and state arrays (by slot, aligned with ``params``)."""
    hyperparameters: dict[str, Any]
    if isinstance(optimizer, SGD):
        hyperparameters = {
            "lr": optimizer.lr,
            "momentum": optimizer.momentum,
            "nesterov": optimizer.nesterov,
            "weight_decay": optimizer.weight_decay,
        }
        return "SGD", hyperparameters, {"velocity": optimizer.velocities}
    if isinstance(optimizer, Adam):
        hyperparameters = {
            "lr": optimizer.lr,
            "betas": list(optimizer.betas),
            "eps": optimizer.eps,
            "weight_decay": optimizer.weight_decay,
            "decoupled": optimizer.decoupled,
        }
        return "Adam", hyperparameters, {"m": optimizer.m, "v": optimizer.v}
    valid = ", ".join(_OPTIMIZERS)
    raise TypeError(f"checkpoints hold a {valid} optimizer, received {type(optimizer).__name__}")


def _slot_arrays(slots: dict[str, list[Array]]) -> dict[str, Array]:
    return {
        f"optimizer.{index}.{slot}": array
        for slot, arrays in slots.items()
        for index, array in enumerate(arrays)
    }


def _parameter_names(model: Sequential, optimizer: Optimizer) -> list[str]:
    """The model's name for each of the optimizer's parameters; a ValueError if one is foreign."""
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    for position, parameter in enumerate(optimizer.params):
        if id(parameter) not in names:
            raise ValueError(
                f"save_checkpoint: the optimizer's parameter {position} is not one of the "
                "model's; build the optimizer with model.parameters()"
            )
    return [names[id(parameter)] for parameter in optimizer.params]
