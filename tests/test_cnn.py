"""Convolutional networks in use: train/eval modes, model files PyTorch loads, and
checkpoints that resume bit for bit (running statistics and Dropout's generator included).
That their steps allocate nothing: tests/test_no_allocation.py."""

import copy
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import handprop as hp
from handprop.checkpoint import (
    ModelFileError,
    build_optimizer,
    load_checkpoint,
    load_model,
    save_checkpoint,
    save_model,
)
from handprop.parameter import ACCUMULATE
from handprop.training import Callback, EpochLog, TrainingState


def cnn(seed: int = 0, dtype: str = "float64") -> hp.Sequential:
    spec = "conv 4 3 pad 1, batchnorm, relu, maxpool 2, conv 6 3, dropout 0.25, flatten, linear 3"
    return hp.build_layers(spec, (1, 6, 6), rng=seed, dtype=dtype)


def images(n: int = 24, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 6, 6)), rng.integers(0, 3, n)


def test_train_and_eval_modes_reach_every_layer() -> None:
    model = cnn()
    assert all(m.training for m in model.modules())
    assert model.eval() is model and not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_dropout_in_eval_mode_passes_the_input_through() -> None:
    layer, x = hp.Dropout(0.5, rng=0).eval(), np.arange(6.0).reshape(2, 3)
    assert layer.forward(x) is x
    np.testing.assert_array_equal(layer.backward(np.ones((2, 3))), np.ones((2, 3)))


def test_dropout_scales_what_it_keeps_and_is_seeded() -> None:
    x = np.ones((100, 100))
    first, again = hp.Dropout(0.25, rng=3).forward(x), hp.Dropout(0.25, rng=3).forward(x)
    np.testing.assert_array_equal(first, again)
    assert set(np.unique(first)) == {0.0, 4 / 3}  # 1 / (1 - 0.25)
    assert abs((first == 0).mean() - 0.25) < 0.02


def test_batchnorm_eval_uses_the_running_statistics() -> None:
    # worked by hand: running_mean = 0.9 * 0 + 0.1 * 2 = 0.2; the batch [1, 3] has unbiased
    # variance 2, so running_var = 0.9 * 1 + 0.1 * 2 = 1.1
    layer = hp.BatchNorm1d(1, eps=0.0001)
    layer.forward(np.array([[1.0], [3.0]]))
    np.testing.assert_allclose(layer.running_mean, [0.2])
    np.testing.assert_allclose(layer.running_var, [1.1])
    y = layer.eval().forward(np.array([[2.2]]))
    np.testing.assert_allclose(y, [[2.0 / np.sqrt(1.1001)]])


@pytest.mark.parametrize("train_scores", ["steps", "full"])
def test_fit_trains_in_training_mode_scores_in_eval_mode_and_restores_modes(
    train_scores: str,
) -> None:
    seen: list[tuple[bool, int]] = []

    class Spy(hp.Module):
        def forward(self, x: np.ndarray) -> np.ndarray:
            seen.append((self.training, len(x)))
            return x

        def backward(self, grad_y: np.ndarray, grads: hp.Gradients = ACCUMULATE) -> np.ndarray:
            return grad_y

    model = hp.Sequential(hp.Linear(2, 2, rng=0), Spy()).eval()
    x, y = np.ones((4, 2)), np.ones((4, 2))
    options = hp.training.FitOptions(train_scores=train_scores)  # type: ignore[arg-type]
    hp.fit(model, hp.MeanSquaredError(), hp.SGD(model.parameters(), lr=0.1), (x, y), epochs=1,
           batch_size=2, validation=(x, y), options=options)  # fmt: skip
    # two steps of 2 rows; then in evaluation mode "full" scores the training set (4 rows)
    # and the validation set (4); "steps" the validation set, then checks the last weights
    # on one batch (2): the training set's scores are the steps'
    scored = [(False, 4), (False, 2)] if train_scores == "steps" else [(False, 4), (False, 4)]
    assert seen == [(True, 2), (True, 2), *scored]
    assert not any(m.training for m in model.modules())  # left as it came


def test_to_converts_the_running_statistics() -> None:
    model = cnn().to(np.float32)
    batchnorm = model[1]
    assert isinstance(batchnorm, hp.BatchNorm2d)
    assert batchnorm.running_mean.dtype == np.float32 and batchnorm.running_var.dtype == np.float32
    assert batchnorm.num_batches_tracked.dtype == np.int64
    assert model.forward(images()[0].astype(np.float32)).dtype == np.float32


# ---- files -----------------------------------------------------------------------------------


def trained(model: hp.Sequential, steps: int = 3) -> hp.Sequential:
    x, y = images()
    x = x.astype(model.parameters()[0].dtype)
    optimizer = hp.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        hp.train_step(model, hp.SoftmaxCrossEntropy(), optimizer, x, y)
    return model


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_model_file_round_trip_is_exact(tmp_path: Path, dtype: str) -> None:
    model = trained(cnn(dtype=dtype))
    save_model(tmp_path / "m.st", model)
    loaded, info = load_model(tmp_path / "m.st")
    assert [layer["type"] for layer in info["architecture"]["layers"]] == [
        "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Conv2d", "Dropout", "Flatten", "Linear"
    ]  # fmt: skip
    for (name, array), (loaded_name, loaded_array) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert name == loaded_name and array.dtype == loaded_array.dtype
        np.testing.assert_array_equal(loaded_array, array)
    assert int(loaded[1].num_batches_tracked) == 3  # type: ignore[attr-defined]
    x = images()[0].astype(dtype)
    np.testing.assert_array_equal(loaded.eval()(x), model.eval()(x))


def test_model_file_loads_strictly_into_torch(tmp_path: Path, torch: ModuleType) -> None:
    import safetensors.torch

    model = trained(cnn())
    save_model(tmp_path / "m.st", model)
    nn = torch.nn
    twin = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3), nn.Dropout(0.25), nn.Flatten(), nn.Linear(6, 3),
    ).double()  # fmt: skip
    twin.load_state_dict(safetensors.torch.load_file(tmp_path / "m.st"), strict=True)
    x = images()[0]
    with torch.no_grad():
        expected = twin.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.eval()(x), expected, rtol=1e-10, atol=1e-12)


def test_counter_of_the_wrong_dtype_is_refused(tmp_path: Path) -> None:
    import safetensors.numpy

    model = cnn()
    save_model(tmp_path / "m.st", model)
    tensors = safetensors.numpy.load_file(tmp_path / "m.st")
    tensors["1.num_batches_tracked"] = np.zeros((), np.float64)
    with open(tmp_path / "m.st", "rb") as file:
        header_length = int.from_bytes(file.read(8), "little")
        import json

        metadata = json.loads(file.read(header_length))["__metadata__"]
    safetensors.numpy.save_file(tensors, tmp_path / "bad.st", metadata=metadata)
    with pytest.raises(ModelFileError, match=r"'1.num_batches_tracked' is float64.*int64"):
        load_model(tmp_path / "bad.st")


# ---- checkpoints and resume ------------------------------------------------------------------


def test_checkpoint_keeps_the_dropout_generator(tmp_path: Path) -> None:
    model = trained(cnn())
    save_checkpoint(tmp_path / "c.st", model, hp.SGD(model.parameters(), lr=0.1))
    resumed, info, _ = load_checkpoint(tmp_path / "c.st")
    assert list(info["layer_state"]) == ["5"]
    x = np.ones((3, 40))
    np.testing.assert_array_equal(resumed[5].forward(x), model[5].forward(x))


def test_damaged_layer_state_is_refused(tmp_path: Path) -> None:
    model = cnn()
    save_checkpoint(tmp_path / "c.st", model, hp.SGD(model.parameters(), lr=0.1))
    model[5].rng = np.random.Generator(np.random.MT19937(0))  # type: ignore[attr-defined]
    save_checkpoint(tmp_path / "c.st", model, hp.SGD(model.parameters(), lr=0.1))
    resumed = cnn()
    state = model[5].get_extra_state()
    assert state is not None and state["rng"]["bit_generator"] == "MT19937"
    with pytest.raises(ValueError, match="Dropout extra state"):
        resumed[5].set_extra_state(state)  # a PCG64 cannot take an MT19937 state
    with pytest.raises(ModelFileError, match="layer 5: Dropout extra state"):
        load_checkpoint(tmp_path / "c.st")


class Interrupted(Exception):
    pass


class Interrupt(Callback):
    """At the end of epoch ``epoch``: save a checkpoint, then stop."""

    def __init__(self, epoch: int, path: Path, model: hp.Sequential, optimizer: hp.Optimizer,
                 rng: np.random.Generator) -> None:  # fmt: skip
        self.epoch, self.path, self.model, self.optimizer, self.rng = (
            epoch, path, model, optimizer, rng,
        )  # fmt: skip
        self.state: TrainingState | None = None

    def on_epoch_end(self, log: EpochLog, state: TrainingState) -> None:
        if log.epoch == self.epoch:
            metadata = {"rng": self.rng.bit_generator.state}
            save_checkpoint(self.path, self.model, self.optimizer, metadata=metadata)
            self.state = copy.deepcopy(state)
            raise Interrupted


def train_cnn(
    interrupt: int | None = None, path: Path | None = None
) -> tuple[list[np.ndarray], object]:
    """Four epochs, or ``interrupt`` epochs, a checkpoint, and the rest from the file."""
    data, validation = images(32, seed=1), images(12, seed=2)
    model, rng = cnn(seed=5), np.random.default_rng(9)
    optimizer = hp.SGD(model.parameters(), lr=0.05, momentum=0.9)
    common = {"epochs": 4, "batch_size": 8, "validation": validation}
    loss = hp.SoftmaxCrossEntropy()
    if interrupt is not None:
        assert path is not None
        stop = Interrupt(interrupt, path, model, optimizer, rng)
        with pytest.raises(Interrupted):
            hp.fit(model, loss, optimizer, data, rng=rng, callbacks=[stop], **common)  # type: ignore[arg-type]
        del model, optimizer, rng
        model, info, optimizer_state = load_checkpoint(path)
        rng = np.random.default_rng()
        rng.bit_generator.state = info["rng"]
        optimizer = build_optimizer(model.parameters(), optimizer_state)
        hp.fit(model, loss, optimizer, data, rng=rng, state=stop.state, **common)  # type: ignore[arg-type]
    else:
        hp.fit(model, loss, optimizer, data, rng=rng, **common)  # type: ignore[arg-type]
    return list(model.state_dict().values()), model[5].get_extra_state()


@pytest.mark.parametrize("epoch", [1, 3])
def test_interrupted_cnn_resumes_bit_identically(tmp_path: Path, epoch: int) -> None:
    straight, straight_dropout = train_cnn()
    resumed, resumed_dropout = train_cnn(epoch, tmp_path / "c.st")
    assert len(straight) == len(resumed) == 11  # 8 parameters and BatchNorm's 3 buffers
    for a, b in zip(straight, resumed, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(b, a)
    assert resumed_dropout == straight_dropout


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        (
            [hp.Conv2d(1, 16, 3), hp.ReLU(), hp.BatchNorm2d(8)],
            "layer 2 (BatchNorm2d) has num_features 8, but the Conv2d before it (layer 0) has "
            "out_channels 16",
        ),
        (
            [hp.Conv2d(1, 4, 3), hp.MaxPool2d(2), hp.Conv2d(3, 4, 3)],
            "layer 2 (Conv2d) has in_channels 3, but the Conv2d before it (layer 0) has "
            "out_channels 4",
        ),
        (
            [hp.Flatten(), hp.Linear(36, 5), hp.Tanh(), hp.BatchNorm1d(6)],
            "layer 3 (BatchNorm1d) has num_features 6, but the Linear before it (layer 1)",
        ),
        (
            [hp.Flatten(), hp.Linear(36, 5), hp.LayerNorm(4)],
            "layer 2 (LayerNorm) has normalized_shape 4, but the Linear before it (layer 1)",
        ),
    ],
)
def test_a_file_whose_layers_disagree_on_channels_is_refused_when_loaded(
    tmp_path: Path, layers: list[hp.Module], message: str
) -> None:
    hp.Sequential(*layers).save(tmp_path / "bad.safetensors")  # saving does not run it
    with pytest.raises(ModelFileError) as caught:
        load_model(tmp_path / "bad.safetensors")
    assert message in str(caught.value)


def test_after_flatten_any_width_is_accepted(tmp_path: Path) -> None:
    """A Flatten's width depends on the images' size, which a model file does not hold."""
    model = hp.Sequential(hp.Conv2d(1, 4, 3), hp.Flatten(), hp.Linear(144, 3))
    model.save(tmp_path / "m.safetensors")
    loaded, _ = load_model(tmp_path / "m.safetensors")
    assert loaded(np.zeros((2, 1, 8, 8))).shape == (2, 3)


def test_layers_over_the_last_axis_of_images_are_not_taken_for_channels(tmp_path: Path) -> None:
    """After a Conv2d, LayerNorm(W) normalises along the images' width, not the channels."""
    model = hp.Sequential(hp.Conv2d(1, 4, 3), hp.LayerNorm(6), hp.BatchNorm2d(4))
    model.save(tmp_path / "m.safetensors")
    loaded, _ = load_model(tmp_path / "m.safetensors")
    assert loaded(np.ones((2, 1, 8, 8))).shape == (2, 4, 6, 6)


def test_layernorm_over_whole_images_round_trips_through_a_model_file(tmp_path: Path) -> None:
    model = hp.Sequential(hp.Conv2d(1, 3, 3, rng=0), hp.LayerNorm((3, 6, 6)), hp.Flatten())
    model[1].weight.data[...] = np.arange(108.0).reshape(3, 6, 6)
    model.save(tmp_path / "m.safetensors")
    loaded, _ = load_model(tmp_path / "m.safetensors")
    assert loaded[1].normalized_shape == (3, 6, 6)
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8))
    np.testing.assert_array_equal(loaded(x), model(x))
    y = hp.LayerNorm((3, 6, 6)).forward(x.repeat(3, axis=1)[:, :, :6, :6])
    np.testing.assert_allclose(y.mean(axis=(1, 2, 3)), 0, atol=1e-12)  # over (C, H, W)
    np.testing.assert_allclose(y.var(axis=(1, 2, 3)), 1, rtol=1e-3)
    assert abs(y.mean(axis=3)).max() > 0.1  # not over W alone


def test_layernorm_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match=r"LayerNorm expected input of shape \(N, ..., 3, 6, 6\)"):
        hp.LayerNorm((3, 6, 6)).forward(np.zeros((2, 3, 6, 5)))
    with pytest.raises(ValueError, match="normalized_shape must be a positive integer"):
        hp.LayerNorm((3, 0))
