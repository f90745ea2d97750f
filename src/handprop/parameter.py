"""A trainable array together with the gradient that backward accumulates into it."""

from typing import Any

import numpy as np

from handprop._blas import add as blas_add
from handprop._blas import gemm
from handprop._types import Array, reuse


class Parameter:
    """An array ``data`` and its gradient ``grad``, of the same shape and dtype.

    Backward passes *add* into ``grad`` (gradients accumulate, as in PyTorch)
    through ``add_grad`` and ``add_grad_product``; ``zero_grad()`` clears it.
    Optimizers update ``data`` in place.

    Two things keep a training step free of temporaries. ``zero_grad`` is lazy:
    it marks the gradient as zero, and the next contribution overwrites it
    instead of adding (reading ``grad`` in between gives zeros). And while
    ``fold`` is set (``train_step`` sets it to ``-lr`` for plain SGD), every
    contribution goes straight into the weights, ``data += fold * contribution``,
    and ``grad`` stays zero. A product is then added by one gemm (beta = 1),
    which rounds once; with ``fold_exact`` it is rounded to ``fold * (a @ b)``
    first and then added, exactly as gradient-then-update rounds.
    """

    def __init__(self, data: Array) -> None:
        self.data = data
        self._grad = np.zeros_like(data)
        self._grad_is_zero = False  # True after zero_grad, until a contribution lands
        self.fold: float | None = None
        self.fold_exact = False
        self._scratch: Array | None = None  # fold * (a @ b), for the exact fold

    @property
    def grad(self) -> Array:
        if self._grad_is_zero:
            self._grad.fill(0)
            self._grad_is_zero = False
        return self._grad

    @grad.setter
    def grad(self, value: Array) -> None:
        self._grad, self._grad_is_zero = value, False

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.data.dtype

    def zero_grad(self) -> None:
        self._grad_is_zero = True

    def add_grad(self, contribution: Array) -> None:
        """``grad += contribution``."""
        if self.fold is not None:
            self.data += self.fold * contribution
        elif self._grad_is_zero:
            np.copyto(self._grad, contribution)
            self._grad_is_zero = False
        else:
            self._grad += contribution

    def add_grad_product(self, a: Array, b: Array) -> None:
        """``grad += a @ b`` (e.g. ``x.T @ grad_h``) without a temporary: BLAS gemm, beta = 1."""
        if self.fold is not None and self.fold_exact:
            self._scratch = reuse(self._scratch, self.data.shape, self.data.dtype)
            gemm(a, b, out=self._scratch, alpha=self.fold, beta=0.0)
            blas_add(self._scratch, self.data)  # data += scratch, in BLAS
        elif self.fold is not None:
            gemm(a, b, out=self.data, alpha=self.fold, beta=1.0)
        elif self._grad_is_zero:
            np.matmul(a, b, out=self._grad)
            self._grad_is_zero = False
        else:
            gemm(a, b, out=self._grad, alpha=1.0, beta=1.0)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype.name})"
