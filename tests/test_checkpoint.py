"""Model files and checkpoints: exact round trips, PyTorch both ways, atomic writes, bad files.

Every bad file must raise ModelFileError with a message that names the
problem, never a raw error from safetensors or json. torch is reached only
through the ``torch`` fixture.
"""

import errno
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import safetensors.numpy

import handprop as hp
from handprop._types import Array
from handprop.checkpoint import (
    ModelFileError,
    OptimizerState,
    build_model,
    build_optimizer,
    load_checkpoint,
    load_model,
    model_config,
    restore_optimizer,
    save_checkpoint,
    save_model,
)

ACTIVATIONS: dict[str, Callable[[], hp.Module]] = {
    "relu": hp.ReLU,
    "leaky_relu": lambda: hp.LeakyReLU(0.125),
    "tanh": hp.Tanh,
    "sigmoid": hp.Sigmoid,
    "identity": hp.Identity,
}


def mlp(
    dtype: type = np.float64, bias: bool = True, act: str = "relu", seed: int = 0
) -> hp.Sequential:
    """Linear(5, 7), act, Linear(7, 3), act: biases drawn too, so that none is zero."""
    rng = np.random.default_rng(seed)
    model = hp.Sequential(
        hp.Linear(5, 7, bias, rng=rng, dtype=dtype),
        ACTIVATIONS[act](),
        hp.Linear(7, 3, bias, rng=rng, dtype=dtype),
        ACTIVATIONS[act](),
    )
    for parameter in model.parameters():
        parameter.data[...] = rng.standard_normal(parameter.shape)
    return model


def inputs(dtype: type = np.float64, n: int = 6, seed: int = 1) -> Array:
    return np.random.default_rng(seed).standard_normal((n, 5)).astype(dtype)


def predict(model: hp.Module, x: Array) -> Array:
    return model.forward(x).copy()


def file_contents(path: Path) -> tuple[dict[str, Array], dict[str, Any]]:
    """The tensors and the decoded handprop metadata of a file, read with safetensors itself."""
    with safetensors.safe_open(path, framework="numpy") as file:
        metadata = file.metadata()
        tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
    return tensors, json.loads(metadata["handprop"])


def rewrite(path: Path, tensors: dict[str, Array], info: dict[str, Any] | str) -> None:
    text = info if isinstance(info, str) else json.dumps(info)
    safetensors.numpy.save_file(tensors, path, metadata={"handprop": text})


def raw_file(path: Path, header: bytes | object, body: bytes = b"") -> Path:
    """A file in safetensors' framing: 8-byte little-endian header length, header, body."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + body)
    return path


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_trip_is_exact(tmp_path: Path, dtype: type, bias: bool, act: str) -> None:
    model, x = mlp(dtype, bias, act), inputs(dtype)
    metadata = {"task": "regression", "mean": [0.5, -1.25], "classes": None, "n": 3}
    save_model(tmp_path / "model.safetensors", model, metadata=metadata)

    loaded, info = load_model(tmp_path / "model.safetensors")

    np.testing.assert_array_equal(predict(loaded, x), predict(model, x))
    assert predict(loaded, x).dtype == dtype
    assert model_config(loaded) == model_config(model) == info["architecture"]
    assert {key: info[key] for key in metadata} == metadata
    assert info["format"] == 1 and info["version"] == hp.__version__


def test_file_holds_torch_names_and_layout(tmp_path: Path) -> None:
    model = mlp(np.float32)
    save_model(tmp_path / "m.safetensors", model)
    tensors, _ = file_contents(tmp_path / "m.safetensors")
    assert sorted(tensors) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert tensors["0.weight"].shape == (7, 5) and tensors["0.weight"].dtype == np.float32
    np.testing.assert_array_equal(tensors["2.weight"], model[2].weight.data.T)  # type: ignore[attr-defined]


def test_numpy_metadata_is_stored_as_numbers_and_lists(tmp_path: Path) -> None:
    stats = {"mean": np.array([1.5, 2.0]), "count": np.int64(4), "scale": np.float32(0.5)}
    save_model(tmp_path / "m.safetensors", mlp(), metadata=stats)
    _, info = load_model(tmp_path / "m.safetensors")
    assert (info["mean"], info["count"], info["scale"]) == ([1.5, 2.0], 4, 0.5)


def test_build_model_inverts_model_config() -> None:
    config = model_config(mlp(np.float32, act="leaky_relu"))
    assert config["dtype"] == "float32"
    assert config["layers"][1] == {"type": "LeakyReLU", "negative_slope": 0.125}
    assert model_config(build_model(json.loads(json.dumps(config)))) == config


def test_import_does_not_load_safetensors() -> None:
    code = "import sys, handprop.checkpoint; print('safetensors' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------- PyTorch both ways


def torch_twin(torch: ModuleType, config: dict[str, Any]) -> Any:
    """An untrained torch.nn.Sequential with the architecture ``config`` describes."""
    nn, dtype = torch.nn, getattr(torch, config["dtype"])
    make = {
        "Linear": lambda c: nn.Linear(c["in_features"], c["out_features"], c["bias"], dtype=dtype),
        "LeakyReLU": lambda c: nn.LeakyReLU(c["negative_slope"]),
        "ReLU": lambda c: nn.ReLU(),
        "Tanh": lambda c: nn.Tanh(),
        "Sigmoid": lambda c: nn.Sigmoid(),
        "Identity": lambda c: nn.Identity(),
    }
    return nn.Sequential(*(make[layer["type"]](layer) for layer in config["layers"]))


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "tanh"])
def test_saved_file_loads_strictly_into_torch(tmp_path: Path, torch: ModuleType, act: str) -> None:
    import safetensors.torch

    model, x = mlp(act=act), inputs()
    save_model(tmp_path / "m.safetensors", model)
    twin = torch_twin(torch, model_config(model))
    twin.load_state_dict(safetensors.torch.load_file(tmp_path / "m.safetensors"), strict=True)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(predict(model, x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("act", "output_act", "dtype"),
    [("relu", None, np.float64), ("tanh", "sigmoid", np.float64), ("relu", None, np.float32)],
)
def test_torch_saved_sequential_loads_into_handprop(
    tmp_path: Path, torch: ModuleType, act: str, output_act: str | None, dtype: type
) -> None:
    import safetensors.torch

    nn, torch_dtype = torch.nn, torch.from_numpy(np.zeros(1, dtype)).dtype
    names = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
    layers = [nn.Linear(5, 8, dtype=torch_dtype), names[act](), nn.Linear(8, 4, dtype=torch_dtype)]
    layers += [names[act](), nn.Linear(4, 2, bias=False, dtype=torch_dtype)]
    twin = nn.Sequential(*layers, *([names[output_act]()] if output_act else []))
    rng = np.random.default_rng(3)
    with torch.no_grad():
        for parameter in twin.parameters():
            parameter.copy_(torch.from_numpy(rng.standard_normal(tuple(parameter.shape))))
    safetensors.torch.save_file(twin.state_dict(), tmp_path / "torch.safetensors")

    model, info = load_model(
        tmp_path / "torch.safetensors", activation=act, output_activation=output_act
    )

    x = inputs(dtype)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(predict(model, x), expected, rtol=tolerance, atol=tolerance)
    assert info == {"architecture": model_config(model)}
    assert len(model) == 5 + (output_act is not None)


def test_torch_layout_that_cannot_be_inferred_is_refused(tmp_path: Path) -> None:
    # nn.Sequential(Linear, ReLU, Dropout, Linear): Linear layers at 0 and 3.
    rng = np.random.default_rng(0)
    tensors = {"0.weight": rng.standard_normal((4, 3)), "3.weight": rng.standard_normal((2, 4))}
    safetensors.numpy.save_file(tensors, tmp_path / "t.safetensors")
    with pytest.raises(ModelFileError, match=r"positions 0, 2, 4\.\.\., found positions 0, 3"):
        load_model(tmp_path / "t.safetensors")


def test_unknown_activation_argument_lists_the_valid_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown activation 'gelu'; valid names"):
        load_model(tmp_path / "anything", activation="gelu")


# ---------------------------------------------------------------- atomic writes


@pytest.fixture
def old_file(tmp_path: Path) -> Path:
    """A good model file, which a failed save must leave byte for byte as it is."""
    path = tmp_path / "model.safetensors"
    save_model(path, mlp(seed=1))
    return path


def assert_untouched(path: Path, before: bytes) -> None:
    assert path.read_bytes() == before
    assert [entry.name for entry in path.parent.iterdir()] == [path.name]  # no temporary left


def test_failed_rename_leaves_the_old_file(old_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = old_file.read_bytes()

    def refuse(source: object, target: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(ModelFileError, match=r"cannot write .*model\.safetensors: \[Errno 13\]"):
        save_model(old_file, mlp(seed=2))
    assert_untouched(old_file, before)


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_full_disk_leaves_the_old_file(
    old_file: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    before, real_write = old_file.read_bytes(), os.write

    def write_then_fill(descriptor: int, data: bytes) -> int:
        real_write(descriptor, data[:10])  # part of the file lands, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    def fill(descriptor: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, where, write_then_fill if where == "write" else fill)
    expected = r"cannot write .*model\.safetensors: \[Errno 28\] No space left on device$"
    with pytest.raises(ModelFileError, match=expected):
        save_model(old_file, mlp(seed=2))
    assert_untouched(old_file, before)


def test_interrupted_write_leaves_the_old_file(
    old_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = old_file.read_bytes()

    def interrupt(descriptor: int, data: bytes) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "write", interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_model(old_file, mlp(seed=2))
    assert_untouched(old_file, before)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="running as root (or without POSIX permissions): root ignores a folder's "
    "permissions, so a read-only folder cannot make the write fail",
)
def test_read_only_folder_leaves_the_old_file(old_file: Path) -> None:
    before = old_file.read_bytes()
    old_file.parent.chmod(0o555)
    try:
        with pytest.raises(ModelFileError, match=r"cannot write .*: \[Errno 13\] Permission"):
            save_model(old_file, mlp(seed=2))
    finally:
        old_file.parent.chmod(0o755)
    assert_untouched(old_file, before)


def test_missing_folder_is_a_model_file_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"cannot write .*: \[Errno 2\] No such file"):
        save_model(tmp_path / "nowhere" / "m.safetensors", mlp())


def test_overwrite_replaces_the_file_and_keeps_its_permissions(old_file: Path) -> None:
    old_file.chmod(0o600)
    save_model(old_file, mlp(seed=2))
    assert old_file.stat().st_mode & 0o777 == 0o600
    loaded, _ = load_model(old_file)
    np.testing.assert_array_equal(predict(loaded, inputs()), predict(mlp(seed=2), inputs()))
    assert [entry.name for entry in old_file.parent.iterdir()] == [old_file.name]


# ---------------------------------------------------------------- bad files


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.safetensors"
    save_model(path, mlp(), metadata={"task": "regression"})
    return path


def load_error(path: Path) -> str:
    with pytest.raises(ModelFileError) as caught:
        load_model(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    return message


@pytest.mark.parametrize("fraction", [0.0, 0.005, 0.05, 0.3, 0.6, 0.99])
def test_truncated_file(good: Path, tmp_path: Path, fraction: float) -> None:
    data = good.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: int(len(data) * fraction)])
    assert any(word in load_error(cut) for word in ("truncated", "too short"))


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "noise.safetensors"
    path.write_bytes(np.random.default_rng(0).bytes(1000))
    assert "is not a safetensors file" in load_error(path)


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("weights: 0.1 0.2 0.3\nbias: 0\n")
    assert "is not a safetensors file" in load_error(path)


def test_pickle_file(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"0.weight": [[1.0, 2.0]], "0.bias": [0.0]}))
    assert "looks like a pickle" in load_error(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    assert "cannot read" in load_error(tmp_path / "absent.safetensors")
    assert "cannot read" in load_error(tmp_path)


def test_header_claiming_a_huge_length(tmp_path: Path) -> None:
    path = tmp_path / "huge.safetensors"
    path.write_bytes((2**40).to_bytes(8, "little") + b"{}" * 10)
    assert f"header length reads {2**40} bytes, more than the 100000000 accepted" in load_error(
        path
    )


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"{not json", "header is not JSON"),
        (b"\xff\xfe\xfd", "header is not JSON"),
        (b"[" * 100_000, "header is not JSON"),
        ([1, 2], "header is a JSON list, expected an object"),
        ({"0.weight": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}, "dtype 'F16'"),
        ({"0.weight": {"dtype": ["F64"], "shape": [1], "data_offsets": [0, 8]}}, "dtype ['F64']"),
        ({"0.weight": "F64"}, "header entry '0.weight' is not a tensor description"),
        ({"0.weight": {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]}}, "truncated"),
        ({"0.weight": {"dtype": "F64", "shape": "x", "data_offsets": [0, 8]}}, "not a valid"),
        ({"__metadata__": [1]}, "__metadata__ is not an object"),
    ],
)
def test_malformed_header(tmp_path: Path, header: object, message: str) -> None:
    body = b"\0" * 8
    assert message in load_error(raw_file(tmp_path / "bad.safetensors", header, body))


def test_mixed_dtypes(tmp_path: Path) -> None:
    tensors: dict[str, Array] = {"0.weight": np.zeros((2, 3)), "0.bias": np.zeros(2, np.float32)}
    safetensors.numpy.save_file(tensors, tmp_path / "mixed.safetensors")
    assert "mixes dtypes" in load_error(tmp_path / "mixed.safetensors")


@pytest.mark.parametrize(
    ("info", "message"),
    [
        ("{oops", "'handprop' metadata is not JSON"),
        ("[1]", "'handprop' metadata is not a JSON object"),
        ({"format": 2}, "format 2 is not supported"),
        ({"format": True}, "format True is not supported"),
        ({"format": 1}, "has no 'architecture'"),
    ],
)
def test_bad_handprop_metadata(
    good: Path, tmp_path: Path, info: dict[str, Any] | str, message: str
) -> None:
    tensors, _ = file_contents(good)
    rewrite(tmp_path / "bad.safetensors", tensors, info)
    assert message in load_error(tmp_path / "bad.safetensors")


def test_unknown_layer_type(good: Path, tmp_path: Path) -> None:
    tensors, info = file_contents(good)
    info["architecture"]["layers"][1] = {"type": "Spline"}
    rewrite(tmp_path / "bad.safetensors", tensors, info)
    message = load_error(tmp_path / "bad.safetensors")
    assert "layer 1 has unknown type 'Spline'; valid types: " in message
    assert all(name in message for name in ("Linear", "ReLU", "LeakyReLU"))


def test_wrong_shape_names_the_tensor_and_both_shapes(good: Path, tmp_path: Path) -> None:
    tensors, info = file_contents(good)
    tensors["2.weight"] = np.ascontiguousarray(tensors["2.weight"].T)  # handprop's layout: wrong
    rewrite(tmp_path / "bad.safetensors", tensors, info)
    message = load_error(tmp_path / "bad.safetensors")
    assert "tensor '2.weight' has shape (7, 3), expected (3, 7)" in message


def test_missing_tensor(good: Path, tmp_path: Path) -> None:
    tensors, info = file_contents(good)
    del tensors["2.bias"]
    rewrite(tmp_path / "bad.safetensors", tensors, info)
    assert "missing tensor '2.bias'" in load_error(tmp_path / "bad.safetensors")


def test_unexpected_tensor(good: Path, tmp_path: Path) -> None:
    tensors, info = file_contents(good)
    tensors["4.weight"] = np.zeros((1, 3))
    rewrite(tmp_path / "bad.safetensors", tensors, info)
    assert "unexpected tensor '4.weight'" in load_error(tmp_path / "bad.safetensors")


def test_huge_architecture_is_refused_before_allocating(good: Path, tmp_path: Path) -> None:
    tensors, info = file_contents(good)
    info["architecture"]["layers"][0]["in_features"] = 10**12  # 60 TB of float64, if built
    rewrite(tmp_path / "bad.safetensors", tensors, info)
    expected = "tensor '0.weight' has shape (7, 5), expected (7, 1000000000000)"
    assert expected in load_error(tmp_path / "bad.safetensors")


def test_mutated_files_load_or_raise_model_file_error(good: Path, tmp_path: Path) -> None:
    data, rng = good.read_bytes(), np.random.default_rng(0)
    path, messages = tmp_path / "mutated.safetensors", []
    for _ in range(200):
        mutated = bytearray(data)
        for position in rng.integers(0, len(data), size=rng.integers(1, 4)):
            mutated[position] = rng.choice(list(b'{}[]",:019eE-. \x00\xff'))
        path.write_bytes(bytes(mutated[: rng.integers(len(data) - 8, len(data) + 1)]))
        try:
            load_model(path)
        except ModelFileError as error:  # anything else fails the test
            messages.append(str(error))
    assert messages and not any("\n" in message for message in messages)


def test_dtype_differing_from_the_architecture(good: Path, tmp_path: Path) -> None:
    tensors, info = file_contents(good)
    info["architecture"]["dtype"] = "float32"
    rewrite(tmp_path / "bad.safetensors", tensors, info)
    assert "tensor '0.weight' is float64, the architecture expects float32" in load_error(
        tmp_path / "bad.safetensors"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"in_features": 0}, "layer 0 (Linear) in_features must be a positive integer, received 0"),
        ({"out_features": 2.5}, "out_features must be a positive integer, received 2.5"),
        ({"bias": "yes"}, "layer 0 (Linear) bias must be true or false, received 'yes'"),
        ({"units": 3}, "layer 0 (Linear) has unexpected 'units'"),
        ({"in_features": None}, "must be a positive integer, received None"),
        ({"out_features": 6}, "layer 2 (Linear) has in_features 7, but the Linear before it"),
    ],
)
def test_bad_linear_config(change: dict[str, Any], message: str) -> None:
    config = model_config(mlp())
    config["layers"][0].update(change)
    with pytest.raises(ModelFileError) as caught:
        build_model(config)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"layers": []}, "architecture is missing 'dtype'"),
        ({"layers": [], "dtype": "float16"}, "dtype must be 'float32' or 'float64'"),
        ({"layers": {}, "dtype": "float64"}, "layers must be a list"),
        ({"layers": [7], "dtype": "float64"}, "layer 0 must be an object with a 'type'"),
        ({"layers": [{"type": "Linear"}], "dtype": "float64"}, "layer 0 (Linear) is missing"),
        ({"layers": [{"type": "ReLU", "x": 1}], "dtype": "float64"}, "has unexpected 'x'"),
        (
            {"layers": [{"type": "LeakyReLU", "negative_slope": -1}], "dtype": "float64"},
            "negative_slope must be a finite number >= 0, received -1",
        ),
    ],
)
def test_bad_architecture(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelFileError) as caught:
        build_model(config)
    assert message in str(caught.value)


def test_unsupported_models_are_refused_when_saving(tmp_path: Path) -> None:
    nested = hp.Sequential(hp.Sequential(hp.Linear(2, 2)))
    with pytest.raises(TypeError, match="layer 0 is a Sequential; model files hold a flat"):
        save_model(tmp_path / "m.safetensors", nested)
    mixed = hp.Sequential(hp.Linear(2, 2), hp.Linear(2, 2, dtype=np.float32))
    with pytest.raises(TypeError, match=r"one dtype for all parameters"):
        save_model(tmp_path / "m.safetensors", mixed)
    assert list(tmp_path.iterdir()) == []


def test_bad_metadata_is_refused_when_saving(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'architecture' are reserved"):
        save_model(tmp_path / "m.safetensors", mlp(), metadata={"architecture": 1})
    with pytest.raises(TypeError, match=r"metadata must be JSON-able.*set is not"):
        save_model(tmp_path / "m.safetensors", mlp(), metadata={"classes": {1, 2}})
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- checkpoints

OPTIMIZERS: dict[str, Callable[[list[hp.Parameter]], hp.Optimizer]] = {
    "sgd": lambda params: hp.SGD(params, lr=0.01),
    "momentum": lambda params: hp.SGD(params, lr=0.01, momentum=0.9),
    "nesterov": lambda params: hp.SGD(
        params, lr=0.01, momentum=0.8, nesterov=True, weight_decay=1e-3
    ),
    "adam": lambda params: hp.Adam(params, lr=0.01),
    "adamw": lambda params: hp.Adam(params, lr=0.01, weight_decay=0.1, decoupled=True),
}


def train(model: hp.Sequential, optimizer: hp.Optimizer, steps: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    dtype = model[0].weight.dtype  # type: ignore[attr-defined]
    for _ in range(steps):
        x = rng.standard_normal((8, 5)).astype(dtype)
        y = rng.standard_normal((8, 3)).astype(dtype)
        hp.train_step(model, hp.MeanSquaredError(), optimizer, x, y)


def state_arrays(optimizer: hp.Optimizer) -> list[Array]:
    if isinstance(optimizer, hp.SGD):
        return optimizer.velocities
    assert isinstance(optimizer, hp.Adam)
    return optimizer.m + optimizer.v


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", sorted(OPTIMIZERS))
def test_resume_is_bit_identical(tmp_path: Path, kind: str, dtype: type) -> None:
    model = mlp(dtype, act="tanh")
    optimizer = OPTIMIZERS[kind](model.parameters())
    train(model, optimizer, steps=3, seed=10)
    rng = np.random.default_rng(5)
    rng.standard_normal(3)
    state = {"epoch": 3, "rng": rng.bit_generator.state, "history": [1.5, 0.25]}
    save_checkpoint(tmp_path / "c.safetensors", model, optimizer, metadata={"train": state})

    resumed, info, saved = load_checkpoint(tmp_path / "c.safetensors")
    resumed_optimizer = build_optimizer(resumed.parameters(), saved)

    assert info["train"] == state
    for before, after in zip(state_arrays(optimizer), state_arrays(resumed_optimizer), strict=True):
        np.testing.assert_array_equal(after, before)
        assert after.dtype == dtype
    assert getattr(resumed_optimizer, "t", None) == getattr(optimizer, "t", None)
    resumed_rng = np.random.default_rng()
    resumed_rng.bit_generator.state = info["train"]["rng"]
    assert resumed_rng.standard_normal() == rng.standard_normal()
    train(model, optimizer, steps=4, seed=11)
    train(resumed, resumed_optimizer, steps=4, seed=11)
    for original, copy in zip(model.parameters(), resumed.parameters(), strict=True):
        np.testing.assert_array_equal(copy.data, original.data)


@pytest.mark.parametrize("kind", ["momentum", "adam"])
def test_restored_optimizer_updates_the_loaded_model(tmp_path: Path, kind: str) -> None:
    model = mlp()
    optimizer = OPTIMIZERS[kind](model.parameters())
    train(model, optimizer, steps=2, seed=0)
    save_checkpoint(tmp_path / "c.safetensors", model, optimizer)
    resumed, _, saved = load_checkpoint(tmp_path / "c.safetensors")
    resumed_optimizer = OPTIMIZERS[kind](resumed.parameters())

    restore_optimizer(resumed_optimizer, saved)

    for before, after in zip(state_arrays(optimizer), state_arrays(resumed_optimizer), strict=True):
        np.testing.assert_array_equal(after, before)
    weights = [p.data.copy() for p in resumed.parameters()]
    originals = [p.data.copy() for p in model.parameters()]
    train(resumed, resumed_optimizer, steps=1, seed=1)
    assert all(p is q for p, q in zip(resumed.parameters(), resumed_optimizer.params, strict=True))
    changed = [
        not np.array_equal(p.data, w) for p, w in zip(resumed.parameters(), weights, strict=True)
    ]
    assert all(changed)
    for parameter, original in zip(model.parameters(), originals, strict=True):
        np.testing.assert_array_equal(parameter.data, original)


def test_checkpoint_model_loads_as_a_model(tmp_path: Path) -> None:
    model = mlp()
    save_checkpoint(tmp_path / "c.safetensors", model, OPTIMIZERS["adam"](model.parameters()))
    loaded, info = load_model(tmp_path / "c.safetensors")
    np.testing.assert_array_equal(predict(loaded, inputs()), predict(model, inputs()))
    assert info["optimizer"]["type"] == "Adam"
    tensors, _ = file_contents(tmp_path / "c.safetensors")
    assert "optimizer.0.m" in tensors and tensors["optimizer.0.m"].shape == (7, 5)


def test_model_file_is_not_a_checkpoint(good: Path) -> None:
    with pytest.raises(ModelFileError, match="holds no optimizer state"):
        load_checkpoint(good)


def checkpoint_state(tmp_path: Path, kind: str) -> tuple[hp.Sequential, OptimizerState]:
    model = mlp()
    save_checkpoint(tmp_path / "c.safetensors", model, OPTIMIZERS[kind](model.parameters()))
    resumed, _, state = load_checkpoint(tmp_path / "c.safetensors")
    return resumed, state


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda params: hp.SGD(params, lr=0.01), "holds 'Adam' state, the optimizer is 'SGD'"),
        (lambda params: hp.Adam(params, lr=0.1), "lr: checkpoint 0.01, optimizer 0.1"),
        (lambda params: hp.Adam(params[:2], lr=0.01), "updates 4 parameters, this one 2"),
    ],
)
def test_restore_into_a_different_optimizer_is_refused(
    tmp_path: Path, make: Callable[[list[hp.Parameter]], hp.Optimizer], message: str
) -> None:
    resumed, state = checkpoint_state(tmp_path, "adam")
    with pytest.raises(ModelFileError, match=message):
        restore_optimizer(make(resumed.parameters()), state)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c, t: c.update(type="RMSprop"), "optimizer type 'RMSprop' is not one of Adam, SGD"),
        (lambda c, t: c.update(type=["Adam"]), r"optimizer type \['Adam'\] is not one of"),
        (
            lambda c, t: c["scalars"].update(t=-1),
            "counter 't' must be an integer >= 0, received -1",
        ),
        (lambda c, t: c.update(scalars=None), "optimizer 'scalars' must be a dict"),
        (lambda c, t: c["hyperparameters"].update(lr=-1.0), "cannot build its Adam: Adam lr"),
        (lambda c, t: t.pop("optimizer.3.v"), "missing tensor 'optimizer.3.v'"),
        (lambda c, t: t.update({"optimizer.9.m": t["optimizer.0.m"]}), "unexpected tensor"),
    ],
)
def test_damaged_optimizer_state_is_refused(
    tmp_path: Path, edit: Callable[[dict[str, Any], dict[str, Array]], object], message: str
) -> None:
    resumed, state = checkpoint_state(tmp_path, "adam")
    edit(state.config, state.tensors)
    with pytest.raises(ModelFileError, match=message):
        build_optimizer(resumed.parameters(), state)


def test_optimizer_of_another_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="parameter 0 is not one of the model's"):
        save_checkpoint(tmp_path / "c.safetensors", mlp(), OPTIMIZERS["adam"](mlp().parameters()))
    assert list(tmp_path.iterdir()) == []
