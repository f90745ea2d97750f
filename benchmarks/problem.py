"""The benchmark's sizes, and the data and initial weights every contender starts from."""

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class Size:
    """A network ``D_in -> hidden... -> D_out`` (ReLU between, no biases) on a batch of N.

    ``init`` is "standard_normal" (the tutorial's ``randn``) or "he_normal"
    (N(0, 2 / fan_in)), which keeps the larger nets from diverging at lr 1e-6.
    """

    name: str
    n: int
    d_in: int
    hidden: tuple[int, ...]
    d_out: int
    init: str
    repeats: int  # default number of timed repeats
    warmup_steps: int  # at least this many untimed steps (besides ~warmup seconds)
    paired_floor: bool = True  # time the GEMM floor again in each contender's process

    @property
    def widths(self) -> list[int]:
        return [self.d_in, *self.hidden, self.d_out]

    def describe(self) -> str:
        hidden = "x".join(str(h) for h in self.hidden)
        return f"N={self.n}, D_in={self.d_in}, H={hidden}, D_out={self.d_out}, init {self.init}"

    def gemm_flops(self) -> int:
        """FLOPs of the GEMMs alone: forward and weight gradient per layer, input gradient
        for every layer but the first."""
        widths = self.widths
        total = 0
        for index, (d_in, d_out) in enumerate(itertools.pairwise(widths)):
            products = 3 if index > 0 else 2
            total += products * 2 * self.n * d_in * d_out
        return total


SIZES: dict[str, Size] = {
    size.name: size
    for size in (
        Size("tutorial", 64, 1000, (100,), 10, "standard_normal", repeats=7, warmup_steps=3),
        Size("medium", 512, 4096, (1024,), 256, "he_normal", repeats=7, warmup_steps=2),
        Size("large", 4096, 4096, (4096,), 1024, "he_normal", 3, 1, paired_floor=False),
        Size("deep", 256, 1024, (1024,) * 4, 1024, "he_normal", repeats=7, warmup_steps=2),
    )
}


@dataclass(frozen=True)
class Problem:
    """x (N, D_in), y (N, D_out) and the weights (D_in, H)... in the tutorial's layout.

    Contenders copy these arrays; they never modify them.
    """

    size: Size
    dtype: np.dtype[Any]
    x: Array
    y: Array
    weights: tuple[Array, ...]
    lr: float = 1e-6


def make_problem(size: Size, dtype: str, seed: int = 0) -> Problem:
    """Draw x, y, then each weight, from RandomState(seed) in float64, then round to dtype.

    For the tutorial size with seed 0 these are the tutorial's arrays after ``np.random.seed(0)``.
    """
    rng = np.random.RandomState(seed)
    resolved = np.dtype(dtype)
    x = rng.standard_normal((size.n, size.d_in)).astype(resolved)
    y = rng.standard_normal((size.n, size.d_out)).astype(resolved)
    weights = []
    for fan_in, fan_out in itertools.pairwise(size.widths):
        w = rng.standard_normal((fan_in, fan_out))
        if size.init == "he_normal":
            w *= np.sqrt(2.0 / fan_in)
        weights.append(w.astype(resolved))
    for array in (x, y, *weights):
        array.flags.writeable = False
    return Problem(size, resolved, x, y, tuple(weights))
