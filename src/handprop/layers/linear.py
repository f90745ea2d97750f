"""The fully-connected layer: the tutorial's ``h = x.dot(w1)`` with its backward beneath it."""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import numpy.typing as npt

from handprop._types import Array, check_dtype, float_dtype, positive_int
from handprop.init import Initializer, RandomSource, as_generator, he_normal, zeros
from handprop.layers.module import LAYERS, Module, require_cache, weight_and_bias
from handprop.parameter import ACCUMULATE, Gradients, Parameter

if TYPE_CHECKING:
    from handprop.training.tape import RecordedBackward, RecordedGradients, Tape


@LAYERS.register("Linear")
class Linear(Module):
    """``h = x.dot(w) + b``, with the weight in the tutorial's layout.

    Shape:
        x: (N, D_in)  ->  h: (N, D_out)
        weight: (D_in, D_out);  bias: (D_out,), initialised to zero.

    ``init`` draws the weight from ``rng`` (default: He normal; the tutorial
    uses ``handprop.init.standard_normal``); ``rng`` is a generator or an int
    seed (None: a fresh, unseeded generator). The input is cached by reference
    for backward, as the tutorial keeps ``x``; ``h`` and ``grad_x`` are work
    buffers (see ``Module``).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        init: Initializer = he_normal,
        rng: RandomSource | int | None = None,
        dtype: npt.DTypeLike = np.float64,
    ) -> None:
        self.in_features = positive_int("Linear in_features", in_features)
        self.out_features = positive_int("Linear out_features", out_features)
        dtype = float_dtype(dtype)
        rng = as_generator(rng)
        self.weight = Parameter(init((self.in_features, self.out_features), rng, dtype))
        self.bias = Parameter(np.zeros(self.out_features, dtype=dtype)) if bias else None
        self.x: Array | None = None  # the cache: the last forward's input
        self.h: Array | None = None  # work buffers for the output and the input gradient
        self.grad_x: Array | None = None

    config_fields = ("in_features", "out_features", "bias")
    array_libraries = ("numpy", "torch")

    def config(self) -> dict[str, Any]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias is not None,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dtype: str) -> Self:
        return cls(**config, init=zeros, rng=0, dtype=dtype)

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
        d_in = positive_int("in_features", config["in_features"])
        d_out = positive_int("out_features", config["out_features"])
        if not isinstance(config["bias"], bool):
            raise ValueError(f"bias must be true or false, received {config['bias']!r}")
        return {"weight": (d_out, d_in), **({"bias": (d_out,)} if config["bias"] else {})}

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.weight.dtype

    def forward(self, x: Array) -> Array:
        xp = self.xp
        x = xp.require("Linear", x)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"Linear expected input of shape (N, {self.in_features}), received {tuple(x.shape)}"
            )
        check_dtype("Linear", "input", x, self.dtype)
        self.x = x
        self.h = xp.reuse(self.h, (x.shape[0], self.out_features), self.dtype)
        xp.matmul(x, self.weight.data, out=self.h)  # h = x.dot(w1)
        if self.bias is not None:
            xp.add(self.h, self.bias.data, out=self.h)  # h += b1
        return self.h

    def backward(self, grad_h: Array, grads: Gradients = ACCUMULATE) -> Array:
        xp = self.xp
        x, grad_h = self._cached_input(grad_h)
        self.grad_x = xp.reuse(self.grad_x, x.shape, self.dtype)
        # grad_h_relu = grad_y_pred.dot(w2.T), as the tutorial names it
        xp.matmul(grad_h, self.weight.data.T, out=self.grad_x)
        # Then the weight's gradient: grads may move the weight at once (a fused SGD step),
        # so it comes after the weight's last read.
        self._parameter_grads(x, grad_h, grads)
        return self.grad_x

    def backward_parameters(self, grad_h: Array, grads: Gradients = ACCUMULATE) -> None:
        x, grad_h = self._cached_input(grad_h)
        self._parameter_grads(x, grad_h, grads)

    def _parameter_grads(self, x: Array, grad_h: Array, grads: Gradients) -> None:
        grads.add_product(self.weight, x.T, grad_h)  # grad_w1 = x.T.dot(grad_h)
        if self.bias is not None:
            grads.add(self.bias, self.xp.sum(grad_h, axis=0))  # grad_b1 = grad_h.sum(axis=0)

    def record(self, tape: "Tape", x: Array) -> tuple[Array, "RecordedBackward"]:
        """``forward`` and ``backward``'s numpy calls on a tape's fixed buffers (a captured
        step, training/capture.py): the same calls in the same order, so the same bits."""
        weight, bias = self.weight, self.bias
        h = tape.buffer((x.shape[0], self.out_features))
        tape.product(x, weight.data, h)  # h = x.dot(w1)
        if bias is not None:
            tape.record(np.add, h, bias.data, h)  # h += b1

        def backward(
            grad_h: Array, need_input_grad: bool, grads: "RecordedGradients"
        ) -> Array | None:
            grad_x = None
            if need_input_grad:  # grad_h_relu = grad_y_pred.dot(w2.T)
                grad_x = tape.buffer(x.shape)
                tape.product(grad_h, weight.data.T, grad_x)
            grads.product(weight, x.T, grad_h)  # grad_w1 = x.T.dot(grad_h)
            if bias is not None:
                grads.column_sum(bias, grad_h)  # grad_b1 = grad_h.sum(axis=0)
            return grad_x

        return h, backward

    def _cached_input(self, grad_h: Array) -> tuple[Array, Array]:
        out_shape = (-1 if self.x is None else self.x.shape[0], self.out_features)
        return require_cache("Linear", self.x, grad_h, out_shape, self.xp)

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        return weight_and_bias(self.weight, self.bias)

    def __repr__(self) -> str:
        return (
            f"Linear({self.in_features}, {self.out_features}, bias={self.bias is not None}, "
            f"dtype={self.dtype.name})"
        )
