"""Dropout: in training, zero each input with probability ``p`` and scale the rest by 1/(1-p)."""

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from handprop._types import Array
from handprop.layers.module import LAYERS, Module, require_cache
from handprop.parameter import ACCUMULATE, Gradients


def _probability(value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and 0 <= value < 1)
    ):
        raise ValueError(f"p must be a number in [0, 1), received {value!r}")
    return float(value)


@LAYERS.register("Dropout")
class Dropout(Module):
    """``h_drop = h * mask``, ``mask = (u >= p) / (1 - p)`` with ``u`` uniform in [0, 1).

    Shape: any; the output and the gradient have the input's shape.
    In evaluation mode (``eval()``) the input passes through unchanged. The masks
    come from the layer's own generator ``rng`` (a ``numpy.random.Generator`` or an
    int seed; None: unseeded), whose state checkpoints keep
    (``get_extra_state``), so that a resumed run draws the same masks.
    On torch tensors the draws are made on the host by the same generator and copied
    to the device: the same masks as on numpy, and the same checkpoints.
    The gradient is ``grad_h = grad_h_drop * mask``.
    """

    config_fields = ("p",)
    array_libraries = ("numpy", "torch")

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | int | None = None) -> None:
        try:
            self.p = _probability(p)
        except ValueError as error:
            raise ValueError(f"Dropout {error}") from None
        if rng is not None and not isinstance(rng, np.random.Generator | int | np.integer):
            raise TypeError(
                f"Dropout rng must be a numpy Generator, an int seed or None, "
                f"received {type(rng).__name__}"
            )
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.h: Array | None = None  # the cache: the last input, and its mask
        self.mask: Array | None = None  # 0 or 1/(1-p) per input; None after an eval forward
        self._mask_buffer: Array | None = None  # work buffers
        self.h_drop: Array | None = None
        self.grad_h: Array | None = None

    def config(self) -> dict[str, Any]:
        return {"p": self.p}

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
        _probability(config["p"])
        return {}

    def forward(self, h: Array) -> Array:
        xp = self.xp
        self.h = xp.require("Dropout", h)
        if not self.training:
            self.mask = None
            return h
        self.mask = xp.reuse(self._mask_buffer, h.shape, h.dtype)
        self._mask_buffer = self.mask
        xp.uniform(self.rng, out=self.mask)  # u, uniform in [0, 1)
        xp.greater_equal(self.mask, self.p, out=self.mask, casting="unsafe")  # keep: 1, else 0
        xp.multiply(self.mask, 1 / (1 - self.p), out=self.mask)
        self.h_drop = xp.multiply(h, self.mask, out=xp.reuse(self.h_drop, h.shape, h.dtype))
        return self.h_drop

    def backward(self, grad_h_drop: Array, grads: Gradients = ACCUMULATE) -> Array:
        xp = self.xp
        _, grad_h_drop = require_cache("Dropout", self.h, grad_h_drop, None, xp)
        if self.mask is None:  # evaluation mode: the identity
            return grad_h_drop
        self.grad_h = xp.reuse(self.grad_h, grad_h_drop.shape, grad_h_drop.dtype)
        return xp.multiply(grad_h_drop, self.mask, out=self.grad_h)  # type: ignore[no-any-return]

    def get_extra_state(self) -> dict[str, Any]:
        """The generator's state (JSON-able), for checkpoints."""
        return {"rng": self.rng.bit_generator.state}

    def set_extra_state(self, state: Mapping[str, Any]) -> None:
        """Put back the generator state ``get_extra_state`` gave; a ValueError if it is not one."""
        try:
            self.rng.bit_generator.state = state["rng"]
        except (KeyError, TypeError, ValueError, OverflowError) as error:
            raise ValueError(f"Dropout extra state is not a generator's state: {error}") from None

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"
