"""A trainable array with its gradient, and ``Gradients``: where backward passes put gradients."""

from typing import Any

import numpy as np

from handprop._types import Array
from handprop.backend import namespace


class Parameter:
    """An array ``data`` and its gradient ``grad``, of the same shape and dtype.

    Gradients accumulate (``grad += contribution``, as in PyTorch) until
    ``zero_grad()``; optimizers update ``data`` in place. ``zero_grad`` is lazy,
    so that a training step writes no zeros: it marks the gradient as zero, and
    the next contribution overwrites it instead of adding (reading ``grad`` in
    between gives zeros).

    ``xp`` is the array namespace of ``data`` (``handprop.backend``); ``move`` puts
    the parameter on another one (``Module.to`` calls it). Replacing ``data`` by hand
    keeps the library and the device.
    """

    def __init__(self, data: Array) -> None:
        self.xp = namespace(data)
        self.data = data
        self._grad: Array = self.xp.zeros_like(data)
        self._grad_is_zero = False  # True after zero_grad, until a contribution lands

    def move(self, data: Array) -> None:
        """Replace ``data`` (any library, device or dtype); the gradient restarts at zero."""
        self.xp = namespace(data)
        self.data = data
        self._grad, self._grad_is_zero = self.xp.zeros_like(data), False

    @property
    def grad(self) -> Array:
        if self._grad_is_zero:
            self.xp.fill(self._grad, 0)
            self._grad_is_zero = False
        return self._grad

    @grad.setter
    def grad(self, value: Array) -> None:
        self._grad, self._grad_is_zero = value, False

    @property
    def has_grad(self) -> bool:
        """False from ``zero_grad()`` until a gradient is added (or ``grad`` is read)."""
        return not self._grad_is_zero

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The numpy dtype of ``data`` (float64 for a torch.float64 tensor)."""
        return self.xp.dtype_of(self.data)  # type: ignore[no-any-return]

    def zero_grad(self) -> None:
        self._grad_is_zero = True

    def accumulate(self, contribution: Array) -> None:
        """``grad += contribution``."""
        if self._grad_is_zero:
            self.xp.copyto(self._grad, contribution)
            self._grad_is_zero = False
        else:
            self.xp.add(self._grad, contribution, out=self._grad)

    def accumulate_product(self, a: Array, b: Array) -> None:
        """``grad += a @ b`` (e.g. ``x.T @ grad_h``) without a temporary: BLAS gemm, beta = 1.

        ``a @ b`` has the parameter's shape, or is its (rows, columns) matrix (a
        convolution's (C_out, C_in, kh, kw) weight as (C_out, C_in * kh * kw)).
        """
        grad = as_matrix(self._grad, a.shape[0], b.shape[1])
        if self._grad_is_zero:
            self.xp.matmul(a, b, out=grad)
            self._grad_is_zero = False
        else:
            self.xp.gemm(a, b, out=grad, alpha=1.0, beta=1.0)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype.name})"


def as_matrix(array: Array, rows: int, columns: int) -> Array:
    """``array`` itself if it is 2-D, else its (rows, columns) view (a C-contiguous array)."""
    return array if array.ndim == 2 else array.reshape(rows, columns)


class Gradients:
    """Where a backward pass hands its parameters' gradients: ``backward(grad_y, grads)``.

    This one, the default, accumulates them into each parameter's ``.grad``.
    An optimizer whose update can be fused into the gradient products (plain
    SGD: ``w += -lr * (x.T @ grad_h)`` in one BLAS call) gives ``train_step`` a
    subclass that updates the weights at once instead (``SGD.fused_gradients``).
    So a layer hands a parameter over after its last read of that parameter in
    backward. A layer may also write ``.grad`` itself: the optimizer's ``step``
    then updates that parameter as usual.
    """

    def add(self, parameter: Parameter, grad: Array) -> None:
        """``parameter.grad += grad``."""
        parameter.accumulate(grad)

    def add_product(self, parameter: Parameter, a: Array, b: Array) -> None:
        """``parameter.grad += a @ b``, without a temporary.

        ``a @ b`` has the parameter's shape or, for a parameter of more than two
        axes, that of its C-ordered (rows, columns) matrix.
        """
        parameter.accumulate_product(a, b)


#: The default destination of every backward pass: ``.grad`` of each parameter.
ACCUMULATE = Gradients()
