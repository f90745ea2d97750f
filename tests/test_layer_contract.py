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


class FixedMaskDropout(hp.Dropout):
    """Dropout drawing the same mask on every forward, so that central differences see
    one function of the input (training mode, p = 0.4)."""

    def __init__(self) -> None:
        super().__init__(0.4)

    def forward(self, h: np.ndarray) -> np.ndarray:
        self.rng = np.random.default_rng(5)
        return super().forward(h)


IMAGE = (2, 5, 6)  # C, H, W

# name -> (factory(dtype), input shape and output shape without N)
LAYERS: dict[str, tuple[Callable[[str], hp.Module], tuple[int, ...], tuple[int, ...]]] = {
    "Linear": (lambda d: hp.Linear(D_IN, D_OUT, rng=_rng(), dtype=d), (D_IN,), (D_OUT,)),
    "Linear(bias=False)": (
        lambda d: hp.Linear(D_IN, D_OUT, bias=False, rng=_rng(), dtype=d),
        (D_IN,),
        (D_OUT,),
    ),
    "ReLU": (lambda d: hp.ReLU(), (D_IN,), (D_IN,)),
    "LeakyReLU": (lambda d: hp.LeakyReLU(0.2), (D_IN,), (D_IN,)),
    "Tanh": (lambda d: hp.Tanh(), (D_IN,), (D_IN,)),
    "Sigmoid": (lambda d: hp.Sigmoid(), (D_IN,), (D_IN,)),
    "Identity": (lambda d: hp.Identity(), (D_IN,), (D_IN,)),
    "Sequential": (
        lambda d: hp.Sequential(
            hp.Linear(D_IN, 5, rng=_rng(), dtype=d),
            hp.Tanh(),
            hp.Linear(5, D_OUT, rng=_rng(), dtype=d),
        ),
        (D_IN,),
        (D_OUT,),
    ),
    "Sequential of Sequentials": (
        lambda d: hp.Sequential(
            hp.Sequential(hp.Linear(D_IN, 5, rng=_rng(), dtype=d), hp.Sigmoid()),
            hp.Sequential(hp.Linear(5, D_OUT, rng=_rng(), dtype=d), hp.LeakyReLU()),
        ),
        (D_IN,),
        (D_OUT,),
    ),
    "Conv2d": (lambda d: hp.Conv2d(2, 3, 3, rng=_rng(), dtype=d), IMAGE, (3, 3, 4)),
    "Conv2d(stride=2, padding=1, bias=False)": (
        lambda d: hp.Conv2d(2, 3, 3, stride=2, padding=1, bias=False, rng=_rng(), dtype=d),
        IMAGE,
        (3, 3, 3),
    ),
    "MaxPool2d": (lambda d: hp.MaxPool2d(2), IMAGE, (2, 2, 3)),
    "MaxPool2d(3, stride=1)": (lambda d: hp.MaxPool2d(3, 1), IMAGE, (2, 3, 4)),
    "AvgPool2d": (lambda d: hp.AvgPool2d(2), IMAGE, (2, 2, 3)),
    "Flatten": (lambda d: hp.Flatten(), IMAGE, (60,)),
    "Dropout (training, one mask)": (lambda d: FixedMaskDropout(), (D_IN,), (D_IN,)),
    "Dropout (eval)": (lambda d: hp.Dropout(0.4, rng=0).eval(), (D_IN,), (D_IN,)),
    "BatchNorm1d": (lambda d: hp.BatchNorm1d(D_IN, dtype=d), (D_IN,), (D_IN,)),
    "BatchNorm1d (eval)": (lambda d: hp.BatchNorm1d(D_IN, dtype=d).eval(), (D_IN,), (D_IN,)),
    "BatchNorm2d": (lambda d: hp.BatchNorm2d(2, dtype=d), IMAGE, IMAGE),
    "LayerNorm": (lambda d: hp.LayerNorm(D_IN, dtype=d), (D_IN,), (D_IN,)),
    "LayerNorm((C, H, W))": (lambda d: hp.LayerNorm(IMAGE, dtype=d), IMAGE, IMAGE),
    "CNN": (
        lambda d: hp.Sequential(
            hp.Conv2d(2, 3, 3, padding=1, rng=_rng(), dtype=d),
            hp.BatchNorm2d(3, dtype=d),
            hp.ReLU(),
            hp.MaxPool2d(2),
            hp.Flatten(),
            hp.Linear(18, D_OUT, rng=_rng(), dtype=d),
        ),
        IMAGE,
        (D_OUT,),
    ),
}
parametrize_layers = pytest.mark.parametrize("name", list(LAYERS))


def _inputs(
    dtype: str, shape: tuple[int, ...], n: int = 6
) -> tuple[np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(11)
    return rng.standard_normal((n, *shape)).astype(dtype), rng


@parametrize_layers
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_shapes_and_dtypes(name: str, dtype: str) -> None:
    factory, in_shape, out_shape = LAYERS[name]
    layer = factory(dtype)
    x, rng = _inputs(dtype, in_shape)

    y = layer.forward(x)
    grad_x = layer.backward(rng.standard_normal(y.shape).astype(dtype))

    assert y.shape == (6, *out_shape) and y.dtype == dtype
    assert grad_x.shape == x.shape and grad_x.dtype == dtype
    for parameter in layer.parameters():
        assert parameter.grad.shape == parameter.data.shape
        assert parameter.grad.dtype == dtype


@parametrize_layers
def test_gradients_match_central_differences(name: str) -> None:
    layer = LAYERS[name][0]("float64")
    x, _ = _inputs("float64", LAYERS[name][1])

    report = hp.check_gradients(layer, x)

    assert report.passed, report
    assert {t.name for t in report.tensors} == {"input"} | {n for n, _ in layer.named_parameters()}
    assert all(t.checked > 0 for t in report.tensors)


@parametrize_layers
def test_gradients_accumulate_and_zero_grad_clears_them(name: str) -> None:
    layer = LAYERS[name][0]("float64")
    x, rng = _inputs("float64", LAYERS[name][1])
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
        layer.backward(np.ones((6, *LAYERS[name][2])))


@parametrize_layers
def test_gradient_of_the_wrong_shape_is_an_error(name: str) -> None:
    layer = LAYERS[name][0]("float64")
    x, _ = _inputs("float64", LAYERS[name][1])
    y = layer.forward(x)
    with pytest.raises(ValueError, match="expected a gradient of shape"):
        layer.backward(np.ones((y.shape[0] + 1, *y.shape[1:])))
