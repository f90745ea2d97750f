"""Model files and training checkpoints: safetensors in PyTorch's layout, written atomically.

A model file holds one tensor per parameter, named and shaped as in
``torch.nn.Sequential`` (``0.weight`` of shape (D_out, D_in), ``0.bias`` of
shape (D_out,)) and in the model's dtype, so that
``torch_model.load_state_dict(safetensors.torch.load_file(path))`` accepts it.
Its safetensors metadata holds, under ``"handprop"``, JSON with the file
format, the handprop version, the architecture (``model_config``) and what the
caller adds (preprocessing statistics, class names...).

A checkpoint is a model file plus an optimizer: extra tensors
``optimizer.<i>.<slot>`` and, in the metadata, the optimizer's type,
hyper-parameters and step count. Every array round-trips exactly, so training
resumes bit for bit; the extra tensors make PyTorch's strict
``load_state_dict`` refuse it, so hand PyTorch the ``save_model`` file.

Every 2-D array is stored transposed (PyTorch's layout) and copied back in
place on loading, so optimizers holding the Parameters keep working. A file
that cannot be read or written raises ModelFileError, with a one-line reason.
"""

import contextlib
import json
import math
import os
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from handprop._types import Array
from handprop.init import zeros
from handprop.layers.activations import Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from handprop.layers.activations import activation as activation_layer
from handprop.layers.linear import Linear
from handprop.layers.module import Module
from handprop.layers.sequential import Sequential
from handprop.optim import SGD, Adam, Optimizer
from handprop.parameter import Parameter

PathLike: TypeAlias = str | os.PathLike[str]
#: A tensor's shape as the file stores it, and its dtype's name.
TensorSpec: TypeAlias = tuple[tuple[int, ...], str]

#: The handprop metadata format this module writes and reads.
FORMAT = 1
#: Larger safetensors headers are refused before they are read.
MAX_HEADER_BYTES = 100_000_000

_DTYPES: dict[str, np.dtype[Any]] = {"F32": np.dtype(np.float32), "F64": np.dtype(np.float64)}
_RESERVED = ("format", "version", "architecture", "optimizer")
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
_OPTIMIZERS: dict[str, type[Optimizer]] = {"SGD": SGD, "Adam": Adam}
#: What a file may start with instead of safetensors, and what to do about it.
_LOOKALIKES = {
    b"\x80": "a pickle; handprop never unpickles, which can run code: save with safetensors",
    b"PK\x03\x04": "a torch.save archive; save with safetensors.torch.save_file(state_dict, path)",
}


class ModelFileError(ValueError):
    """A model file or checkpoint that cannot be written or read; the message says why."""


# ---------------------------------------------------------------- architecture


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


# ---------------------------------------------------------------- writing


def save_model(
    path: PathLike, model: Sequential, *, metadata: Mapping[str, Any] | None = None
) -> None:
    """Write ``model`` to ``path``: safetensors that ``torch.nn.Sequential`` loads as it is.

    ``metadata`` (JSON-able; numpy scalars and arrays become numbers and lists)
    is what ``load_model`` gives back beside the architecture: preprocessing
    statistics, task, class names... The write is atomic: on any failure the
    file already at ``path`` is left as it was and ModelFileError says why.
    """
    info = _handprop_metadata(model, metadata, {})
    _write_atomically(Path(path), _serialize(_model_tensors(model), info))


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
    _write_atomically(Path(path), _serialize(tensors, info))


def _handprop_metadata(
    model: Sequential, metadata: Mapping[str, Any] | None, extra: dict[str, Any]
) -> dict[str, str]:
    from handprop import __version__  # here, not at import: handprop/__init__ may import us

    caller = dict(metadata or {})
    reserved = [key for key in _RESERVED if key in caller]
    if reserved:
        raise ValueError(
            f"metadata keys {_quoted(reserved)} are reserved for handprop; rename them"
        )
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


def _model_tensors(model: Sequential) -> dict[str, Array]:
    return {name: _to_file(parameter.data) for name, parameter in model.named_parameters()}


def _to_file(array: Array) -> Array:
    """PyTorch's layout, contiguous: a 2-D (D_in, D_out) weight becomes (D_out, D_in)."""
    return np.ascontiguousarray(array.T if array.ndim == 2 else array)


def _file_shape(array: Array) -> tuple[int, ...]:
    return tuple(array.T.shape if array.ndim == 2 else array.shape)


def _serialize(tensors: dict[str, Array], metadata: dict[str, str]) -> bytes:
    import safetensors.numpy

    return safetensors.numpy.save(tensors, metadata=metadata)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, rename it onto ``path``."""
    try:
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
        )
    except OSError as error:
        raise ModelFileError(f"cannot write {path}: {_reason(error)}") from error
    try:
        try:
            _write_all(descriptor, data)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.chmod(temporary, _mode(path))
        os.replace(temporary, path)
    except BaseException as error:  # even KeyboardInterrupt: leave no temporary file behind
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise ModelFileError(f"cannot write {path}: {_reason(error)}") from error
        raise
    _fsync_directory(path.parent)


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]


def _mode(path: Path) -> int:
    """The permissions of the file being replaced, or rw-r--r-- for a new one."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o644


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable. Best effort: some platforms cannot open a folder."""
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _reason(error: OSError) -> str:
    if error.errno is not None and error.strerror:
        return f"[Errno {error.errno}] {error.strerror}"
    return _one_line(str(error) or type(error).__name__)


# ---------------------------------------------------------------- reading


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
    model, info, _ = _load(path, activation, output_activation)
    return model, info


def _load(
    path: PathLike, activation: str, output_activation: str | None
) -> tuple[Sequential, dict[str, Any], dict[str, Array]]:
    """The model, the handprop metadata and the optimizer tensors of the file at ``path``."""
    for name in (activation, output_activation):
        if name is not None:
            activation_layer(name)  # a ValueError lists the valid names
    header, data = _read_file(path)
    dtype = _check_header(path, header, data)
    info = _handprop_info(path, header)
    tensors = _deserialize(path, data)
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
        dtype, layers = _checked_architecture(architecture)
    except ModelFileError as error:
        raise ModelFileError(f"{path}: {error}") from None
    _check_tensors(path, "the architecture", _tensor_specs(dtype, layers), tensors)
    model = Sequential(*(_make_layer(layer, dtype) for layer in layers))
    for name, parameter in model.named_parameters():
        parameter.data[...] = _from_file(tensors[name])
    return model


def _read_file(path: PathLike) -> tuple[dict[str, Any], bytes]:
    """The parsed header and the whole content of ``path``, after checking the header is sane."""
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            prefix = file.read(8)
            header = _parse_header(path, file.read(_header_length(path, prefix, size)))
            file.seek(0)
            return header, file.read()
    except OSError as error:
        raise ModelFileError(f"cannot read {path}: {_reason(error)}") from error


def _header_length(path: PathLike, prefix: bytes, size: int) -> int:
    hint = _lookalike(prefix)
    if len(prefix) < 8:
        raise ModelFileError(
            f"{path} is not a safetensors file: {size} bytes is too short for the "
            f"8-byte header length{hint}"
        )
    length = int.from_bytes(prefix, "little")
    if length > MAX_HEADER_BYTES:
        problem = (
            f"its header length reads {length} bytes, more than the {MAX_HEADER_BYTES} accepted"
        )
    elif length > size - 8:
        problem = f"its header length reads {length} bytes, but only {size - 8} follow"
    else:
        return length
    raise ModelFileError(f"{path} is not a safetensors file, or is truncated: {problem}{hint}")


def _lookalike(prefix: bytes) -> str:
    """What a file that starts with ``prefix`` seems to be instead of safetensors, if known."""
    for magic, what in _LOOKALIKES.items():
        if prefix.startswith(magic):
            return f" (it looks like {what})"
    return ""


def _parse_header(path: PathLike, raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError
        raise ModelFileError(
            f"{path} is not a safetensors file: its header is not JSON ({_one_line(str(error))})"
        ) from None
    if not isinstance(header, dict):
        raise ModelFileError(
            f"{path} is not a safetensors file: its header is a JSON {type(header).__name__}, "
            "expected an object"
        )
    return header


def _check_header(path: PathLike, header: dict[str, Any], data: bytes) -> str:
    """Check the tensors' dtypes and extent before decoding them; return their dtype's name."""
    dtypes: dict[str, str] = {}  # dtype -> the first tensor that has it
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise ModelFileError(
                f"{path}: header entry {name!r} is not a tensor description (an object with "
                "dtype, shape and data_offsets)"
            )
        found = entry.get("dtype")
        if not isinstance(found, str) or found not in _DTYPES:
            raise ModelFileError(
                f"{path}: tensor {name!r} has dtype {found!r:.40}; handprop reads F32 "
                "(float32) and F64 (float64) tensors"
            )
        dtypes.setdefault(found, name)
        offsets = entry.get("data_offsets")
        if isinstance(offsets, list) and len(offsets) == 2 and isinstance(offsets[1], int):
            end = max(end, offsets[1])
    if len(dtypes) > 1:
        mixed = ", ".join(f"{name!r} is {dtype}" for dtype, name in dtypes.items())
        raise ModelFileError(f"{path} mixes dtypes ({mixed}); handprop models use one dtype")
    available = len(data) - 8 - int.from_bytes(data[:8], "little")
    if end > available:
        raise ModelFileError(
            f"{path} is truncated: its tensors need {end} bytes after the header, "
            f"{available} follow"
        )
    return _DTYPES[next(iter(dtypes))].name if dtypes else "float64"


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
        reason = _one_line(str(error))
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


def _deserialize(path: PathLike, data: bytes) -> dict[str, Array]:
    import safetensors.numpy

    try:
        return safetensors.numpy.load(data)
    except Exception as error:  # SafetensorError, or whatever a malformed header provokes
        reason = _one_line(str(error))
        raise ModelFileError(f"{path} is not a valid safetensors file: {reason}") from error


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
            layers.append(_layer_config(index - 1, activation_layer(activation)))
        bias = f"{index}.bias" in shapes
        layers.append(
            {"type": "Linear", "in_features": weight[1], "out_features": weight[0], "bias": bias}
        )
    if output_activation is not None:
        layers.append(_layer_config(len(layers), activation_layer(output_activation)))
    return {"layers": layers, "dtype": dtype}


def _check_tensors(
    path: PathLike, owner: str, expected: Mapping[str, TensorSpec], found: Mapping[str, Array]
) -> None:
    """``found`` must hold exactly the tensors ``expected`` names, of those shapes and dtypes."""
    missing = [name for name in expected if name not in found]
    if missing:
        raise ModelFileError(
            f"{path}: missing tensor {_quoted(missing)}; {owner} expects {_quoted(expected)}"
        )
    unexpected = [name for name in found if name not in expected]
    if unexpected:
        raise ModelFileError(
            f"{path}: unexpected tensor {_quoted(unexpected)}; {owner} expects {_quoted(expected)}"
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


def _from_file(array: Array) -> Array:
    """Back from PyTorch's layout: a 2-D (D_out, D_in) weight becomes (D_in, D_out)."""
    return array.T if array.ndim == 2 else array


def _quoted(names: Iterable[str], limit: int = 8) -> str:
    names = list(names)
    shown = ", ".join(repr(name) for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _one_line(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------- checkpoints


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
