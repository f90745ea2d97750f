"""Element-wise activations, each backward under its forward.

Shape: any; the output and the gradients have the input's shape.
"""

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from handprop._types import Array
from handprop.backend import relu_mask
from handprop.layers.module import LAYERS, Module, require_cache
from handprop.parameter import ACCUMULATE, Gradients
from handprop.registry import Registry

if TYPE_CHECKING:
    from handprop.training.tape import RecordedBackward, RecordedGradients, Tape

#: Activation layers by the names ``mlp``, the command line and the estimators use.
ACTIVATIONS: Registry[type[Module]] = Registry("activation")

__all__ = ["ACTIVATIONS", "Identity", "LeakyReLU", "ReLU", "Sigmoid", "Tanh", "activation"]
__all__ += ["relu_mask"]  # the tutorial's mask on numpy arrays, now in handprop.backend


@ACTIVATIONS.register("relu")
@LAYERS.register("ReLU")
class ReLU(Module):
    """``h_relu = max(h, 0)``.

    As in the tutorial (``grad_h[h < 0] = 0``) the gradient is blocked only
    where ``h < 0``: at exactly ``h == 0`` it passes through. PyTorch blocks
    it there; the two agree everywhere else.
    """

    array_libraries = ("numpy", "torch")

    def __init__(self) -> None:
        self.h: Array | None = None
        self.h_relu: Array | None = None  # work buffers
        self.grad_h: Array | None = None
        self.keep: Array | None = None  # for relu_mask: where h >= 0

    def forward(self, h: Array) -> Array:
        xp = self.xp
        self.h = xp.require("ReLU", h)
        self.h_relu = xp.reuse_like(self.h_relu, h.shape, h.dtype, h)  # in h's memory order
        xp.maximum(h, 0, out=self.h_relu)  # h_relu = np.maximum(h, 0)
        return self.h_relu

    def backward(self, grad_h_relu: Array, grads: Gradients = ACCUMULATE) -> Array:
        xp = self.xp
        h, grad_h_relu = require_cache("ReLU", self.h, grad_h_relu, None, xp)
        self.grad_h = grad_h = xp.reuse_like(self.grad_h, h.shape, h.dtype, h)
        # grad_h = grad_h_relu.copy(); grad_h[h < 0] = 0, element by element, so on views
        # that all run in h's memory order (an NHWC image: channels innermost)
        if not xp.is_contiguous(h):
            axes = xp.memory_axes(h)
            grad_h_relu, h, grad_h = (xp.transpose(a, axes) for a in (grad_h_relu, h, grad_h))
        self.keep = xp.relu_mask(grad_h_relu, h, out=grad_h, scratch=self.keep)
        return self.grad_h

    def record(self, tape: "Tape", h: Array) -> tuple[Array, "RecordedBackward"]:
        """``forward`` and ``backward`` on a tape's fixed buffers (see ``Linear.record``)."""
        h_relu = tape.buffer(h.shape)
        tape.record(np.maximum, h, tape.constant(0), out=h_relu)  # h_relu = np.maximum(h, 0)

        def backward(
            grad_h_relu: Array, need_input_grad: bool, grads: "RecordedGradients"
        ) -> Array | None:
            if not need_input_grad:
                return None
            bits = np.dtype(f"u{h.dtype.itemsize}")  # relu_mask's three passes
            grad_h, keep = tape.buffer(h.shape), tape.buffer(h.shape, bits)
            zero, one = tape.constant(0), tape.constant(1, bits)
            tape.record(np.less, h, zero, keep)  # 1 where h < 0, else 0 (a bool to unsigned: safe)
            tape.record(np.subtract, keep, one, keep)  # 0 where h < 0, else all ones
            tape.record(np.bitwise_and, grad_h_relu.view(bits), keep, grad_h.view(bits))
            return grad_h

        return h_relu, backward

    def pieces(self) -> Array | None:
        """Which linear piece each input of the last forward fell on (for gradcheck)."""
        return None if self.h is None else self.xp.greater_equal(self.h, 0)


@ACTIVATIONS.register("leaky_relu")
@LAYERS.register("LeakyReLU")
class LeakyReLU(Module):
    """``h`` where ``h >= 0``, else ``negative_slope * h``; at 0 the slope is 1, as for ReLU."""

    config_fields = ("negative_slope",)
    array_libraries = ("numpy", "torch")

    def __init__(self, negative_slope: float = 0.01) -> None:
        if not (math.isfinite(negative_slope) and negative_slope >= 0):
            raise ValueError(
                f"LeakyReLU negative_slope must be finite and >= 0, received {negative_slope!r}"
            )
        self.negative_slope = float(negative_slope)
        self.h: Array | None = None

    def forward(self, h: Array) -> Array:
        xp = self.xp
        self.h = xp.require("LeakyReLU", h)
        # h_leaky = np.where(h >= 0, h, negative_slope * h)
        h_leaky: Array = xp.where(xp.greater_equal(h, 0), h, xp.multiply(h, self.negative_slope))
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
        xp = self.xp
        h, grad_h_leaky = require_cache("LeakyReLU", self.h, grad_h_leaky, None, xp)
        # grad_h = grad_h_leaky.copy(); grad_h[h < 0] *= negative_slope
        grad_h: Array = xp.where(
            xp.less(h, 0), xp.multiply(grad_h_leaky, self.negative_slope), grad_h_leaky
        )
        return grad_h

    def pieces(self) -> Array | None:
        """Which linear piece each input of the last forward fell on (for gradcheck)."""
        return None if self.h is None else self.xp.greater_equal(self.h, 0)

    def __repr__(self) -> str:
        return f"LeakyReLU(negative_slope={self.negative_slope})"


@ACTIVATIONS.register("tanh")
@LAYERS.register("Tanh")
class Tanh(Module):
    """``h_tanh = tanh(h)``; its derivative is ``1 - h_tanh**2``."""

    array_libraries = ("numpy", "torch")

    def __init__(self) -> None:
        self.h_tanh: Array | None = None
        self.grad_h: Array | None = None  # work buffer

    def forward(self, h: Array) -> Array:
        xp = self.xp
        h = xp.require("Tanh", h)
        self.h_tanh = xp.tanh(h, out=xp.reuse(self.h_tanh, h.shape, h.dtype))
        return self.h_tanh

    def backward(self, grad_h_tanh: Array, grads: Gradients = ACCUMULATE) -> Array:
        xp = self.xp
        h_tanh, grad_h_tanh = require_cache("Tanh", self.h_tanh, grad_h_tanh, None, xp)
        self.grad_h = xp.reuse(self.grad_h, h_tanh.shape, h_tanh.dtype)
        xp.multiply(h_tanh, h_tanh, out=self.grad_h)
        xp.subtract(1, self.grad_h, out=self.grad_h)
        # grad_h = grad_h_tanh * (1 - h_tanh**2)
        xp.multiply(self.grad_h, grad_h_tanh, out=self.grad_h)
        return self.grad_h

    def record(self, tape: "Tape", h: Array) -> tuple[Array, "RecordedBackward"]:
        """``forward`` and ``backward`` on a tape's fixed buffers (see ``Linear.record``)."""
        h_tanh = tape.buffer(h.shape)
        tape.record(np.tanh, h, h_tanh)

        def backward(
            grad_h_tanh: Array, need_input_grad: bool, grads: "RecordedGradients"
        ) -> Array | None:
            if not need_input_grad:
                return None
            grad_h = tape.buffer(h.shape)
            tape.record(np.multiply, h_tanh, h_tanh, grad_h)
            tape.record(np.subtract, tape.constant(1), grad_h, grad_h)
            tape.record(np.multiply, grad_h, grad_h_tanh, grad_h)  # grad_h_tanh * (1 - h_tanh**2)
            return grad_h

        return h_tanh, backward


@ACTIVATIONS.register("sigmoid")
@LAYERS.register("Sigmoid")
class Sigmoid(Module):
    """``h_sigmoid = 1 / (1 + exp(-h))``, computed without overflow for any ``h``.

    Its derivative is ``h_sigmoid * (1 - h_sigmoid)``.
    """

    array_libraries = ("numpy", "torch")

    def __init__(self) -> None:
        self.h_sigmoid: Array | None = None

    def forward(self, h: Array) -> Array:
        xp = self.xp
        h = xp.require("Sigmoid", h)
        z = xp.exp(xp.negative(xp.abs(h)))  # exp(-|h|), in (0, 1]: never overflows
        one_plus_z = xp.add(z, 1)
        # h >= 0: 1 / (1 + z); h < 0: z / (1 + z)
        self.h_sigmoid = xp.where(
            xp.greater_equal(h, 0), xp.divide(1, one_plus_z), xp.divide(z, one_plus_z)
        )
        return self.h_sigmoid

    def backward(self, grad_h_sigmoid: Array, grads: Gradients = ACCUMULATE) -> Array:
        xp = self.xp
        h_sigmoid, grad_h_sigmoid = require_cache(
            "Sigmoid", self.h_sigmoid, grad_h_sigmoid, None, xp
        )
        # grad_h = grad_h_sigmoid * h_sigmoid * (1 - h_sigmoid)
        grad_h: Array = xp.multiply(
            xp.multiply(grad_h_sigmoid, h_sigmoid), xp.subtract(1, h_sigmoid)
        )
        return grad_h


@ACTIVATIONS.register("identity")
@LAYERS.register("Identity")
class Identity(Module):
    """Returns its input unchanged; its gradient is the incoming gradient."""

    array_libraries = ("numpy", "torch")

    def __init__(self) -> None:
        self.h: Array | None = None

    def forward(self, h: Array) -> Array:
        self.h = self.xp.require("Identity", h)
        return h

    def backward(self, grad_y: Array, grads: Gradients = ACCUMULATE) -> Array:
        _, grad_h = require_cache("Identity", self.h, grad_y, None, self.xp)
        return grad_h

    def record(self, tape: "Tape", h: Array) -> tuple[Array, "RecordedBackward"]:
        """Nothing to record: the input is the output, the gradient passes."""
        return h, lambda grad, need_input_grad, grads: grad if need_input_grad else None


def activation(name: str) -> Module:
    """A new activation layer called ``name``; a ValueError lists the valid names."""
    return ACTIVATIONS[name]()
