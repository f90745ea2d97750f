"""What every contender provides: a step to time and, where it trains, its current weights."""

from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.problem import Array, Problem


class Skipped(Exception):
    """A contender that cannot run here, e.g. its library is not installed."""


@dataclass
class Contender:
    """One way of computing the step.

    ``step()`` runs one training step and returns its loss as a float (so the
    work is finished when it returns). ``weights()`` returns copies of the current
    weights in the tutorial's layout (D_in, D_out), or is None when the contender
    updates no weights (the GEMM floor). ``numpy_memory`` says whether its memory
    comes from numpy's allocator, which tracemalloc sees.
    """

    step: Callable[[], float]
    weights: Callable[[], list[Array]] | None
    numpy_memory: bool
    note: str = ""


Factory = Callable[[Problem], Contender]
