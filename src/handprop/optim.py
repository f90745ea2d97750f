"""Optimizers: a few lines of update rule each, simplest first.

Each is built with the flat list of parameters it updates and keeps its state
(velocities, moments) aligned with that list by position. It holds the
Parameter objects themselves, never copies of their arrays: whatever replaces
``parameter.data`` is what the next ``step()`` updates.
"""

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from handprop._types import Array
from handprop.backend import NUMPY
from handprop.parameter import Gradients, Parameter, as_matrix
from handprop.registry import Registry

if TYPE_CHECKING:  # a captured step's tape (training/tape.py); training imports this module
    from handprop.training.tape import Tape

#: Optimizer classes by the names the command line, scikit-learn's ``solver`` and checkpoints use.
OPTIMIZERS: Registry[type["Optimizer"]] = Registry("optimizer")


def _finite(owner: str, name: str, value: object, low: float, high: float = math.inf) -> float:
    """``value`` as a float, if it is a finite number in [low, high); else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise TypeError(f"{owner} {name} must be a number, received {type(value).__name__}")
    number = float(value)
    if not (math.isfinite(number) and low <= number < high):
        upper = "" if high == math.inf else f" and < {high}"
        raise ValueError(f"{owner} {name} must be finite, >= {low}{upper}; received {value!r}")
    return number


class Optimizer:
    """Base class: holds the parameters and the learning rate ``lr``.

    A subclass describes itself for checkpoints: ``hyperparameters()`` (what
    its constructor takes), ``slots()`` (its state arrays, aligned with
    ``params``) and ``scalars()`` / ``load_scalars()`` (counters such as Adam's
    ``t``). ``default_lr`` is the rate the command line uses when none is given.

    ``xp`` is the array namespace of the parameters (``handprop.backend``): all of
    them live in one library, on one device, or the constructor raises a TypeError.
    """

    default_lr = 0.01

    def __init__(self, params: Iterable[Parameter], lr: float) -> None:
        self.params = list(params)
        name = type(self).__name__
        if not self.params:
            raise ValueError(f"{name} received an empty parameter list")
        for index, parameter in enumerate(self.params):
            if not isinstance(parameter, Parameter):
                raise TypeError(
                    f"{name} expected Parameter objects (model.parameters()), "
                    f"received {type(parameter).__name__} at position {index}"
                )
        self.lr = _finite(name, "lr", lr, 0.0)
        self.distinct = len({id(p) for p in self.params}) == len(self.params)
        self.xp: Any = self.params[0].xp
        self._check_place()

    def _check_place(self) -> None:
        """A TypeError if a parameter moved to another library or device than ``xp``."""
        xp = self.xp
        for parameter in self.params:
            if parameter.xp is not xp:
                raise TypeError(
                    f"{type(self).__name__} holds parameters on {xp.name} and on "
                    f"{parameter.xp.name}; handprop never mixes array libraries or devices: "
                    "move the whole model (model.to(...)), then build the optimizer"
                )

    @classmethod
    def from_options(cls, params: Iterable[Parameter], **options: Any) -> "Optimizer":
        """``cls(params, ...)`` with those of ``options`` that its constructor takes.

        The command line offers one set of flags (lr, momentum, weight_decay) for
        every optimizer; each takes what applies to it.
        """
        import inspect  # here: a training step never needs it, and it is slow to import

        accepted = inspect.signature(cls.__init__).parameters
        return cls(params, **{k: v for k, v in options.items() if k in accepted})

    def step(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define step")

    def zero_grad(self) -> None:
        """Clear the gradients of every parameter this optimizer updates."""
        for parameter in self.params:
            parameter.zero_grad()

    def reset_state(self) -> None:
        """Forget accumulated state (momentum, moments), as after construction."""
        for arrays in self.slots().values():
            for array in arrays:
                self.xp.fill(array, 0)
        self.load_scalars({name: 0 for name in self.scalars()})

    def fused_gradients(self, exact: bool = False) -> Gradients | None:
        """A ``Gradients`` that applies this step inside backward, or None if there is none.

        ``train_step`` passes it to ``backward`` and then still calls ``step()``,
        which updates the parameters the fused path did not reach.
        """
        return None

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's arguments besides ``params``, as JSON-able values."""
        return {"lr": self.lr}

    def slots(self) -> dict[str, list[Array]]:
        """The state arrays by name, each list aligned with ``params`` (checkpoints save them)."""
        return {}

    def scalars(self) -> dict[str, int]:
        """Integer state, e.g. Adam's step count ``t`` (checkpoints save it)."""
        return {}

    def load_scalars(self, scalars: dict[str, int]) -> None:
        """Set what ``scalars()`` returns."""


@OPTIMIZERS.register("sgd")
class SGD(Optimizer):
    """Stochastic gradient descent, as ``torch.optim.SGD`` (no dampening).

    With the defaults this is the tutorial's ``w1 -= learning_rate * grad_w1``.
    With momentum: ``v = momentum * v + g; w -= lr * v`` (Nesterov:
    ``w -= lr * (g + momentum * v)``), where ``g = grad + weight_decay * w``.
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        self.momentum = _finite("SGD", "momentum", momentum, 0.0, 1.0)
        self.weight_decay = _finite("SGD", "weight_decay", weight_decay, 0.0)
        if nesterov and self.momentum == 0:
            raise ValueError("SGD nesterov=True needs momentum > 0")
        self.nesterov = bool(nesterov)
        xp = self.xp
        self.velocities: list[Array] = (
            [xp.zeros_like(p.data) for p in self.params] if self.momentum else []
        )
        self.scratch = [xp.empty_like(p.data) for p in self.params]  # g + momentum * v, lr * g
        self.decayed = [xp.empty_like(p.data) for p in self.params] if self.weight_decay else []
        self.fused = _FusedSGD(self)

    def step(self) -> None:
        self._check_place()
        xp = self.xp
        done = self.fused.take_updated()  # parameters a fused backward already moved
        for index, parameter in enumerate(self.params):
            if index in done:
                continue
            grad, scratch = parameter.grad, self.scratch[index]
            if self.weight_decay:  # g = grad + weight_decay * w
                decayed = xp.multiply(self.weight_decay, parameter.data, out=self.decayed[index])
                grad = xp.add(grad, decayed, out=decayed)
            if self.momentum:
                velocity = self.velocities[index]
                xp.multiply(velocity, self.momentum, out=velocity)
                xp.add(velocity, grad, out=velocity)  # v = momentum * v + g
                if self.nesterov:  # g + momentum * v
                    grad = xp.add(
                        grad, xp.multiply(self.momentum, velocity, out=scratch), out=scratch
                    )
                else:
                    grad = velocity
            _subtract_scaled(xp, parameter.data, self.lr, grad, scratch)  # w -= lr * g

    def record(self, tape: "Tape", grad: Array | None) -> Callable[[], bool]:
        """``step``'s array calls on a tape (a captured step, training/capture.py), line for
        line, its numbers read live at every replay; ``grad`` is None when the fused
        backward already moved every weight. Returns a check that the tape still fits."""

        def structure() -> tuple[bool, ...]:
            return (self.momentum != 0, self.nesterov, self.weight_decay != 0)

        if _other_dtype(self.params, self.velocities, self.scratch, self.decayed):
            raise tape.cannot("SGD whose state has another dtype than its parameters")
        recorded, xp = structure(), tape.xp
        if grad is None:
            return lambda: structure() == recorded
        lr, momentum, weight_decay = tape.scalar(), tape.scalar(), tape.scalar()

        def read() -> None:
            lr[()], momentum[()], weight_decay[()] = self.lr, self.momentum, self.weight_decay

        tape.host(read)
        for index, parameter in enumerate(self.params):
            grad, data, scratch = parameter.grad, parameter.data, self.scratch[index]
            if self.weight_decay:  # g = grad + weight_decay * w
                decayed = self.decayed[index]
                tape.record(xp.multiply, weight_decay, data, decayed)
                tape.record(xp.add, grad, decayed, decayed)
                grad = decayed
            if self.momentum:
                velocity = self.velocities[index]
                tape.record(xp.multiply, velocity, momentum, velocity)
                tape.record(xp.add, velocity, grad, velocity)  # v = momentum * v + g
                if self.nesterov:  # g + momentum * v
                    tape.record(xp.multiply, momentum, velocity, scratch)
                    tape.record(xp.add, grad, scratch, scratch)
                    grad = scratch
                else:
                    grad = velocity
            tape.record(xp.multiply, lr, grad, scratch)
            tape.record(xp.subtract, data, scratch, data)  # w -= lr * g
        holds = tape.holds(lambda: (self.velocities, self.scratch, self.decayed))
        return lambda: structure() == recorded and holds()

    def zero_grad(self) -> None:
        """Clear the gradients, and forget what a fused backward that never reached step() moved."""
        super().zero_grad()
        self.fused.take_updated()

    def fused_gradients(self, exact: bool = False) -> Gradients | None:
        """Plain SGD (no momentum, no weight decay) folded into the gradient products.

        ``w += -lr * (x.T @ grad_h)`` is one BLAS gemm into the weights (alpha =
        -lr, beta = 1), which rounds once where gradient-then-update rounds twice;
        ``exact=True`` rounds ``-lr * (x.T @ grad_h)`` first and then adds it, the
        tutorial's arithmetic to the last bit (one more pass over the weights).
        """
        if self.momentum or self.weight_decay or not self.distinct:
            return None
        self.fused.begin(exact)
        return self.fused

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
        }

    def slots(self) -> dict[str, list[Array]]:
        return {"velocity": self.velocities}


def _other_dtype(params: list[Parameter], *states: list[Array]) -> bool:
    """Whether an array of ``states`` (lists aligned with ``params``) has another dtype than
    its parameter: a ``model.to(dtype)`` after the optimizer was built leaves them so, and
    ``step`` computes in their dtype, which a captured step's buffers do not."""
    pairs = (zip(params, state, strict=False) for state in states)  # a slot may be unused: []
    return any(a.dtype != p.data.dtype for pair in pairs for p, a in pair)


def views_of(flat: Any, arrays: list[Any]) -> list[Any]:
    """Consecutive views of the 1-d ``flat``, shaped like each of ``arrays`` in turn."""
    views, start = [], 0
    for array in arrays:
        size = math.prod(array.shape)
        views.append(flat[start : start + size].reshape(array.shape))
        start += size
    return views


def _moments_in_one(xp: Any, params: list[Parameter]) -> tuple[list[Array], list[Array]]:
    """Two lists of zeros shaped like each parameter (Adam's ``m`` and ``v``), all views of
    one flat buffer, ``m``'s first, when the parameters share a dtype: a captured step
    updates each moment in one call per line, and both at once where their lines match
    (``Adam.record``). Checkpoints write into them in place, so they stay views for good."""
    if len({parameter.dtype for parameter in params}) != 1:
        return [xp.zeros_like(p.data) for p in params], [xp.zeros_like(p.data) for p in params]
    data = [parameter.data for parameter in params]
    size = sum(math.prod(array.shape) for array in data)
    flat = xp.zeros((2 * size,), params[0].dtype)
    return views_of(flat[:size], data), views_of(flat[size:], data)


#: Elements of a numpy array ``_subtract_scaled`` updates at a time (256 KiB of float64).
_PART = 32768


def _subtract_scaled(xp: Any, w: Array, lr: float, grad: Array, scratch: Array) -> None:
    """``w -= lr * grad``, ``lr * grad`` rounded first, in ``scratch`` (the shape of ``w``).

    On numpy a part at a time: two whole passes (``lr * grad`` into scratch, then
    subtract) stream five arrays' worth of memory, parts that stay in cache three, with
    the same rounding (measured: 11.8 vs 6.6 ms for a 4096 x 1024 float64 weight, one
    core). It is the update of every unfused step, a data-parallel one's included.
    """
    if xp is not NUMPY or w.size <= _PART or not (w.flags.c_contiguous and grad.flags.c_contiguous):
        xp.subtract(w, xp.multiply(lr, grad, out=scratch), out=w)
        return
    in_place = grad is scratch  # Nesterov's g + momentum * v lives in scratch
    w, grad, scratch = w.reshape(-1), grad.reshape(-1), scratch.reshape(-1)
    for start in range(0, w.size, _PART):
        part = slice(start, start + _PART)
        step = scratch[part] if in_place else scratch[: min(_PART, w.size - start)]
        np.subtract(w[part], np.multiply(lr, grad[part], out=step), out=w[part])


class _FusedSGD(Gradients):
    """Gradients that move the weights at once: ``w += -lr * grad``, for ``SGD`` alone.

    It records which of the optimizer's parameters it moved, so that ``SGD.step``
    leaves those alone and updates the others (a layer that wrote ``.grad``
    itself, a parameter that received nothing) from their gradients as usual.
    A parameter the optimizer does not hold gets its gradient accumulated.
    """

    def __init__(self, optimizer: SGD) -> None:
        self.optimizer = optimizer
        self.position = {id(p): index for index, p in enumerate(optimizer.params)}
        self.updated: set[int] = set()
        self.exact = False

    def begin(self, exact: bool) -> None:
        self.updated.clear()
        self.exact = exact

    def take_updated(self) -> set[int]:
        done, self.updated = self.updated, set()
        return done

    def add(self, parameter: Parameter, grad: Array) -> None:
        index = self.position.get(id(parameter))
        if index is None:
            parameter.accumulate(grad)
            return
        xp = self.optimizer.xp
        step = xp.multiply(self.optimizer.lr, grad, out=self.optimizer.scratch[index])
        xp.subtract(parameter.data, step, out=parameter.data)  # w -= lr * grad
        self.updated.add(index)

    def add_product(self, parameter: Parameter, a: Array, b: Array) -> None:
        index = self.position.get(id(parameter))
        if index is None:
            parameter.accumulate_product(a, b)
            return
        xp = self.optimizer.xp
        factor = -self.optimizer.lr
        rows, columns = a.shape[0], b.shape[1]
        if self.exact:  # round(-lr * (a @ b)), then add: as w -= lr * grad rounds
            scratch = self.optimizer.scratch[index]
            xp.gemm(a, b, out=as_matrix(scratch, rows, columns), alpha=factor, beta=0.0)
            xp.add_into(scratch, parameter.data)
        else:
            xp.gemm(a, b, out=as_matrix(parameter.data, rows, columns), alpha=factor, beta=1.0)
        self.updated.add(index)

    def add_rows(self, parameter: Parameter, rows: slice, a: Array, b: Array) -> None:
        """``w[rows] += -lr * (a @ b)``: a block of a weight's rows, which counts as moved.

        A data-parallel rank's share of the update, the other rows another rank's
        (``training/row_split.py``). Shape: w (D_in, D_out); a (len(rows), N); b (N, D_out).
        """
        index = self.position[id(parameter)]
        out = parameter.data[rows]
        self.optimizer.xp.gemm(a, b, out=out, alpha=-self.optimizer.lr, beta=1.0)
        self.updated.add(index)


@OPTIMIZERS.register("adam")
class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), as ``torch.optim.Adam``; ``decoupled=True`` is AdamW.

    ``m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;
    w -= lr / (1-b1**t) * m / (sqrt(v) / sqrt(1-b2**t) + eps)``, computed in the paper's
    own cheaper order (end of its section 2): the bias corrections folded into two numbers,
    ``w -= alpha * m / (sqrt(v) + eps_hat)`` with ``alpha = lr * sqrt(1-b2**t) / (1-b1**t)``
    and ``eps_hat = eps * sqrt(1-b2**t)``: one division over every weight fewer (the same
    value; the rounding differs from torch's by about one unit in the last place).
    Weight decay adds ``weight_decay * w`` to ``g``, or with ``decoupled=True``
    multiplies ``w`` by ``1 - lr * weight_decay`` before the step.
    """

    default_lr = 1e-3

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ) -> None:
        super().__init__(params, lr)
        if len(betas) != 2:
            raise ValueError(f"Adam betas must be a pair (beta1, beta2), received {betas!r}")
        self.betas = (
            _finite("Adam", "betas[0]", betas[0], 0.0, 1.0),
            _finite("Adam", "betas[1]", betas[1], 0.0, 1.0),
        )
        self.eps = _finite("Adam", "eps", eps, 0.0)
        self.weight_decay = _finite("Adam", "weight_decay", weight_decay, 0.0)
        self.decoupled = bool(decoupled)
        xp = self.xp
        self.t = 0
        self.m, self.v = _moments_in_one(xp, self.params)
        self.scratch = [(xp.empty_like(p.data), xp.empty_like(p.data)) for p in self.params]

    def step(self) -> None:
        self._check_place()
        xp = self.xp
        self.t += 1
        beta1, beta2 = self.betas
        sqrt_bias_correction2 = math.sqrt(1 - beta2**self.t)
        alpha = self.lr / (1 - beta1**self.t) * sqrt_bias_correction2
        eps_hat = self.eps * sqrt_bias_correction2
        for parameter, m, v, (g, s) in zip(self.params, self.m, self.v, self.scratch, strict=True):
            grad, w = parameter.grad, parameter.data
            if self.weight_decay and self.decoupled:
                xp.multiply(w, 1 - self.lr * self.weight_decay, out=w)
            elif self.weight_decay:  # g = grad + weight_decay * w
                grad = xp.add(grad, xp.multiply(self.weight_decay, w, out=g), out=g)
            xp.multiply(m, beta1, out=m)
            xp.add(m, xp.multiply(1 - beta1, grad, out=s), out=m)  # m = b1*m + (1-b1)*g
            xp.multiply(v, beta2, out=v)
            gg = xp.multiply(xp.multiply(1 - beta2, grad, out=s), grad, out=s)
            xp.add(v, gg, out=v)  # v = b2*v + (1-b2)*g*g
            denom = xp.add(xp.sqrt(v, out=s), eps_hat, out=s)  # sqrt(v) + eps_hat
            update = xp.multiply(alpha, xp.divide(m, denom, out=s), out=s)
            xp.subtract(w, update, out=w)  # w -= alpha * m / denom

    def record(self, tape: "Tape", grad: Array | None) -> Callable[[], bool]:
        """``step``'s lines on a tape (a captured step, training/capture.py), each over every
        parameter at once, its numbers computed live at every replay as ``step`` computes them.

        ``grad`` is the flat buffer every ``.grad`` views; ``m`` and ``v`` are views of one
        flat buffer from the start (``_moments_in_one``), so each line is one numpy call
        over all the parameters, not one per parameter, with the same bits (an element-wise
        call rounds each element alike, whatever array it sits in), and the lines that ``m``
        and ``v`` share (``* beta``, ``(1 - beta) * g``, ``+``) one call for both, on the
        two stacked. Only ``w -= step`` stays per parameter: the weights are the model's own.
        """
        if grad is None:
            raise tape.cannot("Adam without the gradients")
        scratch = [[g for g, _ in self.scratch], [s for _, s in self.scratch]]
        if _other_dtype(self.params, self.m, self.v, *scratch):
            raise tape.cannot("Adam whose state has another dtype than its parameters")
        xp = tape.xp
        names: tuple[str, ...] = ("beta1", "beta2", "one_minus_beta1", "one_minus_beta2")
        names += ("eps_hat", "alpha", "weight_decay", "decay")
        buffers, fill = tape.numbers(len(names))
        live = dict(zip(names, buffers, strict=True))
        betas = tape.stacked(live["beta1"], live["beta2"])  # (2,) or None
        complements = tape.stacked(live["one_minus_beta1"], live["one_minus_beta2"])

        def read() -> None:  # the numbers step computes, from the attributes now
            self.t += 1
            beta1, beta2, lr, weight_decay = *self.betas, self.lr, self.weight_decay
            sqrt_bias_correction2 = math.sqrt(1 - beta2**self.t)
            fill(
                beta1, beta2, 1 - beta1, 1 - beta2, self.eps * sqrt_bias_correction2,
                lr / (1 - beta1**self.t) * sqrt_bias_correction2,
                weight_decay, 1 - lr * weight_decay,
            )  # fmt: skip

        tape.host(read)
        (m, self.m[:]), (v, self.v[:]) = tape.flatten(self.m), tape.flatten(self.v)
        data = [parameter.data for parameter in self.params]
        if self.weight_decay and self.decoupled:
            for w in data:  # w *= 1 - lr * weight_decay
                tape.record(xp.multiply, w, live["decay"], w)
        elif self.weight_decay:  # g = grad + weight_decay * w
            g = tape.buffer(m.shape)
            for w, decayed in zip(data, views_of(g, data), strict=True):
                tape.record(xp.multiply, live["weight_decay"], w, decayed)
            tape.record(xp.add, grad, g, g)
            grad = g
        moments = tape.stacked(m, v)  # m above v, (2, P), where one buffer holds them so
        if moments is not None and betas is not None and complements is not None:
            scaled = tape.buffer(moments.shape)  # (1-b1)*g above (1-b2)*g*g
            tape.record(xp.multiply, moments, betas.reshape(2, 1), moments)
            tape.record(xp.multiply, complements.reshape(2, 1), grad, scaled)
            tape.record(xp.multiply, scaled[1], grad, scaled[1])
            tape.record(xp.add, moments, scaled, moments)  # m = b1*m + (1-b1)*g; v likewise
            s = scaled[0]  # the step, then each w -= its part
        else:
            s = tape.buffer(m.shape)
            tape.record(xp.multiply, m, live["beta1"], m)
            tape.record(xp.multiply, live["one_minus_beta1"], grad, s)
            tape.record(xp.add, m, s, m)  # m = b1*m + (1-b1)*g
            tape.record(xp.multiply, v, live["beta2"], v)
            tape.record(xp.multiply, live["one_minus_beta2"], grad, s)
            tape.record(xp.multiply, s, grad, s)
            tape.record(xp.add, v, s, v)  # v = b2*v + (1-b2)*g*g
        tape.record(xp.sqrt, v, s)
        tape.record(xp.add, s, live["eps_hat"], s)  # denom = sqrt(v) + eps_hat
        tape.record(xp.divide, m, s, s)
        tape.record(xp.multiply, live["alpha"], s, s)  # alpha * m / denom
        for w, step in zip(data, views_of(s, data), strict=True):
            tape.record(xp.subtract, w, step, w)  # w -= alpha * m / denom

        def structure() -> tuple[bool, bool]:
            return self.weight_decay != 0, self.decoupled

        recorded, holds = structure(), tape.holds(lambda: (self.m, self.v))
        return lambda: structure() == recorded and holds()

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "betas": list(self.betas),
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "decoupled": self.decoupled,
        }

    def slots(self) -> dict[str, list[Array]]:
        return {"m": self.m, "v": self.v}

    def scalars(self) -> dict[str, int]:
        return {"t": self.t}

    def load_scalars(self, scalars: dict[str, int]) -> None:
        self.t = scalars["t"]
