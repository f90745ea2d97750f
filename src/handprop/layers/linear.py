"""The fully-connected layer: the tutorial's ``h = x.dot(w1)`` with its backward beneath it."""

from typing import Any

import numpy as np
import numpy.typing as npt

from handprop._types import Array, check_dtype, float_dtype
from handprop.init import Initializer, RandomSource, he_normal
from handprop.layers.module import Module, require_array, require_cache
from handprop.parameter import Parameter


def _positive_int(owner: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{owner} {name} must be a positive integer, received {value!r}")
    return int(value)


class Linear(Module):
    """``h = x.dot(w) + b``, with the weight in the tutorial's layout.

    Shape:
        x: (N, D_in)  ->  h: (N, D_out)
        weight: (D_in, D_out);  bias: (D_out,), initialised to zero.

    ``init`` draws the weight from ``rng`` (default: He normal; the tutorial
    uses ``handprop.init.standard_normal``). ``rng=None`` means a fresh,
    unseeded ``numpy.random.default_rng()``. The input is cached by reference
    for backward, as the tutorial keeps ``x``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        init: Initializer = he_normal,
        rng: RandomSource | None = None,
        dtype: npt.DTypeLike = np.float64,
    ) -> None:
        self.in_features = _positive_int("Linear", "in_features", in_features)
        self.out_features = _positive_int("Linear", "out_features", out_features)
        dtype = float_dtype(dtype)
        rng = np.random.default_rng() if rng is None else rng
        self.weight = Parameter(init((self.in_features, self.out_features), rng, dtype))
        self.bias = Parameter(np.zeros(self.out_features, dtype=dtype)) if bias else None
        self.x: Array | None = None  # the cache: the last forward's input

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.weight.dtype

    def forward(self, x: Array) -> Array:
        x = require_array("Linear", x)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"Linear expected input of shape (N, {self.in_features}), received {x.shape}"
            )
        check_dtype("Linear", "input", x, self.dtype)
        self.x = x
        h: Array = x.dot(self.weight.data)
        if self.bias is not None:
            h += self.bias.data
        return h

    def backward(self, grad_h: Array) -> Array:
        out_shape = (-1 if self.x is None else self.x.shape[0], self.out_features)
        x, grad_h = require_cache("Linear", self.x, grad_h, out_shape)
        self.weight.grad += x.T.dot(grad_h)  # grad_w1 = x.T.dot(grad_h)
        if self.bias is not None:
            self.bias.grad += grad_h.sum(axis=0)
        grad_x: Array = grad_h.dot(self.weight.data.T)  # as grad_h_relu = grad_y_pred.dot(w2.T)
        return grad_x

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        named = [("weight", self.weight)]
        if self.bias is not None:
            named.append(("bias", self.bias))
        return named

    def __repr__(self) -> str:
        return (
            f"Linear({self.in_features}, {self.out_features}, bias={self.bias is not None}, "
            f"dtype={self.dtype.name})"
        )
