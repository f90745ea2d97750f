"""The CNN layers' memory layout: NCHW shapes over NHWC memory (docs/cnn.md, layers/conv.py).

A convolution's output is its product's (pixels, C_out) rows seen as NCHW; ReLU, pooling,
BatchNorm2d and Flatten keep their input's memory order, forward and backward, so that no layer
between two convolutions transposes an activation. Whatever the layout, the numbers are
PyTorch's: inputs in any memory order (NHWC, strided views) and gradients in another.
"""

from types import ModuleType

import numpy as np
import pytest

import handprop as hp
from handprop.backend import NUMPY, memory_order
from tests.test_torch_layers import check_layer, randomised

SPEC = "conv 4 3 pad 1, relu, maxpool 2, conv 6 3 pad 1, relu, maxpool 2, flatten, linear 3"


def nhwc(array: np.ndarray) -> bool:
    """Whether an (N, C, H, W) array lies in memory as NHWC (a slice of such memory too)."""
    return NUMPY.memory_axes(array) == [0, 2, 3, 1]


def test_activations_stay_nhwc_from_the_first_convolution_to_flatten() -> None:
    model = hp.build_layers(SPEC, (1, 8, 8), rng=0)
    x = np.random.default_rng(0).standard_normal((5, 1, 8, 8))
    inputs, h = [], x
    for _ in range(2):  # the second step reuses every buffer, in the same layout
        inputs, h = [], x
        for layer in model:
            inputs.append(h)
            h = layer.forward(h)
            if isinstance(layer, hp.Flatten):
                break
            assert nhwc(h), f"{layer!r} returned {h.strides}"
        assert h.flags.c_contiguous  # Flatten: PyTorch's (C, H, W) order, in one block
        grad = np.random.default_rng(1).standard_normal(h.shape)
        for layer, x_in in zip(reversed(model.layers[:7]), reversed(inputs), strict=True):
            grad = layer.backward(grad)
            assert grad.shape == x_in.shape
            if x_in.shape[1] > 1:  # gradients in their forward input's memory order
                assert nhwc(grad), f"{layer!r}.backward returned {grad.strides}"


def nhwc_memory(x: np.ndarray) -> np.ndarray:
    """``x`` (N, C, H, W) with the same values, in NHWC memory."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


LAYERS = {
    "conv pad 1": lambda: randomised(hp.Conv2d(3, 4, 3, padding=1, rng=0)),
    "conv stride 2, no padding, no bias": lambda: randomised(
        hp.Conv2d(3, 5, 3, stride=2, bias=False, rng=0)
    ),
    "conv 1 channel in": lambda: randomised(hp.Conv2d(1, 4, 3, padding=1, rng=0)),
    "relu": hp.ReLU,
    "batchnorm2d": lambda: randomised(hp.BatchNorm2d(3)),
    "maxpool 2": lambda: hp.MaxPool2d(2),
    "maxpool 3 stride 2": lambda: hp.MaxPool2d(3, 2),
    "maxpool 3": lambda: hp.MaxPool2d(3),
    "avgpool 2": lambda: hp.AvgPool2d(2),
    "avgpool 3, windows tiling a 9x9 image": lambda: hp.AvgPool2d(3),
    "avgpool 2 stride 3, gaps": lambda: hp.AvgPool2d(2, 3),
    "flatten": hp.Flatten,
}


@pytest.mark.parametrize("memory", ["nhwc", "strided"])
@pytest.mark.parametrize("name", LAYERS)
def test_layers_match_torch_on_any_memory_order(torch: ModuleType, name: str, memory: str) -> None:
    layer = LAYERS[name]()
    channels = 1 if name == "conv 1 channel in" else 3
    x = np.random.default_rng(4).standard_normal((3, channels, 9, 19))
    x = nhwc_memory(x[:, :, :, :10]) if memory == "nhwc" else x[:, :, :, 1::2]
    for _ in range(2):  # the second with reused buffers
        check_layer(torch, layer, x)  # its grad_y: a C-ordered array, not the layer's layout


@pytest.mark.parametrize("shape", [(4, 3, 6, 5), (4, 1, 6, 5), (1, 3, 1, 5)])
def test_reuse_like_keeps_the_memory_order_and_the_buffer(shape: tuple[int, ...]) -> None:
    like = np.empty(shape).transpose(0, 3, 1, 2)  # (N, W, C, H) memory, of another shape
    out_shape = tuple(max(1, size // 2) for size in like.shape)
    buffer = NUMPY.reuse_like(None, out_shape, np.dtype(np.float32), like)
    assert buffer.shape == out_shape and buffer.dtype == np.float32
    order = memory_order(like.shape, NUMPY.strides(like))
    assert memory_order(buffer.shape, NUMPY.strides(buffer)) == tuple(
        axis for axis in order if out_shape[axis] > 1
    )
    assert NUMPY.transpose(buffer, NUMPY.memory_axes(buffer)).flags.c_contiguous
    assert NUMPY.reuse_like(buffer, out_shape, np.dtype(np.float32), like) is buffer
    contiguous = np.empty(out_shape, np.float32)
    if memory_order(out_shape, NUMPY.strides(contiguous)) != memory_order(
        out_shape, NUMPY.strides(buffer)
    ):  # another layout asked for: a new buffer
        assert NUMPY.reuse_like(buffer, out_shape, np.dtype(np.float32), contiguous) is not buffer


def test_reuse_like_on_torch(torch: ModuleType) -> None:
    from handprop.backend import torch_namespace

    xp = torch_namespace("cpu")
    like = torch.empty((2, 5, 6, 3), dtype=torch.float64).permute(0, 3, 1, 2)  # NHWC memory
    buffer = xp.reuse_like(None, (2, 3, 3, 3), np.dtype(np.float64), like)
    assert buffer.permute(0, 2, 3, 1).is_contiguous() and not buffer.is_contiguous()
    assert xp.reuse_like(buffer, (2, 3, 3, 3), np.dtype(np.float64), like) is buffer
    assert xp.memory_axes(like) == [0, 2, 3, 1]


@pytest.mark.parametrize(
    ("c_in", "kernel", "padding", "width"),
    [(3, 3, 1, 10), (1, 3, 1, 10), (2, 1, 0, 7), (2, 2, 2, 6), (3, 5, 2, 9), (2, 3, 0, 5)],
)
def test_stride_1_input_gradient_by_products_equals_col2im(
    c_in: int, kernel: int, padding: int, width: int
) -> None:
    """Conv2d's two ways to the input gradient agree; with stride 1 no grad_cols is made."""
    layer = randomised(hp.Conv2d(c_in, 4, kernel, padding=padding, rng=0))
    x = nhwc_memory(np.random.default_rng(5).standard_normal((3, c_in, 8, width)))
    h = layer.forward(x)
    grad_h = nhwc_memory(np.random.default_rng(6).standard_normal(h.shape))
    grad_x = np.array(layer.backward(grad_h))
    assert layer.grad_cols is None  # kh * kw times grad_h's size: never made
    x_pad, grad_h_pixels = layer._grad_pixels(grad_h)
    pad_shape, (h_out, w_out) = tuple(x_pad.shape), h.shape[2:]
    by_col2im = layer._col2im(grad_h_pixels, pad_shape, h_out, w_out)
    p = padding
    expected = by_col2im[:, p : pad_shape[1] - p, p : pad_shape[2] - p].transpose(0, 3, 1, 2)
    np.testing.assert_allclose(grad_x, expected, rtol=1e-12, atol=1e-12)
