"""A model's architecture as JSON-able data: ``model_config`` and its inverse ``build_model``."""

import math
from collections.abc import Mapping
from typing import Any, TypeAlias

import numpy as np

from handprop.checkpoint.errors import ModelFileError, _quoted
from handprop.init import zeros
from handprop.layers.activations import Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from handprop.layers.linear import Linear
from handprop.layers.module import Module
from handprop.layers.sequential import Sequential

#: A tensor's shape as the file stores it, and its dtype's name.
TensorSpec: TypeAlias = tuple[tuple[int, ...], str]

_PLAIN_LAYERS: dict[str, type[Module]] = {
    "ReLU": ReLU,
    "Tanh": Tanh,
    "Sigmoid": Sigmoid,
    "Identity": Identity,
}
#: Layer types a model file may hold, with the fields each one's config has.
LAYER_FIELDS: dict[str, tuple[str, ...]] = {
    "Linear": ("in_features", "out_features", "bias"),
    "LeakyReLU": ("negative_slope",),
    **{name: () for name in _PLAIN_LAYERS},
}


def model_config(model: Sequential) -> dict[str, Any]:
    """The architecture of ``model`` as JSON-able data; ``build_model`` inverts it.

    ``{"layers": [{"type": "Linear", "in_features": 64, "out_features": 100,
    "bias": True}, {"type": "ReLU"}, ...], "dtype": "float64"}``. Only a flat
    Sequential of Linear, ReLU, LeakyReLU, Tanh, Sigmoid and Identity layers
    of one dtype is supported (TypeError otherwise).
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"model_config expected a Sequential, received {type(model).__name__}")
    layers = [_layer_config(index, layer) for index, layer in enumerate(model.layers)]
    dtypes = sorted({layer.dtype.name for layer in model.layers if isinstance(layer, Linear)})
    if len(dtypes) > 1:
        raise TypeError(
            f"model_config expected one dtype for all Linear layers, received {dtypes}; "
            "build every layer with the same dtype"
        )
    return {"layers": layers, "dtype": dtypes[0] if dtypes else "float64"}


def _layer_config(index: int, layer: Module) -> dict[str, Any]:
    name = type(layer).__name__
    if type(layer) is Linear:
        return {
            "type": name,
            "in_features": layer.in_features,
            "out_features": layer.out_features,
            "bias": layer.bias is not None,
        }
    if type(layer) is LeakyReLU:
        return {"type": name, "negative_slope": layer.negative_slope}
    if type(layer) is _PLAIN_LAYERS.get(name):
        return {"type": name}
    valid = ", ".join(LAYER_FIELDS)
    raise TypeError(f"layer {index} is a {name}; model files hold a flat Sequential of {valid}")


def build_model(config: Mapping[str, Any]) -> Sequential:
    """The Sequential that ``config`` (see ``model_config``) describes, its weights all zero.

    Raises ModelFileError naming the layer and the problem when ``config`` is malformed.
    """
    dtype, layers = _checked_architecture(config)
    return Sequential(*(_make_layer(layer, dtype) for layer in layers))


def _checked_architecture(config: object) -> tuple[str, list[Mapping[str, Any]]]:
    """The dtype and the layers of ``config``, every field checked; else a ModelFileError."""
    if not isinstance(config, Mapping):
        raise ModelFileError(f"architecture must be an object, received {type(config).__name__}")
    _check_fields("architecture", config, ("layers", "dtype"))
    dtype, layers = config["dtype"], config["layers"]
    if dtype not in ("float32", "float64"):
        raise ModelFileError(
            f"architecture dtype must be 'float32' or 'float64', received {dtype!r}"
        )
    if not isinstance(layers, list):
        raise ModelFileError(f"architecture layers must be a list, received {layers!r:.80}")
    for index, layer in enumerate(layers):
        _check_layer(index, layer)
    _check_widths(layers)
    return dtype, layers


def _check_layer(index: int, layer: object) -> None:
    if not isinstance(layer, Mapping) or not isinstance(layer.get("type"), str):
        raise ModelFileError(
            f"layer {index} must be an object with a 'type', received {layer!r:.80}"
        )
    kind = layer["type"]
    if kind not in LAYER_FIELDS:
        valid = ", ".join(LAYER_FIELDS)
        raise ModelFileError(f"layer {index} has unknown type {kind!r}; valid types: {valid}")
    where = f"layer {index} ({kind})"
    _check_fields(where, layer, ("type", *LAYER_FIELDS[kind]))
    if kind == "Linear":
        _check_positive_int(where, "in_features", layer["in_features"])
        _check_positive_int(where, "out_features", layer["out_features"])
        if not isinstance(layer["bias"], bool):
            raise ModelFileError(f"{where} bias must be true or false, received {layer['bias']!r}")
    if kind == "LeakyReLU":
        _check_slope(where, layer["negative_slope"])


def _check_fields(where: str, config: Mapping[str, Any], fields: tuple[str, ...]) -> None:
    missing = [field for field in fields if field not in config]
    if missing:
        raise ModelFileError(f"{where} is missing {_quoted(missing)}; expected {_quoted(fields)}")
    unexpected = [field for field in config if field not in fields]
    if unexpected:
        raise ModelFileError(
            f"{where} has unexpected {_quoted(unexpected)}; expected {_quoted(fields)}"
        )


def _check_positive_int(where: str, field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelFileError(f"{where} {field} must be a positive integer, received {value!r}")


def _check_slope(where: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value >= 0)
    ):
        raise ModelFileError(
            f"{where} negative_slope must be a finite number >= 0, received {value!r}"
        )


def _check_widths(layers: list[Mapping[str, Any]]) -> None:
    """Each Linear layer's in_features must be the previous Linear's out_features."""
    previous: Mapping[str, Any] | None = None
    for index, layer in enumerate(layers):
        if layer["type"] != "Linear":
            continue
        if previous is not None and layer["in_features"] != previous["out_features"]:
            raise ModelFileError(
                f"layer {index} (Linear) has in_features {layer['in_features']}, but the Linear "
                f"before it has out_features {previous['out_features']}"
            )
        previous = layer


def _make_layer(layer: Mapping[str, Any], dtype: str) -> Module:
    """The layer a checked config describes; a Linear's weights are zero."""
    kind = layer["type"]
    if kind == "Linear":
        rng = np.random.default_rng(0)  # init.zeros draws nothing: the file supplies the weights
        features = (layer["in_features"], layer["out_features"], layer["bias"])
        return Linear(*features, init=zeros, rng=rng, dtype=dtype)
    if kind == "LeakyReLU":
        return LeakyReLU(float(layer["negative_slope"]))
    return _PLAIN_LAYERS[kind]()


def _tensor_specs(dtype: str, layers: list[Mapping[str, Any]]) -> dict[str, TensorSpec]:
    """Name, file shape and dtype of every parameter of a checked config, allocating nothing."""
    specs: dict[str, TensorSpec] = {}
    for index, layer in enumerate(layers):
        if layer["type"] == "Linear":
            specs[f"{index}.weight"] = (layer["out_features"], layer["in_features"]), dtype
            if layer["bias"]:
                specs[f"{index}.bias"] = (layer["out_features"],), dtype
    return specs
