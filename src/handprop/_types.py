"""Type aliases, dtype helpers and work buffers shared by the layers, losses and optimizers."""

from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

Array: TypeAlias = npt.NDArray[Any]

#: The floating dtypes handprop computes in: float64 (the default) and float32.
FLOAT_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


def float_dtype(dtype: npt.DTypeLike) -> np.dtype[Any]:
    """Return ``dtype`` as a numpy dtype, or raise if it is not float32/float64."""
    try:
        resolved = np.dtype(dtype)
    except TypeError as error:
        raise TypeError(f"dtype must be float64 or float32, received {dtype!r}") from error
    if resolved not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float64 or float32, received {resolved.name}")
    return resolved


def check_dtype(owner: str, what: str, array: Array, expected: np.dtype[Any]) -> None:
    """Raise a TypeError naming ``owner`` if ``array`` is not of dtype ``expected``."""
    if array.dtype != expected and dtype_name(array) != expected.name:
        raise TypeError(
            f"{owner} computes in {expected.name} but received {what} of dtype "
            f"{dtype_name(array)}; convert it with .astype(np.{expected.name}) "
            "(handprop never mixes dtypes silently)"
        )


def dtype_name(array: Any) -> str:
    """The name of an array's dtype, "float64", for a numpy array or a torch tensor alike."""
    return str(getattr(array.dtype, "name", array.dtype)).removeprefix("torch.")


def positive_int(what: str, value: object) -> int:
    """``value`` as an int if it is an integer >= 1, else a ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{what} must be a positive integer, received {value!r}")
    return int(value)


def reuse(buffer: Array | None, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Array:
    """``buffer`` if it already has this shape and dtype, else a new uninitialised array."""
    if buffer is not None and buffer.shape == shape and buffer.dtype == dtype:
        return buffer
    return np.empty(shape, dtype=dtype)
