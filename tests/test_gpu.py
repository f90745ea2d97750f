"""On a CUDA GPU: eager and graphed steps equal the CPU's float64 run, memory stays flat.

Skipped without CUDA (CI has none); ``benchmarks/gpu.sh`` runs them on a GPU machine.
"""

from types import ModuleType
from typing import Any

import numpy as np
import pytest

import handprop as hp
from handprop.training.graphed import GraphedStep, read_losses
from handprop.training.step import train_step
from handprop.warmup import WarmupConfig, make_problem, run_warmup
from tests.test_capture import counted_calls


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _cuda(), reason="no CUDA GPU")]


@pytest.fixture(autouse=True)
def no_tf32(torch: ModuleType) -> Any:
    """float32 means float32: TF32 products off while a test runs."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _relative(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def test_warmup_on_cuda_equals_cpu_float64(torch: ModuleType) -> None:
    losses = run_warmup(WarmupConfig(steps=200)).losses
    losses_cuda = run_warmup(WarmupConfig(steps=200, device="cuda")).losses
    assert _relative(losses_cuda, losses) <= 1e-10


def _graphed_losses(dtype: str, steps: int, device: str | None) -> tuple[list[float], int]:
    run = make_problem(WarmupConfig(dtype=dtype, device=device))
    optimizer = hp.SGD(run.model.parameters(), lr=1e-6)
    if device is None:
        loss_fn = hp.SumSquaredError()
        losses = [train_step(run.model, loss_fn, optimizer, run.x, run.y) for _ in range(steps)]
        return losses, 0
    graphed = GraphedStep(run.model, hp.SumSquaredError(), optimizer)
    losses = read_losses([graphed.step(run.x, run.y) for _ in range(steps)])
    return losses, graphed.replays


@pytest.mark.parametrize(("dtype", "tolerance"), [("float64", 1e-10), ("float32", 1e-3)])
def test_graphed_steps_equal_cpu(torch: ModuleType, dtype: str, tolerance: float) -> None:
    expected, _ = _graphed_losses("float64", 200, None)
    losses, replays = _graphed_losses(dtype, 200, "cuda")
    assert replays == 200 - 2  # two eager warm-up steps, then every step replayed
    assert _relative(losses, expected) <= tolerance


def test_short_batches_fall_back_to_eager(torch: ModuleType) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((100, 8)), rng.standard_normal((100, 2))
    results = []
    for device in ("numpy", "cuda"):
        model = hp.mlp(8, [16], 2, rng=0).to(device)
        optimizer = hp.SGD(model.parameters(), lr=0.01, momentum=0.9)
        graphed = GraphedStep(model, hp.MeanSquaredError(), optimizer)
        xp = optimizer.xp
        losses = []
        for _ in range(5):
            for start in range(0, 100, 32):  # 32, 32, 32 and a short 4
                xb = xp.from_host(x[start : start + 32])
                yb = xp.from_host(y[start : start + 32])
                losses.append(graphed.step(xb, yb))
        results.append(read_losses(losses))
    assert _relative(results[1], results[0]) <= 1e-10


def test_cuda_memory_flat_over_1000_graphed_steps(torch: ModuleType) -> None:
    run = make_problem(WarmupConfig(device="cuda"))
    graphed = GraphedStep(run.model, hp.SumSquaredError(), hp.SGD(run.model.parameters(), 1e-6))
    for _ in range(10):
        graphed.step(run.x, run.y)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    for _ in range(1000):
        graphed.step(run.x, run.y)
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() == before
    assert graphed.replays >= 1000


@pytest.mark.parametrize(("dtype", "tolerance"), [("float64", 1e-12), ("float32", 1e-6)])
def test_graphed_adam_replays_and_equals_eager_adam(
    torch: ModuleType, dtype: str, tolerance: float
) -> None:
    """Adam under a CUDA graph: its step count and bias corrections are computed on the
    host and copied into a device buffer before each replay (``RecordedUpdate``), so every
    step after the warm-up replays, a new learning rate records again, and the losses,
    weights and moments equal eager Adam's on the same GPU."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 8)).astype(dtype), rng.standard_normal((64, 2)).astype(dtype)
    results, replays = [], []
    for capture in (False, True):
        model = hp.mlp(8, [16], 2, rng=0).to("cuda", dtype)
        optimizer = hp.Adam(model.parameters(), lr=1e-2)
        graphed = GraphedStep(model, hp.MeanSquaredError(), optimizer)
        assert graphed.capturable
        graphed.capturable = capture
        xb, yb = optimizer.xp.from_host(x), optimizer.xp.from_host(y)
        losses = []
        for index in range(60):
            if index == 30:
                optimizer.lr = 3e-3  # a schedule: two eager steps, then a new graph
            losses.append(graphed.step(xb, yb))
        arrays = [p.data for p in model.parameters()] + optimizer.m + optimizer.v
        results.append((read_losses(losses), [optimizer.xp.to_numpy(a) for a in arrays]))
        replays.append((graphed.replays, optimizer.t))
    assert replays == [(0, 60), (60 - 4, 60)]
    assert _relative(results[1][0], results[0][0]) <= tolerance
    for graphed_array, eager_array in zip(results[1][1], results[0][1], strict=True):
        assert np.allclose(graphed_array, eager_array, rtol=tolerance, atol=0)


def test_graphed_adam_equals_numpy_adam_float64(torch: ModuleType) -> None:
    """The graphed Adam step on the GPU against numpy's on the CPU, float64: 1e-10."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((32, 8)), rng.standard_normal((32, 2))
    results = []
    for device in ("numpy", "cuda"):
        model = hp.mlp(8, [16], 2, rng=0).to(device)
        optimizer = hp.Adam(model.parameters(), lr=1e-2)
        graphed = GraphedStep(model, hp.MeanSquaredError(), optimizer)
        xb, yb = optimizer.xp.from_host(x), optimizer.xp.from_host(y)
        results.append(read_losses([graphed.step(xb, yb) for _ in range(40)]))
    assert _relative(results[1], results[0]) <= 1e-10


def test_graphed_cross_entropy_replays_checks_labels_and_equals_eager(torch: ModuleType) -> None:
    """SoftmaxCrossEntropy under a CUDA graph: each batch's labels are checked before the
    replay (a label out of range raises as the eager step does, and nothing trains), the
    graph records ``checked_total``; with Adam, the losses and weights equal the eager ones."""
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((64, 8)), rng.integers(0, 3, 64)
    results, replays = [], []
    for capture in (False, True):
        model = hp.mlp(8, [16], 3, rng=0).to("cuda")
        optimizer = hp.Adam(model.parameters(), lr=1e-2)
        graphed = GraphedStep(model, hp.SoftmaxCrossEntropy(), optimizer)
        assert graphed.capturable
        graphed.capturable = capture
        xb, yb = optimizer.xp.from_host(x), optimizer.xp.from_host(y)
        losses = [graphed.step(xb, yb) for _ in range(30)]
        with pytest.raises(ValueError, match=r"labels in \[0, 2\]"):
            graphed.step(xb, optimizer.xp.from_host(np.full(64, 3)))
        arrays = [p.data for p in model.parameters()] + optimizer.m + optimizer.v
        results.append((read_losses(losses), [optimizer.xp.to_numpy(a) for a in arrays]))
        replays.append((graphed.replays, optimizer.t))
    assert replays == [(0, 30), (30 - 2, 30)]
    assert _relative(results[1][0], results[0][0]) <= 1e-12
    for graphed_array, eager_array in zip(results[1][1], results[0][1], strict=True):
        assert np.allclose(graphed_array, eager_array, rtol=1e-12, atol=0)


def test_fit_steps_scores_on_cuda_equal_numpy_float64(
    torch: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fit on CUDA replays graphs; the training scores come from the replayed steps' own
    predictions (the graph's output buffer, copied after each replay) and equal numpy's."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((100, 8)), rng.integers(0, 3, 100)
    recorded = counted_calls(monkeypatch, GraphedStep, "_record")
    logs = []
    for device in ("numpy", "cuda"):
        model = hp.mlp(8, [16], 3, rng=0).to(device)
        optimizer = hp.Adam(model.parameters(), lr=1e-2)
        history = hp.fit(model, hp.SoftmaxCrossEntropy(), optimizer, (x, y), epochs=3,
                         batch_size=16, rng=np.random.default_rng(0))  # fmt: skip
        logs.append([(log.train_loss, log.train_metric) for log in history.logs])
    assert recorded  # the CUDA fit replayed graphs (their predictions copied after replay)
    assert _relative(logs[1], logs[0]) <= 1e-10
