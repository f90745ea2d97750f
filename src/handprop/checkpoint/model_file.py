"""Model files: ``save_model`` and ``load_model``, and the metadata handprop keeps in them."""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from handprop._text import one_line, quoted
from handprop._types import Array
from handprop.checkpoint.architecture import (
    TensorSpec,
    checked_architecture,
    layer_config,
    make_layer,
    model_config,
)
from handprop.checkpoint.errors import ModelFileError
from handprop.checkpoint.files import (
    PathLike,
    check_header,
    deserialize,
    read_file,
    serialize,
    write_atomically,
)
from handprop.checkpoint.limits import check_architecture_size
from handprop.layers.activations import ACTIVATIONS
from handprop.layers.sequential import Sequential

#: The handprop metadata format this module writes and reads.
FORMAT = 1
_RESERVED = ("format", "version", "architecture", "optimizer", "layer_state")


def save_model(
    path: PathLike, model: Sequential, *, metadata: Mapping[str, Any] | None = None
) -> None:
    """Write ``model`` to ``path``: safetensors that ``torch.nn.Sequential`` loads as it is.

    ``metadata`` (JSON-able; numpy scalars and arrays become numbers and lists)
    is what ``load_model`` gives back beside the architecture: preprocessing
    statistics, task, class names... The write is atomic: on any failure the
    file already at ``path`` is left as it was and ModelFileError says why.
    """
    info = handprop_metadata(model, metadata, {})
    write_atomically(Path(path), serialize(model.state_dict(), info))


def handprop_metadata(
    model: Sequential, metadata: Mapping[str, Any] | None, extra: dict[str, Any]
) -> dict[str, str]:
    """The safetensors metadata ``{"handprop": JSON}``: format, version, architecture and more."""
    from handprop import __version__  # here, not at import: handprop/__init__ may import us

    caller = dict(metadata or {})
    reserved = [key for key in _RESERVED if key in caller]
    if reserved:
        raise ValueError(f"metadata keys {quoted(reserved)} are reserved for handprop; rename them")
    info = {"format": FORMAT, "version": __version__, "architecture": model_config(model)}
    try:
        text = json.dumps({**info, **caller, **extra}, default=_json_default)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"metadata must be JSON-able (dict, list, str, number, bool, None): {error}"
        ) from error
    return {"handprop": text}


def _json_default(value: object) -> object:
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-able")


def load_model(
    path: PathLike, *, activation: str = "relu", output_activation: str | None = None
) -> tuple[Sequential, dict[str, Any]]:
    """The model in ``path`` and its handprop metadata (``"architecture"`` and the caller's keys).

    A file that PyTorch wrote (``safetensors.torch.save_file(model.state_dict(),
    path)`` for ``nn.Sequential(Linear, act, Linear, ...)``) has no handprop
    metadata and does not record its activations: the Linear layers come from
    the tensors' names and shapes, and the caller names the activation between
    them (``activation``, see ``handprop.activation``) and after the last one
    (``output_activation``, default none). Both are ignored for handprop files.
    A checkpoint loads too (its optimizer state is left out). Raises
    ModelFileError saying what is wrong with a file that cannot be loaded.
    """
    model, info, _ = load_with_extras(path, activation, output_activation)
    return model, info


def load(path: PathLike) -> Sequential:
    """The model in the file at ``path`` (written by ``model.save`` or ``handprop train``)."""
    return load_model(path)[0]


def load_with_extras(
    path: PathLike, activation: str, output_activation: str | None
) -> tuple[Sequential, dict[str, Any], dict[str, Array]]:
    """The model, the handprop metadata and the optimizer tensors of the file at ``path``."""
    for name in (activation, output_activation):
        if name is not None:
            ACTIVATIONS[name]  # a ValueError lists the valid names
    header, data = read_file(path)
    dtype = check_header(path, header, data)
    info = _handprop_info(path, header)
    tensors = deserialize(path, data)
    if info is None:
        shapes = {name: tuple(array.shape) for name, array in tensors.items()}
        architecture = _infer_architecture(path, shapes, dtype, activation, output_activation)
        info = {"architecture": architecture}
    in_checkpoint = [
        name for name in tensors if "optimizer" in info and name.startswith("optimizer.")
    ]
    optimizer_tensors = {name: tensors.pop(name) for name in in_checkpoint}
    return _model_from(path, info["architecture"], tensors), info, optimizer_tensors


def _model_from(path: PathLike, architecture: object, tensors: dict[str, Array]) -> Sequential:
    """The model ``architecture`` describes, its parameters copied from the checked ``tensors``."""
    try:
        dtype, layers, specs = checked_architecture(architecture)
    except ModelFileError as error:
        raise ModelFileError(f"{path}: {error}") from None
    check_tensors(path, "the architecture", specs, tensors)  # sizes bounded by the file's
    try:  # the tensors bound the parameters; this, the rest, before any layer is made
        check_architecture_size(layers)
        model = Sequential(*(make_layer(index, layer, dtype) for index, layer in enumerate(layers)))
    except ModelFileError as error:
        raise ModelFileError(f"{path}: {error}") from None
    model.load_state_dict(tensors)
    return model


def _handprop_info(path: PathLike, header: dict[str, Any]) -> dict[str, Any] | None:
    """The decoded ``"handprop"`` metadata, or None for a file without it (e.g. from PyTorch)."""
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{path}: its safetensors __metadata__ is not an object")
    if "handprop" not in metadata:
        return None
    try:
        info = json.loads(metadata["handprop"])
    except (TypeError, ValueError, RecursionError) as error:
        reason = one_line(str(error))
        raise ModelFileError(f"{path}: its 'handprop' metadata is not JSON ({reason})") from None
    if not isinstance(info, dict):
        raise ModelFileError(f"{path}: its 'handprop' metadata is not a JSON object")
    if type(info.get("format")) is not int or info["format"] != FORMAT:
        raise ModelFileError(
            f"{path}: handprop file format {info.get('format')!r} is not supported; this "
            f"handprop reads format {FORMAT} (upgrade handprop to read newer files)"
        )
    if "architecture" not in info:
        raise ModelFileError(f"{path}: its 'handprop' metadata has no 'architecture'")
    return info


def _infer_architecture(
    path: PathLike,
    shapes: dict[str, tuple[int, ...]],
    dtype: str,
    activation: str,
    output_activation: str | None,
) -> dict[str, Any]:
    """The architecture of ``nn.Sequential(Linear, activation, Linear, ...)`` from its tensors."""
    weights = [name.removesuffix(".weight") for name in shapes if name.endswith(".weight")]
    indices = sorted(int(i) for i in weights if i.isdecimal() and i == str(int(i)))
    if indices != list(range(0, 2 * len(indices), 2)) or not indices:
        found = ", ".join(map(str, indices)) or "none"
        raise ModelFileError(
            f"{path} has no handprop metadata, and its tensors are not those of "
            "nn.Sequential(Linear, activation, Linear, ...): expected weights '0.weight', "
            f"'2.weight', ... with Linear layers at positions 0, 2, 4..., found positions {found}"
        )
    layers = []
    for position, index in enumerate(indices):
        weight = shapes[f"{index}.weight"]
        if len(weight) != 2:
            raise ModelFileError(
                f"{path}: tensor '{index}.weight' has shape {weight}, expected "
                "(out_features, in_features)"
            )
        if position:
            layers.append(layer_config(index - 1, ACTIVATIONS[activation]()))
        bias = f"{index}.bias" in shapes
        layers.append(
            {"type": "Linear", "in_features": weight[1], "out_features": weight[0], "bias": bias}
        )
    if output_activation is not None:
        layers.append(layer_config(len(layers), ACTIVATIONS[output_activation]()))
    return {"layers": layers, "dtype": dtype}


def check_tensors(
    path: PathLike, owner: str, expected: Mapping[str, TensorSpec], found: Mapping[str, Array]
) -> None:
    """``found`` must hold exactly the tensors ``expected`` names, of those shapes and dtypes."""
    missing = [name for name in expected if name not in found]
    if missing:
        raise ModelFileError(
            f"{path}: missing tensor {quoted(missing)}; {owner} expects {quoted(expected)}"
        )
    unexpected = [name for name in found if name not in expected]
    if unexpected:
        raise ModelFileError(
            f"{path}: unexpected tensor {quoted(unexpected)}; {owner} expects {quoted(expected)}"
        )
    for name, (shape, dtype) in expected.items():
        if found[name].shape != shape:
            layout = " (PyTorch's layout: out_features, in_features)" if len(shape) == 2 else ""
            raise ModelFileError(
                f"{path}: tensor {name!r} has shape {found[name].shape}, expected {shape}{layout}"
            )
        if found[name].dtype.name != dtype:
            raise ModelFileError(
                f"{path}: tensor {name!r} is {found[name].dtype.name}, {owner} expects {dtype}"
            )
