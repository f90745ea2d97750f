"""A training step as the tutorial's lines, with their shapes, FLOPs and measured time.

For the tutorial's network the lines are the tutorial's own::

    h = x.dot(w1)                         (64,1000)·(1000,100) -> (64,100)    12.8 MFLOP    42%
    ...
    grad_h_relu = grad_y_pred.dot(w2.T)   (64,10)·(10,100) -> (64,100)         128 kFLOP     1%

(the shares as measured once on a 2-core machine).

Each line is timed by running that very line, compiled, on arrays of the real
shapes and dtype (a copy of the model's weights), many times; its share is of
the sum of all lines, a step written as the tutorial writes it. The machine's
matrix-product rate is a square GEMM timed the same way. FLOPs count one per
add, multiply, comparison or function evaluation (a matrix product is
``2 * m * k * n``); a copy is 0.
"""

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from handprop._types import Array
from handprop.explain_lines import LOSS_LINES, Spec, step_lines
from handprop.layers import Linear, Module, Sequential

PHASES = {
    "forward": "# Forward pass: compute predicted y",
    "loss": "# Compute loss",
    "backward": "# Backprop to compute gradients of the weights with respect to loss",
    "update": "# Update weights",
}


@dataclass(frozen=True)
class Line:
    """One line of the step: its code, operand and result shapes, FLOPs and seconds per run."""

    phase: str  # a key of PHASES
    code: str
    operands: tuple[tuple[int, ...], ...]
    result: tuple[int, ...]
    matmul: bool
    flops: int
    seconds: float  # 0.0 when not measured

    def shapes(self) -> str:
        joined = ("·" if self.matmul else ", ").join(_shape(s) for s in self.operands)
        return f"{joined} -> {_shape(self.result)}"


@dataclass(frozen=True)
class Explanation:
    """Every line of one step, and the machine's matrix-product rate (None when not measured)."""

    batch_size: int
    dtype: str
    lines: tuple[Line, ...]
    gemm_flops_per_second: float | None
    gemm_size: int

    @property
    def flops(self) -> int:
        return sum(line.flops for line in self.lines)

    @property
    def matmul_flops(self) -> int:
        return sum(line.flops for line in self.lines if line.matmul)

    @property
    def seconds(self) -> float:
        return sum(line.seconds for line in self.lines)

    def share(self, line: Line) -> float:
        return line.seconds / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: the lines and the totals."""
        return {
            "batch_size": self.batch_size,
            "dtype": self.dtype,
            "lines": [
                {
                    "phase": line.phase,
                    "code": line.code,
                    "operands": [list(s) for s in line.operands],
                    "result": list(line.result),
                    "matmul": line.matmul,
                    "flops": line.flops,
                    "seconds": line.seconds,
                    "share": self.share(line),
                }
                for line in self.lines
            ],
            "flops": self.flops,
            "matmul_flops": self.matmul_flops,
            "seconds": self.seconds,
            "gemm_flops_per_second": self.gemm_flops_per_second,
            "gemm_size": self.gemm_size,
        }

    def format(self) -> str:
        """The step as text: a header per phase, one row per line, then the totals."""
        code_width = max(len(line.code) for line in self.lines)
        shape_width = max(len(line.shapes()) for line in self.lines)
        rows: list[str] = []
        phase = ""
        for line in self.lines:
            if line.phase != phase:
                phase = line.phase
                rows.append(("" if not rows else "\n") + PHASES[phase])
            share = f"{100 * self.share(line):3.0f}%" if self.seconds > 0 else ""
            rows.append(
                f"{line.code:<{code_width}}   {line.shapes():<{shape_width}}   "
                f"{format_flops(line.flops):>11}   {share}".rstrip()
            )
        return "\n".join([*rows, "", *self._totals()])

    def _totals(self) -> list[str]:
        total = f"step: {format_flops(self.flops)} ({format_flops(self.matmul_flops)} in matrix "
        total += f"products), batch {self.batch_size}, {self.dtype}"
        if self.seconds <= 0 or self.gemm_flops_per_second is None:
            return [total + "; not timed"]
        rate = self.gemm_flops_per_second
        floor = self.matmul_flops / rate
        return [
            total,
            f"measured: {1e3 * self.seconds:.3f} ms per step = "
            f"{self.flops / self.seconds / 1e9:.1f} GFLOP/s",
            f"this machine's matrix product ({self.gemm_size}x{self.gemm_size}, {self.dtype}): "
            f"{rate / 1e9:.1f} GFLOP/s; at that rate the matrix products alone take "
            f"{1e3 * floor:.3f} ms ({100 * floor / self.seconds:.0f}% of the step)",
        ]

    def __str__(self) -> str:
        return self.format()


def explain(
    model: Module | None = None,
    x: Array | None = None,
    *,
    batch_size: int = 64,
    learning_rate: float = 1e-6,
    loss: str = "sse",
    measure: bool = True,
    seconds: float = 1.0,
    seed: int = 0,
) -> Explanation:
    """Explain one training step of ``model`` on ``x`` (the tutorial's network by default).

    Shape: x (N, D_in); drawn from the standard normal with ``batch_size`` rows
    when None. ``model`` is a ``Sequential`` of Linear and activation layers
    (ReLU, LeakyReLU, Tanh, Sigmoid, Identity); its weights are copied, never
    changed. ``loss`` is "sse" (the tutorial's) or "mse"; y is drawn like x.
    ``measure=False`` skips the timing; ``seconds`` is its rough budget.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"explain batch_size must be a positive integer, received {batch_size!r}")
    if loss not in LOSS_LINES:
        raise ValueError(f"explain loss must be one of {', '.join(LOSS_LINES)}, received {loss!r}")
    rng = np.random.RandomState(seed)
    if model is None:
        from handprop.warmup import WarmupConfig, make_problem

        model = make_problem(WarmupConfig(batch_size=batch_size, seed=seed)).model
    layers = list(model) if isinstance(model, Sequential) else [model]
    linears = [layer for layer in layers if isinstance(layer, Linear)]
    if not linears:
        raise ValueError("explain needs a model with at least one Linear layer")
    dtype = linears[0].dtype
    if x is None:
        x = rng.standard_normal((batch_size, linears[0].in_features)).astype(dtype)
    if x.ndim != 2 or x.shape[1] != linears[0].in_features or x.dtype != dtype:
        raise ValueError(
            f"explain expected x of shape (N, {linears[0].in_features}) and dtype {dtype.name}, "
            f"received {x.shape} {x.dtype.name}"
        )
    env: dict[str, Any] = {"np": np, "learning_rate": learning_rate, "x": x}
    specs = step_lines(layers, loss, env)
    env["y"] = rng.standard_normal(_shape_of_y_pred(specs, env)).astype(dtype)
    lines = _run(specs, env, measure, seconds)
    size = 512
    rate = _gemm_rate(size, dtype, seconds / 5) if measure else None
    return Explanation(x.shape[0], dtype.name, tuple(lines), rate, size)


def _shape_of_y_pred(specs: list[Spec], env: dict[str, Any]) -> tuple[int, ...]:
    """Run the forward lines once; the shape of y_pred."""
    for _, code, _, _, _ in specs:
        if code.startswith("loss"):
            break
        exec(code, env)
    return tuple(env["y_pred"].shape)


def _run(specs: list[Spec], env: dict[str, Any], measure: bool, seconds: float) -> list[Line]:
    """Run each line once in order (recording shapes), then time it if asked."""
    lines = []
    for phase, code, operands, matmul, flops in specs:
        shapes = tuple(tuple(eval(operand, env).shape) for operand in operands)
        compiled = compile(code, "<explain>", "exec")
        exec(compiled, env)
        target = code.split("=")[0].split("[")[0].strip(" -*")
        result = tuple(np.shape(env[target]))
        count = 2 * math.prod(shapes[0]) * shapes[1][-1] if matmul else 0
        count += flops * math.prod(shapes[0]) if not matmul else flops * math.prod(result)
        lines.append(Line(phase, code, shapes, result, matmul, count, 0.0))
    if not measure:
        return lines
    budget = seconds * 0.8 / max(len(lines), 1)
    return [
        replace(line, seconds=_time(compile(line.code, "<explain>", "exec"), env, budget))
        for line in lines
    ]


def _time(compiled: Any, env: dict[str, Any], budget: float, repeats: int = 5) -> float:
    """Seconds per run of ``compiled``: the best of ``repeats`` timed batches of runs."""
    start = time.perf_counter()
    exec(compiled, env)
    once = max(time.perf_counter() - start, 1e-7)
    number = max(1, int(budget / repeats / once))
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            exec(compiled, env)
        best = min(best, (time.perf_counter() - start) / number)
    return best


def _gemm_rate(size: int, dtype: np.dtype[Any], budget: float) -> float:
    """FLOP per second of a square matrix product of this size and dtype."""
    rng = np.random.default_rng(0)
    env = {
        "a": rng.standard_normal((size, size)).astype(dtype),
        "b": rng.standard_normal((size, size)).astype(dtype),
        "c": np.empty((size, size), dtype=dtype),
        "np": np,
    }
    seconds = _time(compile("np.matmul(a, b, out=c)", "<gemm>", "exec"), env, budget)
    return 2 * size**3 / seconds


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ",".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def format_flops(flops: float) -> str:
    """``12800000 -> '12.8 MFLOP'``, ``128000 -> '128 kFLOP'``, three significant digits."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if flops >= scale:
            return f"{flops / scale:.3g} {prefix}FLOP"
    return f"{flops:.0f} FLOP"
