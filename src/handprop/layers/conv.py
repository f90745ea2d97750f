"""The 2-D convolution, as im2col and one matrix product: ``Linear`` over image patches.

Every output pixel is a dot product of the weight with one patch of the input.
Copy every patch into a column of ``cols`` (im2col) and the convolution is
``Linear``'s ``h = x.dot(w)`` with ``x = cols.T`` (one row per output pixel) and
``w = weight.T`` (the weight as a (C_out, C_in * kh * kw) matrix)::

    cols: (C_in * kh * kw, N * H_out * W_out)    one column per output pixel
    h_cols = weight.dot(cols)                    (C_out, N * H_out * W_out)

and its backward is Linear's two transpose products, transposed::

    grad_weight = grad_h_cols.dot(cols.T)        Linear's x.T.dot(grad_h)
    grad_cols = weight.T.dot(grad_h_cols)        Linear's grad_h.dot(w.T)

followed by col2im, im2col's transpose: each patch's gradient is added back
where the patch came from. Patches overlap, so col2im adds; it loops over the
kh * kw kernel offsets, each adding one strided slice of the input's gradient
(im2col copies all of them at once, from a strided view of the input that holds
every patch: ``_patches``). Pixels are the columns, not the rows, so
that every copy runs along an image row and both products are one BLAS call.

The arithmetic goes through the layer's array namespace ``xp`` (``handprop.backend``):
the same code computes on numpy arrays and on torch tensors.
"""

import math
from collections.abc import Mapping
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from handprop._types import Array, check_dtype, float_dtype, positive_int
from handprop.init import RandomSource, as_generator
from handprop.layers.module import LAYERS, Module, require_cache, weight_and_bias
from handprop.parameter import ACCUMULATE, Gradients, Parameter


def output_size(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    """Output height (or width) of a convolution or pooling window: as ``torch.nn``'s."""
    return (size + 2 * padding - kernel) // stride + 1


def nonnegative_int(what: str, value: object) -> int:
    """``value`` as an int if it is an integer >= 0, else a ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{what} must be an integer >= 0, received {value!r}")
    return int(value)


@LAYERS.register("Conv2d")
class Conv2d(Module):
    """``h = conv(x, w) + b``: a square kernel sliding with ``stride`` over zero-padded ``x``.

    Shape:
        x: (N, C_in, H, W)  ->  h: (N, C_out, H_out, W_out),
        H_out = (H + 2 * padding - kernel_size) // stride + 1 (W_out alike).
        weight: (C_out, C_in, kernel_size, kernel_size), PyTorch's layout;
        bias: (C_out,), initialised to zero.

    The weight is drawn He normal from ``rng`` (fan in C_in * kh * kw). The
    padded input (``x_pad``) is the cache; ``cols`` and the outputs are work
    buffers (see ``Module``).
    """

    config_fields = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "bias")
    array_libraries = ("numpy", "torch")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        *,
        rng: RandomSource | int | None = None,
        dtype: npt.DTypeLike = np.float64,
    ) -> None:
        self.in_channels = positive_int("Conv2d in_channels", in_channels)
        self.out_channels = positive_int("Conv2d out_channels", out_channels)
        self.kernel_size = positive_int("Conv2d kernel_size", kernel_size)
        self.stride = positive_int("Conv2d stride", stride)
        self.padding = nonnegative_int("Conv2d padding", padding)
        dtype = float_dtype(dtype)
        k = self.kernel_size
        shape = (self.out_channels, self.in_channels, k, k)
        scale = math.sqrt(2.0 / (self.in_channels * k * k))  # He normal
        self.weight = Parameter((as_generator(rng).standard_normal(shape) * scale).astype(dtype))
        self.bias = Parameter(np.zeros(self.out_channels, dtype=dtype)) if bias else None
        self.x_pad: Array | None = None  # the cache: the last input, zero-padded
        self.cols: Array | None = None  # work buffers
        self.h_cols: Array | None = None
        self.h: Array | None = None
        self.grad_h_cols: Array | None = None
        self.grad_cols: Array | None = None
        self.grad_x_pad: Array | None = None  # grad_x is the inside of it, a view

    def config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "bias": self.bias is not None,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dtype: str) -> Self:
        layer = cls(**config, rng=0, dtype=dtype)
        layer.weight.data[...] = 0
        return layer

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
        c_in = positive_int("in_channels", config["in_channels"])
        c_out = positive_int("out_channels", config["out_channels"])
        k = positive_int("kernel_size", config["kernel_size"])
        positive_int("stride", config["stride"])
        nonnegative_int("padding", config["padding"])
        if not isinstance(config["bias"], bool):
            raise ValueError(f"bias must be true or false, received {config['bias']!r}")
        return {"weight": (c_out, c_in, k, k), **({"bias": (c_out,)} if config["bias"] else {})}

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.weight.dtype

    def output_shape(self, n: int, height: int, width: int) -> tuple[int, int, int, int]:
        k, s, p = self.kernel_size, self.stride, self.padding
        return n, self.out_channels, output_size(height, k, s, p), output_size(width, k, s, p)

    def forward(self, x: Array) -> Array:
        xp = self.xp
        x = self._check_input(x)
        n, c_out, h_out, w_out = self.output_shape(x.shape[0], x.shape[2], x.shape[3])
        x_pad = self.x_pad = self._pad(x)
        k, c_in, pixels = self.kernel_size, self.in_channels, n * h_out * w_out
        # im2col: cols[(c, di, dj), (n, i, j)] = x_pad[n, c, i * stride + di, j * stride + dj]
        self.cols = xp.reuse(self.cols, (c_in * k * k, pixels), self.dtype)
        cols_6d = self.cols.reshape(c_in, k, k, n, h_out, w_out)
        xp.copyto(cols_6d, self._patches(x_pad, h_out, w_out))  # one copy of every patch
        self.h_cols = xp.reuse(self.h_cols, (c_out, pixels), self.dtype)
        weight = self.weight.data.reshape(c_out, -1)
        xp.matmul(weight, self.cols, out=self.h_cols)  # h = x.dot(w1)
        # the columns back to images (N, C_out, H_out, W_out), the bias added on the way
        self.h = xp.reuse(self.h, (n, c_out, h_out, w_out), self.dtype)
        h_pixels = xp.transpose(self.h_cols.reshape(c_out, n, -1), (1, 0, 2))
        if self.bias is None:
            xp.copyto(self.h.reshape(n, c_out, -1), h_pixels)
        else:  # h = x.dot(w1) + b1
            xp.add(h_pixels, self.bias.data[:, None], out=self.h.reshape(n, c_out, -1))
        return self.h

    def backward(self, grad_h: Array, grads: Gradients = ACCUMULATE) -> Array:
        x_pad, grad_h_cols = self._grad_cols(grad_h)
        k, (n, c_in, _, _), (h_out, w_out) = self.kernel_size, x_pad.shape, grad_h.shape[2:]
        weight = self.weight.data.reshape(self.out_channels, -1)
        xp = self.xp
        # grad_cols = grad_h.dot(w1.T), Linear's input gradient, for every patch
        self.grad_cols = xp.reuse(self.grad_cols, self.cols_shape(grad_h_cols), self.dtype)
        xp.matmul(weight.T, grad_h_cols, out=self.grad_cols)
        self._parameter_grads(grad_h_cols, grads)  # after the weight's last read
        # col2im: each patch's gradient goes back where the patch came from, adding up
        # (patches overlap: one strided add per kernel offset, no scatter).
        self.grad_x_pad = xp.reuse(self.grad_x_pad, tuple(x_pad.shape), self.dtype)
        xp.fill(self.grad_x_pad, 0)
        grad_cols_6d = self.grad_cols.reshape(c_in, k, k, n, h_out, w_out)
        for di, dj in self._offsets():
            window = self._window(self.grad_x_pad, di, dj, h_out, w_out)
            xp.add(window, xp.transpose(grad_cols_6d[:, di, dj], (1, 0, 2, 3)), out=window)
        p, height, width = self.padding, x_pad.shape[2], x_pad.shape[3]
        return self.grad_x_pad[:, :, p : height - p, p : width - p]  # a view: no copy

    def backward_parameters(self, grad_h: Array, grads: Gradients = ACCUMULATE) -> None:
        _, grad_h_cols = self._grad_cols(grad_h)
        self._parameter_grads(grad_h_cols, grads)

    def _parameter_grads(self, grad_h_cols: Array, grads: Gradients) -> None:
        assert self.cols is not None
        grads.add_product(self.weight, grad_h_cols, self.cols.T)  # grad_w1 = x.T.dot(grad_h)
        if self.bias is not None:
            grads.add(self.bias, self.xp.sum(grad_h_cols, axis=1))  # grad_b1 = grad_h.sum(axis=0)

    def _grad_cols(self, grad_h: Array) -> tuple[Array, Array]:
        """The cache, and ``grad_h`` as columns (C_out, N * H_out * W_out) like ``h_cols``."""
        x_pad = self.x_pad
        shape = None
        if x_pad is not None:
            n, _, height, width = self._unpadded_shape(x_pad)
            shape = self.output_shape(n, height, width)
        xp = self.xp
        x_pad, grad_h = require_cache("Conv2d", x_pad, grad_h, shape, xp)
        n, c_out, h_out, w_out = grad_h.shape
        self.grad_h_cols = xp.reuse(self.grad_h_cols, (c_out, n * h_out * w_out), self.dtype)
        grad_h_3d = xp.transpose(grad_h.reshape(n, c_out, -1), (1, 0, 2))
        xp.copyto(self.grad_h_cols.reshape(c_out, n, -1), grad_h_3d)
        return x_pad, self.grad_h_cols

    def cols_shape(self, grad_h_cols: Array) -> tuple[int, int]:
        return self.in_channels * self.kernel_size**2, grad_h_cols.shape[1]

    def _offsets(self) -> list[tuple[int, int]]:
        return [(di, dj) for di in range(self.kernel_size) for dj in range(self.kernel_size)]

    def _patches(self, x_pad: Array, h_out: int, w_out: int) -> Array:
        """Every patch of ``x_pad`` as a read-only view (C_in, k, k, N, H_out, W_out) of it:
        ``[c, di, dj, n, i, j]`` is ``x_pad[n, c, i * stride + di, j * stride + dj]``."""
        s_n, s_c, s_h, s_w = self.xp.strides(x_pad)
        shape = (self.in_channels, self.kernel_size, self.kernel_size, len(x_pad), h_out, w_out)
        strides = (s_c, s_h, s_w, s_n, s_h * self.stride, s_w * self.stride)
        return self.xp.as_strided(x_pad, shape, strides)  # type: ignore[no-any-return]

    def _window(self, image: Array, di: int, dj: int, h_out: int, w_out: int) -> Array:
        """Element (di, dj) of every patch of ``image``: a strided view (N, C, H_out, W_out)."""
        s = self.stride
        return image[:, :, di : di + s * (h_out - 1) + 1 : s, dj : dj + s * (w_out - 1) + 1 : s]

    def _unpadded_shape(self, x_pad: Array) -> tuple[int, int, int, int]:
        n, c, height, width = x_pad.shape
        return n, c, height - 2 * self.padding, width - 2 * self.padding

    def _pad(self, x: Array) -> Array:
        """``x`` with ``padding`` zeros around each image, in a reused buffer (``x`` if none)."""
        p = self.padding
        if not p:
            return x
        n, c, height, width = x.shape
        shape = (n, c, height + 2 * p, width + 2 * p)
        if self.x_pad is None or self.x_pad.shape != shape or self.x_pad.dtype != x.dtype:
            self.x_pad = self.xp.zeros(shape, self.dtype)  # the border stays zero from here on
        self.xp.copyto(self.x_pad[:, :, p:-p, p:-p], x)
        return self.x_pad

    def _check_input(self, x: Array) -> Array:
        x = self.xp.require("Conv2d", x)
        k, p = self.kernel_size, self.padding
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"Conv2d expected input of shape (N, {self.in_channels}, H, W), "
                f"received {tuple(x.shape)}"
            )
        if min(x.shape[2], x.shape[3]) + 2 * p < k:
            raise ValueError(
                f"Conv2d with kernel_size {k} and padding {p} needs images of at least "
                f"{k - 2 * p}x{k - 2 * p}, received {x.shape[2]}x{x.shape[3]}"
            )
        check_dtype("Conv2d", "input", x, self.dtype)
        return x

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        return weight_and_bias(self.weight, self.bias)

    def __repr__(self) -> str:
        return (
            f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}, "
            f"dtype={self.dtype.name})"
        )
