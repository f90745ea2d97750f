"""Where a captured step's gradients go, and its optimizer's update, recorded on a tape.

``train_step``'s last part: the parameters' gradients into their ``.grad`` or, for plain
SGD, the update folded into the weight-gradient products; then ``SGD.step`` or
``Adam.step``, line for line, their numbers read live at every replay.
"""

import itertools
import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from handprop._blas import add as blas_add
from handprop._blas import gemm
from handprop._types import Array
from handprop.optim import SGD, Adam, Optimizer
from handprop.parameter import Parameter, as_matrix
from handprop.training.tape import NotCapturable, Tape


class Destination:
    """The parameters' gradients into their ``.grad`` (``Gradients``' default), recorded.

    With ``params``, each ``.grad`` becomes a view of one flat buffer (``flat_grad``),
    its values kept, so that an optimizer's line can run over all of them in one call.
    """

    fused = False

    def __init__(self, tape: Tape, params: list[Parameter] | None = None) -> None:
        self.tape, self.flat_grad = tape, None
        if params is not None:
            grads = _flatten(tape, [p.grad for p in params])
            for parameter, grad in zip(params, grads.views, strict=True):
                parameter.grad = grad
            self.flat_grad = grads.flat

    def product(self, parameter: Parameter, a: Array, b: Array) -> None:
        """``grad = a @ b``: the first contribution after ``zero_grad``."""
        grad = as_matrix(parameter.grad, a.shape[0], b.shape[1])
        self.tape.record(np.matmul, a, b, grad)

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

    fused = True

    def __init__(self, tape: Tape, optimizer: SGD, exact: bool) -> None:
        super().__init__(tape)
        self.optimizer, self.exact = optimizer, exact
        self.lr = tape.scalar()
        tape.record(self._read_rate)

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
    if fold and type(optimizer) is SGD and optimizer.fused_gradients(exact) is not None:
        assert isinstance(optimizer, SGD)
        return FusedSGD(tape, optimizer, exact)
    return Destination(tape, params if type(optimizer) is Adam else None)


# ----- the optimizer's step ---------------------------------------------------------------


def record_optimizer(
    tape: Tape, optimizer: Optimizer, params: list[Parameter], destination: Destination
) -> Callable[[], bool]:
    """The update ``optimizer.step()`` makes; returns a check that the tape still fits it."""
    if type(optimizer) is SGD:
        assert isinstance(optimizer, SGD)
        return _sgd(tape, optimizer, params, destination.fused)
    if type(optimizer) is Adam and destination.flat_grad is not None:
        assert isinstance(optimizer, Adam)
        flat_grad = destination.flat_grad
        return _adam(tape, optimizer, params, flat_grad)
    raise NotCapturable(f"capture cannot record the optimizer {type(optimizer).__name__}")


def _sgd(tape: Tape, optimizer: SGD, params: list[Parameter], fused: bool) -> Callable[[], bool]:
    def shape() -> tuple[bool, ...]:
        return (optimizer.momentum != 0, optimizer.nesterov, optimizer.weight_decay != 0)

    recorded = shape()
    if fused:
        return lambda: shape() == recorded
    lr, momentum, weight_decay = tape.scalar(), tape.scalar(), tape.scalar()

    def read() -> None:
        lr[()], momentum[()] = optimizer.lr, optimizer.momentum
        weight_decay[()] = optimizer.weight_decay

    tape.record(read)
    for index, parameter in enumerate(params):
        grad, data, scratch = parameter.grad, parameter.data, optimizer.scratch[index]
        if optimizer.weight_decay:  # g = grad + weight_decay * w
            decayed = optimizer.decayed[index]
            tape.record(np.multiply, weight_decay, data, decayed)
            tape.record(np.add, grad, decayed, decayed)
            grad = decayed
        if optimizer.momentum:
            velocity = optimizer.velocities[index]
            tape.record(np.multiply, velocity, momentum, velocity)
            tape.record(np.add, velocity, grad, velocity)  # v = momentum * v + g
            if optimizer.nesterov:  # g + momentum * v
                tape.record(np.multiply, momentum, velocity, scratch)
                tape.record(np.add, grad, scratch, scratch)
                grad = scratch
            else:
                grad = velocity
        tape.record(np.multiply, lr, grad, scratch)
        tape.record(np.subtract, data, scratch, data)  # w -= lr * g
    slots = [*optimizer.velocities, *optimizer.scratch, *optimizer.decayed]
    return lambda: (
        shape() == recorded
        and _same(slots, optimizer.velocities, optimizer.scratch, optimizer.decayed)
    )


def _same(slots: list[Array], *now: list[Array]) -> bool:
    """Whether the optimizer still holds the arrays the tape was recorded on."""
    current = [*itertools.chain.from_iterable(now)]
    return len(slots) == len(current) and all(map(operator.is_, slots, current))


def _adam(
    tape: Tape, optimizer: Adam, params: list[Parameter], flat_grad: Array
) -> Callable[[], bool]:
    """Adam.step's lines, each over every parameter at once.

    Element-wise operations round each element alike, whatever the array it sits in:
    the gradients, ``m`` and ``v`` become views of one flat buffer each (``.grad`` and
    the optimizer's slots are set to these views, their values kept), so each line is
    one call, not one per parameter. The weights stay the model's own arrays.
    """
    names: tuple[str, ...] = ("beta1", "beta2", "one_minus_beta1", "one_minus_beta2")
    names += ("eps_hat", "alpha", "weight_decay", "decay")
    values = tape.buffer((len(names),))
    live = dict(zip(names, (values[i : i + 1].reshape(()) for i in range(len(names))), strict=True))

    def read() -> None:  # the numbers Adam.step computes, from its attributes now
        optimizer.t += 1
        beta1, beta2, lr, weight_decay = *optimizer.betas, optimizer.lr, optimizer.weight_decay
        sqrt_bias_correction2 = math.sqrt(1 - beta2**optimizer.t)
        values[:] = (
            beta1, beta2, 1 - beta1, 1 - beta2, optimizer.eps * sqrt_bias_correction2,
            lr / (1 - beta1**optimizer.t) * sqrt_bias_correction2,
            weight_decay, 1 - lr * weight_decay,
        )  # fmt: skip

    tape.record(read)
    optimizer.m[:], optimizer.v[:] = (
        _flatten(tape, optimizer.m).views,
        _flatten(tape, optimizer.v).views,
    )
    m, v = optimizer.m[0].base, optimizer.v[0].base
    g, s = _flatten(tape, [p.data for p in params]), tape.buffer(m.shape)
    grad = flat_grad
    if optimizer.weight_decay and optimizer.decoupled:
        for parameter in params:  # w *= 1 - lr * weight_decay
            tape.record(np.multiply, parameter.data, live["decay"], parameter.data)
    elif optimizer.weight_decay:  # g = grad + weight_decay * w
        for parameter, decayed in zip(params, g.views, strict=True):
            tape.record(np.multiply, live["weight_decay"], parameter.data, decayed)
        tape.record(np.add, grad, g.flat, g.flat)
        grad = g.flat
    _adam_lines(tape, live, grad, (m, v, s))
    for parameter, step in zip(params, _views(s, [p.data for p in params]), strict=True):
        tape.record(np.subtract, parameter.data, step, parameter.data)  # w -= step

    def shape() -> tuple[bool, bool]:
        return optimizer.weight_decay != 0, optimizer.decoupled

    recorded, slots = shape(), [*optimizer.m, *optimizer.v]
    return lambda: shape() == recorded and _same(slots, optimizer.m, optimizer.v)


def _adam_lines(
    tape: Tape, live: dict[str, Array], grad: Array, arrays: tuple[Array, Array, Array]
) -> None:
    """m, v and the step into s, over flat arrays, in Adam.step's order."""
    m, v, s = arrays
    tape.record(np.multiply, m, live["beta1"], m)
    tape.record(np.multiply, live["one_minus_beta1"], grad, s)
    tape.record(np.add, m, s, m)  # m = b1*m + (1-b1)*g
    tape.record(np.multiply, v, live["beta2"], v)
    tape.record(np.multiply, live["one_minus_beta2"], grad, s)
    tape.record(np.multiply, s, grad, s)
    tape.record(np.add, v, s, v)  # v = b2*v + (1-b2)*g*g
    tape.record(np.sqrt, v, s)
    tape.record(np.add, s, live["eps_hat"], s)  # denom = sqrt(v) + eps_hat
    tape.record(np.true_divide, m, s, s)
    tape.record(np.multiply, live["alpha"], s, s)  # alpha * m / denom


class _Flat:
    """One flat buffer and views of it shaped like ``arrays``, holding their values.

    Arrays that are already such views (of an earlier capture on the same model) are
    kept as they are, so that two tapes, say one per batch size, share them.
    """

    def __init__(self, tape: Tape, arrays: list[Array]) -> None:
        base = arrays[0].base
        if isinstance(base, np.ndarray) and _are_views(base, arrays):
            self.flat, self.views = base, arrays
            return
        self.flat = tape.buffer((sum(a.size for a in arrays),))
        self.views = _views(self.flat, arrays)
        for view, array in zip(self.views, arrays, strict=True):
            view[...] = array


def _are_views(base: Array, arrays: list[Array]) -> bool:
    """Whether ``arrays`` are ``_views(base, arrays)``, in order, and fill ``base``."""
    if base.ndim != 1 or base.size != sum(a.size for a in arrays) or base.dtype != arrays[0].dtype:
        return False
    expected = _views(base, arrays)
    return all(
        a.base is base and a.ctypes.data == e.ctypes.data and a.shape == e.shape
        for a, e in zip(arrays, expected, strict=True)
    )


def _flatten(tape: Tape, arrays: list[Array]) -> _Flat:
    return _Flat(tape, arrays)


def _views(flat: Array, arrays: list[Any]) -> list[Array]:
    views, start = [], 0
    for array in arrays:
        views.append(flat[start : start + array.size].reshape(array.shape))
        start += array.size
    return views
