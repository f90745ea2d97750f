"""Array namespaces: every difference between numpy and PyTorch lives in this module.

The layers, losses and optimizers write their maths once, against a namespace ``xp``::

    xp.matmul(x, weight, out=h)          # h = x.dot(w1)
    xp.add(h, bias, out=h)

``NUMPY`` is numpy itself wherever numpy already has the call (``NUMPY.matmul is
np.matmul``: the numpy path pays one attribute lookup, nothing else), plus the few
operations numpy spells differently or lacks (``gemm`` with alpha and beta through
numpy's own BLAS, ``reuse``, ``relu_mask``, ``pick``). ``torch_namespace(device)``
gives the same calls on PyTorch tensors of one device, used as plain arrays (no
autograd: tensors are made with ``requires_grad=False`` and handprop's own backward
passes compute every gradient).

The contract, which a recording namespace (a tape of array calls on fixed buffers)
can rely on to stand in for ``NUMPY``:

- Where each object's namespace lives, one attribute per object: ``Module.xp``
  (every module, set by ``Module.to``), ``Parameter.xp``, ``Loss.xp`` (it follows its
  input: ``follow``), ``Optimizer.xp`` (from its parameters). Setting that attribute
  is how another namespace is put in.
- Every array operation of a training step goes through ``xp``: no arithmetic
  operators or array methods on arrays (``a + b``, ``a.sum()``, ``a -= b``), so that
  the namespace sees every call. Views (``x.T``, ``reshape``, slices) and metadata
  (``shape``, ``dtype``) are read on the arrays themselves.
- Work buffers come from ``xp.reuse(buffer, shape, dtype)``: after the first step of
  a shape, every call writes into the same arrays (``out=``).
- Python floats that change from step to step (Adam's bias corrections, a learning
  rate under a schedule) are passed as scalars; a loss's value leaves the array
  library through ``xp.item`` only (one host sync per step on a GPU).
- dtypes are numpy dtypes everywhere in handprop (``Parameter.dtype``); a namespace
  translates them (``xp.dtype_of``).

Mixing libraries or devices in one call is a TypeError naming both (``require``).
"""

import contextlib
import functools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from handprop import _blas
from handprop._types import Array, float_dtype, reuse

#: The array libraries a model can live on, as ``Module.to`` and the command line name them.
LIBRARIES = ("numpy", "torch")

# An unsigned integer as wide as a float, by item size: a view of the float's bits. None
# for long double (padded to 16 bytes, and numpy has no uint128).
_UNSIGNED: dict[int, np.dtype[Any]] = {
    8: np.dtype(np.uint64),
    4: np.dtype(np.uint32),
    2: np.dtype(np.uint16),
}


def describe(array: object) -> str:
    """What ``array`` is, for an error message: "a numpy array", "a torch tensor on cuda:0"."""
    if isinstance(array, np.ndarray):
        return "a numpy array"
    if type(array).__module__.startswith("torch"):
        return f"a torch tensor on {getattr(array, 'device', '?')}"
    return f"a {type(array).__name__}"


class Numpy:
    """The numpy namespace: numpy's own functions, plus what numpy lacks.

    Shapes and semantics are numpy's; ``TorchNamespace`` mirrors every name.
    """

    name = "numpy"
    library = "numpy"
    device = "cpu"

    matmul = np.matmul
    add = np.add
    subtract = np.subtract
    multiply = np.multiply
    divide = np.divide
    negative = np.negative
    abs = np.abs
    sign = np.sign
    square = np.square
    sqrt = np.sqrt
    exp = np.exp
    log = np.log
    tanh = np.tanh
    maximum = np.maximum
    minimum = np.minimum
    clip = staticmethod(np.clip)
    greater_equal = np.greater_equal
    greater = np.greater
    equal = np.equal
    less = np.less
    logical_and = np.logical_and
    logical_or = np.logical_or
    where = staticmethod(np.where)
    copyto = staticmethod(np.copyto)
    zeros_like = staticmethod(np.zeros_like)
    empty_like = staticmethod(np.empty_like)
    concatenate = staticmethod(np.concatenate)
    reuse = staticmethod(reuse)
    gemm = staticmethod(_blas.gemm)
    #: ``y += x`` through BLAS axpy (see ``_blas.add``)
    add_into = staticmethod(_blas.add)
    #: ``transpose(x, axes)``: a view with the axes permuted (torch: ``permute``)
    transpose = staticmethod(np.transpose)

    def owns(self, array: object) -> bool:
        return isinstance(array, np.ndarray)

    def require(self, owner: str, x: object) -> Array:
        """``x`` if it is a floating array of this namespace, else a TypeError naming ``owner``."""
        if not isinstance(x, np.ndarray):
            raise _mixing(owner, self, x)
        if x.dtype.kind != "f":
            raise TypeError(
                f"{owner} expected a floating-point array, received dtype {x.dtype.name}; "
                "convert it with .astype(np.float64)"
            )
        return x

    def is_integer(self, y: Array) -> bool:
        return bool(y.dtype.kind in "iu")

    def all_finite(self, x: Array) -> bool:
        return bool(np.isfinite(x).all())

    def may_hold_zero(self, x: Array) -> bool:
        """False only if no element of ``x`` is 0 (or -0.0): one pass, no array allocated."""
        return not np.all(x)

    def fill_where(self, x: Array, where: Array, value: float) -> None:
        """``x[where] = value``, in place, with no index array (``where``: booleans)."""
        np.copyto(x, value, where=where)

    def rows(self, x: Array, index: Array) -> Array:
        """``x[index]`` for an integer numpy ``index``: a mini-batch's rows (a copy)."""
        return x[index]

    def dtype_of(self, array: Array) -> np.dtype[Any]:
        return array.dtype

    def empty(self, shape: tuple[int, ...], dtype: npt.DTypeLike) -> Array:
        return np.empty(shape, dtype=dtype)

    def zeros(self, shape: tuple[int, ...], dtype: npt.DTypeLike) -> Array:
        return np.zeros(shape, dtype=dtype)

    def copy(self, array: Array) -> Array:
        return array.copy()

    def astype(self, array: Array, dtype: npt.DTypeLike) -> Array:
        return array.astype(dtype)

    def from_host(self, host: npt.ArrayLike, dtype: npt.DTypeLike | None = None) -> Array:
        """A new array of this namespace holding ``host`` (numpy data), in ``dtype``."""
        return np.array(host, dtype=dtype)

    def to_numpy(self, array: Array) -> Array:
        """``array`` as a numpy array (itself here; a torch tensor's may share its memory)."""
        return array

    def assign(self, target: Array, host: Array) -> None:
        """``target[...] = host`` (numpy data, converted to target's dtype), in place."""
        target[...] = host

    def fill(self, array: Array, value: float) -> None:
        array.fill(value)

    def sum(self, x: Array, axis: int | None = None, keepdims: bool = False) -> Array:
        return np.sum(x, axis=axis, keepdims=keepdims)

    def max(self, x: Array, axis: int | None = None, keepdims: bool = False) -> Array:
        return np.max(x, axis=axis, keepdims=keepdims)  # type: ignore[no-any-return]

    def min(self, x: Array) -> Array:
        return np.min(x)  # type: ignore[no-any-return]

    def mean(
        self,
        x: Array,
        axis: int | tuple[int, ...] | None = None,
        keepdims: bool = False,
        out: Array | None = None,
    ) -> Any:
        return np.mean(x, axis=axis, keepdims=keepdims, out=out)

    def take(self, x: Array, indices: Array) -> Array:
        """``x[indices]`` for a 1-D ``x``."""
        return x[indices]

    def dot(self, a: Array, b: Array) -> Array:
        """The sum of ``a * b`` over every element (``np.vdot``), a 0-d array."""
        return np.asarray(np.vdot(a, b))

    def item(self, x: Array) -> float:
        return float(x)

    def pick(self, x: Array, labels: Array) -> Array:
        """``x[arange(N), labels]``: each row's entry at its label. Shape: (N, C), (N,) -> (N,)."""
        return x[np.arange(len(labels)), labels]

    def add_at(self, x: Array, labels: Array, value: float) -> None:
        """``x[arange(N), labels] += value``, in place."""
        x[np.arange(len(labels)), labels] += value

    def overflow_ignored(self) -> contextlib.AbstractContextManager[Any]:
        return np.errstate(over="ignore")

    def relu_mask(self, grad: Array, h: Array, out: Array, scratch: Array | None = None) -> Any:
        return relu_mask(grad, h, out, scratch)

    # ----- for the convolution, pooling and dropout layers --------------------------------

    def strides(self, x: Array) -> tuple[int, ...]:
        """``x``'s strides in elements (numpy counts bytes; torch's ``stride()`` elements)."""
        return tuple(stride // x.itemsize for stride in x.strides)

    def memory_axes(self, x: Array) -> list[int]:
        """``x``'s axes from outermost to innermost in memory: ``transpose(x, memory_axes(x))``
        is a C-contiguous view when ``x`` is dense (one block in some order of its axes)."""
        return laid_out(x.shape, x.shape, self.strides(x))

    def is_contiguous(self, x: Array) -> bool:
        """Whether ``x`` is one C-ordered block of memory (then ``reshape`` is a view)."""
        return bool(x.flags.c_contiguous)

    def reuse_like(
        self, buffer: Array | None, shape: tuple[int, ...], dtype: npt.DTypeLike, like: Array
    ) -> Array:
        """``reuse``, with the axes laid out in memory in ``like``'s order (see ``laid_out``)."""
        if like.flags.c_contiguous:  # the usual case (a table's rows): C order, checked cheaply
            if buffer is not None and buffer.flags.c_contiguous:
                return self.reuse(buffer, shape, np.dtype(dtype))
            return np.empty(shape, dtype)
        order = laid_out(shape, like.shape, self.strides(like))
        if buffer is not None and laid_out_as(buffer, shape, dtype, order, self.strides):
            return buffer
        return np.empty([shape[axis] for axis in order], dtype).transpose(np.argsort(order))

    def as_strided(self, x: Array, shape: tuple[int, ...], strides: tuple[int, ...]) -> Array:
        """A read-only view of ``x``'s memory with ``shape`` and ``strides`` in elements
        (windows that overlap: every patch of an image, for im2col)."""
        in_bytes = tuple(stride * x.itemsize for stride in strides)
        return np.lib.stride_tricks.as_strided(x, shape, in_bytes, writeable=False)

    def view(self, x: Array, dtype: npt.DTypeLike) -> Array:
        """``x``'s bits as another dtype of the same size (bool as uint8)."""
        return x.view(dtype)

    def uniform(self, rng: np.random.Generator, out: Array) -> Array:
        """``out`` filled with uniform draws in [0, 1) from the numpy Generator ``rng``."""
        return rng.random(dtype=out.dtype, out=out)

    def __repr__(self) -> str:
        return "handprop.backend.NUMPY"

    def __reduce__(self) -> str:
        """Copies and pickles are ``NUMPY`` itself (``copy.deepcopy(model)``, sklearn's clone),
        so that ``xp is NUMPY`` holds for a copied model too."""
        return "NUMPY"


#: The namespace of numpy arrays.
NUMPY = Numpy()


def relu_mask(grad: Array, h: Array, out: Array, scratch: Array | None = None) -> Array | None:
    """The tutorial's ``grad_h = grad_h_relu.copy(); grad_h[h < 0] = 0``, into ``out``.

    Bit for bit the same (NaN, inf and -0.0 included), computed as ``grad AND keep``
    on the floats' bits, where ``keep`` is all ones where ``h >= 0`` and zeros where
    ``h < 0``: three streaming passes. numpy's masked assignment branches on every
    element, and the signs of ``h`` are random: it ran 10x slower. Returns the
    ``keep`` buffer (pass it back as ``scratch`` to reuse it); None for long double,
    which runs the tutorial's two lines.
    """
    bits = _UNSIGNED.get(h.dtype.itemsize)
    if bits is None:  # long double: no unsigned integer as wide
        np.copyto(out, grad)
        out[h < 0] = 0
        return None
    keep = reuse(scratch, h.shape, bits)
    np.less(h, 0, out=keep, casting="unsafe")  # 1 where h < 0, else 0
    np.subtract(keep, 1, out=keep)  # 0 where h < 0, else all ones
    np.bitwise_and(grad.view(bits), keep, out=out.view(bits))
    return keep


def memory_order(shape: Sequence[int], strides: Sequence[int]) -> tuple[int, ...]:
    """The axes longer than 1, from the largest stride to the smallest: how an array lies
    in memory. (0, 1, 2, 3) for a C-ordered NCHW image, (0, 2, 3, 1) for an NCHW view of
    NHWC memory (``x.transpose(0, 3, 1, 2)``)."""
    axes = [axis for axis in range(len(shape)) if shape[axis] > 1]
    return tuple(sorted(axes, key=lambda axis: -abs(strides[axis])))


def longer_than_1(order: Sequence[int], shape: Sequence[int]) -> tuple[int, ...]:
    """``order`` without the axes of length 1 in ``shape`` (they lie anywhere in memory)."""
    return tuple(axis for axis in order if shape[axis] > 1)


def laid_out_as(
    buffer: Any, shape: tuple[int, ...], dtype: Any, order: Sequence[int], strides: Any
) -> bool:
    """Whether ``buffer`` has ``shape`` and ``dtype`` and lies in memory in
    ``order`` (``laid_out``'s); ``strides(buffer)`` gives its strides in elements."""
    return (
        buffer.shape == shape
        and buffer.dtype == dtype
        and memory_order(shape, strides(buffer)) == longer_than_1(order, shape)
    )


def laid_out(
    shape: Sequence[int], like_shape: Sequence[int], like_strides: Sequence[int]
) -> list[int]:
    """The axes of a new array of ``shape`` from outermost to innermost in memory, in the
    order of an array ``like`` (then the axes that ``like`` does not order: length 1 there)."""
    known = [axis for axis in memory_order(like_shape, like_strides) if shape[axis] > 1]
    return known + [axis for axis in range(len(shape)) if axis not in known]


def _mixing(owner: str, xp: Any, x: object) -> TypeError:
    where = "numpy arrays" if xp.library == "numpy" else f"torch tensors on {xp.device}"
    if not (isinstance(x, np.ndarray) or type(x).__module__.startswith("torch")):
        return TypeError(f"{owner} expected {where[:-1]}, received {type(x).__name__}")
    return TypeError(
        f"{owner} computes on {where} but received {describe(x)}; handprop never mixes array "
        "libraries or devices: move the model (model.to(...)) or the data to one place"
    )


def namespace(array: object) -> Any:
    """The namespace of ``array``: ``NUMPY`` for a numpy array, a torch one for a tensor."""
    if isinstance(array, np.ndarray):
        return NUMPY
    if type(array).__module__.startswith("torch") and hasattr(array, "device"):
        return torch_namespace(array.device)
    raise TypeError(
        f"handprop computes on numpy arrays or torch tensors, received {describe(array)}"
    )


def follow(xp: Any, array: object) -> Any:
    """``xp`` if it owns ``array``, else ``array``'s namespace (a loss follows its input)."""
    return xp if xp.owns(array) else namespace(array)


def common_namespace(owner: str, arrays: Sequence[object]) -> Any:
    """The one namespace of every array in ``arrays``; a TypeError naming both if they differ."""
    first = namespace(arrays[0]) if arrays else NUMPY
    for array in arrays[1:]:
        if not first.owns(array):
            raise _mixing(owner, first, array)
    return first


# ----- PyTorch -----------------------------------------------------------------------------


def import_torch() -> Any:
    """The torch module, or an ImportError that says how to install it."""
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            "the torch backend needs PyTorch, which is not installed: pip install torch"
        ) from error
    return torch


def torch_device(device: object) -> Any:
    """``device`` ("cpu", "cuda", "cuda:1", a torch.device) as a torch.device that exists.

    A RuntimeError when CUDA is asked for and there is none.
    """
    torch = import_torch()
    resolved = torch.device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device {str(device)!r} needs CUDA, but this PyTorch "
                f"({torch.__version__}) finds no CUDA GPU; use device 'cpu'"
            )
        if resolved.index is None:
            resolved = torch.device("cuda", torch.cuda.current_device())
    return resolved


@functools.cache
def torch_namespace(device: object = "cpu") -> "TorchNamespace":
    """The namespace of torch tensors on ``device`` (one per device)."""
    return TorchNamespace(torch_device(device))


class TorchNamespace:
    """The same calls as ``NUMPY``, on torch tensors of one device, without autograd."""

    library = "torch"

    def __init__(self, device: Any) -> None:
        torch = import_torch()
        self.torch = torch
        self.device = device
        self.name = f"torch ({device})"
        self.dtypes = {
            np.dtype(np.float64): torch.float64,
            np.dtype(np.float32): torch.float32,
            np.dtype(np.int64): torch.int64,
            np.dtype(np.int32): torch.int32,
            np.dtype(np.uint8): torch.uint8,
            np.dtype(np.bool_): torch.bool,
        }

    def __repr__(self) -> str:
        return f"handprop.backend.torch_namespace({str(self.device)!r})"

    # ----- what an array is --------------------------------------------------------------

    def owns(self, array: object) -> bool:
        return isinstance(array, self.torch.Tensor) and array.device == self.device

    def require(self, owner: str, x: object) -> Any:
        if not self.owns(x):
            raise _mixing(owner, self, x)
        if not x.is_floating_point():  # type: ignore[attr-defined]
            raise TypeError(
                f"{owner} expected a floating-point tensor, received dtype {x.dtype}; "  # type: ignore[attr-defined]
                "convert it with .to(torch.float64)"
            )
        if x.requires_grad:  # type: ignore[attr-defined]
            raise TypeError(
                f"{owner} received a tensor that requires grad; handprop writes its own "
                "backward passes: pass x.detach()"
            )
        return x

    def is_integer(self, y: Any) -> bool:
        return not (y.is_floating_point() or y.is_complex() or y.dtype == self.torch.bool)

    def all_finite(self, x: Any) -> bool:
        return bool(self.torch.isfinite(x).all().item())

    def may_hold_zero(self, x: Any) -> bool:
        """Always True: to know, the host would wait for the device (and a CUDA graph being
        recorded cannot), so what depends on it runs on the device every time."""
        return True

    def fill_where(self, x: Any, where: Any, value: float) -> None:
        x.masked_fill_(where, value)

    def rows(self, x: Any, index: Array) -> Any:
        """``x[index]`` for an integer numpy ``index``, gathered on the device."""
        on_device = self.torch.from_numpy(index).to(self.device, non_blocking=True)
        return x.index_select(0, on_device)

    def dtype_of(self, array: Any) -> np.dtype[Any]:
        return np.dtype(str(array.dtype).removeprefix("torch."))

    def _torch_dtype(self, dtype: npt.DTypeLike) -> Any:
        if isinstance(dtype, self.torch.dtype):
            return dtype
        return self.dtypes[np.dtype(dtype)]

    # ----- making arrays -----------------------------------------------------------------

    def empty(self, shape: tuple[int, ...], dtype: npt.DTypeLike) -> Any:
        return self.torch.empty(shape, dtype=self._torch_dtype(dtype), device=self.device)

    def zeros(self, shape: tuple[int, ...], dtype: npt.DTypeLike) -> Any:
        return self.torch.zeros(shape, dtype=self._torch_dtype(dtype), device=self.device)

    def reuse(self, buffer: Any, shape: tuple[int, ...], dtype: npt.DTypeLike) -> Any:
        wanted = self._torch_dtype(dtype)
        if buffer is not None and buffer.shape == shape and buffer.dtype == wanted:
            return buffer
        return self.torch.empty(shape, dtype=wanted, device=self.device)

    def zeros_like(self, x: Any) -> Any:
        return self.torch.zeros_like(x)

    def empty_like(self, x: Any) -> Any:
        return self.torch.empty_like(x)

    def copy(self, x: Any) -> Any:
        return x.clone()

    def astype(self, x: Any, dtype: npt.DTypeLike) -> Any:
        return x.to(self._torch_dtype(dtype))

    def from_host(self, host: npt.ArrayLike, dtype: npt.DTypeLike | None = None) -> Any:
        """A new tensor on this device holding ``host`` (numpy data), in ``dtype``."""
        array = np.asarray(host, dtype=dtype, order="C")  # 0-d stays 0-d (not ascontiguousarray)
        return self.torch.tensor(array, device=self.device)

    def to_numpy(self, x: Any) -> Array:
        return x.detach().cpu().numpy()  # type: ignore[no-any-return]

    def assign(self, target: Any, host: Array) -> None:
        target.copy_(self.from_host(host, self.dtype_of(target)))

    def concatenate(self, parts: Sequence[Any]) -> Any:
        return self.torch.cat(list(parts))

    def copyto(self, dst: Any, src: Any) -> None:
        dst.copy_(src)

    def fill(self, x: Any, value: float) -> None:
        x.fill_(value)

    # ----- arithmetic, numpy's signatures -------------------------------------------------

    def matmul(self, a: Any, b: Any, out: Any = None) -> Any:
        return self.torch.matmul(a, b, out=out)

    def gemm(self, a: Any, b: Any, out: Any, alpha: float = 1.0, beta: float = 0.0) -> None:
        """``out = alpha * (a @ b) + beta * out`` (beta = 0 ignores out, NaN included)."""
        out.addmm_(a, b, beta=beta, alpha=alpha)

    def add_into(self, x: Any, y: Any) -> None:
        y.add_(x)

    def add(self, a: Any, b: Any, out: Any = None) -> Any:
        if not isinstance(a, self.torch.Tensor):
            a, b = b, a
        return self.torch.add(a, b, out=out)

    def subtract(self, a: Any, b: Any, out: Any = None) -> Any:
        if isinstance(a, self.torch.Tensor):
            return self.torch.sub(a, b, out=out)
        result = self.torch.sub(b, a, out=out)  # a - b = -(b - a), exactly
        return result.neg_()

    def multiply(self, a: Any, b: Any, out: Any = None, casting: str = "same_kind") -> Any:
        """``casting``: numpy's; torch casts into ``out`` by itself (an integer into uint8)."""
        if not isinstance(a, self.torch.Tensor):
            a, b = b, a
        return self.torch.mul(a, b, out=out)

    def divide(self, a: Any, b: Any, out: Any = None) -> Any:
        if not isinstance(a, self.torch.Tensor):
            a = self.torch.full_like(b, a)
        return self.torch.div(a, b, out=out)

    def negative(self, x: Any, out: Any = None) -> Any:
        return self.torch.neg(x, out=out)

    def abs(self, x: Any, out: Any = None) -> Any:
        return self.torch.abs(x, out=out)

    def sign(self, x: Any, out: Any = None) -> Any:
        return self.torch.sign(x, out=out)

    def square(self, x: Any, out: Any = None) -> Any:
        return self.torch.mul(x, x, out=out)

    def sqrt(self, x: Any, out: Any = None) -> Any:
        return self.torch.sqrt(x, out=out)

    def exp(self, x: Any, out: Any = None) -> Any:
        return self.torch.exp(x, out=out)

    def log(self, x: Any, out: Any = None) -> Any:
        return self.torch.log(x, out=out)

    def tanh(self, x: Any, out: Any = None) -> Any:
        return self.torch.tanh(x, out=out)

    def maximum(self, a: Any, b: Any, out: Any = None) -> Any:
        if isinstance(b, self.torch.Tensor):
            return self.torch.maximum(a, b, out=out)
        return self.torch.clamp(a, min=b, out=out)

    def minimum(self, a: Any, b: Any, out: Any = None) -> Any:
        if isinstance(b, self.torch.Tensor):
            return self.torch.minimum(a, b, out=out)
        return self.torch.clamp(a, max=b, out=out)

    def clip(self, x: Any, low: float, high: float, out: Any = None) -> Any:
        return self.torch.clamp(x, min=low, max=high, out=out)

    def greater_equal(self, a: Any, b: Any, out: Any = None, casting: str = "same_kind") -> Any:
        """Into ``out`` of any dtype (1 or 0 in a float ``out``), as numpy's casting="unsafe"."""
        return self.torch.ge(a, b, out=out)

    def greater(self, a: Any, b: Any, out: Any = None) -> Any:
        return self.torch.gt(a, b, out=out)

    def equal(self, a: Any, b: Any, out: Any = None, casting: str = "same_kind") -> Any:
        """Into ``out`` of any dtype (1 or 0 in a float ``out``), as numpy's casting="unsafe"."""
        return self.torch.eq(a, b, out=out)

    def less(self, a: Any, b: Any, out: Any = None) -> Any:
        return self.torch.lt(a, b, out=out)

    def logical_and(self, a: Any, b: Any, out: Any = None) -> Any:
        return self.torch.logical_and(a, b, out=out)

    def logical_or(self, a: Any, b: Any, out: Any = None) -> Any:
        return self.torch.logical_or(a, b, out=out)

    def where(self, condition: Any, a: Any, b: Any) -> Any:
        return self.torch.where(condition, a, b)

    def sum(self, x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        if axis is None:
            return self.torch.sum(x)
        return self.torch.sum(x, dim=axis, keepdim=keepdims)

    def max(self, x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        if axis is None:
            return self.torch.amax(x)
        return self.torch.amax(x, dim=axis, keepdim=keepdims)

    def min(self, x: Any) -> Any:
        return self.torch.amin(x)

    def mean(
        self,
        x: Any,
        axis: int | tuple[int, ...] | None = None,
        keepdims: bool = False,
        out: Any = None,
    ) -> Any:
        if axis is None:
            return self.torch.mean(x)
        return self.torch.mean(x, dim=axis, keepdim=keepdims, out=out)

    def take(self, x: Any, indices: Any) -> Any:
        return self.torch.index_select(x, 0, indices)

    def dot(self, a: Any, b: Any) -> Any:
        return self.torch.dot(a.reshape(-1), b.reshape(-1))

    def item(self, x: Any) -> float:
        return float(x.item())

    def pick(self, x: Any, labels: Any) -> Any:
        return x.gather(1, labels.reshape(-1, 1)).reshape(-1)

    def add_at(self, x: Any, labels: Any, value: float) -> None:
        index = labels.reshape(-1, 1)
        x.scatter_(1, index, x.gather(1, index).add_(value))

    def overflow_ignored(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def relu_mask(self, grad: Any, h: Any, out: Any, scratch: Any = None) -> Any:
        """``out = grad`` where ``h >= 0``, else 0 (the tutorial's mask); returns the mask."""
        blocked = scratch
        if not isinstance(blocked, self.torch.Tensor) or blocked.shape != h.shape:
            blocked = self.torch.empty(h.shape, dtype=self.torch.bool, device=self.device)
        self.torch.lt(h, 0, out=blocked)
        out.copy_(grad)
        out.masked_fill_(blocked, 0)
        return blocked

    # ----- for the convolution, pooling and dropout layers --------------------------------

    def transpose(self, x: Any, axes: Sequence[int]) -> Any:
        return x.permute(*axes)

    def strides(self, x: Any) -> tuple[int, ...]:
        return tuple(x.stride())

    def memory_axes(self, x: Any) -> list[int]:
        return laid_out(x.shape, x.shape, self.strides(x))

    def is_contiguous(self, x: Any) -> bool:
        return bool(x.is_contiguous())

    def reuse_like(
        self, buffer: Any, shape: tuple[int, ...], dtype: npt.DTypeLike, like: Any
    ) -> Any:
        wanted = self._torch_dtype(dtype)
        order = laid_out(shape, like.shape, self.strides(like))
        if buffer is not None and laid_out_as(buffer, shape, wanted, order, self.strides):
            return buffer
        inverse = sorted(range(len(order)), key=order.__getitem__)
        permuted = [shape[axis] for axis in order]
        return self.torch.empty(permuted, dtype=wanted, device=self.device).permute(*inverse)

    def as_strided(self, x: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
        """A view of ``x``'s memory with ``shape`` and ``strides`` in elements (not to be
        written: its windows overlap)."""
        return self.torch.as_strided(x, shape, strides)

    def view(self, x: Any, dtype: npt.DTypeLike) -> Any:
        return x.view(self._torch_dtype(dtype))

    def uniform(self, rng: np.random.Generator, out: Any) -> Any:
        """Draws from the numpy Generator ``rng`` on the host, copied into ``out``: the
        same numbers as numpy's ``uniform`` (a checkpoint's generator state resumes both)."""
        host = rng.random(tuple(out.shape), dtype=self.dtype_of(out))
        return out.copy_(self.torch.from_numpy(host))


def placement(target: object) -> tuple[Any, np.dtype[Any] | None]:
    """What ``Module.to(target)`` asks for: (namespace or None, dtype or None).

    ``target`` is a library ("numpy"; "torch", meaning torch on the CPU), a torch
    device ("cpu", "cuda", "cuda:1", a ``torch.device``) or a float dtype
    ("float32", ``np.float64``, ``torch.float32``).
    """
    if isinstance(target, str) and target == "numpy":
        return NUMPY, None
    if isinstance(target, str) and target == "torch":
        return torch_namespace("cpu"), None
    if isinstance(target, str) and target.split(":")[0] in ("cpu", "cuda"):
        return torch_namespace(torch_device(target)), None
    kind = type(target)
    if kind.__module__.startswith("torch") and kind.__name__ == "device":
        return torch_namespace(torch_device(target)), None
    if kind.__module__.startswith("torch") and kind.__name__ == "dtype":
        target = str(target).removeprefix("torch.")
    try:
        np.dtype(target)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(
            f"to() expected 'numpy', 'torch', a device ('cpu', 'cuda', 'cuda:1') or a dtype "
            f"(float64, float32), received {target!r}"
        ) from None
    return None, float_dtype(target)  # type: ignore[arg-type]


def select(backend: str | None = None, device: str | None = None) -> Any:
    """The namespace a command line's ``--backend numpy|torch`` and ``--device cpu|cuda`` ask for.

    None is the default: numpy, except that a CUDA device implies torch. numpy runs on
    the CPU only (a ValueError); torch missing or CUDA absent: ImportError / RuntimeError.
    """
    if backend not in (None, *LIBRARIES):
        raise ValueError(f"backend must be 'numpy' or 'torch', received {backend!r}")
    on_cpu = device is None or str(device) == "cpu"
    if backend == "numpy" and not on_cpu:
        raise ValueError(
            f"the numpy backend computes on the CPU only, received device {device!r}; "
            "use backend 'torch' for a GPU"
        )
    if backend == "torch" or not on_cpu:
        return torch_namespace(torch_device("cpu" if device is None else device))
    return NUMPY


def convert(array: Any, xp: Any, dtype: npt.DTypeLike) -> Any:
    """A copy of ``array`` (any library, device) in namespace ``xp`` and ``dtype``."""
    return xp.from_host(namespace(array).to_numpy(array), dtype)


def available_devices() -> Iterator[str]:
    """The devices torch can use here: "cpu", then "cuda" if there is a GPU (for tests)."""
    yield "cpu"
    torch = import_torch()
    if torch.cuda.is_available():
        yield "cuda"
