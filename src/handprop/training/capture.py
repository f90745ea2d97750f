"""A training step recorded once on fixed buffers, then replayed: ``capture_step``.

At batch 32 through 64 -> 100 -> 10, a step's arithmetic takes ~10 us and ``train_step``
~250 us: the rest is Python (checks, buffer look-ups, temporaries). ``capture_step``
records the step's array calls once, on buffers allocated once; ``step(x, y)`` copies the
batch in and replays them: the same numpy functions, in the same order, on the same shapes
and dtypes as ``train_step``, so the results are equal bit for bit. What changes between
steps is read live: the learning rate and every other number of the optimizer, Adam's step
count and bias corrections.

What it records (exact types, not subclasses): ``Sequential``, ``Linear``, ``ReLU``,
``Tanh``, ``Identity``; ``SumSquaredError``, ``MeanSquaredError``, ``SoftmaxCrossEntropy``
without class weights; ``SGD`` (fused or not) and ``Adam``. Anything else raises
``NotCapturable``: train it with ``train_step`` (``fit`` does so by itself).
"""

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from handprop._blas import add as blas_add
from handprop._blas import gemm
from handprop._types import Array
from handprop.layers.activations import Identity, ReLU, Tanh
from handprop.layers.linear import Linear
from handprop.layers.module import Module
from handprop.layers.sequential import Sequential
from handprop.losses import Loss, MeanSquaredError, SoftmaxCrossEntropy, SumSquaredError
from handprop.optim import SGD, Adam, Optimizer
from handprop.parameter import Parameter, as_matrix
from handprop.training.step import train_step

#: What a layer's backward records: ``backward(grad_y, need_input_grad, grads) -> grad_x``
#: (None when the input's gradient is not needed).
Backward = Callable[[Array, bool, "Destination"], Array | None]


class NotCapturable(ValueError):
    """A part of the step the tape cannot record; ``train_step`` trains it eagerly."""


class Tape:
    """Calls of array functions on fixed buffers, recorded in order and replayed as they are.

    A call is a function and its positional arguments (the output buffer among them);
    a number that changes between steps lives in a 0-d buffer (``scalar``) that a recorded
    call of the owner fills first.
    """

    def __init__(self, dtype: np.dtype[Any]) -> None:
        self.dtype = dtype
        self.calls: list[tuple[Callable[..., object], tuple[object, ...]]] = []

    def buffer(self, shape: tuple[int, ...], dtype: Any = None) -> Array:
        return np.empty(shape, dtype=self.dtype if dtype is None else dtype)

    def scalar(self) -> Array:
        """A 0-d buffer of the tape's dtype: as an operand it rounds like a Python float does."""
        return np.zeros((), dtype=self.dtype)

    def record(self, function: Callable[..., object], *args: object, **keywords: object) -> None:
        """Record ``function(*args, **keywords)``, to be called on every replay."""
        self.calls.append((partial(function, **keywords) if keywords else function, args))

    def replay(self) -> None:
        for function, args in self.calls:
            function(*args)


class CapturedStep:
    """``step(x, y) -> loss``: ``train_step`` replayed from a tape (see ``capture_step``).

    ``x`` and ``y`` are its input buffers: ``replay()`` trains on what is in them (``fit``
    gathers each batch straight into them). A batch of another shape or dtype, and a
    model or optimizer changed in a way the tape did not record, train eagerly.
    """

    def __init__(
        self,
        tape: Tape,
        inputs: tuple[Array, Array],
        read_loss: Callable[[], float],
        guard: Callable[[], bool],
        eager: Callable[[Array, Array], float],
        classes: int | None,
    ) -> None:
        self.tape, self.x, self.y = tape, *inputs
        self.read_loss, self.guard, self.eager = read_loss, guard, eager
        self.classes = classes  # labels must lie in [0, classes) (cross-entropy)

    def __call__(self, x: Array, y: Array) -> float:
        if not self.fits(x, y):
            return self.eager(x, y)
        np.copyto(self.x, x)
        np.copyto(self.y, y)
        return self.replay()

    def fits(self, x: object, y: object) -> bool:
        """Whether (x, y) is a batch the tape trains on as ``train_step`` would."""
        if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
            return False
        if x.shape != self.x.shape or x.dtype != self.x.dtype or y.shape != self.y.shape:
            return False
        if self.classes is None:
            return bool(y.dtype == self.y.dtype)
        return y.dtype.kind in "iu" and self.fits_labels(y)

    def fits_labels(self, y: Array) -> bool:
        """Whether every label of ``y`` names a class (always, for a loss without labels)."""
        if self.classes is None:
            return True
        return bool(len(y) > 0 and y.min() >= 0 and y.max() < self.classes)

    def replay(self) -> float:
        """One step on the batch in ``self.x``, ``self.y``; the loss before the update."""
        if not self.guard():
            return self.eager(self.x, self.y)
        self.tape.replay()
        return self.read_loss()


def capture_step(
    model: Module,
    loss_fn: Loss,
    optimizer: Optimizer,
    x_shape: tuple[int, ...],
    y_shape: tuple[int, ...],
    *,
    y_dtype: Any = None,
    fold: bool = True,
    exact: bool = False,
) -> CapturedStep:
    """``train_step(model, loss_fn, optimizer, x, y, fold=fold, exact=exact)`` as a replay.

    Shape: x_shape (N, D_in); y_shape as ``loss_fn`` expects, (N, D_out) or (N,) labels.
    ``y_dtype``: the labels' integer dtype (default int64) or the targets' (default the
    model's). Raises ``NotCapturable`` for a part the tape cannot record.
    """
    params = _check_parameters(model, optimizer)
    dtype = params[0].dtype
    tape = Tape(dtype)
    x = tape.buffer(tuple(x_shape))
    labels = type(loss_fn) is SoftmaxCrossEntropy
    y = tape.buffer(tuple(y_shape), y_dtype or (np.int64 if labels else dtype))
    if labels and not (y.dtype.kind in "iu" and np.can_cast(y.dtype, np.intp)):
        raise NotCapturable(f"capture needs integer labels, received dtype {y.dtype.name}")
    y_pred, backward = _record_forward(tape, model, x)
    read_loss, grad_y_pred = _record_loss(tape, loss_fn, y_pred, y)
    destination = _destination(tape, optimizer, params, fold, exact)
    backward(grad_y_pred, False, destination)
    destination.finish(params)
    guard = _record_optimizer(tape, optimizer, params, destination)
    arrays = [(parameter, parameter.data) for parameter in params]

    def unchanged() -> bool:
        for parameter, data in arrays:
            if parameter.data is not data:
                return False
        return guard()

    def eager(x: Array, y: Array) -> float:
        return train_step(model, loss_fn, optimizer, x, y, fold=fold, exact=exact)

    classes = y_pred.shape[1] if labels else None
    return CapturedStep(tape, (x, y), read_loss, unchanged, eager, classes)


def _check_parameters(model: Module, optimizer: Optimizer) -> list[Parameter]:
    params = model.parameters()
    if not params:
        raise NotCapturable("capture needs a model with parameters")
    if not all(isinstance(p.data, np.ndarray) and p.dtype.kind == "f" for p in params):
        raise NotCapturable("capture records numpy arrays; a model on torch trains eagerly")
    if [id(p) for p in params] != [id(p) for p in optimizer.params]:
        raise NotCapturable("capture needs an optimizer built on model.parameters(), in order")
    if len({id(p) for p in params}) != len(params) or len({p.dtype for p in params}) != 1:
        raise NotCapturable("capture needs distinct parameters of one dtype")
    return params


# ----- the model: forward now, backward later, in reverse --------------------------------


def _record_forward(tape: Tape, model: Module, x: Array) -> tuple[Array, Backward]:
    record = _LAYERS.get(type(model))
    if record is None:
        raise NotCapturable(f"capture cannot record a {type(model).__name__} layer")
    return record(tape, model, x)


def _sequential(tape: Tape, model: Module, x: Array) -> tuple[Array, Backward]:
    assert isinstance(model, Sequential)
    backwards = []
    for layer in model.layers:
        x, layer_backward = _record_forward(tape, layer, x)
        backwards.append(layer_backward)

    def backward(grad_y: Array, need_input_grad: bool, grads: Destination) -> Array | None:
        for index, layer_backward in reversed(list(enumerate(backwards))):
            grad = layer_backward(grad_y, need_input_grad or index > 0, grads)
            if grad is None:
                return None
            grad_y = grad
        return grad_y

    return x, backward


def _linear(tape: Tape, layer: Module, x: Array) -> tuple[Array, Backward]:
    assert isinstance(layer, Linear)
    weight, bias = layer.weight, layer.bias
    h = tape.buffer((x.shape[0], layer.out_features))
    tape.record(np.matmul, x, weight.data, h)  # h = x.dot(w1)
    if bias is not None:
        tape.record(np.add, h, bias.data, h)

    def backward(grad_h: Array, need_input_grad: bool, grads: Destination) -> Array | None:
        grad_x = None
        if need_input_grad:
            grad_x = tape.buffer(x.shape)
            tape.record(np.matmul, grad_h, weight.data.T, grad_x)
        grads.product(weight, x.T, grad_h)  # grad_w1 = x.T.dot(grad_h)
        if bias is not None:
            grads.column_sum(bias, grad_h)  # grad_b1 = grad_h.sum(axis=0)
        return grad_x

    return h, backward


def _relu(tape: Tape, layer: Module, h: Array) -> tuple[Array, Backward]:
    h_relu = tape.buffer(h.shape)
    tape.record(np.maximum, h, 0, out=h_relu)

    def backward(grad_h_relu: Array, need_input_grad: bool, grads: Destination) -> Array | None:
        if not need_input_grad:
            return None
        bits = np.dtype(f"u{h.dtype.itemsize}")  # relu_mask's three passes, on fixed buffers
        grad_h, keep = tape.buffer(h.shape), tape.buffer(h.shape, bits)
        tape.record(np.less, h, 0, keep)  # 1 where h < 0, else 0 (a bool to an unsigned: safe)
        tape.record(np.subtract, keep, 1, keep)  # 0 where h < 0, else all ones
        tape.record(np.bitwise_and, grad_h_relu.view(bits), keep, grad_h.view(bits))
        return grad_h

    return h_relu, backward


def _tanh(tape: Tape, layer: Module, h: Array) -> tuple[Array, Backward]:
    h_tanh = tape.buffer(h.shape)
    tape.record(np.tanh, h, h_tanh)

    def backward(grad_h_tanh: Array, need_input_grad: bool, grads: Destination) -> Array | None:
        if not need_input_grad:
            return None
        grad_h = tape.buffer(h.shape)
        tape.record(np.multiply, h_tanh, h_tanh, grad_h)
        tape.record(np.subtract, 1, grad_h, grad_h)
        tape.record(np.multiply, grad_h, grad_h_tanh, grad_h)
        return grad_h

    return h_tanh, backward


def _identity(tape: Tape, layer: Module, h: Array) -> tuple[Array, Backward]:
    return h, lambda grad, need_input_grad, grads: grad if need_input_grad else None


_LAYERS: dict[type[Module], Callable[[Tape, Any, Array], tuple[Array, Backward]]] = {
    Sequential: _sequential,
    Linear: _linear,
    ReLU: _relu,
    Tanh: _tanh,
    Identity: _identity,
}


# ----- the loss ---------------------------------------------------------------------------


def _record_loss(
    tape: Tape, loss_fn: Loss, y_pred: Array, y: Array
) -> tuple[Callable[[], float], Array]:
    """The loss's forward and backward: how to read the loss, and grad_y_pred's buffer."""
    kind = type(loss_fn)
    if kind is SoftmaxCrossEntropy:
        assert isinstance(loss_fn, SoftmaxCrossEntropy)
        if loss_fn.weight is not None:
            raise NotCapturable("capture cannot record SoftmaxCrossEntropy with class weights")
        return _cross_entropy(tape, y_pred, y)
    if kind not in (SumSquaredError, MeanSquaredError):
        raise NotCapturable(f"capture cannot record the loss {kind.__name__}")
    error, squared, total = tape.buffer(y.shape), tape.buffer(y.shape), tape.scalar()
    tape.record(np.subtract, y_pred, y, error)
    tape.record(np.square, error, squared)
    tape.record(np.add.reduce, squared, None, None, total)  # np.square(y_pred - y).sum()
    grad_y_pred = tape.buffer(y.shape)
    if kind is SumSquaredError:
        tape.record(np.multiply, error, 2.0, grad_y_pred)  # grad_y_pred = 2.0 * (y_pred - y)
        return lambda: float(total), grad_y_pred
    size = y.size
    tape.record(np.multiply, error, 2.0 / size, grad_y_pred)
    return lambda: float(total) / size, grad_y_pred


def _cross_entropy(tape: Tape, scores: Array, y: Array) -> tuple[Callable[[], float], Array]:
    """SoftmaxCrossEntropy's forward and backward, as log_softmax computes them."""
    n, classes = scores.shape
    picks = tape.buffer((n,), np.intp)  # the flat index of y's score in each row
    tape.record(np.add, np.arange(n, dtype=np.intp) * classes, y, picks)
    largest, shifted, total = tape.buffer((n, 1)), tape.buffer(scores.shape), tape.scalar()
    tape.record(np.maximum.reduce, scores, -1, None, largest, True)
    tape.record(np.subtract, scores, largest, shifted)  # shifted = scores - max(scores)
    exp, log_sum = tape.buffer(scores.shape), tape.buffer((n, 1))
    tape.record(np.exp, shifted, exp)
    tape.record(np.add.reduce, exp, -1, None, log_sum, True)
    tape.record(np.log, log_sum, log_sum)
    log_probs, probs, nll = tape.buffer(scores.shape), tape.buffer(scores.shape), tape.buffer((n,))
    tape.record(np.subtract, shifted, log_sum, log_probs)
    tape.record(np.exp, log_probs, probs)
    tape.record(log_probs.reshape(-1).take, picks, None, nll, "clip")  # labels are checked
    tape.record(np.negative, nll, nll)  # nll = -log_probs[np.arange(len(y)), y]
    tape.record(np.add.reduce, nll, None, None, total)
    grad_y_pred, one_hot = tape.buffer(scores.shape), np.zeros(scores.shape, tape.dtype)
    tape.record(one_hot.reshape(-1).put, picks, 1)
    tape.record(np.subtract, probs, one_hot, grad_y_pred)  # probs, minus 1 at each label
    tape.record(one_hot.reshape(-1).put, picks, 0)
    tape.record(np.true_divide, grad_y_pred, n, grad_y_pred)  # (probs - one_hot(y)) / N
    count = np.intp(n)
    return lambda: float(total.dtype.type(total[()] / count)), grad_y_pred  # nll.mean()


# ----- where the gradients go -------------------------------------------------------------


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


def _destination(
    tape: Tape, optimizer: Optimizer, params: list[Parameter], fold: bool, exact: bool
) -> Destination:
    if fold and type(optimizer) is SGD and optimizer.fused_gradients(exact) is not None:
        assert isinstance(optimizer, SGD)
        return FusedSGD(tape, optimizer, exact)
    return Destination(tape, params if type(optimizer) is Adam else None)


# ----- the optimizer's step ---------------------------------------------------------------


def _record_optimizer(
    tape: Tape, optimizer: Optimizer, params: list[Parameter], destination: "Destination"
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
    return lambda: shape() == recorded and _same(slots, optimizer.velocities, optimizer.decayed)


def _same(slots: list[Array], *now: list[Array]) -> bool:
    """Whether the optimizer still holds the arrays the tape was recorded on."""
    current = [array for arrays in now for array in arrays]
    return all(a is b for a, b in zip(slots, current, strict=False))


def _adam(
    tape: Tape, optimizer: Adam, params: list[Parameter], flat_grad: Array
) -> Callable[[], bool]:
    """Adam.step's lines, each over every parameter at once.

    Element-wise operations round each element alike, whatever the array it sits in:
    the gradients, ``m`` and ``v`` become views of one flat buffer each (``.grad`` and
    the optimizer's slots are set to these views, their values kept), so each line is
    one call, not one per parameter. The weights stay the model's own arrays.
    """
    names: tuple[str, ...] = ("beta1", "beta2", "one_minus_beta1", "one_minus_beta2", "eps")
    names += ("weight_decay", "decay", "step_size", "sqrt_bias_correction2")
    values = tape.buffer((len(names),))
    live = dict(zip(names, (values[i : i + 1].reshape(()) for i in range(len(names))), strict=True))

    def read() -> None:  # the numbers Adam.step computes, from its attributes now
        optimizer.t += 1
        beta1, beta2, lr, weight_decay = *optimizer.betas, optimizer.lr, optimizer.weight_decay
        values[:] = (
            beta1, beta2, 1 - beta1, 1 - beta2, optimizer.eps, weight_decay,
            1 - lr * weight_decay, lr / (1 - beta1**optimizer.t),
            math.sqrt(1 - beta2**optimizer.t),
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
    tape.record(np.true_divide, s, live["sqrt_bias_correction2"], s)
    tape.record(np.add, s, live["eps"], s)  # sqrt(v) / sqrt(1-b2**t) + eps
    tape.record(np.true_divide, m, s, s)
    tape.record(np.multiply, live["step_size"], s, s)  # step_size * m / denom


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
