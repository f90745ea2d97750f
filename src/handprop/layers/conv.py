"""The 2-D convolution, as im2col and one matrix product: ``Linear`` over image patches.

Every output pixel is a dot product of the weight with one patch of the input.
Copy every patch into a row of ``cols`` (im2col) and the convolution is
``Linear``'s ``h = x.dot(w1)``, with one row of ``x`` per output pixel and the
weight as a (kh * kw * C_in, C_out) matrix ``w1``::

    cols: (N * H_out * W_out, kh * kw * C_in)    one row per output pixel
    h_pixels = cols.dot(w1)                       (N * H_out * W_out, C_out)

and its backward is Linear's::

    grad_w1 = cols.T.dot(grad_h_pixels)
    grad_cols = grad_h_pixels.dot(w1.T)

followed by col2im, im2col's transpose: each patch's gradient is added back
where the patch came from. Patches overlap, so col2im adds; it loops over the
kh * kw kernel offsets, each adding one strided slice of the input's gradient
(im2col copies all of them at once, from a strided view of the input that holds
every patch: ``_patches``). With stride 1, the usual case, ``grad_cols`` is never
made: each offset's product adds its share straight into the input's gradient
(``_col2im_by_products``).

The layout. Images keep PyTorch's NCHW *shape*, but this layer's output lies in
memory as NHWC (channels last): ``h_pixels`` is already (N, H_out, W_out, C_out),
so ``h`` is a view of it, ``h_pixels.reshape(N, H_out, W_out, C_out)
.transpose(0, 3, 1, 2)``, with no copy. ReLU and pooling keep their input's memory
order, so the next convolution receives NHWC memory too: one patch row (kw pixels
of C_in channels) is then kw * C_in values side by side, and im2col copies those
runs. A backward pass hands gradients in the same order, so ``grad_h`` is
``grad_h_pixels`` without a copy. The weight's columns follow the patches'
(kh, kw, C_in) order, so ``w1`` is a small reordered copy of the weight, made each
forward, and ``grad_w1`` goes back to PyTorch's (C_out, C_in, kh, kw) layout. Any
input works (NCHW arrays, views): it is copied into the zero-padded NHWC buffer
(read through an NHWC view of it without padding; slower if its memory is not NHWC).
With one input channel a patch row is short (kw values), so ``cols`` is then
stored transposed, one column per output pixel, and the copies run along an image
row instead (``_cols_are_rows``); the products read either orientation.

The bias is cs231n's "bias trick": ``cols`` ends with a column of ones (written once)
and ``w1`` with a row holding the bias, so ``cols.dot(w1)`` adds it, and the weight
gradient's product returns ``grad_b1 = grad_h.sum(axis=0)`` (the ones' column times
``grad_h``) in its last row: no separate pass over ``h`` or ``grad_h`` for either.

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
        self.x_pad: Array | None = None  # the cache: the last input, zero-padded, NHWC
        self.cols: Array | None = None  # work buffers
        self.cols_rows = True  # whether cols holds one row per pixel (see _cols_are_rows)
        self.weight_cols: Array | None = None  # w1.T: (C_out, kh * kw * C_in (+ 1, the bias))
        self.h_pixels: Array | None = None
        self.grad_h_pixels: Array | None = None
        self.grad_cols: Array | None = None
        self.grad_weight_cols: Array | None = None
        self.grad_x_pad: Array | None = None  # grad_x is the inside of it, a view
        self.grad_h_grid: Array | None = None  # for stride 1: see _col2im_by_products
        self.weight_offsets: Array | None = None

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
        x_pad = self.x_pad = self._pad(x)  # (N, H + 2 * padding, W + 2 * padding, C_in)
        k, c_in, pixels = self.kernel_size, self.in_channels, n * h_out * w_out
        features, columns = self._features(), self._columns()
        # a square cols of the other orientation has the same shape, not the ones' place
        same_way = self.cols is not None and self.cols_rows == self._cols_are_rows(w_out)
        shape = self._matrix_shape(pixels, columns, w_out)
        cols = xp.reuse(self.cols if same_way else None, shape, self.dtype)
        if cols is not self.cols and self.bias is not None:  # the bias trick's ones, set once
            xp.fill(self._part(cols, features, columns, w_out), 1)
        self.cols, self.cols_rows = cols, self._cols_are_rows(w_out)
        # im2col: cols[(n, i, j), (di, dj, c)] = x_pad[n, i * stride + di, j * stride + dj, c]
        cols_6d = self._cols_6d(self._part(cols, 0, features, w_out), n, h_out, w_out)
        xp.copyto(cols_6d, self._patches(x_pad, h_out, w_out))  # one copy of every patch
        # w1: the weight's columns in the patches' (kh, kw, C_in) order, then the bias
        self.weight_cols = xp.reuse(self.weight_cols, (c_out, columns), self.dtype)
        weight_4d = self.weight_cols[:, :features].reshape(c_out, k, k, c_in)
        xp.copyto(weight_4d, xp.transpose(self.weight.data, (0, 2, 3, 1)))  # a small copy
        if self.bias is not None:
            xp.copyto(self.weight_cols[:, features], self.bias.data)
        self.h_pixels = xp.reuse(self.h_pixels, (pixels, c_out), self.dtype)
        # h = x.dot(w1) + b1, the bias as one more row of w1 times a column of ones in x
        xp.matmul(self._rows(cols, w_out), self.weight_cols.T, out=self.h_pixels)
        # (N, H_out, W_out, C_out) in memory, seen as (N, C_out, H_out, W_out): no copy
        h: Array = xp.transpose(self.h_pixels.reshape(n, h_out, w_out, c_out), (0, 3, 1, 2))
        return h

    def backward(self, grad_h: Array, grads: Gradients = ACCUMULATE) -> Array:
        x_pad, grad_h_pixels = self._grad_pixels(grad_h)
        xp, (h_out, w_out) = self.xp, grad_h.shape[2:]
        if self.stride == 1:  # col2im inside the products (see _col2im_by_products)
            grad_x_pad = self._col2im_by_products(grad_h_pixels, tuple(x_pad.shape), h_out, w_out)
        else:
            grad_x_pad = self._col2im(grad_h_pixels, tuple(x_pad.shape), h_out, w_out)
        self._parameter_grads(grad_h_pixels, w_out, grads)  # after the weight's last read
        p, height, width = self.padding, x_pad.shape[1], x_pad.shape[2]
        grad_x = grad_x_pad[:, p : height - p, p : width - p]  # a view: no copy
        grad_x_nchw: Array = xp.transpose(grad_x, (0, 3, 1, 2))  # NHWC memory, like h
        return grad_x_nchw

    def _col2im(
        self, grad_h_pixels: Array, pad_shape: tuple[int, ...], h_out: int, w_out: int
    ) -> Array:
        """``grad_x_pad`` from Linear's input gradient for every patch, then col2im."""
        assert self.weight_cols is not None
        xp, n, features = self.xp, pad_shape[0], self._features()
        w1 = self.weight_cols[:, :features].T  # (kh * kw * C_in, C_out), without the bias
        # grad_cols = grad_h.dot(w1.T), Linear's input gradient, for every patch
        shape = self._matrix_shape(len(grad_h_pixels), features, w_out)
        self.grad_cols = xp.reuse(self.grad_cols, shape, self.dtype)
        if self._cols_are_rows(w_out):
            xp.matmul(grad_h_pixels, w1.T, out=self.grad_cols)
        else:  # stored transposed: grad_cols.T = w1.dot(grad_h.T)
            xp.matmul(w1, grad_h_pixels.T, out=self.grad_cols)
        # col2im: each patch's gradient goes back where the patch came from, adding up
        # (patches overlap: one strided add per kernel offset, no scatter).
        self.grad_x_pad = xp.reuse(self.grad_x_pad, pad_shape, self.dtype)
        xp.fill(self.grad_x_pad, 0)
        grad_cols_6d = self._cols_6d(self.grad_cols, n, h_out, w_out)
        for di, dj in self._offsets():
            window = self._window(self.grad_x_pad, di, dj, h_out, w_out)
            xp.add(window, grad_cols_6d[:, :, :, di, dj], out=window)
        return self.grad_x_pad

    def _col2im_by_products(
        self, grad_h_pixels: Array, pad_shape: tuple[int, ...], h_out: int, w_out: int
    ) -> Array:
        """``grad_x_pad`` for stride 1, each offset's share added by its own product.

        Offset (di, dj) of the kernel adds ``grad_h[n, i, j].dot(w1[di, dj].T)`` into
        ``grad_x_pad[n, i + di, j + dj]``. With the padded images' pixels as rows
        (N * H_pad * W_pad, C_in), that target is row ``(n, i, j)`` moved down by ``di *
        W_pad + dj`` rows. So ``grad_h`` is laid on the same grid (``grad_h_grid``: zeros
        in its last kh - 1 rows and kw - 1 columns, where no output pixel is), and each
        offset is one product into a block of rows: the first with beta = 0, the others
        adding with beta = 1 (a GEMM's ``out = a.dot(b) + out``). A row moved past the
        edge of its image comes from the zeros. No ``grad_cols`` (kh * kw times
        ``grad_h``'s size), no zero fill, no strided adds: the products run over the
        padded grid instead (256 rows for 196 pixels in a 14x14 image padded by 1).
        """
        assert self.weight_cols is not None
        xp, k, c_in, c_out = self.xp, self.kernel_size, self.in_channels, self.out_channels
        n, height, width, _ = pad_shape
        grid_shape = (n, height, width, c_out)
        grid = self.grad_h_grid  # in the weight's dtype too: to(dtype) does not drop it
        if grid is None or tuple(grid.shape) != grid_shape or grid.dtype != self.weight_cols.dtype:
            grid = self.grad_h_grid = xp.zeros(grid_shape, self.dtype)  # zeros from here on
        grad_h_nhwc = grad_h_pixels.reshape(n, h_out, w_out, c_out)
        xp.copyto(grid[:, :h_out, :w_out], grad_h_nhwc)
        # w1 by offset: (kh, kw, C_out, C_in), a small copy of the weight's columns
        self.weight_offsets = xp.reuse(self.weight_offsets, (k, k, c_out, c_in), self.dtype)
        weight_4d = self.weight_cols[:, : self._features()].reshape(c_out, k, k, c_in)
        xp.copyto(self.weight_offsets, xp.transpose(weight_4d, (1, 2, 0, 3)))
        self.grad_x_pad = xp.reuse(self.grad_x_pad, pad_shape, self.dtype)
        grad_h_rows = grid.reshape(-1, c_out)  # one row per padded pixel
        grad_x_rows = self.grad_x_pad.reshape(-1, c_in)
        rows = len(grad_x_rows)
        for offset, (di, dj) in enumerate(self._offsets()):
            shift = di * width + dj
            # grad_x_pad[n, i + di, j + dj] (+)= grad_h[n, i, j].dot(w1[di, dj].T)
            xp.gemm(
                grad_h_rows[: rows - shift],
                self.weight_offsets[di, dj],
                grad_x_rows[shift:],
                beta=0.0 if offset == 0 else 1.0,
            )
        return self.grad_x_pad

    def backward_parameters(self, grad_h: Array, grads: Gradients = ACCUMULATE) -> None:
        _, grad_h_pixels = self._grad_pixels(grad_h)
        self._parameter_grads(grad_h_pixels, grad_h.shape[3], grads)

    def _parameter_grads(self, grad_h_pixels: Array, w_out: int, grads: Gradients) -> None:
        assert self.cols is not None
        xp, c_out, k, features = self.xp, self.out_channels, self.kernel_size, self._features()
        # grad_w1 = x.T.dot(grad_h), computed transposed: (C_out, kh * kw * C_in), then
        # grad_b1 = grad_h.sum(axis=0) in the last column (the ones' column of x)
        shape = (c_out, self._columns())
        self.grad_weight_cols = xp.reuse(self.grad_weight_cols, shape, self.dtype)
        xp.matmul(grad_h_pixels.T, self._rows(self.cols, w_out), out=self.grad_weight_cols)
        grad_w1 = self.grad_weight_cols[:, :features].reshape(c_out, k, k, self.in_channels)
        grads.add(self.weight, xp.transpose(grad_w1, (0, 3, 1, 2)))  # PyTorch's layout
        if self.bias is not None:
            grads.add(self.bias, self.grad_weight_cols[:, features])

    def _grad_pixels(self, grad_h: Array) -> tuple[Array, Array]:
        """The cache, and ``grad_h`` as (N * H_out * W_out, C_out) like ``h_pixels``: a view
        if ``grad_h`` lies in memory as NHWC (as ``h`` does), else a copy."""
        x_pad = self.x_pad
        shape = None
        if x_pad is not None:
            n, _, height, width = self._unpadded_shape(x_pad)
            shape = self.output_shape(n, height, width)
        xp = self.xp
        x_pad, grad_h = require_cache("Conv2d", x_pad, grad_h, shape, xp)
        n, c_out, h_out, w_out = grad_h.shape
        grad_h_nhwc = xp.transpose(grad_h, (0, 2, 3, 1))
        if xp.is_contiguous(grad_h_nhwc):
            return x_pad, grad_h_nhwc.reshape(-1, c_out)
        self.grad_h_pixels = xp.reuse(self.grad_h_pixels, (n * h_out * w_out, c_out), self.dtype)
        xp.copyto(self.grad_h_pixels.reshape(n, h_out, w_out, c_out), grad_h_nhwc)
        return x_pad, self.grad_h_pixels

    def _cols_are_rows(self, w_out: int) -> bool:
        """One row per pixel if a patch row (kw * C_in values) is at least as long as an
        output row, else one column per pixel: every copy runs along the longer."""
        return self.kernel_size * self.in_channels >= w_out

    def _features(self) -> int:
        """The values of one patch: kh * kw * C_in."""
        return self.in_channels * self.kernel_size**2

    def _columns(self) -> int:
        """The columns of ``cols``: a patch, then a column of ones if there is a bias."""
        return self._features() + (self.bias is not None)

    def _matrix_shape(self, pixels: int, columns: int, w_out: int) -> tuple[int, int]:
        """(pixels, columns), or transposed if ``cols`` is stored by columns."""
        return (pixels, columns) if self._cols_are_rows(w_out) else (columns, pixels)

    def _part(self, cols: Array, start: int, stop: int, w_out: int) -> Array:
        """Columns ``start:stop`` of ``cols`` (rows of it if stored by columns): a view."""
        return cols[:, start:stop] if self._cols_are_rows(w_out) else cols[start:stop]

    def _rows(self, cols: Array, w_out: int) -> Array:
        """``cols`` with one row per output pixel (a transposed view if stored by columns)."""
        return cols if self._cols_are_rows(w_out) else cols.T

    def _cols_6d(self, cols: Array, n: int, h_out: int, w_out: int) -> Array:
        """``cols`` as a view (N, H_out, W_out, kh, kw, C_in), like ``_patches``."""
        k, c_in = self.kernel_size, self.in_channels
        if self._cols_are_rows(w_out):
            return cols.reshape(n, h_out, w_out, k, k, c_in)
        by_columns = cols.reshape(k, k, c_in, n, h_out, w_out)
        return self.xp.transpose(by_columns, (3, 4, 5, 0, 1, 2))  # type: ignore[no-any-return]

    def _offsets(self) -> list[tuple[int, int]]:
        return [(di, dj) for di in range(self.kernel_size) for dj in range(self.kernel_size)]

    def _patches(self, x_pad: Array, h_out: int, w_out: int) -> Array:
        """Every patch of ``x_pad`` (N, H, W, C_in) as a read-only view (N, H_out, W_out, k,
        k, C_in): ``[n, i, j, di, dj, c]`` is ``x_pad[n, i * stride + di, j * stride + dj, c]``."""
        s_n, s_h, s_w, s_c = self.xp.strides(x_pad)
        k, s = self.kernel_size, self.stride
        shape = (len(x_pad), h_out, w_out, k, k, self.in_channels)
        strides = (s_n, s_h * s, s_w * s, s_h, s_w, s_c)
        return self.xp.as_strided(x_pad, shape, strides)  # type: ignore[no-any-return]

    def _window(self, image: Array, di: int, dj: int, h_out: int, w_out: int) -> Array:
        """Element (di, dj) of every patch of ``image`` (N, H, W, C): a view (N, H_out, W_out,
        C)."""
        s = self.stride
        return image[:, di : di + s * (h_out - 1) + 1 : s, dj : dj + s * (w_out - 1) + 1 : s]

    def _unpadded_shape(self, x_pad: Array) -> tuple[int, int, int, int]:
        n, height, width, c = x_pad.shape
        return n, c, height - 2 * self.padding, width - 2 * self.padding

    def _pad(self, x: Array) -> Array:
        """``x`` as (N, H, W, C) with ``padding`` zeros around each image, in a reused NHWC
        buffer (a view of ``x`` if no padding)."""
        p, x_nhwc = self.padding, self.xp.transpose(x, (0, 2, 3, 1))
        if not p:
            return x_nhwc  # type: ignore[no-any-return]
        n, height, width, c = x_nhwc.shape
        shape = (n, height + 2 * p, width + 2 * p, c)
        if self.x_pad is None or self.x_pad.shape != shape or self.x_pad.dtype != x.dtype:
            self.x_pad = self.xp.zeros(shape, self.dtype)  # the border stays zero from here on
        self.xp.copyto(self.x_pad[:, p:-p, p:-p], x_nhwc)
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
