"""A model's architecture as JSON-able data: ``model_config`` and its inverse ``build_model``.

Each layer is ``{"type": <its name in LAYERS>, **layer.config()}``; the layer
classes say what their settings are and check them (``handprop.layers.LAYERS``).
"""

from collections.abc import Mapping
from typing import Any, TypeAlias

from handprop._text import quoted
from handprop.checkpoint.errors import ModelFileError
from handprop.layers.module import LAYERS, Module
from handprop.layers.sequential import Sequential

#: A tensor's shape as the file stores it, and its dtype's name.
TensorSpec: TypeAlias = tuple[tuple[int, ...], str]


def model_config(model: Sequential) -> dict[str, Any]:
    """The architecture of ``model`` as JSON-able data; ``build_model`` inverts it.

    ``{"layers": [{"type": "Linear", "in_features": 64, "out_features": 100,
    "bias": True}, {"type": "ReLU"}, ...], "dtype": "float64"}``. Only a flat
    Sequential of registered layers (``LAYERS``) of one dtype is supported
    (TypeError otherwise).
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"model_config expected a Sequential, received {type(model).__name__}")
    layers = [layer_config(index, layer) for index, layer in enumerate(model.layers)]
    dtypes = sorted({p.dtype.name for p in model.parameters()})
    if len(dtypes) > 1:
        raise TypeError(
            f"model_config expected one dtype for all parameters, received {dtypes}; "
            "build every layer with the same dtype (or call model.to(dtype))"
        )
    return {"layers": layers, "dtype": dtypes[0] if dtypes else "float64"}


def layer_config(index: int, layer: Module) -> dict[str, Any]:
    """``{"type": name, **layer.config()}``; a TypeError for a layer model files cannot hold."""
    try:
        name = LAYERS.name_of(layer)
    except TypeError:
        raise TypeError(
            f"layer {index} is a {type(layer).__name__}; model files hold a flat Sequential "
            f"of registered layers ({', '.join(LAYERS.names())}); register yours with "
            "@LAYERS.register(name)"
        ) from None
    return {"type": name, **layer.config()}


def build_model(config: Mapping[str, Any]) -> Sequential:
    """The Sequential that ``config`` (see ``model_config``) describes, its weights all zero.

    Raises ModelFileError naming the layer and the problem when ``config`` is malformed.
    """
    dtype, layers, _ = checked_architecture(config)
    return Sequential(*(make_layer(index, layer, dtype) for index, layer in enumerate(layers)))


def checked_architecture(
    config: object,
) -> tuple[str, list[Mapping[str, Any]], dict[str, TensorSpec]]:
    """The dtype, the layers and the tensors' specs of ``config``, every field checked.

    A tensor is in the model's dtype unless its layer's ``buffer_dtypes`` says otherwise
    (BatchNorm's ``num_batches_tracked``: int64, as torch keeps it).

    Allocates nothing; a malformed ``config`` is a ModelFileError.
    """
    if not isinstance(config, Mapping):
        raise ModelFileError(f"architecture must be an object, received {type(config).__name__}")
    check_fields("architecture", config, ("layers", "dtype"))
    dtype, layers = config["dtype"], config["layers"]
    if dtype not in ("float32", "float64"):
        raise ModelFileError(
            f"architecture dtype must be 'float32' or 'float64', received {dtype!r}"
        )
    if not isinstance(layers, list):
        raise ModelFileError(f"architecture layers must be a list, received {layers!r:.80}")
    specs: dict[str, TensorSpec] = {}
    for index, layer in enumerate(layers):
        shapes = _checked_layer(index, layer)  # a checked layer: its type is registered
        buffer_dtypes: dict[str, str] = LAYERS[layer["type"]].buffer_dtypes
        for name, shape in shapes.items():
            specs[f"{index}.{name}"] = shape, buffer_dtypes.get(name, str(dtype))
    _check_widths(layers)
    return dtype, layers, specs


def _checked_layer(index: int, layer: object) -> dict[str, tuple[int, ...]]:
    """The shapes of the layer's parameters, after checking its type and fields."""
    if not isinstance(layer, Mapping) or not isinstance(layer.get("type"), str):
        raise ModelFileError(
            f"layer {index} must be an object with a 'type', received {layer!r:.80}"
        )
    kind = layer["type"]
    if kind not in LAYERS:
        valid = ", ".join(LAYERS.names())
        raise ModelFileError(f"layer {index} has unknown type {kind!r}; valid types: {valid}")
    where = f"layer {index} ({kind})"
    layer_class = LAYERS[kind]
    check_fields(where, layer, ("type", *layer_class.config_fields))
    try:
        return layer_class.check_config(_settings(layer))
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{where} {error}") from None


def check_fields(where: str, config: Mapping[str, Any], fields: tuple[str, ...]) -> None:
    """``config`` must have exactly ``fields``; a ModelFileError names what is missing or extra."""
    missing = [field for field in fields if field not in config]
    if missing:
        raise ModelFileError(f"{where} is missing {quoted(missing)}; expected {quoted(fields)}")
    unexpected = [field for field in config if field not in fields]
    if unexpected:
        raise ModelFileError(
            f"{where} has unexpected {quoted(unexpected)}; expected {quoted(fields)}"
        )


#: Per layer type: the field that must match what a layer before gives, and the layers
#: (Conv2d: channels of images; Linear: features along the last axis) it is compared with.
_TAKES = {
    "Conv2d": ("in_channels", {"Conv2d"}),
    "BatchNorm2d": ("num_features", {"Conv2d"}),
    "BatchNorm1d": ("num_features", {"Conv2d", "Linear"}),
    "Linear": ("in_features", {"Linear"}),
    "LayerNorm": ("normalized_shape", {"Linear"}),  # after a Conv2d: the images' width
}
_GIVES = {"Conv2d": "out_channels", "Linear": "out_features"}


def _check_widths(layers: list[Mapping[str, Any]]) -> None:
    """Each layer must take the channels (images) or features (vectors) that the last layer
    before it with a say gives: a Conv2d's out_channels are the next Conv2d's in_channels
    and the next BatchNorm2d's num_features; a Linear's out_features the next Linear's
    in_features, BatchNorm1d's num_features and LayerNorm's normalized_shape. After a
    Flatten the features depend on the images' size, which the file does not record."""
    previous: tuple[int, Mapping[str, Any]] | None = None
    for index, layer in enumerate(layers):
        kind = layer["type"]
        takes, compared = _TAKES.get(kind, ("", set()))
        if previous is not None and previous[1]["type"] in compared:
            before = previous[1]
            given, taken = before[_GIVES[before["type"]]], layer[takes]
            if isinstance(taken, list) and len(taken) == 1:  # LayerNorm([D]) is LayerNorm(D)
                taken = taken[0]
            if not isinstance(taken, list) and taken != given:
                raise ModelFileError(
                    f"layer {index} ({kind}) has {takes} {layer[takes]}, but the "
                    f"{before['type']} before it (layer {previous[0]}) has "
                    f"{_GIVES[before['type']]} {given}"
                )
        if kind in _GIVES:
            previous = index, layer
        elif kind == "Flatten":
            previous = None


def make_layer(index: int, layer: Mapping[str, Any], dtype: str) -> Module:
    """The layer a checked config describes, its parameters zero."""
    try:
        return LAYERS[layer["type"]].from_config(_settings(layer), dtype)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"layer {index} ({layer['type']}) {error}") from None


def _settings(layer: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in layer.items() if key != "type"}
