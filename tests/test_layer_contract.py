"""The contract every layer keeps (Keras's run_layer_test, in handprop's terms).

Output shape, gradient shapes and dtypes, a gradient check, accumulation over
two backward calls, zero_grad, and errors for backward before forward and for
a gradient of the wrong shape.
"""

from collections.abc import Callable

import numpy as np
import pytest

import handprop as hp

D_IN, D_OUT = 4, 3


def _rng() -> np.random.Generator:
    return np.random.default_rng(7)


# name -> (factory(dtype), output width)
LAYERS: dict[str, tuple[Callable[[str], hp.Module], int]] = {
    "Linear": (lambda d: hp.Linear(D_IN, D_OUT, rng=_rng(), dtype=d), D_OUT),
    "Linear(bias=False)": (
        lambda d: hp.Linear(D_IN, D_OUT, bias=False, rng=_rng(), dtype=d),
        D_OUT,
    ),
    "ReLU": (lambda d: hp.ReLU(), D_IN),
    "LeakyReLU": (lambda d: hp.LeakyReLU(0.2), D_IN),
    "Tanh": (lambda d: hp.Tanh(), D_IN),
    "Sigmoid": (lambda d: hp.Sigmoid(), D_IN),
    "Identity": (lambda d: hp.Identity(), D_IN),
    "Sequential": (
        lambda d: hp.Sequential(
            hp.Linear(D_IN, 5, rng=_rng(), dtype=d),
            hp.Tanh(),
            hp.Linear(5, D_OUT, rng=_rng(), dtype=d),
        ),
        D_OUT,
    ),
    "Sequential of Sequentials": (
        lambda d: hp.Sequential(
            hp.Sequential(hp.Linear(D_IN, 5, rng=_rng(), dtype=d), hp.Sigmoid()),
            hp.Sequential(hp.Linear(5, D_OUT, rng=_rng(), dtype=d), hp.LeakyReLU()),
        ),
        D_OUT,
    ),
}
parametrize_layers = pytest.mark.parametrize("name", list(LAYERS))


def _inputs(dtype: str, width: int, n: int = 6) -> tuple[np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(11)
    return rng.standard_normal((n, width)).astype(dtype), rng


@parametrize_layers
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_shapes_and_dtypes(name: str, dtype: str) -> None:
    factory, width = LAYERS[name]
    layer = factory(dtype)
    x, rng = _inputs(dtype, D_IN)

    y = layer.forward(x)
    grad_x = layer.backward(rng.standard_normal(y.shape).astype(dtype))

    assert y.shape == (6, width) and y.dtype == dtype
    assert grad_x.shape == x.shape and grad_x.dtype == dtype
    for parameter in layer.parameters():
        assert parameter.grad.shape == parameter.data.shape
        assert parameter.grad.dtype == dtype


@parametrize_layers
def test_gradients_match_central_differences(name: str) -> None:
    layer = LAYERS[name][0]("float64")
    x, _ = _inputs("float64", D_IN)

    report = hp.check_gradients(layer, x)

    assert report.passed, report
    assert {t.name for t in report.tensors} == {"input"} | {n for n, _ in layer.named_parameters()}
    assert all(t.checked > 0 for t in report.tensors)


@parametrize_layers
def test_gradients_accumulate_and_zero_grad_clears_them(name: str) -> None:
    layer = LAYERS[name][0]("float64")
    x, rng = _inputs("float64", D_IN)
    grad_y = rng.standard_normal(layer.forward(x).shape)

    first_grad_x = layer.backward(grad_y).copy()  # the returned array is a reused buffer
    first = [p.grad.copy() for p in layer.parameters()]
    second_grad_x = layer.backward(grad_y)

    np.testing.assert_array_equal(second_grad_x, first_grad_x)
    for parameter, once in zip(layer.parameters(), first, strict=True):
        assert np.any(once != 0)
        np.testing.assert_array_equal(parameter.grad, 2 * once)
    layer.zero_grad()
    assert all(not np.any(p.grad) for p in layer.parameters())


@parametrize_layers
def test_backward_before_forward_is_an_error(name: str) -> None:
    layer = LAYERS[name][0]("float64")
    with pytest.raises(RuntimeError, match="before"):
        layer.backward(np.ones((6, LAYERS[name][1])))


@parametrize_layers
def test_gradient_of_the_wrong_shape_is_an_error(name: str) -> None:
    layer = LAYERS[name][0]("float64")
    x, _ = _inputs("float64", D_IN)
    y = layer.forward(x)
    with pytest.raises(ValueError, match="expected a gradient of shape"):
        layer.backward(np.ones((y.shape[0] + 1, y.shape[1])))
