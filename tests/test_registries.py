"""A new optimizer or activation is one class and one registry line.

The classes below live only in this file. Registered, they train through
``fit``, resume from a checkpoint bit for bit and round-trip through a model
file, with no other module touched.
"""

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import handprop as hp
from handprop.checkpoint import build_optimizer, load_checkpoint, load_model, save_checkpoint
from handprop.parameter import ACCUMULATE, Gradients


class SignSGD(hp.Optimizer):
    """``w -= lr * sign(grad)`` with a step counter and a running mean of |grad|."""

    def __init__(self, params: Any, lr: float = 0.01, decay: float = 0.9) -> None:
        super().__init__(params, lr)
        self.decay = decay
        self.count = 0
        self.mean_abs = [np.zeros_like(p.data) for p in self.params]

    def step(self) -> None:
        self.count += 1
        for parameter, mean_abs in zip(self.params, self.mean_abs, strict=True):
            mean_abs *= self.decay
            mean_abs += (1 - self.decay) * np.abs(parameter.grad)
            parameter.data -= self.lr * np.sign(parameter.grad)

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "decay": self.decay}

    def slots(self) -> dict[str, list[np.ndarray]]:
        return {"mean_abs": self.mean_abs}

    def scalars(self) -> dict[str, int]:
        return {"count": self.count}

    def load_scalars(self, scalars: dict[str, int]) -> None:
        self.count = scalars["count"]


class Softsign(hp.Module):
    """``h_soft = h / (1 + |h|)``; its derivative is ``1 / (1 + |h|)**2``."""

    def __init__(self) -> None:
        self.h: np.ndarray | None = None

    def forward(self, h: np.ndarray) -> np.ndarray:
        self.h = h
        return h / (1 + np.abs(h))

    def backward(self, grad_h_soft: np.ndarray, grads: Gradients = ACCUMULATE) -> np.ndarray:
        assert self.h is not None
        return grad_h_soft / np.square(1 + np.abs(self.h))


class Shift(hp.Module):
    """A layer with a setting: ``h + offset``, to show config() in model files."""

    config_fields = ("offset",)

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def forward(self, h: np.ndarray) -> np.ndarray:
        return h + self.offset

    def backward(self, grad_y: np.ndarray, grads: Gradients = ACCUMULATE) -> np.ndarray:
        return grad_y

    def config(self) -> dict[str, Any]:
        return {"offset": self.offset}

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
        if not isinstance(config["offset"], float) or not math.isfinite(config["offset"]):
            raise ValueError(f"offset must be a finite number, received {config['offset']!r}")
        return {}


@pytest.fixture
def registered() -> Iterator[None]:
    hp.OPTIMIZERS.register("signsgd")(SignSGD)
    hp.ACTIVATIONS.register("softsign")(Softsign)
    hp.LAYERS.register("Softsign")(Softsign)
    hp.LAYERS.register("Shift")(Shift)
    try:
        yield
    finally:
        hp.OPTIMIZERS.unregister("signsgd")
        hp.ACTIVATIONS.unregister("softsign")
        hp.LAYERS.unregister("Softsign")
        hp.LAYERS.unregister("Shift")


def problem() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3))
    return x, np.sin(x[:, :1]) + 0.5 * x[:, 1:2]


def network() -> hp.Sequential:
    model = hp.mlp(3, [8], 1, activation="softsign", rng=1)
    return hp.Sequential(*model.layers, Shift(0.25))


def optimizer_for(model: hp.Module) -> hp.Optimizer:
    return hp.OPTIMIZERS["signsgd"].from_options(model.parameters(), lr=0.01, momentum=0.9)


def test_names_resolve_and_unknown_names_list_the_valid_ones(registered: None) -> None:
    assert hp.OPTIMIZERS["signsgd"] is SignSGD and "signsgd" in hp.OPTIMIZERS.names()
    assert isinstance(hp.activation("softsign"), Softsign)
    with pytest.raises(
        ValueError, match="unknown optimizer 'lion'; valid names: adam, sgd, signsgd"
    ):
        hp.OPTIMIZERS["lion"]


def test_registered_classes_train_resume_exactly_and_round_trip(
    registered: None, tmp_path: Path
) -> None:
    data = problem()
    straight = network()
    history = hp.fit(
        straight, hp.MeanSquaredError(), optimizer_for(straight), data, epochs=6, batch_size=8
    )
    assert history.logs[-1].train_loss < history.logs[0].train_loss  # it trained

    # 3 epochs, a checkpoint, then 3 more from the file: bit for bit the straight run.
    first = network()
    optimizer, state, rng = optimizer_for(first), hp.TrainingState(), np.random.default_rng(0)
    hp.fit(
        first, hp.MeanSquaredError(), optimizer, data, epochs=3, batch_size=8, rng=rng, state=state
    )
    path = tmp_path / "checkpoint.safetensors"
    saved = {"state": state.to_json(), "rng": rng.bit_generator.state}
    save_checkpoint(path, first, optimizer, metadata=saved)
    model, info, optimizer_state = load_checkpoint(path)
    resumed_optimizer = build_optimizer(model.parameters(), optimizer_state)
    assert isinstance(resumed_optimizer, SignSGD) and resumed_optimizer.count == 15
    rng = np.random.default_rng()
    rng.bit_generator.state = info["rng"]
    hp.fit(
        model, hp.MeanSquaredError(), resumed_optimizer, data, epochs=6, batch_size=8, rng=rng,
        state=hp.TrainingState.from_json(info["state"]),
    )  # fmt: skip
    for after_resume, reference in zip(model.parameters(), straight.parameters(), strict=True):
        np.testing.assert_array_equal(after_resume.data, reference.data)

    straight.save(tmp_path / "model.safetensors")
    loaded, loaded_info = load_model(tmp_path / "model.safetensors")
    assert [layer["type"] for layer in loaded_info["architecture"]["layers"]] == [
        "Linear", "Softsign", "Linear", "Shift",
    ]  # fmt: skip
    x = data[0]
    np.testing.assert_array_equal(loaded(x), straight(x))


def test_a_layer_model_files_do_not_know_is_refused_with_the_way_to_register_it(
    tmp_path: Path,
) -> None:
    model = hp.Sequential(hp.Linear(2, 2, rng=0), Softsign())
    with pytest.raises(TypeError, match=r"layer 1 is a Softsign; .* @LAYERS.register"):
        model.save(tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []
