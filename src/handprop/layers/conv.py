"""The 2-D convolution, as im2col and one matrix product: ``Linear`` over image patches.

Every output pixel is a dot product of the weight with one patch of the input.
Copy every patch into a row of ``cols`` (im2col) and the convolution is
``Linear``'s ``h = x.dot(w)``::

    cols: (N * H_out * W_out, C_in * kh * kw)    one row per output pixel
    h_rows = cols.dot(w.T)                       (N * H_out * W_out, C_out)

and its backward is Linear's two transpose products::

    grad_w = grad_h_rows.T.dot(cols)             (C_out, C_in * kh * kw)
    grad_cols = grad_h_rows.dot(w)               (N * H_out * W_out, C_in * kh * kw)

followed by col2im, im2col's transpose: each patch's gradient is added back
where the patch came from. Patches overlap, so col2im adds; it loops over the
kh * kw kernel offsets, each adding one strided slice of the input's gradient.
"""

import math
from collections.abc import Mapping
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from handprop._types import Array, check_dtype, float_dtype, positive_int, reuse
from handprop.init import RandomSource, as_generator
from handprop.layers.module import LAYERS, Module, require_array, require_cache
from handprop.parameter import ACCUMULATE, Gradients, Parameter


def output_size(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    """Output height (or width) of a convolution or pooling window: as ``torch.nn``'s."""
    return (size + 2 * padding - kernel) // stride + 1


def nonnegative_int(what: str, value: object) -> int:
    """``value`` as an int if it is an integer >= 0, else a ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{what} must be an integer >= 0, received {value!r}")
    return int(value)


def patches(x: Array, kernel: int, stride: int) -> Array:
    """The kh x kw windows of ``x`` (N, C, H, W), a view: (N, C, H_out, W_out, kh, kw)."""
    windows = np.lib.stride_tricks.sliding_window_view(x, (kernel, kernel), axis=(2, 3))
    return windows[:, :, ::stride, ::stride]


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
        self.h_rows: Array | None = None
        self.h: Array | None = None
        self.grad_h_rows: Array | None = None
        self.grad_cols: Array | None = None
        self.grad_x_pad: Array | None = None
        self.grad_x: Array | None = None

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
        x = self._check_input(x)
        n, c_out, h_out, w_out = self.output_shape(x.shape[0], x.shape[2], x.shape[3])
        x_pad = self.x_pad = self._pad(x)
        k = self.kernel_size
        # im2col: cols[(n, i, j), (c, di, dj)] = x_pad[n, c, i * stride + di, j * stride + dj]
        self.cols = reuse(self.cols, (n * h_out * w_out, self.in_channels * k * k), self.dtype)
        cols_6d = self.cols.reshape(n, h_out, w_out, self.in_channels, k, k)
        np.copyto(cols_6d, patches(x_pad, k, self.stride).transpose(0, 2, 3, 1, 4, 5))
        w = self.weight.data.reshape(c_out, -1)
        self.h_rows = reuse(self.h_rows, (n * h_out * w_out, c_out), self.dtype)
        np.matmul(self.cols, w.T, out=self.h_rows)  # h = x.dot(w1), one row per output pixel
        # the rows back to (N, C_out, H_out, W_out), adding the bias on the way
        self.h = reuse(self.h, (n, c_out, h_out, w_out), self.dtype)
        h_pixels = self.h_rows.reshape(n, h_out * w_out, c_out).transpose(0, 2, 1)
        if self.bias is None:
            np.copyto(self.h.reshape(n, c_out, -1), h_pixels)
        else:
            np.add(h_pixels, self.bias.data[:, None], out=self.h.reshape(n, c_out, -1))
        return self.h

    def backward(self, grad_h: Array, grads: Gradients = ACCUMULATE) -> Array:
        x_pad, grad_h_rows = self._grad_rows(grad_h)
        k, s, (n, c_in, height, width) = self.kernel_size, self.stride, x_pad.shape
        h_out, w_out = grad_h.shape[2], grad_h.shape[3]
        # grad_cols = grad_h.dot(w1.T), Linear's input gradient, for every patch
        self.grad_cols = reuse(self.grad_cols, (len(grad_h_rows), c_in * k * k), self.dtype)
        np.matmul(grad_h_rows, self.weight.data.reshape(self.out_channels, -1), out=self.grad_cols)
        self._parameter_grads(grad_h_rows, grads)  # after the weight's last read
        # col2im: each patch's gradient goes back where the patch came from, adding up
        self.grad_x_pad = reuse(self.grad_x_pad, x_pad.shape, self.dtype)
        self.grad_x_pad.fill(0)
        grad_cols_6d = self.grad_cols.reshape(n, h_out, w_out, c_in, k, k)
        for di in range(k):
            for dj in range(k):
                target = self.grad_x_pad[
                    :, :, di : di + s * (h_out - 1) + 1 : s, dj : dj + s * (w_out - 1) + 1 : s
                ]
                target += grad_cols_6d[:, :, :, :, di, dj].transpose(0, 3, 1, 2)
        if not self.padding:
            return self.grad_x_pad
        p = self.padding
        self.grad_x = reuse(self.grad_x, (n, c_in, height - 2 * p, width - 2 * p), self.dtype)
        np.copyto(self.grad_x, self.grad_x_pad[:, :, p:-p, p:-p])
        return self.grad_x

    def backward_parameters(self, grad_h: Array, grads: Gradients = ACCUMULATE) -> None:
        _, grad_h_rows = self._grad_rows(grad_h)
        self._parameter_grads(grad_h_rows, grads)

    def _parameter_grads(self, grad_h_rows: Array, grads: Gradients) -> None:
        assert self.cols is not None
        grads.add_product(self.weight, grad_h_rows.T, self.cols)  # grad_w1 = x.T.dot(grad_h)
        if self.bias is not None:
            grads.add(self.bias, grad_h_rows.sum(axis=0))  # grad_b1 = grad_h.sum(axis=0)

    def _grad_rows(self, grad_h: Array) -> tuple[Array, Array]:
        """The cache, and ``grad_h`` as rows (N * H_out * W_out, C_out) like ``h_rows``."""
        x_pad = self.x_pad
        shape = None if x_pad is None else self.output_shape(*self._unpadded(x_pad))
        x_pad, grad_h = require_cache("Conv2d", x_pad, grad_h, shape)
        n, c_out, h_out, w_out = grad_h.shape
        self.grad_h_rows = reuse(self.grad_h_rows, (n * h_out * w_out, c_out), self.dtype)
        rows_3d = self.grad_h_rows.reshape(n, h_out * w_out, c_out)
        np.copyto(rows_3d, grad_h.reshape(n, c_out, -1).transpose(0, 2, 1))
        return x_pad, self.grad_h_rows

    def _unpadded(self, x_pad: Array) -> tuple[int, int, int]:
        p = self.padding
        return x_pad.shape[0], x_pad.shape[2] - 2 * p, x_pad.shape[3] - 2 * p

    def _pad(self, x: Array) -> Array:
        """``x`` with ``padding`` zeros around each image, in a reused buffer (``x`` if none)."""
        p = self.padding
        if not p:
            return x
        n, c, height, width = x.shape
        shape = (n, c, height + 2 * p, width + 2 * p)
        if self.x_pad is None or self.x_pad.shape != shape or self.x_pad.dtype != x.dtype:
            self.x_pad = np.zeros(shape, dtype=x.dtype)  # the border stays zero from here on
        self.x_pad[:, :, p:-p, p:-p] = x
        return self.x_pad

    def _check_input(self, x: Array) -> Array:
        x = require_array("Conv2d", x)
        k, p = self.kernel_size, self.padding
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"Conv2d expected input of shape (N, {self.in_channels}, H, W), received {x.shape}"
            )
        if min(x.shape[2], x.shape[3]) + 2 * p < k:
            raise ValueError(
                f"Conv2d with kernel_size {k} and padding {p} needs images of at least "
                f"{k - 2 * p}x{k - 2 * p}, received {x.shape[2]}x{x.shape[3]}"
            )
        check_dtype("Conv2d", "input", x, self.dtype)
        return x

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        named = [("weight", self.weight)]
        if self.bias is not None:
            named.append(("bias", self.bias))
        return named

    def __repr__(self) -> str:
        return (
            f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}, "
            f"dtype={self.dtype.name})"
        )
