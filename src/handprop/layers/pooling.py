"""Pooling over square windows, and ``Flatten``: shape changes with a backward each.

Both poolings loop over the kh * kw offsets inside a window: the slice
``x[:, :, di::stride, dj::stride]`` holds that offset's element of every window,
so a window's max (or sum) is built up one offset at a time, with no temporaries,
and the backward sends each output's gradient back along the same slices.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np

from handprop._types import Array, positive_int, reuse
from handprop.layers.conv import output_size
from handprop.layers.module import LAYERS, Module, require_array, require_cache
from handprop.parameter import ACCUMULATE, Gradients


class _Pool2d(Module):
    """What the two poolings share: settings, checks and the window slices."""

    config_fields = ("kernel_size", "stride")

    def __init__(self, kernel_size: int, stride: int | None = None) -> None:
        name = type(self).__name__
        self.kernel_size = positive_int(f"{name} kernel_size", kernel_size)
        self.stride = positive_int(f"{name} stride", kernel_size if stride is None else stride)
        self.x: Array | None = None  # the cache: the last input
        self.y: Array | None = None  # work buffers
        self.grad_x: Array | None = None

    def config(self) -> dict[str, Any]:
        return {"kernel_size": self.kernel_size, "stride": self.stride}

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
        positive_int("kernel_size", config["kernel_size"])
        positive_int("stride", config["stride"])
        return {}

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        n, c, height, width = shape
        k, s = self.kernel_size, self.stride
        return n, c, output_size(height, k, s), output_size(width, k, s)

    def _check_input(self, x: Array) -> Array:
        name, k = type(self).__name__, self.kernel_size
        x = require_array(name, x)
        if x.ndim != 4 or min(x.shape[2], x.shape[3]) < k:
            raise ValueError(
                f"{name} expected input of shape (N, C, H, W) with H, W >= {k}, received {x.shape}"
            )
        return x

    def _window(self, array: Array, di: int, dj: int, out_shape: tuple[int, ...]) -> Array:
        """Element (di, dj) of every window of ``array``: a strided view of ``out_shape``."""
        s, h_out, w_out = self.stride, out_shape[2], out_shape[3]
        return array[:, :, di : di + s * (h_out - 1) + 1 : s, dj : dj + s * (w_out - 1) + 1 : s]

    def _offsets(self) -> list[tuple[int, int]]:
        return [(di, dj) for di in range(self.kernel_size) for dj in range(self.kernel_size)]

    def _cached(self, grad_y: Array) -> tuple[Array, Array]:
        shape = None if self.x is None else self.output_shape(self.x.shape)
        return require_cache(type(self).__name__, self.x, grad_y, shape)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride})"


@LAYERS.register("MaxPool2d")
class MaxPool2d(_Pool2d):
    """The largest value of each ``kernel_size`` x ``kernel_size`` window (stride: the kernel's).

    Shape: x (N, C, H, W) -> y (N, C, H_out, W_out), H_out = (H - kernel_size) // stride + 1.
    The gradient goes to the window's maximum: the first in row-major order on a tie,
    as in PyTorch.
    """

    def __init__(self, kernel_size: int, stride: int | None = None) -> None:
        super().__init__(kernel_size, stride)
        self.argmax: Array | None = None  # which offset won each window (cached with x)
        self.bigger: Array | None = None  # work buffers
        self.winners: Array | None = None
        self.grad_part: Array | None = None

    def forward(self, x: Array) -> Array:
        self.x = x = self._check_input(x)
        shape = self.output_shape(x.shape)
        self.y = reuse(self.y, shape, x.dtype)
        self.argmax = reuse(self.argmax, shape, self._offset_dtype())
        self.winners = reuse(self.winners, shape, self._offset_dtype())
        self.bigger = reuse(self.bigger, shape, np.dtype(np.bool_))
        np.copyto(self.y, self._window(x, 0, 0, shape))  # y = the first offset's element
        self.argmax.fill(0)
        for offset, (di, dj) in enumerate(self._offsets()[1:], start=1):
            candidate = self._window(x, di, dj, shape)
            np.greater(candidate, self.y, out=self.bigger)  # strictly: the first max stays
            np.maximum(self.y, candidate, out=self.y)
            # argmax = offset where bigger: offsets only grow, so a max does it (no branches)
            np.multiply(self.bigger.view(np.uint8), offset, out=self.winners, casting="unsafe")
            np.maximum(self.argmax, self.winners, out=self.argmax)
        return self.y

    def backward(self, grad_y: Array, grads: Gradients = ACCUMULATE) -> Array:
        x, grad_y = self._cached(grad_y)
        assert self.argmax is not None
        self.grad_x = reuse(self.grad_x, x.shape, x.dtype)
        self.grad_part = reuse(self.grad_part, grad_y.shape, x.dtype)
        k, s, (height, width) = self.kernel_size, self.stride, x.shape[2:]
        overlapping = s < k  # then an input may win several windows
        if overlapping or s > k or height % k or width % k:  # else the windows cover x
            self.grad_x.fill(0)
        for offset, (di, dj) in enumerate(self._offsets()):
            # grad_part = grad_y where this offset won the window, else 0
            np.equal(self.argmax, offset, out=self.grad_part, casting="unsafe")
            self.grad_part *= grad_y
            target = self._window(self.grad_x, di, dj, grad_y.shape)
            if overlapping:
                target += self.grad_part  # grad_x[argmax] += grad_y
            else:
                np.copyto(target, self.grad_part)  # grad_x[argmax] = grad_y
        return self.grad_x

    def _offset_dtype(self) -> np.dtype[Any]:
        """The narrowest integer that holds every offset of a window (uint8 up to 16 x 16)."""
        return np.dtype(np.uint8) if self.kernel_size <= 16 else np.dtype(np.int32)

    def pieces(self) -> Array | None:
        """Which input won each window in the last forward (for gradcheck: a kink if it changes)."""
        return None if self.argmax is None else self.argmax.copy()


@LAYERS.register("AvgPool2d")
class AvgPool2d(_Pool2d):
    """The mean of each ``kernel_size`` x ``kernel_size`` window (stride: the kernel's).

    Shape: x (N, C, H, W) -> y (N, C, H_out, W_out), H_out = (H - kernel_size) // stride + 1.
    Each input of a window gets ``grad_y / kernel_size**2``.
    """

    def forward(self, x: Array) -> Array:
        self.x = x = self._check_input(x)
        shape = self.output_shape(x.shape)
        self.y = reuse(self.y, shape, x.dtype)
        np.copyto(self.y, self._window(x, 0, 0, shape))
        for di, dj in self._offsets()[1:]:
            self.y += self._window(x, di, dj, shape)  # y = sum over the window
        self.y /= self.kernel_size**2  # y = mean over the window
        return self.y

    def backward(self, grad_y: Array, grads: Gradients = ACCUMULATE) -> Array:
        x, grad_y = self._cached(grad_y)
        self.grad_x = reuse(self.grad_x, x.shape, x.dtype)
        self.grad_x.fill(0)
        for di, dj in self._offsets():
            self._window(self.grad_x, di, dj, grad_y.shape)[...] += grad_y
        self.grad_x /= self.kernel_size**2
        return self.grad_x


@LAYERS.register("Flatten")
class Flatten(Module):
    """Each sample as one row: ``x.reshape(N, -1)``, as ``torch.nn.Flatten()``.

    Shape: x (N, C, H, W) (or any (N, ...)) -> (N, C * H * W); the gradient is reshaped back.
    """

    def __init__(self) -> None:
        self.x: Array | None = None  # the cache: the last input (its shape)

    def forward(self, x: Array) -> Array:
        self.x = require_array("Flatten", x)
        if x.ndim < 1:
            raise ValueError(f"Flatten expected input of shape (N, ...), received {x.shape}")
        return x.reshape(len(x), -1)

    def backward(self, grad_y: Array, grads: Gradients = ACCUMULATE) -> Array:
        shape = None if self.x is None else (len(self.x), self.x[0].size)
        x, grad_y = require_cache("Flatten", self.x, grad_y, shape)
        return grad_y.reshape(x.shape)
