"""One CNN training step: handprop against PyTorch eager and against its own matrix products.

    python -m benchmarks.cnn [--batch 256] [--repeats 5] [--dtypes float64,float32] [--threads N]

The network (the issue's sizes): x (256, 1, 28, 28) random images, 10 random classes;
``conv 32 3 pad 1, relu, maxpool 2, conv 64 3 pad 1, relu, maxpool 2, flatten, linear 10``,
SoftmaxCrossEntropy, plain SGD (lr 0.01). Contenders, timed in turn in one run:

- ``products``: the step's matrix products alone, ``np.matmul(out=)`` on handprop's own
  buffers after a step (im2col rows times weights, the weight gradients, the input
  gradients but the first layer's), in the orientations the step uses: the floor
  handprop's step is measured against. A convolution's input gradient is counted as
  the one product ``grad_h.dot(w1.T)`` of im2col's form, although the step (stride 1)
  computes it as kh * kw products over the padded grid, 1.3x these multiplications
  for 14x14 images padded by 1 (``Conv2d._col2im_by_products``): the floor stays the
  smaller.
- ``handprop``: ``handprop.train_step`` (im2col, pooling, ReLU, loss, the SGD update folded
  into the weight-gradient products).
- ``torch``: the same network in ``torch.nn`` eager mode, ``loss.backward()`` and
  ``torch.optim.SGD``, with as many threads as numpy's BLAS (``torch.set_num_threads``).

Each repeat times K steps of every contender in turn (K chosen for ~0.3 s); the table
shows the median per step and the ratios to ``products`` and to ``torch``. The machines
this project runs on drift between a fast and a slow state for minutes, and neighbours
load them: compare ratios within one run.
"""

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

SPEC = "conv 32 3 pad 1, relu, maxpool 2, conv 64 3 pad 1, relu, maxpool 2, flatten, linear 10"


def problem(batch: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((batch, 1, 28, 28)).astype(dtype), rng.integers(0, 10, batch)


def handprop_step(batch: int, dtype: str) -> tuple[Callable[[], None], Any]:
    import handprop as hp

    x, y = problem(batch, dtype)
    model = hp.build_layers(SPEC, (1, 28, 28), rng=0, dtype=dtype)
    optimizer, loss_fn = hp.SGD(model.parameters(), lr=0.01), hp.SoftmaxCrossEntropy()

    def step() -> None:
        hp.train_step(model, loss_fn, optimizer, x, y)

    return step, model


def products_step(model: Any) -> Callable[[], None]:
    """The matrix products of one handprop step, on the buffers that step used."""
    import handprop as hp

    calls: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for index, layer in enumerate(model):
        if isinstance(layer, hp.Conv2d):
            w1 = layer.weight_cols.T  # (kh * kw * C_in (+ 1, the bias), C_out)
            by_rows = layer.cols.shape[0] == layer.h_pixels.shape[0]
            rows = layer.cols if by_rows else layer.cols.T  # one row per output pixel
            grad_h = layer.h_pixels.copy()  # numbers of a gradient's size
            calls.append((rows, w1, layer.h_pixels))  # forward
            calls.append((grad_h.T, rows, np.empty_like(layer.weight_cols)))  # weight gradient
            if index > 0:  # input gradient, into cols' orientation, without the bias
                w1_patch = w1[: w1.shape[0] - (layer.bias is not None)]
                pair = (grad_h, w1_patch.T) if by_rows else (w1_patch, grad_h.T)
                calls.append((*pair, np.empty(np.matmul(*pair).shape, grad_h.dtype)))
        elif isinstance(layer, hp.Linear):
            grad_w = np.empty_like(layer.weight.data)
            grad_h = layer.h.copy()  # numbers of a gradient's size (np.empty may hold denormals)
            calls.append((layer.x, layer.weight.data, layer.h))
            calls.append((layer.x.T, grad_h, grad_w))
            calls.append((grad_h, layer.weight.data.T, np.empty_like(layer.x)))

    def step() -> None:
        for a, b, out in calls:
            np.matmul(a, b, out=out)

    return step


def torch_step(batch: int, dtype: str, threads: int) -> Callable[[], None] | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    nn = torch.nn
    torch_dtype = getattr(torch, dtype)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 10),
    ).to(torch_dtype)  # fmt: skip
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    x_np, y_np = problem(batch, dtype)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)

    def step() -> None:
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()

    return step


def interleaved(steps: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds per step of each contender, timed in turn within every repeat.

    K steps per contender and repeat (K for ~0.3 s): whatever slows the machine for a
    while slows all of them in the same repeat, so that their ratios stay comparable.
    """
    counts = {}
    for name, step in steps.items():
        for _ in range(2):
            step()
        start = time.perf_counter()
        step()
        counts[name] = max(1, round(0.3 / max(time.perf_counter() - start, 1e-9)))
    results: dict[str, list[float]] = {name: [] for name in steps}
    gc.disable()
    try:
        for _ in range(repeats):
            for name, step in steps.items():
                start = time.perf_counter()
                for _ in range(counts[name]):
                    step()
                results[name].append((time.perf_counter() - start) / counts[name])
    finally:
        gc.enable()
    return {name: statistics.median(times) for name, times in results.items()}


def blas_threads() -> int:
    from threadpoolctl import threadpool_info

    counts = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    return counts[0] if counts else 1


def table(batch: int, repeats: int, dtypes: list[str]) -> str:
    threads = blas_threads()
    lines = [
        f"CNN step, batch {batch}, 1x28x28: `{SPEC}`; {threads} threads (numpy BLAS and torch)",
        "",
        "| dtype | products alone | handprop | torch eager | handprop / products "
        "| handprop / torch |",
        "|---|---|---|---|---|---|",
    ]
    for dtype in dtypes:
        step, model = handprop_step(batch, dtype)
        step()  # fills the buffers the products use
        steps = {"products": products_step(model), "handprop": step}
        torch = torch_step(batch, dtype, threads)
        if torch is not None:
            steps["torch"] = torch
        times = interleaved(steps, repeats)
        floor_s, handprop_s = times["products"], times["handprop"]
        torch_s = times.get("torch", float("nan"))
        lines.append(
            f"| {dtype} | {floor_s * 1e3:.1f} ms | {handprop_s * 1e3:.1f} ms "
            f"| {torch_s * 1e3:.1f} ms | {handprop_s / floor_s:.2f}x "
            f"| {handprop_s / torch_s:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument(
        "--threads", type=int, default=None, help="BLAS and torch threads; default: numpy's"
    )
    arguments = parser.parse_args()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(arguments.threads, user_api="blas"):
        print(table(arguments.batch, arguments.repeats, arguments.dtypes.split(",")))


if __name__ == "__main__":
    main()
