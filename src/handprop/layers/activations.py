"""Element-wise activations, each backward under its forward.

Shape: any; the output and the gradients have the input's shape.
"""

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from handprop._types import Array, reuse
from handprop.layers.module import LAYERS, Module, require_array, require_cache
from handprop.parameter import ACCUMULATE, Gradients
from handprop.registry import Registry

#: Activation layers by the names ``mlp``, the command line and the estimators use.
ACTIVATIONS: Registry[type[Module]] = Registry("activation")

# An unsigned integer as wide as a float, by item size: a view of the float's bits. None
# for long double (padded to 16 bytes, and numpy has no uint128).
_UNSIGNED: dict[int, np.dtype[Any]] = {
    8: np.dtype(np.uint64),
    4: np.dtype(np.uint32),
    2: np.dtype(np.uint16),
}


@ACTIVATIONS.register("relu")
@LAYERS.register("ReLU")
class ReLU(Module):
    """``h_relu = max(h, 0)``.

    As in the tutorial (``grad_h[h < 0] = 0``) the gradient is blocked only
    where ``h < 0``: at exactly ``h == 0`` it passes through. PyTorch blocks
    it there; the two agree everywhere else.
    """

    def __init__(self) -> None:
        self.h: Array | None = None
        self.h_relu: Array | None = None  # work buffers
        self.grad_h: Array | None = None
        self.keep: Array | None = None  # for relu_mask: all one bits where h >= 0

    def forward(self, h: Array) -> Array:
        self.h = require_array("ReLU", h)
        self.h_relu = reuse(self.h_relu, h.shape, h.dtype)
        np.maximum(h, 0, out=self.h_relu)  # h_relu = np.maximum(h, 0)
        return self.h_relu

    def backward(self, grad_h_relu: Array, grads: Gradients = ACCUMULATE) -> Array:
        h, grad_h_relu = require_cache("ReLU", self.h, grad_h_relu)
        self.grad_h = reuse(self.grad_h, h.shape, h.dtype)
        # grad_h = grad_h_relu.copy(); grad_h[h < 0] = 0
        self.keep = relu_mask(grad_h_relu, h, out=self.grad_h, scratch=self.keep)
        return self.grad_h

    def pieces(self) -> Array | None:
        """Which linear piece each input of the last forward fell on (for gradcheck)."""
        return None if self.h is None else self.h >= 0


def relu_mask(grad: Array, h: Array, out: Array, scratch: Array | None = None) -> Array | None:
    """The tutorial's ``grad_h = grad_h_relu.copy(); grad_h[h < 0] = 0``, into ``out``.

    Bit for bit the same (NaN, inf and -0.0 included), computed as ``grad AND keep``
    on the floats' bits, where ``keep`` is all ones where ``h >= 0`` and zeros where
    ``h < 0``: three streaming passes. numpy's masked assignment branches on every
    element, and the signs of ``h`` are random: it ran 10x slower. Returns the
    ``keep`` buffer (pass it back as ``scratch`` to reuse it); None for long double,
    which runs the tutorial's two lines.
    """
    bits = _UNSIGNED.get(h.dtype.itemsize)
    if bits is None:  # long double: no unsigned integer as wide
        np.copyto(out, grad)
        out[h < 0] = 0
        return None
    keep = reuse(scratch, h.shape, bits)
    np.less(h, 0, out=keep, casting="unsafe")  # 1 where h < 0, else 0
    np.subtract(keep, 1, out=keep)  # 0 where h < 0, else all ones
    np.bitwise_and(grad.view(bits), keep, out=out.view(bits))
    return keep


@ACTIVATIONS.register("leaky_relu")
@LAYERS.register("LeakyReLU")
class LeakyReLU(Module):
    """``h`` where ``h >= 0``, else ``negative_slope * h``; at 0 the slope is 1, as for ReLU."""

    config_fields = ("negative_slope",)

    def __init__(self, negative_slope: float = 0.01) -> None:
        if not (math.isfinite(negative_slope) and negative_slope >= 0):
            raise ValueError(
                f"LeakyReLU negative_slope must be finite and >= 0, received {negative_slope!r}"
            )
        self.negative_slope = float(negative_slope)
        self.h: Array | None = None

    def forward(self, h: Array) -> Array:
        self.h = require_array("LeakyReLU", h)
        h_leaky: Array = np.where(h >= 0, h, self.negative_slope * h)
        return h_leaky

    def config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
        slope = config["negative_slope"]
        if (
            isinstance(slope, bool)
            or not isinstance(slope, int | float)
            or not (math.isfinite(slope) and slope >= 0)
        ):
            raise ValueError(f"negative_slope must be a finite number >= 0, received {slope!r}")
        return {}

    def backward(self, grad_h_leaky: Array, grads: Gradients = ACCUMULATE) -> Array:
        h, grad_h_leaky = require_cache("LeakyReLU", self.h, grad_h_leaky)
        grad_h = grad_h_leaky.copy()
        grad_h[h < 0] *= self.negative_slope
        return grad_h

    def pieces(self) -> Array | None:
        """Which linear piece each input of the last forward fell on (for gradcheck)."""
        return None if self.h is None else self.h >= 0

    def __repr__(self) -> str:
        return f"LeakyReLU(negative_slope={self.negative_slope})"


@ACTIVATIONS.register("tanh")
@LAYERS.register("Tanh")
class Tanh(Module):
    """``h_tanh = tanh(h)``; its derivative is ``1 - h_tanh**2``."""

    def __init__(self) -> None:
        self.h_tanh: Array | None = None
        self.grad_h: Array | None = None  # work buffer

    def forward(self, h: Array) -> Array:
        h = require_array("Tanh", h)
        self.h_tanh = np.tanh(h, out=reuse(self.h_tanh, h.shape, h.dtype))
        return self.h_tanh

    def backward(self, grad_h_tanh: Array, grads: Gradients = ACCUMULATE) -> Array:
        h_tanh, grad_h_tanh = require_cache("Tanh", self.h_tanh, grad_h_tanh)
        self.grad_h = reuse(self.grad_h, h_tanh.shape, h_tanh.dtype)
        np.multiply(h_tanh, h_tanh, out=self.grad_h)
        np.subtract(1, self.grad_h, out=self.grad_h)
        self.grad_h *= grad_h_tanh  # grad_h = grad_h_tanh * (1 - h_tanh**2)
        return self.grad_h


@ACTIVATIONS.register("sigmoid")
@LAYERS.register("Sigmoid")
class Sigmoid(Module):
    """``h_sigmoid = 1 / (1 + exp(-h))``, computed without overflow for any ``h``.

    Its derivative is ``h_sigmoid * (1 - h_sigmoid)``.
    """

    def __init__(self) -> None:
        self.h_sigmoid: Array | None = None

    def forward(self, h: Array) -> Array:
        h = require_array("Sigmoid", h)
        z = np.exp(-np.abs(h))  # in (0, 1]: never overflows
        self.h_sigmoid = np.where(h >= 0, 1 / (1 + z), z / (1 + z))
        return self.h_sigmoid

    def backward(self, grad_h_sigmoid: Array, grads: Gradients = ACCUMULATE) -> Array:
        h_sigmoid, grad_h_sigmoid = require_cache("Sigmoid", self.h_sigmoid, grad_h_sigmoid)
        grad_h: Array = grad_h_sigmoid * h_sigmoid * (1 - h_sigmoid)
        return grad_h


@ACTIVATIONS.register("identity")
@LAYERS.register("Identity")
class Identity(Module):
    """Returns its input unchanged; its gradient is the incoming gradient."""

    def __init__(self) -> None:
        self.h: Array | None = None

    def forward(self, h: Array) -> Array:
        self.h = require_array("Identity", h)
        return h

    def backward(self, grad_y: Array, grads: Gradients = ACCUMULATE) -> Array:
        _, grad_h = require_cache("Identity", self.h, grad_y)
        return grad_h


def activation(name: str) -> Module:
    """A new activation layer called ``name``; a ValueError lists the valid names."""
    return ACTIVATIONS[name]()
