"""After warm-up, a training step allocates no arrays: every buffer is reused.

Measured with tracemalloc, which numpy reports its array memory to. The larger
size makes any per-step temporary of activation size (512 KiB) stand out.
"""

import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest

import handprop as hp
from handprop.warmup import WarmupConfig, make_problem

OPTIMIZERS: dict[str, Callable[[list[hp.Parameter]], hp.Optimizer]] = {
    "sgd": lambda params: hp.SGD(params, lr=1e-9),  # folded into the products
    "sgd-unfolded": lambda params: hp.SGD(params, lr=1e-9),
    "sgd-exact": lambda params: hp.SGD(params, lr=1e-9),  # folded, rounded as the tutorial
    "sgd-momentum-decay": lambda params: hp.SGD(params, lr=1e-9, momentum=0.9, weight_decay=1e-4),
    "sgd-nesterov": lambda params: hp.SGD(params, lr=1e-9, momentum=0.9, nesterov=True),
    "adam": lambda params: hp.Adam(params, lr=1e-4, weight_decay=1e-4),
}


@pytest.mark.parametrize("optimizer_name", list(OPTIMIZERS))
@pytest.mark.parametrize(
    "config",
    [WarmupConfig(), WarmupConfig(batch_size=256, d_in=512, hidden=256, d_out=64)],
    ids=["tutorial", "256x512x256x64"],
)
def test_100_steps_allocate_under_64_kib(config: WarmupConfig, optimizer_name: str) -> None:
    fold, exact = optimizer_name != "sgd-unfolded", optimizer_name == "sgd-exact"
    run = make_problem(config)
    loss_fn, optimizer = hp.SumSquaredError(), OPTIMIZERS[optimizer_name](run.model.parameters())
    for _ in range(3):  # warm-up: the buffers are made here
        hp.train_step(run.model, loss_fn, optimizer, run.x, run.y, fold=fold, exact=exact)

    _, peak = traced_steps(
        lambda: hp.train_step(run.model, loss_fn, optimizer, run.x, run.y, fold=fold, exact=exact),
        100,
    )

    assert peak < 64 * 1024


CNNS = {
    "batchnorm-dropout": "conv 8 3 pad 1, batchnorm, relu, maxpool 2, conv 16 3, relu, "
    "avgpool 2, dropout 0.2, flatten, linear 10",
    # benchmarks.cnn's network: NHWC memory from the first convolution to Flatten
    "benchmark": "conv 8 3 pad 1, relu, maxpool 2, conv 16 3 pad 1, relu, maxpool 2, "
    "flatten, linear 10",
}


@pytest.mark.parametrize("spec", list(CNNS))
@pytest.mark.parametrize("optimizer_name", ["sgd", "adam"])
def test_cnn_steps_allocate_no_arrays(optimizer_name: str, spec: str) -> None:
    """After warm-up a step allocates no array: its peak stays far below one activation.

    The first activation is 4 MiB (256 x 8 x 16 x 16 float64). What the peak does hold
    (~200 KiB, the same at any batch size) is numpy's iteration buffers: a ufunc over
    strided or broadcast operands (a pooling window, a per-channel scale) holds up to
    8192 elements per operand for the call's duration (``numpy.getbufsize()``).
    MeanSquaredError, because SoftmaxCrossEntropy allocates its (N, C) arrays.
    """
    model = hp.build_layers(CNNS[spec], (1, 16, 16), rng=0)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((256, 1, 16, 16)), rng.standard_normal((256, 10))
    loss_fn = hp.MeanSquaredError()
    params = model.parameters()
    optimizer = hp.SGD(params, lr=0.01) if optimizer_name == "sgd" else hp.Adam(params, lr=1e-3)
    for _ in range(3):  # warm-up: the buffers are made here
        hp.train_step(model, loss_fn, optimizer, x, y)

    kept, peak = traced_steps(lambda: hp.train_step(model, loss_fn, optimizer, x, y), 10)

    assert peak < 256 * 1024
    assert kept < 64 * 1024


def traced_steps(step: Callable[[], object], steps: int) -> tuple[int, int]:
    """Bytes ``steps`` calls of ``step`` left allocated, and their peak, by tracemalloc."""
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(steps):
            step()
        end, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return end - start, peak - start
