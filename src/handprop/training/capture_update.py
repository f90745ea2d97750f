"""Where a captured step's gradients go, recorded on a tape.

``train_step``'s backward hands each parameter gradient to a ``Gradients``: by default
into ``.grad`` (here each ``.grad`` a view of one flat buffer, so that the optimizer's
``record``, in optim.py beside its ``step``, can update them all in one call per line);
for plain SGD, the update folded into the weight-gradient products.
"""

import numpy as np

from handprop._blas import add as blas_add
from handprop._blas import gemm
from handprop._types import Array
from handprop.optim import SGD, Optimizer
from handprop.parameter import Parameter, as_matrix
from handprop.training.tape import Tape, check_optimizer


class Destination:
    """The parameters' gradients into their ``.grad`` (``Gradients``' default), recorded.

    Each ``.grad`` becomes a view of one flat buffer (``flat_grad``), its values kept, so
    that an optimizer's line can run over all of them in one call.
    """

    def __init__(self, tape: Tape, params: list[Parameter] | None = None) -> None:
        self.tape, self.flat_grad = tape, None
        if params is not None:
            self.flat_grad, views = tape.flatten([p.grad for p in params])
            for parameter, grad in zip(params, views, strict=True):
                parameter.grad = grad

    def product(self, parameter: Parameter, a: Array, b: Array) -> None:
        """``grad = a @ b``: the first contribution after ``zero_grad``."""
        grad = as_matrix(parameter.grad, a.shape[0], b.shape[1])
        self.tape.product(a, b, grad)

    def column_sum(self, parameter: Parameter, grad_h: Array) -> None:
        """``grad = grad_h.sum(axis=0)``."""
        self.tape.record(np.add.reduce, grad_h, 0, None, parameter.grad)

    def finish(self, params: list[Parameter]) -> None:
        """The gradients hold this step's values, as after ``train_step`` (not lazily zero)."""
        grads = [(parameter, parameter.grad) for parameter in params]

        def written() -> None:
            for parameter, grad in grads:
                parameter.grad = grad

        self.tape.record(written)


class FusedSGD(Destination):
    """Plain SGD's update inside the gradient products, as ``SGD.fused_gradients`` applies it."""

    def __init__(self, tape: Tape, optimizer: SGD, exact: bool) -> None:
        super().__init__(tape)
        self.optimizer, self.exact = optimizer, exact
        self.lr = tape.scalar()
        tape.host(self._read_rate)

    def _read_rate(self) -> None:
        self.lr[()] = self.optimizer.lr

    def product(self, parameter: Parameter, a: Array, b: Array) -> None:
        """``w += -lr * (a @ b)`` in one gemm; ``exact``: rounded first, then added."""
        weights = as_matrix(parameter.data, a.shape[0], b.shape[1])
        if not self.exact:
            self.tape.record(self._gemm, a, b, weights, 1.0)
            return
        scratch = self.tape.buffer(weights.shape)
        self.tape.record(self._gemm, a, b, scratch, 0.0)
        self.tape.record(blas_add, scratch.reshape(parameter.data.shape), parameter.data)

    def _gemm(self, a: Array, b: Array, out: Array, beta: float) -> None:
        gemm(a, b, out=out, alpha=-self.optimizer.lr, beta=beta)

    def column_sum(self, parameter: Parameter, grad_h: Array) -> None:
        """``w -= lr * grad_h.sum(axis=0)``."""
        grad, scratch = self.tape.buffer(parameter.shape), self.tape.buffer(parameter.shape)
        self.tape.record(np.add.reduce, grad_h, 0, None, grad)
        self.tape.record(np.multiply, self.lr, grad, scratch)
        self.tape.record(np.subtract, parameter.data, scratch, parameter.data)

    def finish(self, params: list[Parameter]) -> None:
        """The gradients stay lazily zero, as a fused ``train_step`` leaves them."""

        def zero() -> None:
            for parameter in params:
                parameter.zero_grad()

        self.tape.record(zero)


def record_destination(
    tape: Tape, optimizer: Optimizer, params: list[Parameter], fold: bool, exact: bool
) -> Destination:
    """Where the recorded backward puts the gradients for ``optimizer`` (which must state its
    captured form: ``check_optimizer``): folded into the weights for plain SGD, as
    ``train_step`` folds them, else into ``.grad``, views of one flat buffer."""
    check_optimizer(optimizer)
    if fold and isinstance(optimizer, SGD) and optimizer.fused_gradients(exact) is not None:
        return FusedSGD(tape, optimizer, exact)
    return Destination(tape, params)
