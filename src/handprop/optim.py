"""Optimizers: a few lines of update rule each, simplest first.

Each is built with the flat list of parameters it updates and keeps its state
(velocities, moments) aligned with that list by position. It holds the
Parameter objects themselves, never copies of their arrays: whatever replaces
``parameter.data`` is what the next ``step()`` updates.
"""

import math
from collections.abc import Iterable

import numpy as np

from handprop._types import Array
from handprop.parameter import Parameter


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
    """Base class: holds the parameters and the learning rate ``lr``."""

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

    def step(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define step")

    def reset_state(self) -> None:
        """Forget accumulated state (momentum, moments), as after construction."""

    def fold_factor(self) -> float | None:
        """``f`` when this step is just ``data += f * grad`` for every parameter, else None.

        ``train_step`` then folds the update into the gradient products instead
        of storing gradients and calling ``step``.
        """
        return None

    def zero_grad(self) -> None:
        for parameter in self.params:
            parameter.zero_grad()


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
        self.velocities: list[Array] = (
            [np.zeros_like(p.data) for p in self.params] if self.momentum else []
        )
        self.scratch = [np.empty_like(p.data) for p in self.params]  # g + momentum * v, lr * g
        self.decayed = [np.empty_like(p.data) for p in self.params] if self.weight_decay else []

    def step(self) -> None:
        for index, parameter in enumerate(self.params):
            grad, scratch = parameter.grad, self.scratch[index]
            if self.weight_decay:  # g = grad + weight_decay * w
                decayed = np.multiply(self.weight_decay, parameter.data, out=self.decayed[index])
                grad = np.add(grad, decayed, out=decayed)
            if self.momentum:
                velocity = self.velocities[index]
                velocity *= self.momentum
                velocity += grad  # v = momentum * v + g
                if self.nesterov:  # g + momentum * v
                    grad = np.add(
                        grad, np.multiply(self.momentum, velocity, out=scratch), out=scratch
                    )
                else:
                    grad = velocity
            parameter.data -= np.multiply(self.lr, grad, out=scratch)  # w -= lr * g

    def reset_state(self) -> None:
        for velocity in self.velocities:
            velocity.fill(0)

    def fold_factor(self) -> float | None:
        plain = self.momentum == 0 and self.weight_decay == 0 and self.distinct
        return -self.lr if plain else None


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), as ``torch.optim.Adam``; ``decoupled=True`` is AdamW.

    ``m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;
    w -= lr / (1-b1**t) * m / (sqrt(v) / sqrt(1-b2**t) + eps)``.
    Weight decay adds ``weight_decay * w`` to ``g``, or with ``decoupled=True``
    multiplies ``w`` by ``1 - lr * weight_decay`` before the step.
    """

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
        self.t = 0
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]
        self.scratch = [(np.empty_like(p.data), np.empty_like(p.data)) for p in self.params]

    def reset_state(self) -> None:
        self.t = 0
        for moment in (*self.m, *self.v):
            moment.fill(0)

    def step(self) -> None:
        self.t += 1
        beta1, beta2 = self.betas
        step_size = self.lr / (1 - beta1**self.t)
        sqrt_bias_correction2 = math.sqrt(1 - beta2**self.t)
        for parameter, m, v, (g, s) in zip(self.params, self.m, self.v, self.scratch, strict=True):
            grad = parameter.grad
            if self.weight_decay and self.decoupled:
                parameter.data *= 1 - self.lr * self.weight_decay
            elif self.weight_decay:  # g = grad + weight_decay * w
                grad = np.add(grad, np.multiply(self.weight_decay, parameter.data, out=g), out=g)
            m *= beta1
            m += np.multiply(1 - beta1, grad, out=s)  # m = b1*m + (1-b1)*g
            v *= beta2
            v += np.multiply(
                np.multiply(1 - beta2, grad, out=s), grad, out=s
            )  # v = b2*v + (1-b2)*g*g
            denom = np.sqrt(v, out=s)
            denom /= sqrt_bias_correction2
            denom += self.eps  # sqrt(v) / sqrt(1-b2**t) + eps
            parameter.data -= np.multiply(step_size, np.divide(m, denom, out=s), out=s)
