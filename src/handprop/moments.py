"""Per-column count, mean, squared deviations and range, merged across chunks and ranks.

Chan, Golub & LeVeque's pairwise update: two parts (n_a, mean_a, m2_a) and
(n_b, mean_b, m2_b) merge into ``n = n_a + n_b``, ``delta = mean_b - mean_a``,
``mean = mean_a + delta * n_b / n``, ``m2 = m2_a + m2_b + delta**2 * n_a * n_b / n``;
the variance is ``m2 / n``. Data met a chunk at a time never needs to be in memory whole.
"""

from dataclasses import dataclass

import numpy as np

from handprop._types import Array


@dataclass(frozen=True, eq=False)
class Moments:
    """Shape: mean, m2, low, high (D,): of ``count`` rows of D columns (low, high: min, max)."""

    count: int
    mean: Array
    m2: Array
    low: Array
    high: Array

    @classmethod
    def empty(cls, width: int) -> "Moments":
        return cls(
            0, np.zeros(width), np.zeros(width), np.full(width, np.inf), np.full(width, -np.inf)
        )

    @classmethod
    def of(cls, a: Array) -> "Moments":
        """The moments of the rows of ``a`` (N, D), in float64."""
        a = np.asarray(a, dtype=np.float64)
        if len(a) == 0:
            return cls.empty(a.shape[1])
        with np.errstate(over="ignore"):  # inf for values beyond ~1e154: the caller checks
            mean = a.mean(axis=0)
            m2 = np.square(a - mean).sum(axis=0)
        return cls(len(a), mean, m2, a.min(axis=0), a.max(axis=0))

    @classmethod
    def of_chunks(cls, a: Array, rows: slice, chunk_rows: int = 65536) -> "Moments":
        """The moments of ``a[rows]``, read ``chunk_rows`` rows at a time (fits a memory map)."""
        start, stop, _ = rows.indices(len(a))
        merged = cls.empty(a.shape[1])
        for first in range(start, stop, chunk_rows):
            merged = merged.merge(cls.of(a[first : min(first + chunk_rows, stop)]))
        return merged

    def merge(self, other: "Moments") -> "Moments":
        """The moments of both parts' rows together."""
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        n = self.count + other.count
        with np.errstate(over="ignore", invalid="ignore"):  # inf, nan: the caller checks
            delta = other.mean - self.mean
            mean = self.mean + delta * (other.count / n)
            m2 = self.m2 + other.m2 + np.square(delta) * (self.count * other.count / n)
        low, high = np.minimum(self.low, other.low), np.maximum(self.high, other.high)
        return Moments(n, mean, m2, low, high)

    @property
    def std(self) -> Array:
        """The population standard deviation of each column."""
        return np.sqrt(self.m2 / max(self.count, 1))
