"""A trainable array together with the gradient that backward accumulates into it."""

from typing import Any

import numpy as np

from handprop._types import Array


class Parameter:
    """An array ``data`` and its gradient ``grad``, of the same shape and dtype.

    Backward passes *add* into ``grad`` (gradients accumulate, as in PyTorch);
    ``zero_grad()`` clears it. Optimizers update ``data`` in place.
    """

    def __init__(self, data: Array) -> None:
        self.data = data
        self.grad = np.zeros_like(data)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.data.dtype

    def zero_grad(self) -> None:
        self.grad.fill(0)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype.name})"
