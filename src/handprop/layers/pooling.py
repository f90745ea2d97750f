"""Pooling over square windows, and ``Flatten``: shape changes with a backward each.

Both poolings loop over the kh * kw offsets inside a window: the slice
``x[:, :, di::stride, dj::stride]`` holds that offset's element of every window,
so a window's max (or sum) is built up one offset at a time, with no temporaries,
and the backward sends each output's gradient back along the same slices.

Every output and gradient is laid out in memory as the input is (``xp.reuse_like``):
after a convolution, NHWC memory under the NCHW shape (layers/conv.py), where these
slices run over whole pixels of C channels side by side.

The arithmetic goes through each layer's array namespace ``xp`` (``handprop.backend``):
the same code computes on numpy arrays and on torch tensors.
"""

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from handprop._types import Array, positive_int
from handprop.layers.conv import output_size
from handprop.layers.module import LAYERS, Module, require_cache
from handprop.parameter import ACCUMULATE, Gradients


class _Pool2d(Module):
    """What the two poolings share: settings, checks and the window slices."""

    config_fields = ("kernel_size", "stride")
    array_libraries = ("numpy", "torch")

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
        x = self.xp.require(name, x)
        if x.ndim != 4 or min(x.shape[2], x.shape[3]) < k:
            raise ValueError(
                f"{name} expected input of shape (N, C, H, W) with H, W >= {k}, "
                f"received {tuple(x.shape)}"
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
        return require_cache(type(self).__name__, self.x, grad_y, shape, self.xp)

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
        self.x_w: Array | None = None  # windows side by side: the max along W (cached)
        self.w_won: Array | None = None  # which column won (cached)
        self.h_won: Array | None = None  # which row won (cached)
        self.grad_x_w: Array | None = None  # work buffer
        self.lost: Array | None = None  # work buffers for first_lost and lost_at_zero
        self.at_zero: Array | None = None

    def forward(self, x: Array) -> Array:
        xp = self.xp
        self.x = x = self._check_input(x)
        shape = self.output_shape(x.shape)
        self.y = xp.reuse_like(self.y, shape, x.dtype, x)  # every buffer in x's memory order
        if self.stride == self.kernel_size:  # windows side by side: one axis, then the other
            return self._forward_separable(x, self.y)
        self.argmax = xp.reuse_like(self.argmax, shape, self._offset_dtype(), x)
        self.winners = xp.reuse_like(self.winners, shape, self._offset_dtype(), x)
        self.bigger = xp.reuse_like(self.bigger, shape, np.dtype(np.bool_), x)
        xp.copyto(self.y, self._window(x, 0, 0, shape))  # y = the first offset's element
        xp.fill(self.argmax, 0)
        for offset, (di, dj) in enumerate(self._offsets()[1:], start=1):
            candidate = self._window(x, di, dj, shape)
            xp.greater(candidate, self.y, out=self.bigger)  # strictly: the first max stays
            xp.maximum(self.y, candidate, out=self.y)
            # argmax = offset where bigger: offsets only grow, so a max does it (no branches)
            bigger = xp.view(self.bigger, np.uint8)
            if offset > 255:  # a uint8 product would overflow (numpy) or wrap (torch)
                bigger = self.bigger
            xp.multiply(bigger, offset, out=self.winners, casting="unsafe")
            xp.maximum(self.argmax, self.winners, out=self.argmax)
        return self.y

    def backward(self, grad_y: Array, grads: Gradients = ACCUMULATE) -> Array:
        xp = self.xp
        x, grad_y = self._cached(grad_y)
        self.grad_x = xp.reuse_like(self.grad_x, x.shape, x.dtype, x)
        if self.stride == self.kernel_size:
            return self._backward_separable(x, grad_y, self.grad_x)
        assert self.argmax is not None
        self.grad_part = xp.reuse_like(self.grad_part, grad_y.shape, x.dtype, x)
        k, s = self.kernel_size, self.stride
        overlapping = s < k  # then an input may win several windows
        xp.fill(self.grad_x, 0)
        for offset, (di, dj) in enumerate(self._offsets()):
            # grad_part = grad_y where this offset won the window, else 0
            xp.equal(self.argmax, offset, out=self.grad_part, casting="unsafe")
            xp.multiply(self.grad_part, grad_y, out=self.grad_part)
            target = self._window(self.grad_x, di, dj, grad_y.shape)
            if overlapping:
                xp.add(target, self.grad_part, out=target)  # grad_x[argmax] += grad_y
            else:
                xp.copyto(target, self.grad_part)  # grad_x[argmax] = grad_y
        return self.grad_x

    # Windows side by side (stride == kernel_size): the max of a window is the max over its
    # rows of the max along each row. Along W first (x_w: each row's window maximum, w_won:
    # which column won), then along H (y, h_won: which row). On a tie the first stays at
    # each step, which is the first in row-major order, as above. Each pass runs over long
    # strided rows instead of kernel_size**2 short window slices.

    def _forward_separable(self, x: Array, y: Array) -> Array:
        xp, (n, c, height, _) = self.xp, x.shape
        shape, w_shape = y.shape, (n, c, height, y.shape[3])
        self.x_w = xp.reuse_like(self.x_w, w_shape, x.dtype, x)
        self.w_won = xp.reuse_like(self.w_won, w_shape, self._offset_dtype(), x)
        self.h_won = xp.reuse_like(self.h_won, shape, self._offset_dtype(), x)
        if self.kernel_size > 2:  # work buffers for both passes, as large as the first's output
            self.bigger = xp.reuse_like(self.bigger, w_shape, np.dtype(np.bool_), x)
            self.winners = xp.reuse_like(self.winners, w_shape, self._offset_dtype(), x)
        self._max_along(x, 3, self.x_w, self.w_won)
        self._max_along(self.x_w, 2, y, self.h_won)
        return y

    def _backward_separable(self, x: Array, grad_y: Array, grad_x: Array) -> Array:
        assert self.x_w is not None and self.w_won is not None and self.h_won is not None
        xp, k, (height, width) = self.xp, self.kernel_size, x.shape[2:]
        if height % k or width % k:  # rows or columns no window covers
            xp.fill(grad_x, 0)
        self.grad_x_w = xp.reuse_like(self.grad_x_w, self.x_w.shape, x.dtype, x)
        if height % k:
            xp.fill(self.grad_x_w, 0)
        # grad_x_w[h_won] = grad_y, then grad_x[w_won] = grad_x_w
        self._route_back(grad_y, self.h_won, 2, self.grad_x_w)
        self._route_back(self.grad_x_w, self.w_won, 3, grad_x)
        return grad_x

    def _max_along(self, x: Array, axis: int, out: Array, won: Array) -> None:
        """``out`` = the max of each window of ``x`` along ``axis``; ``won``: its offset."""
        xp, first = self.xp, self._slice(x, axis, 0, out.shape[axis])
        if self.kernel_size == 2:  # won = 1 where the second is bigger (strictly), else 0
            second = self._slice(x, axis, 1, out.shape[axis])
            xp.greater(second, first, out=xp.view(won, np.bool_))
            xp.maximum(first, second, out=out)  # two passes, no copy of the first
            return
        xp.copyto(out, first)
        xp.fill(won, 0)
        if self.kernel_size == 1:  # one candidate a window: it wins
            return
        assert self.bigger is not None and self.winners is not None
        bigger = self._first_rows(self.bigger, out.shape[2])
        winners = self._first_rows(self.winners, out.shape[2])
        for offset in range(1, self.kernel_size):
            candidate = self._slice(x, axis, offset, out.shape[axis])
            xp.greater(candidate, out, out=bigger)  # strictly: the first max stays
            xp.maximum(out, candidate, out=out)
            xp.multiply(xp.view(bigger, np.uint8), offset, out=winners, casting="unsafe")
            xp.maximum(won, winners, out=won)  # offsets only grow: a max sets them

    def _route_back(self, grad: Array, won: Array, axis: int, grad_x: Array) -> None:
        """Each window's gradient to the offset along ``axis`` that won it, 0 to the others.

        A product with the 0/1 integers or booleans of ``won`` (numpy casts them in its
        buffers: measured faster here than a cast copy into a float mask first)."""
        xp, size = self.xp, grad.shape[axis]
        if self.kernel_size == 1:  # every window is its one element
            xp.copyto(self._slice(grad_x, axis, 0, size), grad)
            return
        if self.kernel_size == 2:  # the second gets grad * won, the first the rest
            second = self._slice(grad_x, axis, 1, size)
            xp.multiply(grad, won, out=second)  # won: 1 where the second won
            xp.subtract(grad, second, out=self._slice(grad_x, axis, 0, size))
            return
        assert self.bigger is not None
        equal = self._first_rows(self.bigger, grad.shape[2])
        for offset in range(self.kernel_size):
            xp.equal(won, offset, out=equal)
            xp.multiply(grad, equal, out=self._slice(grad_x, axis, offset, size))

    def _first_rows(self, buffer: Array, rows: int) -> Array:
        """The first ``rows`` image rows of a work buffer shaped like ``x_w``: a view for the
        pass along H, whose output has fewer rows (in the same memory order)."""
        return buffer[:, :, :rows]

    def _slice(self, array: Array, axis: int, offset: int, size: int) -> Array:
        """Element ``offset`` of every window along ``axis``: a strided view."""
        k = self.kernel_size
        index = [slice(None)] * 4
        index[axis] = slice(offset, offset + k * (size - 1) + 1, k)
        return array[tuple(index)]

    def _offset_dtype(self) -> np.dtype[Any]:
        """The narrowest integer that holds every offset of a window (uint8 up to 16 x 16)."""
        return np.dtype(np.uint8) if self.kernel_size <= 16 else np.dtype(np.int32)

    def first_lost(self) -> Array:
        """Where the first value of a window (in row-major order) did not win it, in the last
        forward: booleans shaped like ``y``, computed on the array's device, into a reused
        buffer (``lost``: the next call overwrites it)."""
        xp, y = self.xp, self.y
        assert y is not None
        lost: Array = xp.reuse_like(self.lost, tuple(y.shape), np.dtype(np.bool_), y)
        self.lost = lost
        if self.stride != self.kernel_size:
            assert self.argmax is not None
            xp.greater(self.argmax, 0, out=lost)
            return lost
        assert self.h_won is not None and self.w_won is not None
        k, h_out = self.kernel_size, self.h_won.shape[2]
        first_row = self.w_won[:, :, : h_out * k : k]  # the column won in each window's row 0
        xp.logical_or(self.h_won, first_row, out=lost)  # offsets are >= 0: nonzero where lost
        return lost

    def lost_at_zero(self) -> Array:
        """Where a window's maximum is exactly 0 and its first value lost (``first_lost``), in
        the last forward, into the same reused buffer: a step on zero-padded images has such
        windows every time, and allocates nothing for them."""
        xp, y = self.xp, self.y
        assert y is not None
        lost = self.first_lost()
        self.at_zero = xp.reuse_like(self.at_zero, tuple(y.shape), np.dtype(np.bool_), y)
        xp.equal(y, 0, out=self.at_zero)
        xp.logical_and(lost, self.at_zero, out=lost)
        return lost

    def pieces(self) -> Array | None:
        """Which input won each window in the last forward (for gradcheck: a kink if it changes)."""
        xp = self.xp
        if self.stride != self.kernel_size:
            return None if self.argmax is None else xp.copy(self.argmax)
        if self.h_won is None or self.w_won is None:
            return None
        h_won, w_won = xp.to_numpy(self.h_won), xp.to_numpy(self.w_won)  # on the host
        n, c, h_out, w_out = h_won.shape
        k = self.kernel_size
        rows = w_won[:, :, : h_out * k].reshape(n, c, h_out, k, w_out)
        column = np.take_along_axis(rows, h_won[:, :, :, None, :].astype(np.intp), axis=3)
        pieces: Array = xp.from_host(h_won.astype(np.intp) * k + column[:, :, :, 0])
        return pieces


@LAYERS.register("AvgPool2d")
class AvgPool2d(_Pool2d):
    """The mean of each ``kernel_size`` x ``kernel_size`` window (stride: the kernel's).

    Shape: x (N, C, H, W) -> y (N, C, H_out, W_out), H_out = (H - kernel_size) // stride + 1.
    Each input of a window gets ``grad_y / kernel_size**2``.
    """

    def __init__(self, kernel_size: int, stride: int | None = None) -> None:
        super().__init__(kernel_size, stride)
        self.grad_share: Array | None = None  # work buffer: grad_y / kernel_size**2

    def forward(self, x: Array) -> Array:
        xp = self.xp
        self.x = x = self._check_input(x)
        shape = self.output_shape(x.shape)
        self.y = xp.reuse_like(self.y, shape, x.dtype, x)  # in x's memory order
        xp.copyto(self.y, self._window(x, 0, 0, shape))
        for di, dj in self._offsets()[1:]:
            xp.add(self.y, self._window(x, di, dj, shape), out=self.y)  # y = sum over the window
        xp.divide(self.y, self.kernel_size**2, out=self.y)  # y = mean over the window
        return self.y

    def backward(self, grad_y: Array, grads: Gradients = ACCUMULATE) -> Array:
        xp = self.xp
        x, grad_y = self._cached(grad_y)
        self.grad_x = xp.reuse_like(self.grad_x, x.shape, x.dtype, x)
        self.grad_share = xp.reuse_like(self.grad_share, grad_y.shape, x.dtype, x)
        xp.divide(grad_y, self.kernel_size**2, out=self.grad_share)  # each input's share
        k, s, (height, width) = self.kernel_size, self.stride, x.shape[2:]
        tiled = s == k and height % k == 0 and width % k == 0  # every input in one window
        if not tiled:
            xp.fill(self.grad_x, 0)
        for di, dj in self._offsets():
            target = self._window(self.grad_x, di, dj, grad_y.shape)
            if s < k:  # windows overlap: an input gets the shares of each window it is in
                xp.add(target, self.grad_share, out=target)
            else:
                xp.copyto(target, self.grad_share)
        return self.grad_x


@LAYERS.register("Flatten")
class Flatten(Module):
    """Each sample as one row: ``x.reshape(N, -1)``, as ``torch.nn.Flatten()``.

    Shape: x (N, C, H, W) (or any (N, ...)) -> (N, C * H * W); the gradient is reshaped back.
    The rows are in PyTorch's order (C, then H, then W) whatever ``x``'s memory order: an
    NHWC image (a convolution's output) is copied into a reused buffer, and its gradient
    copied back into ``x``'s memory order, where the layers before it work fastest.
    """

    array_libraries = ("numpy", "torch")

    def __init__(self) -> None:
        self.x: Array | None = None  # the cache: the last input (its shape)
        self.y: Array | None = None  # work buffers, for an input that is not C-contiguous
        self.grad_x: Array | None = None

    def forward(self, x: Array) -> Array:
        xp = self.xp
        self.x = xp.require("Flatten", x)
        if x.ndim < 1:
            raise ValueError(f"Flatten expected input of shape (N, ...), received {tuple(x.shape)}")
        if xp.is_contiguous(x):
            return x.reshape(len(x), -1)  # a view
        self.y = xp.reuse(self.y, (len(x), math.prod(x.shape[1:])), xp.dtype_of(x))
        xp.copyto(self.y.reshape(x.shape), x)
        return self.y

    def backward(self, grad_y: Array, grads: Gradients = ACCUMULATE) -> Array:
        xp = self.xp
        shape = None if self.x is None else (len(self.x), math.prod(self.x.shape[1:]))
        x, grad_y = require_cache("Flatten", self.x, grad_y, shape, xp)
        if xp.is_contiguous(x):
            return grad_y.reshape(x.shape)
        self.grad_x = xp.reuse_like(self.grad_x, tuple(x.shape), xp.dtype_of(x), x)
        xp.copyto(self.grad_x, grad_y.reshape(x.shape))
        return self.grad_x
