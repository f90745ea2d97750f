"""``gemm`` (and ``axpy``) from numpy's own BLAS: ``out = alpha * a @ b + beta * out``.

numpy's matmul has no ``alpha`` and ``beta``; these let a backward pass add a
weight gradient into ``.grad`` (beta = 1) or fold the plain-SGD update into
the weights (alpha = -lr, beta = 1, out = the weights). The library is the one
numpy itself loaded (its wheel's OpenBLAS), found by path and opened again
with ctypes, so every product of a step runs on one BLAS and one thread pool.
Where it cannot be found (another numpy build), the same arithmetic runs in
numpy with temporaries.
"""

import ctypes
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from handprop._types import Array

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
# Symbol prefixes of cblas gemm in numpy's wheels: numpy 2 (scipy-openblas, 64-bit
# integers), numpy 1.26 (openblas64_), then a plain 32-bit-integer cblas.
_SYMBOLS = (("scipy_cblas_", "64_", ctypes.c_int64), ("cblas_", "64_", ctypes.c_int64))
_PLAIN = ("cblas_", "", ctypes.c_int32)


_ARGUMENTS = {"gemm": "6 s p i p i s p i", "axpy": "1 s p i p i"}


@functools.cache
def _kernel(dtype: np.dtype[Any], name: str = "gemm") -> Callable[..., None] | None:
    """numpy's BLAS's cblas ``?gemm`` or ``?axpy`` for ``dtype``, or None if not found."""
    letter = {np.dtype(np.float64): "d", np.dtype(np.float32): "s"}.get(dtype)
    if letter is None:
        return None
    scalar = ctypes.c_double if letter == "d" else ctypes.c_float
    for path in _numpy_blas_libraries():
        library = ctypes.CDLL(str(path))
        for prefix, suffix, integer in (*_SYMBOLS, _PLAIN):
            function = getattr(library, f"{prefix}{letter}{name}{suffix}", None)
            if function is not None:
                count, *kinds = _ARGUMENTS[name].split()
                types = {"s": scalar, "p": ctypes.c_void_p, "i": integer}
                function.argtypes = [integer] * int(count) + [types[k] for k in kinds]
                function.restype = None
                return function  # type: ignore[no-any-return]
    return None


def _numpy_blas_libraries() -> list[Path]:
    package = Path(np.__file__).parent
    folders = [package.parent / "numpy.libs", package / ".dylibs"]
    return sorted(p for f in folders if f.is_dir() for p in f.iterdir() if "blas" in p.name)


def _layout(m: Array) -> tuple[int, int] | None:
    """(transpose flag, leading dimension) for a row-major BLAS, or None if m needs a copy."""
    if m.flags.c_contiguous:
        return _NO_TRANS, max(1, m.shape[1])
    if m.flags.f_contiguous:  # the transpose of a C-contiguous matrix
        return _TRANS, max(1, m.shape[0])
    # columns of a wider C-ordered matrix (``x_all[:, rows]``), or their transpose: rows
    # of unit-stride numbers, a leading dimension larger than the width
    item, (rows, columns), (step0, step1) = m.itemsize, m.shape, m.strides
    if step1 == item and step0 % item == 0 and step0 >= columns * item:
        return _NO_TRANS, step0 // item
    if step0 == item and step1 % item == 0 and step1 >= rows * item:
        return _TRANS, step1 // item
    return None


def _address(m: Array) -> int:
    """The address of the first element of m, C-contiguous or the transpose of such.

    ``ctypes.c_char.from_buffer`` takes it through the buffer protocol in a third of
    the time of ``m.ctypes.data`` (which builds a helper object per call), a
    microsecond per gemm; read-only memory and a view with a leading dimension (not
    contiguous) refuse it and take the long way.
    """
    contiguous = m if m.flags.c_contiguous else m.T
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(contiguous))  # type: ignore[arg-type]
    except (TypeError, ValueError, BufferError):  # read-only, or fewer than one byte
        return int(m.ctypes.data)


def gemm(a: Array, b: Array, out: Array, alpha: float = 1.0, beta: float = 0.0) -> None:
    """``out = alpha * (a @ b) + beta * out``, in place.

    Shape: a (M, K), b (K, N), out (M, N). a and b may be C-contiguous arrays
    or transposes of them (``x.T``); out must be C-contiguous. All one dtype.
    """
    kernel = _kernel(out.dtype) if a.dtype == b.dtype == out.dtype else None
    layout_a, layout_b = _layout(a), _layout(b)
    if (
        kernel is None
        or layout_a is None
        or layout_b is None
        or not (out.flags.c_contiguous and out.flags.writeable)
        or (0 in a.shape or 0 in b.shape)
    ):
        _gemm_numpy(a, b, out, alpha, beta)
        return
    (m, k), n = a.shape, b.shape[1]
    kernel(
        _ROW_MAJOR, layout_a[0], layout_b[0], m, n, k,
        alpha, _address(a), layout_a[1], _address(b), layout_b[1],
        beta, _address(out), max(1, n),
    )  # fmt: skip


def _gemm_numpy(a: Array, b: Array, out: Array, alpha: float, beta: float) -> None:
    product = np.matmul(a, b)
    if beta == 0:
        np.multiply(product, alpha, out=out)
    else:
        out *= beta
        out += alpha * product


def add(x: Array, y: Array) -> None:
    """``y += x`` through BLAS ``axpy`` with alpha = 1, which rounds exactly as numpy's add.

    Right after a BLAS call, OpenBLAS's worker threads spin for a while; on this
    kind of machine a numpy pass over a weight-sized array then runs several
    times slower than alone (measured: 20 us alone, 200 us after a gemm, at
    1000 x 100). Staying inside BLAS avoids that. Contiguous arrays of one dtype.
    """
    kernel = _kernel(y.dtype, "axpy") if x.dtype == y.dtype else None
    if kernel is None or not (x.flags.c_contiguous and y.flags.c_contiguous) or x.shape != y.shape:
        np.add(y, x, out=y)
        return
    kernel(y.size, 1.0, _address(x), 1, _address(y), 1)
