"""Checkpoints: a model file plus an optimizer's state, to resume training bit for bit."""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handprop._types import Array, dtype_name
from handprop.backend import namespace
from handprop.checkpoint.errors import ModelFileError
from handprop.checkpoint.files import PathLike, serialize, write_atomically
from handprop.checkpoint.model_file import check_tensors, handprop_metadata, load_with_extras
from handprop.layers.module import from_torch_layout, torch_layout
from handprop.layers.sequential import Sequential
from handprop.optim import OPTIMIZERS, Optimizer
from handprop.parameter import Parameter


def save_checkpoint(
    path: PathLike,
    model: Sequential,
    optimizer: Optimizer,
    *,
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """``save_model`` plus ``optimizer``'s state, to resume training bit for bit.

    Put the training state (epoch, step, ``rng.bit_generator.state``, history)
    in ``metadata``. The optimizer (any in ``OPTIMIZERS``, built on ``model``'s
    parameters) adds tensors ``optimizer.<i>.<slot>`` (i: position in
    ``optimizer.params``; slot: ``velocity``, ``m`` or ``v``), which PyTorch's
    strict ``load_state_dict`` refuses: the ``save_model`` file is the one for PyTorch.
    Layers' extra state (Dropout's generator) goes into the metadata as
    ``"layer_state": {"<index>": ...}``, and ``load_checkpoint`` puts it back.
    """
    _check_slot_dtypes(optimizer)
    config = {
        "type": _registered_name(optimizer),
        "hyperparameters": optimizer.hyperparameters(),
        "scalars": optimizer.scalars(),
        "parameters": _parameter_names(model, optimizer, "save_checkpoint"),
    }
    tensors = model.state_dict()
    tensors.update(
        {
            name: torch_layout(namespace(array).to_numpy(array)).copy()  # on the host
            for name, array in _slot_arrays(optimizer).items()
        }
    )
    extra: dict[str, Any] = {"optimizer": config}
    layer_state = {
        str(index): state
        for index, layer in enumerate(model.layers)
        if (state := layer.get_extra_state()) is not None
    }
    if layer_state:
        extra["layer_state"] = layer_state
    info = handprop_metadata(model, metadata, extra)
    write_atomically(Path(path), serialize(tensors, info))


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

    Resume with ``build_optimizer(model.parameters(), state, model=model)``, or build the
    optimizer yourself and call ``restore_optimizer(optimizer, state, model=model)``.
    """
    model, info, tensors = load_with_extras(path, "relu", None)
    config = info.get("optimizer")
    if not isinstance(config, dict):
        raise ModelFileError(
            f"{path} holds no optimizer state: it is a model file, not a checkpoint "
            "(checkpoints are written by save_checkpoint)"
        )
    _restore_layer_state(path, model, info.get("layer_state", {}))
    return model, info, OptimizerState(config, tensors, str(path))


def _restore_layer_state(path: PathLike, model: Sequential, saved: object) -> None:
    """Give each layer the extra state (``get_extra_state``) the checkpoint holds for it."""
    if not isinstance(saved, dict):
        raise ModelFileError(f"{path}: its 'layer_state' must be an object, received {saved!r:.80}")
    for key, state in saved.items():
        index = int(key) if key.isdecimal() and len(key) < 10 else -1
        if not 0 <= index < len(model.layers) or not isinstance(state, dict):
            raise ModelFileError(
                f"{path}: its 'layer_state' has {key!r}: {state!r:.80}, expected an object "
                f"for a layer index in 0..{len(model.layers) - 1}"
            )
        try:
            model.layers[index].set_extra_state(state)
        except ValueError as error:
            raise ModelFileError(f"{path}: layer {index}: {error}") from None


def build_optimizer(
    params: Iterable[Parameter], state: OptimizerState, *, model: Sequential | None = None
) -> Optimizer:
    """A new optimizer over ``params`` with the checkpoint's type and hyper-parameters, restored.

    With ``model`` (the one ``params`` come from), ``restore_optimizer`` checks their order.
    """
    kind = state.config.get("type")
    classes = {OPTIMIZERS[name].__name__: OPTIMIZERS[name] for name in OPTIMIZERS.names()}
    if not isinstance(kind, str) or kind not in classes:
        valid = ", ".join(classes)
        raise ModelFileError(f"{state.source}: optimizer type {kind!r} is not one of {valid}")
    hyperparameters = _saved(state, "hyperparameters", dict)
    if isinstance(hyperparameters.get("betas"), list):
        hyperparameters = {**hyperparameters, "betas": tuple(hyperparameters["betas"])}
    try:
        optimizer = classes[kind](params, **hyperparameters)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{state.source}: cannot build its {kind}: {error}") from error
    restore_optimizer(optimizer, state, model=model)
    return optimizer


def restore_optimizer(
    optimizer: Optimizer, state: OptimizerState, *, model: Sequential | None = None
) -> None:
    """Copy ``state`` into ``optimizer`` in place: its state arrays and scalars (Adam's ``t``).

    ``optimizer`` must be built on the loaded model's parameters, with the
    checkpoint's type and hyper-parameters; ModelFileError says what differs.
    With ``model``, the parameters' names must also come in the checkpoint's order: two
    parameters of one shape in another order would otherwise swap their state.
    """
    kind = _registered_name(optimizer)
    _check_same_optimizer(state, kind, json.loads(json.dumps(optimizer.hyperparameters())))
    names = _saved(state, "parameters", list)
    if len(names) != len(optimizer.params):
        raise ModelFileError(
            f"{state.source}: the checkpoint's {kind} updates {len(names)} parameters, "
            f"this one {len(optimizer.params)}; build it with model.parameters()"
        )
    if model is not None:
        _check_same_order(
            state, kind, names, _parameter_names(model, optimizer, "restore_optimizer")
        )
    arrays = _slot_arrays(optimizer)
    specs = {name: (tuple(torch_layout(a).shape), dtype_name(a)) for name, a in arrays.items()}
    check_tensors(state.source, f"this {kind}", specs, state.tensors)
    saved = _saved(state, "scalars", dict)
    scalars = {name: _count(state, name, saved.get(name)) for name in optimizer.scalars()}
    for name, array in arrays.items():
        namespace(array).assign(array, from_torch_layout(state.tensors[name]))
    optimizer.load_scalars(scalars)


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


def _check_same_order(state: OptimizerState, kind: str, saved: list[Any], names: list[str]) -> None:
    """The optimizer's parameters must be the checkpoint's, in its order (by their names)."""
    if saved == names:
        return
    where = next(i for i, (a, b) in enumerate(zip(saved, names, strict=True)) if a != b)
    raise ModelFileError(
        f"{state.source}: the checkpoint's {kind} state {where} belongs to parameter "
        f"{saved[where]!r:.80}, this optimizer's parameter {where} is {names[where]!r}; "
        "build the optimizer over the model's parameters in the checkpoint's order"
    )


def _saved(state: OptimizerState, key: str, kind: type) -> Any:
    value = state.config.get(key)
    if not isinstance(value, kind):
        raise ModelFileError(
            f"{state.source}: optimizer {key!r} must be a {kind.__name__}, received {value!r:.80}"
        )
    return value


def _count(state: OptimizerState, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ModelFileError(
            f"{state.source}: optimizer counter {name!r} must be an integer >= 0, "
            f"received {value!r}"
        )
    return value


def _registered_name(optimizer: Optimizer) -> str:
    """The optimizer's class name, as checkpoints store it, if the class is registered."""
    try:
        OPTIMIZERS.name_of(optimizer)
    except TypeError as error:
        raise TypeError(f"checkpoints hold registered optimizers: {error}") from None
    return type(optimizer).__name__


def _check_slot_dtypes(optimizer: Optimizer) -> None:
    """Each state array must have its parameter's dtype (not so after a later ``model.to``)."""
    for slot, arrays in optimizer.slots().items():
        if not arrays:  # a slot this optimizer does not use (SGD without momentum)
            continue
        for parameter, array in zip(optimizer.params, arrays, strict=True):
            if dtype_name(array) != parameter.dtype.name:
                raise TypeError(
                    f"save_checkpoint: the optimizer's {slot} is {dtype_name(array)} but its "
                    f"parameter is {parameter.dtype.name}; build the optimizer after model.to()"
                )


def _slot_arrays(optimizer: Optimizer) -> dict[str, Array]:
    return {
        f"optimizer.{index}.{slot}": array
        for slot, arrays in optimizer.slots().items()
        for index, array in enumerate(arrays)
    }


def _parameter_names(model: Sequential, optimizer: Optimizer, caller: str) -> list[str]:
    """The model's name for each of the optimizer's parameters; a ValueError if one is foreign."""
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    for position, parameter in enumerate(optimizer.params):
        if id(parameter) not in names:
            raise ValueError(
                f"{caller}: the optimizer's parameter {position} is not one of the "
                "model's; build the optimizer with model.parameters()"
            )
    return [names[id(parameter)] for parameter in optimizer.params]
