"""The tutorial's run, "Warm-up: numpy", built from the library's own parts.

    N, D_in, H, D_out = 64, 1000, 100, 10
    x = np.random.randn(N, D_in); y = np.random.randn(N, D_out)
    w1 = np.random.randn(D_in, H); w2 = np.random.randn(H, D_out)
    then 500 steps of SGD on the sum of squared errors with learning_rate 1e-6.

The draws come from ``numpy.random.RandomState(seed)`` in that order, which
reproduces ``np.random.seed(seed)`` followed by the tutorial's ``randn`` calls.
With ``backend="torch"`` (or ``device="cuda"``) the same draws are moved to torch
tensors once, and the same layers compute on them.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from handprop._types import Array, float_dtype, positive_int
from handprop.backend import LIBRARIES, select
from handprop.init import standard_normal
from handprop.layers import Linear, ReLU, Sequential
from handprop.losses import SumSquaredError
from handprop.optim import SGD
from handprop.training.step import train_step


@dataclass(frozen=True)
class WarmupConfig:
    """The tutorial's sizes and settings; every field can be changed."""

    batch_size: int = 64  # N
    d_in: int = 1000  # D_in
    hidden: int = 100  # H
    d_out: int = 10  # D_out
    steps: int = 500
    lr: float = 1e-6
    seed: int = 0
    dtype: str = "float64"
    backend: str | None = None  # "numpy" or "torch"; None: numpy, or torch on a GPU device
    device: str | None = None  # "cpu" or "cuda" (torch); None: the CPU

    def __post_init__(self) -> None:
        float_dtype(self.dtype)
        if self.backend not in (None, *LIBRARIES):
            raise ValueError(f"backend must be 'numpy' or 'torch', received {self.backend!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"steps must be an integer >= 0, received {self.steps!r}")
        positive_int("batch_size", self.batch_size)


@dataclass
class WarmupRun:
    """The data, the network and the loss of every step so far."""

    x: Array
    y: Array
    model: Sequential
    losses: list[float] = field(default_factory=list)


def make_problem(config: WarmupConfig) -> WarmupRun:
    """x, y, then w1, w2 drawn from RandomState(seed) in the tutorial's order.

    On torch (``config.backend``, ``config.device``) the drawn arrays are moved there.
    """
    run = _draw(config)
    if config.backend is None and config.device is None:
        return run
    xp: Any = select(config.backend, config.device)
    if xp.library == "numpy":
        return run
    run.model.to(xp.device)
    return WarmupRun(xp.from_host(run.x), xp.from_host(run.y), run.model)


def _draw(config: WarmupConfig) -> WarmupRun:
    rng = np.random.RandomState(config.seed)
    dtype = float_dtype(config.dtype)
    x = rng.standard_normal((config.batch_size, config.d_in)).astype(dtype)
    y = rng.standard_normal((config.batch_size, config.d_out)).astype(dtype)
    model = Sequential(
        Linear(config.d_in, config.hidden, bias=False, init=standard_normal, rng=rng, dtype=dtype),
        ReLU(),
        Linear(config.hidden, config.d_out, bias=False, init=standard_normal, rng=rng, dtype=dtype),
    )
    return WarmupRun(x, y, model)


def run_warmup(
    config: WarmupConfig, on_step: Callable[[int, float], None] | None = None
) -> WarmupRun:
    """Train the tutorial's network; ``on_step(t, loss)`` sees each step's loss."""
    run = make_problem(config)
    loss_fn = SumSquaredError()
    optimizer = SGD(run.model.parameters(), lr=config.lr)
    for t in range(config.steps):
        # exact: the update rounds as the tutorial's gradient-then-update does (bit for bit).
        loss = train_step(run.model, loss_fn, optimizer, run.x, run.y, exact=True)
        run.losses.append(loss)
        if on_step is not None:
            on_step(t, loss)
    return run
