"""After warm-up, a training step allocates no arrays: every buffer is reused.

Measured with tracemalloc, which numpy reports its array memory to. The larger
size makes any per-step temporary of activation size (512 KiB) stand out.
"""

import tracemalloc
from collections.abc import Callable

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

    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(100):
            hp.train_step(run.model, loss_fn, optimizer, run.x, run.y, fold=fold, exact=exact)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak - start < 64 * 1024
