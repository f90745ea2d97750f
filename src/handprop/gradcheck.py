"""Check hand-written backward passes against central differences in float64.

For a module, the scalar checked is ``sum(module(x) * G)`` with a fixed random
``G`` (or ``loss(module(x), y)`` when a loss is given); for a loss, the loss
itself. Every parameter and the input are perturbed entry by entry:
``numeric = (f(w + eps) - f(w - eps)) / (2 * eps)``.

Piecewise layers (ReLU, LeakyReLU: anything with a ``pieces()`` method) have
kinks where central differences straddle two slopes. An entry whose
perturbation moves any such layer's input onto another piece is reported as
"near a kink" and left out of the verdict instead of failing it.

It runs on whatever array library the subject computes on (numpy, or torch on
any device): the perturbations are written into the subject's own arrays, the
differences and the verdict are computed on the host in numpy.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from handprop._types import Array
from handprop.backend import namespace
from handprop.init import RandomSource
from handprop.layers.module import Module
from handprop.losses import Loss


@runtime_checkable
class Piecewise(Protocol):
    """A layer whose output is piecewise smooth in its input, like ReLU."""

    def pieces(self) -> Array | None: ...


@dataclass(frozen=True)
class TensorCheck:
    """The comparison for one tensor: the input, or a parameter by its dotted name."""

    name: str
    shape: tuple[int, ...]
    checked: int  # entries compared
    near_kink: int  # entries left out: their perturbation crossed a kink
    max_abs_error: float
    max_rel_error: float  # max |a - n| / max(|a|, |n|) over the entries compared
    worst_index: tuple[int, ...] | None  # the entry furthest beyond (or nearest to) tolerance
    passed: bool


@dataclass(frozen=True)
class GradientReport:
    """Every tensor's check for one subject (a module or a loss)."""

    subject: str
    tensors: tuple[TensorCheck, ...]

    @property
    def passed(self) -> bool:
        return all(tensor.passed for tensor in self.tensors)


class _Scalar:
    """f(input, parameters) as a callable, with the analytic gradients at the start point."""

    def __init__(
        self,
        subject: Module | Loss,
        x: Array,
        y: Array | None,
        loss: Loss | None,
        rng: RandomSource,
    ) -> None:
        self.subject, self.x, self.y, self.loss = subject, x, y, loss
        self.xp: Any = namespace(x)
        self.projection: Array | None = None
        if isinstance(subject, Module) and loss is None:
            projection = rng.standard_normal(tuple(subject.forward(x).shape))
            self.projection = self.xp.from_host(projection)
        self.piecewise = [m for m in _modules(subject) if isinstance(m, Piecewise)]

    def __call__(self) -> float:
        if isinstance(self.subject, Loss):
            return self.subject.forward(self.x, self._target())
        y_pred = self.subject.forward(self.x)
        if self.loss is not None:
            return self.loss.forward(y_pred, self._target())
        assert self.projection is not None
        xp = self.xp
        return xp.item(xp.sum(xp.multiply(y_pred, self.projection)))  # type: ignore[no-any-return]

    def analytic(self) -> dict[str, Array]:
        """Run f once and backward once; the gradients by tensor name."""
        host = self.host_copy
        if isinstance(self.subject, Loss):
            self.subject.forward(self.x, self._target())
            return {"input": host(self.subject.backward())}
        self.subject.zero_grad()
        y_pred = self.subject.forward(self.x)
        if self.loss is not None:
            self.loss.forward(y_pred, self._target())
            grad_y_pred = self.loss.backward()
        else:
            assert self.projection is not None
            grad_y_pred = self.projection
        grads = {"input": host(self.subject.backward(grad_y_pred))}
        grads.update((name, host(p.grad)) for name, p in self.subject.named_parameters())
        return grads

    def host_copy(self, array: Array) -> Array:
        """A numpy copy of an array of the subject's library."""
        return np.array(self.xp.to_numpy(array))

    def pieces(self) -> list[Array | None]:
        return [
            None if p is None else self.host_copy(p) for p in (m.pieces() for m in self.piecewise)
        ]

    def _target(self) -> Array:
        if self.y is None:
            raise ValueError("check_gradients needs the target y to check a loss")
        return self.y


def _modules(subject: Module | Loss) -> Iterator[Module]:
    return subject.modules() if isinstance(subject, Module) else iter(())


def _require_float64(subject: Module | Loss, x: Array) -> None:
    arrays = [("the input", x)]
    if isinstance(subject, Module):
        arrays += [(f"parameter {n}", p.data) for n, p in subject.named_parameters()]
    for what, array in arrays:
        if namespace(array).dtype_of(array) != np.float64:
            raise TypeError(
                f"check_gradients computes in float64, but {what} is not float64; "
                "build the model with dtype=np.float64 and pass x.astype(np.float64)"
            )


def check_gradients(
    subject: Module | Loss,
    x: Array,
    y: Array | None = None,
    *,
    loss: Loss | None = None,
    eps: float = 1e-6,
    rtol: float = 1e-6,
    atol: float | None = None,
    max_entries: int | None = None,
    rng: RandomSource | None = None,
    name: str | None = None,
) -> GradientReport:
    """Compare ``subject``'s backward with central differences, tensor by tensor.

    Args:
        subject: a Module (checked through its input and every parameter) or a
            Loss (checked through ``y_pred``, passed as ``x``).
        x: the input (N, D_in), or ``y_pred`` for a loss; float64, not modified.
        y: the target, for a loss or when ``loss`` is given.
        loss: check ``loss(subject(x), y)`` instead of a random projection.
        eps: the perturbation. An entry passes when
            ``|analytic - numeric| <= atol + rtol * |numeric|``.
        atol: by default scaled to the rounding error of the differences,
            ``100 * 2.2e-16 * max(1, |f|) / eps``.
        max_entries: check at most this many entries per tensor, chosen at random.
        rng: for the projection and the sampled entries (default: seeded with 0).
        name: what the report calls the subject (default: its repr on one line).

    The module's gradients are left holding the analytic gradient at ``x``.
    """
    _require_float64(subject, x)
    rng = np.random.default_rng(0) if rng is None else rng
    x = namespace(x).copy(x)
    scalar = _Scalar(subject, x, y, loss, rng)
    f0 = scalar()
    atol = 100 * np.finfo(np.float64).eps * max(1.0, abs(f0)) / eps if atol is None else atol
    analytic = scalar.analytic()
    base_pieces = scalar.pieces()
    arrays = {"input": x}
    if isinstance(subject, Module):
        arrays.update((key, p.data) for key, p in subject.named_parameters())
    checks = []
    for key, array in arrays.items():
        indices = _sample(analytic[key].size, max_entries, rng)
        numeric, kinks = _numeric(scalar, array, indices, eps, base_pieces)
        shape = tuple(array.shape)
        checks.append(_compare(key, shape, analytic[key], indices, numeric, kinks, atol, rtol))
    return GradientReport(name or " ".join(repr(subject).split()), tuple(checks))


def _sample(size: int, max_entries: int | None, rng: RandomSource) -> Array:
    if max_entries is None or size <= max_entries:
        return np.arange(size)
    return np.sort(rng.choice(size, max_entries, replace=False))


def _numeric(
    scalar: _Scalar, array: Array, indices: Array, eps: float, base: list[Array | None]
) -> tuple[Array, Array]:
    """Central differences at ``indices`` of ``array``, and which of them straddle a kink."""
    numeric = np.empty(len(indices))
    kinks = np.zeros(len(indices), dtype=bool)
    flat = array.reshape(-1)  # a view: writing it perturbs the array in place
    for k, index in enumerate(indices):
        original = float(flat[index])
        flat[index] = original + eps
        f_plus, pieces_plus = scalar(), scalar.pieces()
        flat[index] = original - eps
        f_minus, pieces_minus = scalar(), scalar.pieces()
        flat[index] = original
        numeric[k] = (f_plus - f_minus) / (2 * eps)
        kinks[k] = not (_same(base, pieces_plus) and _same(base, pieces_minus))
    return numeric, kinks


def _same(a: list[Array | None], b: list[Array | None]) -> bool:
    return all(p is None or q is None or np.array_equal(p, q) for p, q in zip(a, b, strict=True))


def _compare(
    name: str,
    shape: tuple[int, ...],
    analytic: Array,
    indices: Array,
    numeric: Array,
    kinks: Array,
    atol: float,
    rtol: float,
) -> TensorCheck:
    keep = ~kinks
    a, n, kept = analytic.reshape(-1)[indices][keep], numeric[keep], indices[keep]
    error = np.abs(a - n)
    scale = np.maximum(np.abs(a), np.abs(n))
    rel = np.divide(error, scale, out=np.zeros_like(error), where=scale > 0)
    excess = error / (atol + rtol * np.abs(n))  # > 1 fails
    worst = None
    if kept.size:
        worst = tuple(int(i) for i in np.unravel_index(kept[np.argmax(excess)], shape))
    return TensorCheck(
        name=name,
        shape=tuple(shape),
        checked=int(kept.size),
        near_kink=int(kinks.sum()),
        max_abs_error=float(error.max(initial=0.0)),
        max_rel_error=float(rel.max(initial=0.0)),
        worst_index=worst,
        passed=bool(np.all(excess <= 1)),
    )


_COLUMNS = ("subject", "tensor", "shape", "checked", "kink", "max abs err", "max rel err", "worst")


def format_reports(reports: list[GradientReport]) -> str:
    """A plain-text table with one row per tensor checked."""
    rows: list[tuple[str, ...]] = [(*_COLUMNS, "")]
    for report in reports:
        rows += [(report.subject, *_cells(tensor)) for tensor in report.tensors]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


def _cells(t: TensorCheck) -> tuple[str, ...]:
    return (
        t.name,
        str(t.shape),
        str(t.checked),
        str(t.near_kink),
        f"{t.max_abs_error:.2e}",
        f"{t.max_rel_error:.2e}",
        str(t.worst_index),
        "ok" if t.passed else "FAIL",
    )
