"""The base class of every layer: forward beside backward, parameters, zero_grad."""

from collections.abc import Iterator

import numpy as np

from handprop._types import Array
from handprop.parameter import Parameter


class Module:
    """A layer or a network of layers.

    ``forward(x)`` computes the output and keeps what backward needs in one
    named cache (overwritten on every call). ``backward(grad_y)`` reads that
    cache, *adds* the gradients of the loss into its parameters' ``.grad`` and
    returns the gradient for its input. Calling the module calls ``forward``.

    The arrays that forward and backward return are the layer's own work
    buffers, reused while the batch shape stays the same (a training step then
    allocates nothing): each is valid until the layer's next forward or
    backward. Copy one (``y.copy()``) to keep it longer.
    """

    def forward(self, x: Array) -> Array:
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self, grad_y: Array) -> Array:
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    def backward_parameters(self, grad_y: Array) -> None:
        """Like ``backward``, but only the parameters' gradients are needed.

        The first layer of a network never needs the gradient for its input
        (the tutorial computes five matrix products, not six); layers that can
        skip it override this.
        """
        self.backward(grad_y)

    def __call__(self, x: Array) -> Array:
        return self.forward(x)

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        """Parameters with PyTorch-style dotted names; none unless a subclass has some."""
        return []

    def parameters(self) -> list[Parameter]:
        return [parameter for _, parameter in self.named_parameters()]

    def modules(self) -> Iterator["Module"]:
        """This module and every module inside it, depth first."""
        yield self

    def zero_grad(self) -> None:
        for parameter in self.parameters():
            parameter.zero_grad()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def require_array(owner: str, x: object) -> Array:
    """Return ``x`` if it is a floating numpy array, else raise a TypeError naming ``owner``."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{owner} expected a numpy array, received {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(
            f"{owner} expected a floating-point array, received dtype {x.dtype.name}; "
            "convert it with .astype(np.float64)"
        )
    return x


def require_cache(
    owner: str, cache: Array | None, grad: object, output_shape: tuple[int, ...] | None = None
) -> tuple[Array, Array]:
    """Return ``(cache, grad)`` for ``owner.backward`` after checking both.

    ``grad`` must have the forward output's shape (``output_shape``, by default
    the cache's own) and the cache's dtype. Raises RuntimeError when backward
    comes before forward, ValueError/TypeError for a gradient that does not fit.
    """
    if cache is None:
        raise RuntimeError(f"{owner}.backward was called before {owner}.forward; run forward first")
    grad = require_array(f"{owner}.backward", grad)
    expected = cache.shape if output_shape is None else output_shape
    if grad.shape != expected or grad.dtype != cache.dtype:
        raise ValueError(
            f"{owner}.backward expected a gradient of shape {expected} and dtype "
            f"{cache.dtype.name} (like the forward output), received {grad.shape} {grad.dtype.name}"
        )
    return cache, grad
