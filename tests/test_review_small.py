"""Review of the captured-step change (issue 12): what GraphedStep records, decided and
replayed on the CPU with a stand-in CUDA namespace (no graph runs: a replay is a no-op)."""

import contextlib
from collections.abc import Iterator
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest

import handprop as hp
from handprop.training import graphed as graphed_module
from handprop.training.graphed import GraphedStep

D_IN, H, D_OUT = 5, 7, 3


def network() -> hp.Sequential:
    return hp.Sequential(
        hp.Linear(D_IN, H, rng=1, dtype="float64"),
        hp.activation("relu"),
        hp.Linear(H, D_OUT, rng=2, dtype="float64"),
    )


class ClippedSGD(hp.SGD):
    """An SGD subclass with its own step and no captured form of it (as ClippedAdam)."""

    def step(self) -> None:
        for parameter in self.params:
            np.clip(parameter.grad, -1.0, 1.0, out=parameter.grad)
        super().step()


def test_an_sgd_subclass_with_its_own_step_is_not_recorded_as_a_cuda_graph() -> None:
    """The rule Adam's subclasses follow holds for SGD's: a step the class changed below
    ``record`` is not what a graph may bake in (it may read numbers on the host)."""
    cuda = SimpleNamespace(library="torch", device=SimpleNamespace(type="cuda"))
    params = network().parameters()
    loss_fn = hp.MeanSquaredError()
    assert graphed_module._capturable(cuda, loss_fn, hp.SGD(params, lr=0.1))
    assert not graphed_module._capturable(cuda, loss_fn, ClippedSGD(params, lr=0.1))


class StandInCuda:
    """``handprop.backend``'s torch namespace on the CPU, dressed as CUDA: streams and
    graphs that do nothing (a recorded step runs once, eagerly; a replay runs nothing)."""

    library = "torch"
    device = SimpleNamespace(type="cuda")

    def __init__(self, torch: ModuleType) -> None:
        self.inner = hp.backend.torch_namespace("cpu")
        stream = SimpleNamespace(wait_stream=lambda other: None)

        @contextlib.contextmanager
        def nothing(*args: Any, **keywords: Any) -> Iterator[None]:
            yield

        graph = SimpleNamespace(replay=lambda: None)
        cuda = SimpleNamespace(
            synchronize=lambda: None,
            CUDAGraph=lambda: graph,
            graph=nothing,
            stream=nothing,
            Stream=lambda device: stream,
            current_stream=lambda: stream,
        )
        self.torch = SimpleNamespace(cuda=cuda, Tensor=torch.Tensor)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_step_recorded_without_warmup_still_checks_the_labels(
    torch: ModuleType, optimizer: str
) -> None:
    """With ``warmup=0`` the first step is recorded before the loss has seen a batch; the
    replays must still check each batch's labels, as the eager step does (an out-of-range
    label on a GPU indexes outside the scores)."""
    model = network().to("torch")
    build = {"sgd": lambda p: hp.SGD(p, lr=0.1), "adam": lambda p: hp.Adam(p, lr=1e-2)}
    step = GraphedStep(model, hp.SoftmaxCrossEntropy(), build[optimizer](model.parameters()))
    step.warmup, step.xp, step.capturable = 0, StandInCuda(torch), True
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((4, D_IN)))
    step.step(x, torch.tensor([0, 1, 2, 1]))
    with pytest.raises(ValueError, match=r"labels in \[0, 2\]"):
        step.step(x, torch.tensor([0, 1, 3, 1]))


class PlainDescent(hp.Optimizer):
    """An optimizer written outside the library, ``w -= lr * grad``, whose captured form
    records numpy calls (as a numpy tape replays them; ``Tape.xp`` says a part *may* record
    through the tape's namespace): on torch tensors its record cannot run."""

    def __init__(self, params: Any, lr: float) -> None:
        super().__init__(params, lr)
        self.scratch = [self.xp.empty_like(p.data) for p in self.params]

    def step(self) -> None:
        for parameter, scratch in zip(self.params, self.scratch, strict=True):
            step = self.xp.multiply(self.lr, parameter.grad, out=scratch)
            self.xp.subtract(parameter.data, step, out=parameter.data)

    def record(self, tape: Any, grad: Any) -> Any:
        lr = tape.scalar()
        tape.host(lambda: lr.fill(self.lr))
        for parameter, scratch in zip(self.params, self.scratch, strict=True):
            tape.record(np.multiply, lr, parameter.grad, scratch)
            tape.record(np.subtract, parameter.data, scratch, parameter.data)
        return lambda: True


def test_an_optimizer_whose_record_is_not_the_librarys_trains_eagerly_on_cuda(
    torch: ModuleType,
) -> None:
    """A CUDA graph records an optimizer's ``record`` on torch tensors: only handprop's own
    (Adam's) are written for that; a user's numpy ``record`` would fail inside the graph
    being recorded, where the eager step trains."""
    cuda = StandInCuda(torch)
    models = [network().to("torch") for _ in range(2)]
    eager, graphed = (PlainDescent(model.parameters(), lr=0.1) for model in models)
    step = GraphedStep(models[1], hp.MeanSquaredError(), graphed)
    step.xp, step.capturable = cuda, graphed_module._capturable(cuda, step.loss_fn, graphed)
    stepped = GraphedStep(models[0], hp.MeanSquaredError(), eager)
    rng = np.random.default_rng(0)
    for _ in range(4):
        x, y = (torch.from_numpy(rng.standard_normal((4, d))) for d in (D_IN, D_OUT))
        assert float(step.step(x, y)) == float(stepped.step(x, y))
    for left, right in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.equal(left.data, right.data)
