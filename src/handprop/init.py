"""Weight initialisers. Each takes the shape (D_in, D_out), an explicit generator and a dtype.

The generator may be a ``numpy.random.Generator`` or a legacy
``numpy.random.RandomState``: both have ``standard_normal`` and ``uniform``,
and with ``RandomState(seed)`` ``standard_normal`` draws exactly what the
tutorial's ``np.random.seed(seed); np.random.randn(D_in, H)`` draws.
Values are drawn in float64 and then rounded to ``dtype``, so a float32 model
starts from the float64 model's weights, rounded.
"""

from collections.abc import Callable
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from handprop._types import Array, float_dtype

RandomSource: TypeAlias = np.random.Generator | np.random.RandomState
Initializer: TypeAlias = Callable[[tuple[int, int], RandomSource, npt.DTypeLike], Array]


def as_generator(rng: RandomSource | int | None) -> RandomSource:
    """``rng`` if it is a generator, else ``numpy.random.default_rng(rng)`` (a seed or None)."""
    if isinstance(rng, np.random.Generator | np.random.RandomState):
        return rng
    if rng is not None and (isinstance(rng, bool) or not isinstance(rng, int | np.integer)):
        raise TypeError(
            f"rng must be a numpy Generator, a RandomState, an int seed or None, "
            f"received {type(rng).__name__}"
        )
    return np.random.default_rng(rng)


def _rounded(values: npt.NDArray[Any], dtype: npt.DTypeLike) -> Array:
    return values.astype(float_dtype(dtype), copy=False)


def standard_normal(shape: tuple[int, int], rng: RandomSource, dtype: npt.DTypeLike) -> Array:
    """N(0, 1), the tutorial's ``np.random.randn(D_in, H)``."""
    return _rounded(rng.standard_normal(shape), dtype)


def he_normal(shape: tuple[int, int], rng: RandomSource, dtype: npt.DTypeLike) -> Array:
    """N(0, 2 / D_in) (He et al. 2015, "Kaiming normal"): keeps ReLU activations' scale."""
    fan_in = shape[0]
    return _rounded(rng.standard_normal(shape) * np.sqrt(2.0 / fan_in), dtype)


def glorot_uniform(shape: tuple[int, int], rng: RandomSource, dtype: npt.DTypeLike) -> Array:
    """U(-a, a) with a = sqrt(6 / (D_in + D_out)) (Glorot & Bengio 2010), for tanh/sigmoid."""
    limit = np.sqrt(6.0 / (shape[0] + shape[1]))
    return _rounded(rng.uniform(-limit, limit, shape), dtype)


def zeros(shape: tuple[int, int], rng: RandomSource, dtype: npt.DTypeLike) -> Array:
    """All zeros (draws nothing from ``rng``)."""
    return np.zeros(shape, dtype=float_dtype(dtype))


INITIALIZERS: dict[str, Initializer] = {
    "standard_normal": standard_normal,
    "he_normal": he_normal,
    "glorot_uniform": glorot_uniform,
    "zeros": zeros,
}


def get_initializer(name: str) -> Initializer:
    """The initialiser called ``name``; a ValueError lists the valid names."""
    try:
        return INITIALIZERS[name]
    except KeyError:
        valid = ", ".join(sorted(INITIALIZERS))
        raise ValueError(f"unknown initializer {name!r}; valid names: {valid}") from None
