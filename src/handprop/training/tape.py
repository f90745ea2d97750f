"""The tape a captured step replays: array calls on fixed buffers, recorded in order."""

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from handprop._types import Array

if TYPE_CHECKING:
    from handprop.layers.module import Module
    from handprop.losses import Loss
    from handprop.parameter import Parameter


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

    def constant(self, value: float, dtype: Any = None) -> Array:
        """``value`` as a 0-d array of the tape's dtype (or ``dtype``): the number a Python
        operand becomes, without converting it again at every call (a third of a small
        call's cost)."""
        return np.full((), value, dtype=self.dtype if dtype is None else dtype)

    def record(self, function: Callable[..., object], *args: object, **keywords: object) -> None:
        """Record ``function(*args, **keywords)``, to be called on every replay."""
        self.calls.append((partial(function, **keywords) if keywords else function, args))

    def replay(self) -> None:
        for function, args in self.calls:
            function(*args)

    def cannot(self, what: str) -> NotCapturable:
        """The error a part raises for what the tape cannot record: "capture cannot record
        ``what``" (for a part that cannot import it: losses.py, imported by training)."""
        return NotCapturable(f"capture cannot record {what}")

    def layer(self, layer: "Module", x: Array) -> tuple[Array, "RecordedBackward"]:
        """``layer.record(self, x)``: its forward recorded on ``x``'s buffer, its output's
        buffer, and the function that records its backward.

        Only where what ``train_step`` runs is what ``record`` states: a subclass that
        changes ``forward``, ``backward`` or ``backward_parameters`` without its own
        ``record`` raises ``NotCapturable`` (and trains eagerly).
        """
        _check_recorded(layer, ("forward", "backward", "backward_parameters"), "a", "layer")
        return layer.record(self, x)  # type: ignore[attr-defined,no-any-return]

    def loss(self, loss_fn: "Loss", y_pred: Array, y: Array) -> tuple[Callable[[], float], Array]:
        """``loss_fn.record(self, y_pred, y)``: the loss's forward and backward recorded; how
        to read the loss after a replay, and grad_y_pred's buffer. As for ``layer``, only
        where no subclass changes ``forward``, ``total`` or ``backward`` below ``record``."""
        _check_recorded(loss_fn, ("forward", "total", "backward"), "the loss", "")
        return loss_fn.record(self, y_pred, y)  # type: ignore[attr-defined,no-any-return]


def _check_recorded(part: object, runs: tuple[str, ...], article: str, noun: str) -> None:
    """Raise NotCapturable unless ``part``'s class has a ``record`` and no class below the
    one that defines it (a subclass) redefines a method of ``runs``, which the eager step
    calls and the tape would not."""
    kind = type(part)
    owner = _defined_in(kind, "record")
    below = [] if owner is None else kind.__mro__[: kind.__mro__.index(owner)]
    if owner is None or any(name in vars(c) for c in below for name in runs):
        raise NotCapturable(f"capture cannot record {article} {kind.__name__} {noun}".rstrip())


def _defined_in(kind: type, name: str) -> type | None:
    """The class in ``kind``'s method resolution order that defines ``name``, if any."""
    return next((owner for owner in kind.__mro__ if name in vars(owner)), None)


class RecordedGradients(Protocol):
    """Where a recorded backward sends its parameters' gradients (capture_update.py)."""

    def product(self, parameter: "Parameter", a: Array, b: Array) -> None:
        """Record ``grad = a @ b`` (or, fused, the update it makes)."""

    def column_sum(self, parameter: "Parameter", grad_h: Array) -> None:
        """Record ``grad = grad_h.sum(axis=0)``."""


#: What a layer's ``record(tape, x)`` returns beside its output's buffer: a function that
#: records its backward, ``backward(grad_y, need_input_grad, grads) -> grad_x`` (None when
#: the input's gradient is not needed), called in reverse order after the loss's.
RecordedBackward = Callable[[Array, bool, RecordedGradients], Array | None]
