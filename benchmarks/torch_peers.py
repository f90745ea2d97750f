"""PyTorch on the CPU: eager autograd, the tutorial's manual-gradient "Tensors" version,
and ``torch.compile`` of the autograd step. torch is imported only in here, when needed."""

from collections.abc import Callable
from typing import Any

from benchmarks.contender import Contender, Skipped
from benchmarks.environment import blas_threads
from benchmarks.problem import Array, Problem


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as error:
        raise Skipped("not installed") from error
    torch.set_num_threads(blas_threads())
    return torch


def _tensors(torch: Any, problem: Problem, requires_grad: bool) -> tuple[Any, Any, list[Any]]:
    x, y = (torch.from_numpy(a.copy()) for a in (problem.x, problem.y))
    ws = [torch.from_numpy(w.copy()).requires_grad_(requires_grad) for w in problem.weights]
    return x, y, ws


def autograd_step(torch: Any, x: Any, y: Any, ws: list[Any], learning_rate: float) -> Any:
    """The tutorial's autograd version: forward, ``loss.backward()``, update under no_grad."""
    h_relu = x
    for w in ws[:-1]:
        h_relu = h_relu.mm(w).clamp(min=0)
    y_pred = h_relu.mm(ws[-1])
    loss = (y_pred - y).pow(2).sum()
    loss.backward()
    with torch.no_grad():
        for w in ws:
            w -= learning_rate * w.grad
            w.grad.zero_()
    return loss


def manual_step(x: Any, y: Any, ws: list[Any], learning_rate: float) -> Any:
    """The tutorial's "Tensors" version: torch.mm, clamp, gradients by hand."""
    h_relus, hs = [x], []
    for w in ws[:-1]:
        h = h_relus[-1].mm(w)
        hs.append(h)
        h_relus.append(h.clamp(min=0))
    y_pred = h_relus[-1].mm(ws[-1])
    loss = (y_pred - y).pow(2).sum()

    grad_y_pred = 2.0 * (y_pred - y)
    grad_ws = [grad_y_pred] * len(ws)  # placeholders, all overwritten below
    for index in reversed(range(len(ws))):
        grad_ws[index] = h_relus[index].t().mm(grad_y_pred)
        if index > 0:
            grad_h_relu = grad_y_pred.mm(ws[index].t())
            grad_h = grad_h_relu.clone()
            grad_h[hs[index - 1] < 0] = 0
            grad_y_pred = grad_h
    for w, grad_w in zip(ws, grad_ws, strict=True):
        w -= learning_rate * grad_w
    return loss


def _blas(torch: Any) -> str:
    """torch's BLAS is linked in, out of threadpoolctl's sight: name it here."""
    blas = "MKL" if torch.backends.mkl.is_available() else "its own BLAS"
    return f"torch uses {blas}, {torch.get_num_threads()} threads"


def _contender(torch: Any, step: Callable[[], Any], ws: list[Any], note: str = "") -> Contender:
    def weights() -> list[Array]:
        return [w.detach().numpy().copy() for w in ws]

    note = "; ".join(part for part in (note, _blas(torch)) if part)
    return Contender(lambda: float(step().item()), weights, False, note)


def make_torch_autograd(problem: Problem) -> Contender:
    torch = _import_torch()
    x, y, ws = _tensors(torch, problem, requires_grad=True)
    return _contender(torch, lambda: autograd_step(torch, x, y, ws, problem.lr), ws)


def make_torch_manual(problem: Problem) -> Contender:
    torch = _import_torch()
    x, y, ws = _tensors(torch, problem, requires_grad=False)
    return _contender(torch, lambda: manual_step(x, y, ws, problem.lr), ws)


def make_torch_compile(problem: Problem) -> Contender:
    """``torch.compile`` (inductor, static shapes) of the autograd step; the first call compiles."""
    torch = _import_torch()
    torch._dynamo.reset()  # a fresh compile for every size and dtype
    compiled = torch.compile(autograd_step, dynamic=False)
    x, y, ws = _tensors(torch, problem, requires_grad=True)
    note = "graph breaks at loss.backward(); compile time is in the first step"
    return _contender(torch, lambda: compiled(torch, x, y, ws, problem.lr), ws, note)
