"""The training step on a GPU: handprop (eager, CUDA graph) beside PyTorch and JAX.

    python -m benchmarks.gpu                        # CUDA: every size, float32 and float64
    python -m benchmarks.gpu --sizes tutorial --dtypes float32
    python -m benchmarks.gpu --device cpu --smoke   # a few steps on the CPU: checks the script

Rows (one network, ReLU between layers, no biases, sum of squared errors, plain SGD
with lr 1e-6, the sizes of benchmarks/problem.py):

    gemm              the matrix products alone (forward, weight and input gradients)
    handprop eager    hp.train_step on the model moved with model.to(device)
    handprop graph    handprop.training.graphed.GraphedStep (a replayed CUDA graph)
    ... Adam          the two rows above with hp.Adam(lr=1e-3) for SGD: under the graph,
                      its recorded update (Adam.record), its numbers copied in per step
    torch manual      the same maths written in PyTorch ("PyTorch: Tensors" tutorial)
    torch autograd    nn.Sequential + loss.backward() + torch.optim.SGD
    torch.compile     the manual step under torch.compile(mode="reduce-overhead")
    jax jit           the same maths under jax.jit (skipped when JAX is absent)

float32 runs with TF32 off. Each row: microseconds per step (mean over the timed steps,
the device synchronised before and after) and its ratio to the gemm row, measured in
this one run. torch.compile compiles for minutes: it runs on the tutorial and large sizes
only, unless --compile-all.
"""

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.problem import SIZES, Problem, make_problem

Step = Callable[[], Any]
STEPS = {"tutorial": 2000, "medium": 300, "large": 30, "deep": 300}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--sizes", default="tutorial,medium,large,deep")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--smoke", action="store_true", help="3 timed steps, no torch.compile")
    parser.add_argument("--compile-all", action="store_true", help="torch.compile every size")
    args = parser.parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benchmarks.gpu: no CUDA GPU here; run with --device cpu --smoke")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    print(_environment(torch, args.device))
    for name in args.sizes.split(","):
        for dtype in args.dtypes.split(","):
            problem = make_problem(SIZES[name], dtype)
            steps = 3 if args.smoke else STEPS[name]
            compile_it = not args.smoke and (args.compile_all or name in ("tutorial", "large"))
            _report(problem, args.device, steps, compile_it)
    return 0


def _environment(torch: Any, device: str) -> str:
    where = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    jax = _jax()
    return f"torch {torch.__version__} on {where}; jax {jax.__version__ if jax else 'absent'}"


def _report(problem: Problem, device: str, steps: int, compile_it: bool) -> None:
    print(f"\n{problem.size.name} {problem.dtype.name}: {problem.size.describe()}")
    rows: list[tuple[str, float | str]] = []
    for name, make in _contenders(compile_it).items():
        try:
            rows.append((name, _time(make(problem, device), device, steps)))
        except ImportError as error:
            rows.append((name, f"skipped ({error})"))
        except Exception as error:  # a contender that fails is reported, the others still run
            rows.append((name, f"failed: {type(error).__name__}: {str(error)[:120]}"))
    floor = next((t for n, t in rows if n == "gemm" and isinstance(t, float)), None)
    for name, value in rows:
        if isinstance(value, float):
            ratio = f"{value / floor:6.2f}x gemm" if floor else ""
            print(f"  {name:<19} {value * 1e6:10.1f} us/step  {ratio}")
        else:
            print(f"  {name:<19} {value}")


def _time(step: Step, device: str, steps: int) -> float:
    """Seconds per step: warm-up steps, then ``steps`` timed between two synchronisations."""
    import torch

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(max(3, min(steps // 10, 20))):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    last = step()  # the last loss is read: every step must really have run
    if hasattr(last, "block_until_ready"):
        last.block_until_ready()
    sync()
    return (time.perf_counter() - start) / (steps + 1)


def _contenders(compile_it: bool) -> dict[str, Callable[[Problem, str], Step]]:
    rows: dict[str, Callable[[Problem, str], Step]] = {
        "gemm": _gemm,
        "handprop eager": _handprop_eager,
        "handprop graph": _handprop_graph,
        "handprop eager Adam": _handprop_eager_adam,
        "handprop graph Adam": _handprop_graph_adam,
        "torch manual": _torch_manual,
        "torch autograd": _torch_autograd,
    }
    if compile_it:
        rows["torch.compile"] = _torch_compile
    rows["jax jit"] = _jax_jit
    return rows


def _tensors(problem: Problem, device: str) -> tuple[Any, Any, list[Any]]:
    import torch

    def put(a: np.ndarray) -> Any:
        return torch.tensor(np.array(a), device=device)

    return put(problem.x), put(problem.y), [put(w) for w in problem.weights]


def _gemm(problem: Problem, device: str) -> Step:
    """The products of a step alone, into preallocated outputs."""
    import torch

    x, _, weights = _tensors(problem, device)
    activations = [x]
    for w in weights:
        activations.append(torch.empty(x.shape[0], w.shape[1], dtype=x.dtype, device=device))
    grads = [torch.empty_like(w) for w in weights]
    inputs = [torch.empty_like(a) for a in activations[:-1]]

    def step() -> Any:
        for index, w in enumerate(weights):
            torch.mm(activations[index], w, out=activations[index + 1])
        for index in reversed(range(len(weights))):
            torch.mm(activations[index].T, activations[index + 1], out=grads[index])
            if index:
                torch.mm(activations[index + 1], weights[index].T, out=inputs[index])
        return grads[0]

    return step


def _handprop_model(problem: Problem, device: str) -> tuple[Any, Any, Any, Any]:
    import handprop as hp

    layers: list[hp.Module] = []
    for index, w in enumerate(problem.weights):
        linear = hp.Linear(*w.shape, bias=False, dtype=problem.dtype)
        linear.weight.data[...] = w
        layers += [linear] + ([hp.ReLU()] if index < len(problem.weights) - 1 else [])
    model = hp.Sequential(*layers).to(device)
    xp = model.xp
    return model, xp.from_host(problem.x), xp.from_host(problem.y), hp


def _handprop_eager(problem: Problem, device: str) -> Step:
    model, x, y, hp = _handprop_model(problem, device)
    loss_fn, optimizer = hp.SumSquaredError(), hp.SGD(model.parameters(), lr=problem.lr)
    return lambda: hp.train_step(model, loss_fn, optimizer, x, y)


def _handprop_graph(problem: Problem, device: str) -> Step:
    from handprop.training.graphed import GraphedStep

    model, x, y, hp = _handprop_model(problem, device)
    graphed = GraphedStep(model, hp.SumSquaredError(), hp.SGD(model.parameters(), problem.lr))
    return lambda: graphed.step(x, y)


def _handprop_eager_adam(problem: Problem, device: str) -> Step:
    model, x, y, hp = _handprop_model(problem, device)
    loss_fn, optimizer = hp.SumSquaredError(), hp.Adam(model.parameters(), lr=1e-3)
    return lambda: hp.train_step(model, loss_fn, optimizer, x, y)


def _handprop_graph_adam(problem: Problem, device: str) -> Step:
    from handprop.training.graphed import GraphedStep

    model, x, y, hp = _handprop_model(problem, device)
    graphed = GraphedStep(model, hp.SumSquaredError(), hp.Adam(model.parameters(), lr=1e-3))
    return lambda: graphed.step(x, y)


def _manual_step(weights: list[Any], lr: float) -> Callable[[Any, Any], Any]:
    """The "PyTorch: Tensors" tutorial's loop body, for any depth (no autograd)."""
    import torch

    def step(x: Any, y: Any) -> Any:
        hs, activations = [], [x]
        for index, w in enumerate(weights):
            h = activations[-1].mm(w)
            hs.append(h)
            activations.append(h.clamp(min=0) if index < len(weights) - 1 else h)
        y_pred = activations[-1]
        loss = (y_pred - y).pow(2).sum()
        grad = 2.0 * (y_pred - y)
        for index in reversed(range(len(weights))):
            grad_w = activations[index].t().mm(grad)
            if index:
                grad = grad.mm(weights[index].t())
                grad = grad.masked_fill(hs[index - 1] < 0, 0)
            weights[index].sub_(lr * grad_w)
        return loss

    return torch.no_grad()(step)


def _torch_manual(problem: Problem, device: str) -> Step:
    x, y, weights = _tensors(problem, device)
    step = _manual_step(weights, problem.lr)
    return lambda: step(x, y)


def _torch_compile(problem: Problem, device: str) -> Step:
    import torch

    x, y, weights = _tensors(problem, device)
    step = torch.compile(_manual_step(weights, problem.lr), mode="reduce-overhead")
    return lambda: step(x, y)


def _torch_autograd(problem: Problem, device: str) -> Step:
    import torch

    x, y, weights = _tensors(problem, device)
    layers: list[Any] = []
    for index, w in enumerate(weights):
        linear = torch.nn.Linear(*w.shape, bias=False, device=device, dtype=w.dtype)
        with torch.no_grad():
            linear.weight.copy_(w.T)
        layers += [linear] + ([torch.nn.ReLU()] if index < len(weights) - 1 else [])
    model = torch.nn.Sequential(*layers)
    optimizer = torch.optim.SGD(model.parameters(), lr=problem.lr)

    def step() -> Any:
        loss = (model(x) - y).pow(2).sum()
        optimizer.zero_grad(set_to_none=False)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def _jax() -> Any:
    try:
        import jax
    except ImportError:
        return None
    return jax


def _jax_jit(problem: Problem, device: str) -> Step:
    jax = _jax()
    if jax is None:
        raise ImportError("JAX is not installed")
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    import jax.numpy as jnp

    target = jax.devices("gpu" if device == "cuda" else "cpu")[0]
    x, y = (jax.device_put(jnp.asarray(a), target) for a in (problem.x, problem.y))
    state = [jax.device_put(jnp.asarray(w), target) for w in problem.weights]
    lr = problem.lr

    def loss_fn(weights: list[Any], x: Any, y: Any) -> Any:
        h = x
        for index, w in enumerate(weights):
            h = h @ w
            if index < len(weights) - 1:
                h = jnp.maximum(h, 0)
        return jnp.sum((h - y) ** 2)

    @jax.jit
    def update(weights: list[Any], x: Any, y: Any) -> tuple[list[Any], Any]:
        loss, grads = jax.value_and_grad(loss_fn)(weights, x, y)
        return [w - lr * g for w, g in zip(weights, grads, strict=True)], loss

    def step() -> Any:
        nonlocal state
        state, loss = update(state, x, y)
        return loss

    return step


if __name__ == "__main__":
    raise SystemExit(main())
