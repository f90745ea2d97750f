"""The tape a captured step replays: array calls on fixed buffers, recorded in order."""

import math
import struct
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np

from handprop._types import Array
from handprop.backend import NUMPY
from handprop.optim import views_of

if TYPE_CHECKING:
    from handprop.layers.module import Module
    from handprop.losses import Loss
    from handprop.optim import Optimizer
    from handprop.parameter import Parameter


#: The largest output ``Tape.product`` computes with ``np.dot`` rather than ``np.matmul``.
_DOT_BYTES = 16384


class NotCapturable(ValueError):
    """A part of the step the tape cannot record; ``train_step`` trains it eagerly."""


class Tape:
    """Calls of array functions on fixed buffers, recorded in order and replayed as they are.

    A call is a function and its positional arguments (the output buffer among them);
    a number that changes between steps lives in a 0-d buffer (``scalar``) that a host
    call of the owner (``host``) fills first.

    ``xp``: the buffers' namespace (``handprop.backend``), numpy by default. A part records
    through ``xp``'s functions where it may run on torch tensors (``Adam.record``): then the
    tape's array calls, without its host calls, are what a CUDA graph records (graphed.py),
    and the host calls run before each replay of the graph.
    """

    def __init__(self, dtype: np.dtype[Any], xp: Any = NUMPY) -> None:
        self.dtype, self.xp = dtype, xp
        self.calls: list[tuple[Callable[..., object], tuple[object, ...]]] = []
        self.hosts: list[Callable[[], object]] = []  # the calls that compute on the host

    def buffer(self, shape: tuple[int, ...], dtype: Any = None) -> Array:
        if self.xp is NUMPY:
            return np.empty(shape, dtype=self.dtype if dtype is None else dtype)
        return self.xp.empty(shape, self.dtype if dtype is None else dtype)  # type: ignore[no-any-return]

    def scalar(self) -> Array:
        """A 0-d buffer of the tape's dtype: as an operand it rounds like a Python float does."""
        if self.xp is NUMPY:
            return np.zeros((), dtype=self.dtype)
        return self.xp.zeros((), self.dtype)  # type: ignore[no-any-return]

    def numbers(self, count: int) -> tuple[list[Array], Callable[..., object]]:
        """``count`` 0-d buffers of the tape's dtype (views of one), and the function that a
        host call fills them with, all at once: ``fill(*numbers)``, Python numbers.

        float64 on numpy: packed straight into the buffer's memory (``struct``, the same
        doubles), a quarter of the cost of numpy converting a tuple (~0.25 against ~1 us)."""
        values = self.buffer((count,))
        views = [values[i : i + 1].reshape(()) for i in range(count)]
        if self.xp is NUMPY and values.dtype == np.float64:
            return views, partial(struct.Struct(f"={count}d").pack_into, values.data, 0)
        if self.xp is NUMPY:
            return views, lambda *numbers: values.__setitem__(slice(None), numbers)
        torch, tensor = self.xp.torch, cast(Any, values)
        dtype = self.xp.dtypes[np.dtype(self.dtype)]
        return views, lambda *numbers: tensor.copy_(torch.tensor(numbers, dtype=dtype))

    def constant(self, value: float, dtype: Any = None) -> Array:
        """``value`` as a 0-d array of the tape's dtype (or ``dtype``): the number a Python
        operand becomes, without converting it again at every call (a third of a small
        call's cost)."""
        return np.full((), value, dtype=self.dtype if dtype is None else dtype)

    def record(self, function: Callable[..., object], *args: object, **keywords: object) -> None:
        """Record ``function(*args, **keywords)``, to be called on every replay."""
        self.calls.append((partial(function, **keywords) if keywords else function, args))

    def product(self, a: Array, b: Array, out: Array) -> None:
        """Record ``np.matmul(a, b, out)``, the product ``train_step`` computes, as the same
        BLAS call made for less: through ``np.dot`` where the two call ``cblas_?gemm`` with
        the same arguments, so give the same bits (``same_gemm``), else ``np.matmul``.

        ``np.dot`` skips the ufunc machinery around the call (~0.5 us of a ~2.5 us product
        at 32 x 100 x 10) but first zeroes its output, which the BLAS call zeroes again
        (beta = 0): on larger outputs that costs what it saves (measured, float64, inside a
        replay: 32 x 10 and 100 x 10 outputs 0.5 us faster each, 32 x 100 from 0.4 us
        faster to 0.5 us slower, 64 x 100 0.5 us slower), so those stay ``np.matmul``."""
        small = out.nbytes <= _DOT_BYTES
        self.record(np.dot if small and same_gemm(a, b, out) else np.matmul, a, b, out)

    def host(self, function: Callable[[], object]) -> None:
        """Record ``function()``, which computes on the host (reads the owner's numbers, fills
        its 0-d buffers): called in order on a numpy replay, before the array calls in a
        CUDA graph's (``array_calls``)."""
        self.record(function)
        self.hosts.append(function)

    def replay(self) -> None:
        for function, args in self.calls:
            function(*args)

    def array_calls(self) -> list[tuple[Callable[..., object], tuple[object, ...]]]:
        """The calls on arrays alone, in order, without the host calls."""
        return [(f, args) for f, args in self.calls if not any(f is h for h in self.hosts)]

    def replay_hosts(self) -> None:
        """The host calls alone, in order (before a replay of ``array_calls``)."""
        for function in self.hosts:
            function()

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
        _check_recorded(loss_fn, ("forward", "total", "checked_total", "backward"), "the loss", "")
        return loss_fn.record(self, y_pred, y)  # type: ignore[attr-defined,no-any-return]

    def optimizer(self, optimizer: "Optimizer", grad: Array | None) -> Callable[[], bool]:
        """``optimizer.record(self, grad)``: its ``step`` recorded, after the backward that
        left every gradient in ``grad`` (a flat buffer that each ``.grad`` views, in order;
        None when a fused backward already made the update). Returns a check that the tape
        still fits the optimizer (its structure, the arrays it holds). As for ``layer``, only
        where no subclass changes a method of the eager step (``check_optimizer``)."""
        check_optimizer(optimizer)
        return optimizer.record(self, grad)  # type: ignore[attr-defined,no-any-return]

    def flatten(self, arrays: list[Array]) -> tuple[Array, list[Array]]:
        """One flat buffer and views of it shaped like ``arrays``, holding their values, so
        that an element-wise line runs over all of them in one call (it rounds each element
        alike, whatever array it sits in). Arrays that already are such views (an
        optimizer's state, an earlier tape's gradients) are kept as they are: two tapes, say
        one per batch size, share them."""
        spanned = _spanned(arrays)
        if spanned is not None:
            return spanned, arrays
        flat = self.buffer((sum(math.prod(a.shape) for a in arrays),), self.dtype)
        views = views_of(flat, arrays)
        for view, array in zip(views, arrays, strict=True):
            view[...] = array
        return flat, views

    def stacked(self, first: Array, second: Array) -> Array | None:
        """``first`` above ``second``, shape (2, *first.shape): a view of the buffer that holds
        them one right after the other (Adam's ``m`` and ``v``, two of its numbers), so that
        a line they share is one call for both; None where no buffer holds them so."""
        base = _base(first)
        if base is None or _base(second) is not base or first.shape != second.shape:
            return None
        size, itemsize = math.prod(first.shape), _itemsize(base)
        start, misaligned = divmod(_address(first) - _address(base), itemsize)
        if misaligned or base.ndim != 1 or not all(map(_contiguous, (base, first, second))):
            return None
        if _address(second) != _address(first) + size * itemsize:
            return None
        return base[start : start + 2 * size].reshape(2, *first.shape)  # type: ignore[no-any-return]

    def holds(self, arrays: Callable[[], tuple[list[Array], ...]]) -> Callable[[], bool]:
        """A check that the lists ``arrays()`` returns still hold the very arrays they hold
        now (the buffers the tape was recorded on): ``holds(lambda: (opt.m, opt.v))``."""
        lists = arrays()
        sizes = [len(listed) for listed in lists]
        items = [(at, i, a) for at, listed in enumerate(lists) for i, a in enumerate(listed)]

        def same() -> bool:
            now = arrays()
            if [*map(len, now)] != sizes:
                return False
            # a plain loop, checked at every replay: faster than all() over a generator or
            # over map(operator.is_, ...) on a flattened copy
            for at, index, array in items:  # noqa: SIM110
                if now[at][index] is not array:
                    return False
            return True

        return same


def same_gemm(a: Any, b: Any, out: Any) -> bool:
    """Whether ``np.dot(a, b, out)`` makes the very ``cblas_?gemm`` call that
    ``np.matmul(a, b, out)`` makes (numpy 2's ``cblas_matrixproduct`` and
    ``@TYPE@_matmul_matrixmatrix``): float32 or float64 matrices, each C- or F-contiguous
    (row-major, transposed or not, the leading dimension its other side), ``out``
    C-contiguous and apart from both, every side above 1 (with a side of 1 the two pick
    other routines: gemv, axpy, a dot), and ``a``, ``b`` apart (``a @ a.T`` is a syrk)."""
    arrays = (a, b, out)
    if not all(isinstance(m, np.ndarray) and m.ndim == 2 for m in arrays):
        return False
    if not (a.dtype == b.dtype == out.dtype and out.dtype in (np.float32, np.float64)):
        return False
    if min(*a.shape, *b.shape) < 2 or not out.flags.c_contiguous:
        return False
    if not all(m.flags.c_contiguous or m.flags.f_contiguous for m in (a, b)):
        return False
    return not any(np.may_share_memory(*pair) for pair in ((a, b), (a, out), (b, out)))


def check_optimizer(optimizer: "Optimizer") -> None:
    """Raise NotCapturable unless ``optimizer``'s class states its captured form, ``record``
    beside ``step``, and no subclass below that changes what ``train_step`` calls on it
    (``zero_grad``, ``fused_gradients``, ``step``)."""
    _check_recorded(optimizer, ("zero_grad", "fused_gradients", "step"), "the optimizer", "")


def _base(array: Any) -> Any:
    """The array whose memory ``array`` views (numpy's ``base``, torch's ``_base``), or None
    (also for numpy's other owners of memory: bytes, an mmap, from ``np.frombuffer``)."""
    if isinstance(array, np.ndarray):
        return array.base if isinstance(array.base, np.ndarray) else None
    return getattr(array, "_base", None)


def _address(array: Any) -> int:
    return array.ctypes.data if isinstance(array, np.ndarray) else array.data_ptr()


def _itemsize(array: Any) -> int:
    return array.itemsize if isinstance(array, np.ndarray) else array.element_size()


def _contiguous(array: Any) -> bool:
    return array.flags.c_contiguous if isinstance(array, np.ndarray) else array.is_contiguous()


def _spanned(arrays: list[Any]) -> Any:
    """The stretch of one 1-d buffer of which ``arrays`` are ``views_of``, in order (the
    whole buffer, or a part of it: Adam's ``m`` and ``v`` share one), or None. Each must be
    contiguous: a strided or transposed view that starts where a part would is no part."""
    base = _base(arrays[0])
    if base is None or base.ndim != 1 or base.dtype != arrays[0].dtype:
        return None
    if not (_contiguous(base) and all(_contiguous(a) for a in arrays)):
        return None
    start, misaligned = divmod(_address(arrays[0]) - _address(base), _itemsize(base))
    size = sum(math.prod(a.shape) for a in arrays)
    if misaligned or not 0 <= start <= math.prod(base.shape) - size:
        return None
    flat = base[start : start + size]
    expected = views_of(flat, arrays)
    same = all(
        _base(a) is base and _address(a) == _address(e) and (a.shape, a.dtype) == (e.shape, e.dtype)
        for a, e in zip(arrays, expected, strict=True)
    )
    return flat if same else None


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
