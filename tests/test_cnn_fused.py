"""Sequential runs a ReLU that a MaxPool2d follows after the pool (layers/sequential.py):
the same numbers as the two layers one by one, exactly, ties at 0 included.

Inputs are small integers, so that windows tie: all negative, a maximum of exactly 0 behind
a negative (the case ``_relu_ties_at_zero`` corrects), a 0 first, equal positive values.
"""

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import handprop as hp
from tests.test_backend_torch import host

POOLS: dict[str, Callable[[], hp.MaxPool2d]] = {
    "2": lambda: hp.MaxPool2d(2),
    "3 stride 2 (overlapping)": lambda: hp.MaxPool2d(3, 2),
    "3": lambda: hp.MaxPool2d(3),
    "2 stride 3 (gaps)": lambda: hp.MaxPool2d(2, 3),
    "1": lambda: hp.MaxPool2d(1),
}


def tied(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Integers from -4 to 1 as floats, in NHWC memory under the NCHW shape (as a conv's)."""
    rng = np.random.default_rng(seed)
    n, c, height, width = shape
    return rng.integers(-4, 2, (n, height, width, c)).astype(np.float64).transpose(0, 3, 1, 2)


def one_by_one(layers: list[hp.Module], x: Any, grad_y: Any) -> tuple[Any, Any]:
    """Forward in order, backward in reverse, each layer called on its own."""
    for layer in layers:
        x = layer.forward(x)
    y = host(x)
    for layer in reversed(layers):
        grad_y = layer.backward(grad_y)
    return y, host(grad_y)


@pytest.mark.parametrize("pool", POOLS)
def test_relu_then_maxpool_equals_the_layers_one_by_one(pool: str) -> None:
    x = tied((3, 4, 12, 11))
    model = hp.Sequential(hp.ReLU(), POOLS[pool]())
    y = model.forward(x)
    relu = model[0]
    assert isinstance(relu, hp.ReLU) and relu.h is not None
    assert relu.h.shape == y.shape  # the ReLU ran on the pooled values
    grad_y = tied(y.shape, seed=1) + 0.5  # no zeros: a gradient lost shows
    grad_x = model.backward(grad_y)
    expected_y, expected_grad_x = one_by_one([hp.ReLU(), POOLS[pool]()], x, grad_y)
    assert np.array_equal(y, expected_y)
    assert np.array_equal(grad_x, expected_grad_x)
    # the windows this test is about are there: a maximum of 0 behind a negative too
    pooled, first = relu.h, POOLS[pool]()._window(x, 0, 0, y.shape)
    assert np.any(pooled < 0) and np.any(grad_x != 0)
    assert np.any((pooled == 0) & (first < 0)) or pool == "1"  # one value a window: no tie


def test_a_maximum_of_0_behind_a_negative_gets_no_gradient() -> None:
    # one 2x2 window [[-1, 0], [0, -2]]: ReLU makes it all 0, its first value wins and
    # is negative, so ReLU blocks the gradient; pooled first, the 0 at (0, 1) would win
    x = np.array([[[[-1.0, 0.0], [0.0, -2.0]]]])
    model = hp.Sequential(hp.ReLU(), hp.MaxPool2d(2))
    assert model.forward(x).item() == 0
    assert np.array_equal(model.backward(np.ones((1, 1, 1, 1))), np.zeros_like(x))
    # a 0 first: it wins and gets the gradient in either order
    x[0, 0, 0, 0] = 0
    model.forward(x)
    assert model.backward(np.ones((1, 1, 1, 1)))[0, 0, 0, 0] == 1


def test_benchmark_network_gradients_equal_the_layers_one_by_one() -> None:
    spec = "conv 4 3 pad 1, relu, maxpool 2, conv 6 3 pad 1, relu, maxpool 2, flatten, linear 3"
    model = hp.build_layers(spec, (1, 8, 8), rng=0)
    twin = hp.build_layers(spec, (1, 8, 8), rng=0)
    x = np.random.default_rng(2).integers(-2, 3, (5, 1, 8, 8)).astype(np.float64)
    grad_y = np.random.default_rng(3).standard_normal((5, 3))
    y = model.forward(x)
    model.backward_parameters(grad_y)  # as train_step: no gradient for the input
    expected_y, _ = one_by_one(twin.layers, x, grad_y)
    assert np.array_equal(y, expected_y)
    for parameter, expected in zip(model.parameters(), twin.parameters(), strict=True):
        assert np.array_equal(parameter.grad, expected.grad)


def test_a_relu_maxpool_pair_first_in_the_row_trains_its_parameters_too() -> None:
    model = hp.Sequential(hp.ReLU(), hp.MaxPool2d(2), hp.Flatten(), hp.Linear(4, 2, rng=0))
    twin = hp.Sequential(hp.ReLU(), hp.MaxPool2d(2), hp.Flatten(), hp.Linear(4, 2, rng=0))
    x, grad_y = tied((3, 1, 4, 4)), np.random.default_rng(4).standard_normal((3, 2))
    model.forward(x)
    model.backward_parameters(grad_y)
    one_by_one(twin.layers, x, grad_y)
    assert np.array_equal(model[3].weight.grad, twin[3].weight.grad)


@pytest.mark.parametrize("pool", ["2", "3 stride 2 (overlapping)"])
def test_relu_then_maxpool_on_torch_equals_the_layers_one_by_one(
    torch: ModuleType, pool: str
) -> None:
    x = torch.from_numpy(tied((3, 4, 12, 11)))
    model = hp.Sequential(hp.ReLU(), POOLS[pool]()).to("cpu")
    y = model.forward(x)
    grad_y = torch.from_numpy(tied(tuple(y.shape), seed=1) + 0.5)
    grad_x = host(model.backward(grad_y))
    layers = [hp.ReLU().to("cpu"), POOLS[pool]().to("cpu")]
    expected_y, expected_grad_x = one_by_one(layers, x, grad_y)
    assert np.array_equal(host(y), expected_y)
    assert np.array_equal(grad_x, expected_grad_x)


@pytest.mark.parametrize("pool", POOLS)
def test_first_lost_agrees_with_the_winners_gradcheck_reads(pool: str) -> None:
    layer = POOLS[pool]()
    layer.forward(tied((3, 4, 12, 11)))
    pieces = layer.pieces()
    assert pieces is not None
    assert np.array_equal(layer.first_lost(), pieces > 0)
