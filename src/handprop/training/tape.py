"""The tape a captured step replays: array calls on fixed buffers, recorded in order."""

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from handprop._types import Array


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
