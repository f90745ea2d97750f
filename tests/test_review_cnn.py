"""Review of the CNN speed change (issue 15): ReLU after MaxPool2d in Sequential, Conv2d's
stride-1 input gradient by products. Each test failed on the code it was written against."""

from types import ModuleType
from typing import Any

import numpy as np

import handprop as hp
from tests.test_backend_torch import host
from tests.test_no_allocation import traced_steps


def conv_net() -> hp.Sequential:
    return hp.Sequential(
        hp.Conv2d(2, 3, 3, padding=1, rng=0),
        hp.ReLU(),
        hp.MaxPool2d(2),
        hp.Flatten(),
        hp.Linear(3 * 4 * 4, 2, rng=1),
    )


def step(model: hp.Sequential, x: Any, grad_y: Any) -> Any:
    model.forward(x)
    return host(model.backward(grad_y))


def test_conv_stride_1_backward_after_to_float32_uses_float32_buffers() -> None:
    # the stride-1 product's grid of grad_h was kept across model.to("float32") (its
    # shape matched): the products then mixed float64 and float32
    x = np.random.default_rng(0).standard_normal((4, 2, 8, 8))
    grad_y = np.random.default_rng(1).standard_normal((4, 2))
    model = conv_net()
    step(model, x, grad_y)
    model.to("float32")
    grad_x = step(model, x.astype(np.float32), grad_y.astype(np.float32))
    fresh = conv_net().to("float32")
    expected = step(fresh, x.astype(np.float32), grad_y.astype(np.float32))
    assert np.array_equal(grad_x, expected)


def test_conv_stride_1_backward_after_to_float32_on_torch(torch: ModuleType) -> None:
    # on torch the mixed product raised "mat1 and mat2 must have the same dtype"
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((4, 2, 8, 8)))
    grad_y = torch.from_numpy(np.random.default_rng(1).standard_normal((4, 2)))
    model = conv_net().to("cpu")
    step(model, x, grad_y)
    model.to("float32")
    grad_x = step(model, x.float(), grad_y.float())
    expected = step(conv_net().to("cpu", "float32"), x.float(), grad_y.float())
    assert np.allclose(grad_x, expected, rtol=1e-5, atol=1e-6)


def test_relu_maxpool_steps_on_images_with_zero_windows_allocate_no_arrays() -> None:
    # A convolution without bias gives exactly 0 over an all-zero patch (MNIST's black
    # borders): those windows' maximum is 0, so the tie correction ran every step, and
    # made five arrays of the pooled size each time (1 MiB each here)
    spec = "conv 8 3 pad 1 nobias, relu, maxpool 2, conv 16 3 pad 1, relu, maxpool 2, "
    model = hp.build_layers(spec + "flatten, linear 10", (1, 16, 16), rng=0)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((256, 1, 16, 16)), rng.standard_normal((256, 10))
    x[:, :, :4] = 0  # a black band across the top of every image
    loss_fn, optimizer = hp.MeanSquaredError(), hp.SGD(model.parameters(), lr=0.01)
    for _ in range(3):  # warm-up: the buffers are made here
        hp.train_step(model, loss_fn, optimizer, x, y)
    assert np.any(model[1].h == 0)  # the windows this test is about are there

    _, peak = traced_steps(lambda: hp.train_step(model, loss_fn, optimizer, x, y), 5)

    assert peak < 256 * 1024  # as tests/test_no_allocation.py's CNN steps


def max_pool_reference(x: np.ndarray, k: int, s: int, grad_y: np.ndarray) -> np.ndarray:
    """MaxPool2d's input gradient window by window: the first maximum in row-major order
    (overlapping windows add in another order than the layer's: equal up to rounding)."""
    grad_x = np.zeros_like(x)
    n, c, h_out, w_out = grad_y.shape
    for b, ch, i, j in np.ndindex(n, c, h_out, w_out):
        window = x[b, ch, i * s : i * s + k, j * s : j * s + k]
        di, dj = np.unravel_index(np.argmax(window), window.shape)
        grad_x[b, ch, i * s + di, j * s + dj] += grad_y[b, ch, i, j]
    return grad_x


def test_maxpool_with_more_than_256_offsets_and_another_stride() -> None:
    # a 17x17 window has offsets up to 288, kept in int32; the winners were computed as
    # a product of uint8 with the offset: numpy raised OverflowError from offset 256
    x = np.random.default_rng(0).standard_normal((2, 2, 23, 20))
    pool = hp.MaxPool2d(17, 3)
    y = pool.forward(x)
    grad_y = np.random.default_rng(1).standard_normal(y.shape)
    assert np.allclose(pool.backward(grad_y), max_pool_reference(x, 17, 3, grad_y), atol=1e-12)


def test_maxpool_with_more_than_256_offsets_on_torch(torch: ModuleType) -> None:
    # torch computed the product in uint8: offset 256 wrapped to 0, 300 to 44, silently
    x = np.random.default_rng(0).standard_normal((2, 2, 23, 20))
    pool = hp.MaxPool2d(17, 3).to("cpu")
    y = pool.forward(torch.from_numpy(x))
    grad_y = np.random.default_rng(1).standard_normal(tuple(y.shape))
    grad_x = host(pool.backward(torch.from_numpy(grad_y)))
    assert np.allclose(grad_x, max_pool_reference(x, 17, 3, grad_y), atol=1e-12)
