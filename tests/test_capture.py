"""The captured step (training/capture.py) equals train_step bit for bit, over many steps.

Each case trains two copies of one model from the same start: one with ``train_step``,
one with ``capture_step``'s replay, on the same batches, and compares every loss and,
at the end, every weight, gradient and optimizer slot with ``array_equal`` (no tolerance).
"""

import copy
import operator
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest

import handprop as hp
from handprop.checkpoint import build_optimizer, load_checkpoint, save_checkpoint
from handprop.training import FitOptions, fit, train_step
from handprop.training import capture as capture_module
from handprop.training import graphed as graphed_module
from handprop.training.capture import NotCapturable, capture_step
from handprop.training.graphed import GraphedStep, RecordedUpdate

N, D_IN, H, D_OUT, STEPS = 8, 5, 7, 3, 30


def network(activation: str, dtype: str, bias: bool = True) -> hp.Sequential:
    return hp.Sequential(
        hp.Linear(D_IN, H, bias=bias, rng=1, dtype=dtype),
        hp.activation(activation),
        hp.Linear(H, D_OUT, bias=bias, rng=2, dtype=dtype),
    )


def batches(loss: str, dtype: str, count: int = STEPS) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(3)
    out = []
    for _ in range(count):
        x = rng.standard_normal((N, D_IN)).astype(dtype)
        y = (
            rng.integers(0, D_OUT, N)
            if loss == "cross-entropy"
            else rng.standard_normal((N, D_OUT)).astype(dtype)
        )
        out.append((x, y))
    return out


OPTIMIZERS: dict[str, Callable[[list[hp.Parameter]], hp.Optimizer]] = {
    "sgd": lambda p: hp.SGD(p, lr=0.01),
    "sgd-momentum": lambda p: hp.SGD(p, lr=0.01, momentum=0.9),
    "sgd-nesterov-decay": lambda p: hp.SGD(
        p, lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-2
    ),
    "adam": lambda p: hp.Adam(p, lr=1e-2),
    "adam-decay": lambda p: hp.Adam(p, lr=1e-2, weight_decay=1e-2),
    "adamw": lambda p: hp.Adam(p, lr=1e-2, weight_decay=1e-2, decoupled=True),
}
LOSSES = {
    "sse": hp.SumSquaredError,
    "mse": hp.MeanSquaredError,
    "cross-entropy": hp.SoftmaxCrossEntropy,
}


def state(model: hp.Module, optimizer: hp.Optimizer) -> list[np.ndarray]:
    arrays = [p.data for p in model.parameters()] + [p.grad for p in model.parameters()]
    return arrays + [a for slot in optimizer.slots().values() for a in slot]


def assert_same(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for left, right in zip(a, b, strict=True):
        assert left.dtype == right.dtype and np.array_equal(left, right, equal_nan=True)


def twins(
    activation: str, loss: str, optimizer: str, dtype: str, bias: bool = True
) -> tuple[tuple[Any, Any, Any], tuple[Any, Any, Any]]:
    model = network(activation, dtype, bias)
    first = (model, LOSSES[loss](), OPTIMIZERS[optimizer](model.parameters()))
    copied = copy.deepcopy(model)
    second = (copied, LOSSES[loss](), OPTIMIZERS[optimizer](copied.parameters()))
    return first, second


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize(
    ("activation", "loss", "bias"),
    [("relu", "cross-entropy", True), ("tanh", "mse", True), ("relu", "sse", False)],
)
def test_replay_equals_train_step_bit_for_bit(
    activation: str, loss: str, bias: bool, optimizer: str, dtype: str
) -> None:
    eager, captured = twins(activation, loss, optimizer, dtype, bias)
    y_shape = (N,) if loss == "cross-entropy" else (N, D_OUT)
    step = capture_step(*captured, (N, D_IN), y_shape)
    for x, y in batches(loss, dtype):
        assert step(x, y) == train_step(*eager, x, y)
    assert_same(state(*eager[::2]), state(*captured[::2]))
    if isinstance(eager[2], hp.Adam):
        assert eager[2].t == captured[2].t == STEPS


@pytest.mark.parametrize("exact", [False, True])
def test_fused_sgd_and_fold_false(exact: bool) -> None:
    """Plain SGD folds its update into the weight-gradient gemm (fold=True), or not."""
    for fold in (True, False):
        eager, captured = twins("relu", "sse", "sgd", "float64")
        step = capture_step(*captured, (N, D_IN), (N, D_OUT), fold=fold, exact=exact)
        for x, y in batches("sse", "float64"):
            assert step(x, y) == train_step(*eager, x, y, fold=fold, exact=exact)
        assert_same(state(*eager[::2]), state(*captured[::2]))


@pytest.mark.parametrize("optimizer", ["sgd", "sgd-momentum", "adam"])
def test_hyperparameters_changed_between_steps_are_read_live(optimizer: str) -> None:
    """A schedule's learning rate, new betas or eps: the replay reads them at every step."""
    eager, captured = twins("relu", "cross-entropy", optimizer, "float64")
    step = capture_step(*captured, (N, D_IN), (N,))
    for index, (x, y) in enumerate(batches("cross-entropy", "float64")):
        for opt in (eager[2], captured[2]):
            opt.lr = 0.05 / (1 + index)
            if isinstance(opt, hp.Adam) and index == 10:
                opt.betas, opt.eps = (0.8, 0.99), 1e-6
        assert step(x, y) == train_step(*eager, x, y)
    assert_same(state(*eager[::2]), state(*captured[::2]))


def test_structure_changes_and_other_batches_fall_back_to_eager() -> None:
    """Momentum switched on, a short batch, another dtype: train_step runs, results agree."""
    eager, captured = twins("relu", "cross-entropy", "sgd", "float64")
    step = capture_step(*captured, (N, D_IN), (N,), fold=False)
    data = batches("cross-entropy", "float64", 12)
    for index, (x, y) in enumerate(data):
        if index == 4:
            eager[2].momentum = captured[2].momentum = 0.5
            eager[2].velocities = [np.zeros_like(p.data) for p in eager[2].params]
            captured[2].velocities = [np.zeros_like(p.data) for p in captured[2].params]
        if index % 3 == 2:
            x, y = x[:5], y[:5]  # a short batch
        assert step(x, y) == train_step(*eager, x, y, fold=False)
    assert_same(state(*eager[::2]), state(*captured[::2]))


def test_a_bad_batch_raises_what_train_step_raises() -> None:
    _, captured = twins("relu", "cross-entropy", "adam", "float64")
    step = capture_step(*captured, (N, D_IN), (N,))
    x, y = batches("cross-entropy", "float64", 1)[0]
    for labels in (np.full(N, D_OUT), np.full(N, -1), np.full(N, 2**63, np.uint64)):
        with pytest.raises(ValueError, match=r"labels in \[0, 2\]"):
            step(x, labels)
    with pytest.raises(TypeError, match="computes in float64"):
        step(x.astype(np.float32), y)
    assert captured[2].t == 0  # nothing was replayed


def test_a_model_moved_after_capture_trains_eagerly() -> None:
    """model.to(float32) replaces the weights: the tape's arrays are no longer the model's."""
    eager, captured = twins("relu", "mse", "sgd", "float64")
    step = capture_step(*captured, (N, D_IN), (N, D_OUT))
    (x, y), *_ = batches("mse", "float64", 1)
    for model in (eager[0], captured[0]):
        for parameter in model.parameters():
            parameter.data = parameter.data.copy()
    assert step(x, y) == train_step(*eager, x, y)
    assert_same(state(*eager[::2]), state(*captured[::2]))


@pytest.mark.parametrize(
    "build",
    [
        lambda: (hp.Sequential(hp.Linear(D_IN, D_OUT), hp.Sigmoid()), hp.MeanSquaredError()),
        lambda: (hp.Sequential(hp.Linear(D_IN, D_OUT)), hp.Huber()),
        lambda: (hp.Linear(D_IN, D_OUT), hp.SoftmaxCrossEntropy(weight=np.ones(D_OUT))),
    ],
)
def test_what_the_tape_cannot_record_is_named(build: Callable[[], tuple[Any, Any]]) -> None:
    model, loss_fn = build()
    with pytest.raises(NotCapturable, match="capture cannot record"):
        capture_step(model, loss_fn, hp.SGD(model.parameters(), lr=0.1), (N, D_IN), (N, D_OUT))


def test_an_optimizer_on_other_parameters_is_not_captured() -> None:
    model = network("relu", "float64")
    optimizer = hp.SGD(model.parameters()[:2], lr=0.1)
    with pytest.raises(NotCapturable, match=r"model\.parameters"):
        capture_step(model, hp.MeanSquaredError(), optimizer, (N, D_IN), (N, D_OUT))


def counted_calls(monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> list[int]:
    """A list that grows by one at each call of the method ``owner.name`` (which still runs)."""
    calls: list[int] = []
    method = getattr(owner, name)

    def counted(self: Any, *args: Any, **keywords: Any) -> Any:
        calls.append(1)
        return method(self, *args, **keywords)

    monkeypatch.setattr(owner, name, counted)
    return calls


def replays(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count CapturedStep.replay calls."""
    return counted_calls(monkeypatch, capture_module.CapturedStep, "replay")


@pytest.mark.parametrize(
    ("optimizer", "options"),
    [
        ("adam", FitOptions()),
        ("sgd", FitOptions(schedule=hp.schedules.StepSchedule(step_size=1, gamma=0.5))),
        ("sgd-momentum", FitOptions(schedule=hp.schedules.CosineSchedule(epochs=4))),
    ],
)
def test_fit_captured_equals_fit_eager(
    optimizer: str, options: FitOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every batch replays (the full ones from one tape, the last, short one from another,
    sharing Adam's flat buffers); every epoch's log agrees with the eager fit's."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((45, D_IN))
    y = rng.integers(0, D_OUT, 45)
    eager, captured = twins("relu", "cross-entropy", optimizer, "float64")
    calls = replays(monkeypatch)
    run: dict[str, Any] = {"epochs": 4, "batch_size": N, "validation": (x[:9], y[:9])}
    off = FitOptions(**{**options.__dict__, "capture": False})
    first = fit(*eager, (x, y), rng=np.random.default_rng(0), options=off, **run)
    assert calls == []
    second = fit(*captured, (x, y), rng=np.random.default_rng(0), options=options, **run)
    assert len(calls) == 4 * 6  # 45 samples: 5 batches of 8, then 5
    assert first.logs == second.logs
    assert_same(state(*eager[::2]), state(*captured[::2]))


def test_fit_with_bad_labels_fails_as_eager_does() -> None:
    model = network("relu", "float64")
    x, y = np.zeros((16, D_IN)), np.full(16, D_OUT)
    with pytest.raises(ValueError, match=r"labels in \[0, 2\]"):
        fit(
            model,
            hp.SoftmaxCrossEntropy(),
            hp.Adam(model.parameters()),
            (x, y),
            epochs=1,
            batch_size=N,
        )


def test_fit_trains_eagerly_what_the_tape_cannot_record(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = replays(monkeypatch)
    model = hp.Sequential(hp.Linear(D_IN, H, rng=0), hp.Sigmoid(), hp.Linear(H, D_OUT, rng=1))
    rng = np.random.default_rng(0)
    data = rng.standard_normal((16, D_IN)), rng.standard_normal((16, D_OUT))
    optimizer = hp.SGD(model.parameters(), lr=0.1)
    history = fit(model, hp.MeanSquaredError(), optimizer, data, epochs=2, batch_size=N)
    assert calls == [] and history.stop_reason == "completed"


def test_adam_moments_replaced_one_by_one_train_eagerly() -> None:
    """The guard checks every array of m and v, not only the lists: an element replaced
    (not in the tape's buffer any more) sends the step to train_step."""
    eager, captured = twins("relu", "cross-entropy", "adam", "float64")
    step = capture_step(*captured, (N, D_IN), (N,))
    data = batches("cross-entropy", "float64", 6)
    for index, (x, y) in enumerate(data):
        if index == 3:
            for optimizer in (eager[2], captured[2]):
                optimizer.m[1] = optimizer.m[1].copy()
                optimizer.v[2] = optimizer.v[2].copy()
            assert not step.guard()
        assert step(x, y) == train_step(*eager, x, y)
    assert_same(state(*eager[::2]), state(*captured[::2]))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_products_the_tape_makes_with_dot_are_matmul_s_bit_for_bit(dtype: str) -> None:
    """Tape.product records np.dot where it makes the gemm call np.matmul makes (every side
    above 1, operands C- or F-ordered, outputs of up to 16 KiB), else np.matmul: a batch of
    1 and a Fortran-ordered weight replay as train_step computes them."""
    for n, fortran in ((N, False), (N, True), (1, False), (2, True)):
        eager, captured = twins("relu", "cross-entropy", "adam", dtype)
        if fortran:
            for model in (eager[0], captured[0]):
                model[2].weight.data = np.asfortranarray(model[2].weight.data)
        step = capture_step(*captured, (n, D_IN), (n,))
        products = [f for f, args in step.tape.calls if f in (np.dot, np.matmul)]
        assert len(products) == 5  # h, y_pred, grad_h_relu, grad_w2, grad_w1 (no grad_x)
        assert (np.dot in products) == (n > 1)
        for x, y in batches("cross-entropy", dtype, 10):
            assert step(x[:n], y[:n]) == train_step(*eager, x[:n], y[:n])
        assert_same(state(*eager[::2]), state(*captured[::2]))


def test_the_model_output_holds_the_batch_predictions_after_a_replay() -> None:
    """y_pred, the model's output buffer, is written by the forward alone: after a step it
    holds the predictions the loss was computed on (fit scores the epoch from them)."""
    eager, captured = twins("relu", "cross-entropy", "adam", "float64")
    step = capture_step(*captured, (N, D_IN), (N,))
    for x, y in batches("cross-entropy", "float64", 5):
        expected = eager[0](x)  # the predictions before this step's update
        assert step(x, y) == train_step(*eager, x, y)
        assert np.array_equal(step.y_pred, expected)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_relu_at_exactly_zero_passes_the_gradient_as_eager_does(dtype: str) -> None:
    """Rows of zeros give h == 0 exactly (the biases start at zero): the tutorial's mask."""
    eager, captured = twins("relu", "mse", "sgd-momentum", dtype)
    step = capture_step(*captured, (N, D_IN), (N, D_OUT))
    for x, y in batches("mse", dtype, 5):
        x[::2] = 0.0
        x[1] = -0.0
        assert step(x, y) == train_step(*eager, x, y)
    assert_same(state(*eager[::2]), state(*captured[::2]))


class Doubling(hp.Module):
    """A layer written outside the library: ``y = 2 * x``, with its captured form beside."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.y = np.multiply(x, 2.0)
        return self.y

    def backward(self, grad_y: np.ndarray, grads: Any = None) -> np.ndarray:
        return np.multiply(grad_y, 2.0)

    def record(self, tape: Any, x: np.ndarray) -> tuple[np.ndarray, Any]:
        y = tape.buffer(x.shape)
        tape.record(np.multiply, x, tape.constant(2.0), y)

        def backward(grad_y: np.ndarray, need_input_grad: bool, grads: Any) -> Any:
            if not need_input_grad:
                return None
            grad_x = tape.buffer(x.shape)
            tape.record(np.multiply, grad_y, tape.constant(2.0), grad_x)
            return grad_x

        return y, backward


class QuietReLU(hp.ReLU):
    """A subclass that changes nothing the step runs: ReLU's captured form still holds."""

    def __repr__(self) -> str:
        return "QuietReLU()"


class ShiftedReLU(hp.ReLU):
    """A subclass with its own forward and no captured form of it."""

    def forward(self, h: np.ndarray) -> np.ndarray:
        return super().forward(h - 1.0)


@pytest.mark.parametrize("middle", [Doubling, QuietReLU])
def test_a_layer_that_states_its_captured_form_is_captured(middle: type[hp.Module]) -> None:
    """Adding a capturable layer is one class: its ``record`` beside forward and backward."""
    model = hp.Sequential(hp.Linear(D_IN, H, rng=1), middle(), hp.Linear(H, D_OUT, rng=2))
    eager = (model, hp.MeanSquaredError(), hp.Adam(model.parameters(), lr=1e-2))
    copied = copy.deepcopy(model)
    captured = (copied, hp.MeanSquaredError(), hp.Adam(copied.parameters(), lr=1e-2))
    step = capture_step(*captured, (N, D_IN), (N, D_OUT))
    for x, y in batches("mse", "float64", 10):
        assert step(x, y) == train_step(*eager, x, y)
    assert_same(state(*eager[::2]), state(*captured[::2]))


def test_a_subclass_with_its_own_forward_is_not_captured() -> None:
    model = hp.Sequential(hp.Linear(D_IN, H, rng=1), ShiftedReLU(), hp.Linear(H, D_OUT, rng=2))
    with pytest.raises(NotCapturable, match="cannot record a ShiftedReLU layer"):
        capture_step(
            model, hp.MeanSquaredError(), hp.SGD(model.parameters(), lr=0.1), (N, D_IN), (N, D_OUT)
        )


class HalvedMSE(hp.MeanSquaredError):
    """A loss subclass with its own total and no captured form of it."""

    def total(self, y_pred: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        value, divisor = super().total(y_pred, y)
        return value, 2 * divisor


def test_a_loss_subclass_with_its_own_total_is_not_captured() -> None:
    model = network("relu", "float64")
    with pytest.raises(NotCapturable, match="cannot record the loss HalvedMSE"):
        capture_step(model, HalvedMSE(), hp.SGD(model.parameters(), lr=0.1), (N, D_IN), (N, D_OUT))


class QuietAdam(hp.Adam):
    """An optimizer subclass that changes nothing the step runs: Adam's captured form holds."""

    def __repr__(self) -> str:
        return "QuietAdam()"


class SignSGD(hp.SGD):
    """An optimizer written outside the library, ``w -= lr * sign(grad)``, with its captured
    form beside its step (the same numpy calls on the tape)."""

    def step(self) -> None:
        for parameter, scratch in zip(self.params, self.scratch, strict=True):
            np.multiply(self.lr, np.sign(parameter.grad, out=scratch), out=scratch)
            np.subtract(parameter.data, scratch, out=parameter.data)

    def fused_gradients(self, exact: bool = False) -> None:
        return None

    def record(self, tape: Any, grad: np.ndarray | None) -> Callable[[], bool]:
        lr = tape.scalar()
        tape.record(lambda: lr.fill(self.lr))
        for parameter, scratch in zip(self.params, self.scratch, strict=True):
            tape.record(np.sign, parameter.grad, scratch)
            tape.record(np.multiply, lr, scratch, scratch)
            tape.record(np.subtract, parameter.data, scratch, parameter.data)
        return lambda: True


class ClippedAdam(hp.Adam):
    """An optimizer subclass with its own step and no captured form of it."""

    def step(self) -> None:
        for parameter in self.params:
            np.clip(parameter.grad, -1.0, 1.0, out=parameter.grad)
        super().step()


@pytest.mark.parametrize(
    "build",
    [
        lambda p: QuietAdam(p, lr=1e-2, weight_decay=1e-2),
        lambda p: SignSGD(p, lr=1e-2),
    ],
)
def test_an_optimizer_that_states_its_captured_form_is_captured(
    build: Callable[[list[hp.Parameter]], hp.Optimizer],
) -> None:
    """Adding a capturable optimizer is one class: its ``record`` beside its ``step``."""
    (model, loss_fn, _), (copied, copied_loss, _) = twins("relu", "cross-entropy", "sgd", "float64")
    eager = (model, loss_fn, build(model.parameters()))
    captured = (copied, copied_loss, build(copied.parameters()))
    step = capture_step(*captured, (N, D_IN), (N,))
    for x, y in batches("cross-entropy", "float64", 10):
        assert step(x, y) == train_step(*eager, x, y)
    assert_same(state(*eager[::2]), state(*captured[::2]))


def test_an_optimizer_subclass_with_its_own_step_is_not_captured() -> None:
    model = network("relu", "float64")
    with pytest.raises(NotCapturable, match="cannot record the optimizer ClippedAdam"):
        capture_step(
            model, hp.MeanSquaredError(), ClippedAdam(model.parameters()), (N, D_IN), (N, D_OUT)
        )


def test_adam_state_is_one_flat_buffer_from_the_start() -> None:
    """m and v are views of one flat buffer, m's half first, set up by Adam itself: the tape
    updates them in one call a line (both at once where their lines match) and never
    replaces the arrays it was given."""
    model = network("relu", "float64")
    optimizer = hp.Adam(model.parameters())
    m, v = list(optimizer.m), list(optimizer.v)
    size = sum(p.data.size for p in model.parameters())
    assert all(a.base is m[0].base for a in m + v) and m[0].base.size == 2 * size
    assert v[0].ctypes.data == m[0].ctypes.data + size * m[0].itemsize
    step = capture_step(model, hp.SoftmaxCrossEntropy(), optimizer, (N, D_IN), (N,))
    assert all(map(operator.is_, optimizer.m + optimizer.v, m + v))
    stacked = [args for _, args in step.tape.calls if args and np.shape(args[0]) == (2, size)]
    assert len(stacked) == 2  # m *= b1 and v *= b2 in one call, then m, v += ... in one


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd-nesterov-decay"])
def test_checkpoint_and_train_step_after_a_captured_fit_continue_as_eager(
    optimizer: str, tmp_path: Path
) -> None:
    """After a captured fit, the optimizer's state saves, restores and trains on (eagerly,
    with train_step, and captured again) bit for bit as after an eager fit."""
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((45, D_IN)), rng.integers(0, D_OUT, 45)
    eager, captured = twins("relu", "cross-entropy", optimizer, "float64")
    run: dict[str, Any] = {"epochs": 3, "batch_size": N}
    fit(*eager, (x, y), rng=np.random.default_rng(0), options=FitOptions(capture=False), **run)
    fit(*captured, (x, y), rng=np.random.default_rng(0), **run)
    assert_same(state(*eager[::2]), state(*captured[::2]))
    save_checkpoint(tmp_path / "captured.safetensors", captured[0], captured[2])
    model, _, saved = load_checkpoint(tmp_path / "captured.safetensors")
    resumed = (model, hp.SoftmaxCrossEntropy(), build_optimizer(model.parameters(), saved))
    later = batches("cross-entropy", "float64", 6)
    for x_batch, y_batch in later[:3]:
        loss = train_step(*eager, x_batch, y_batch)
        assert train_step(*captured, x_batch, y_batch) == loss
        assert train_step(*resumed, x_batch, y_batch) == loss
    again = capture_step(*resumed, (N, D_IN), (N,))
    for x_batch, y_batch in later[3:]:
        loss = train_step(*eager, x_batch, y_batch)
        assert train_step(*captured, x_batch, y_batch) == loss
        assert again(x_batch, y_batch) == loss
    assert_same(state(*eager[::2]), state(*captured[::2]))
    assert_same(state(*eager[::2]), state(*resumed[::2]))


def torch_twins(
    optimizer: str, dtype: str, loss: str = "mse"
) -> tuple[tuple[Any, Any, Any], tuple[Any, Any, Any]]:
    """``twins`` on torch tensors (CPU), their optimizers built after moving."""
    eager, captured = twins("relu", loss, "sgd", dtype)
    device = "torch"
    first, second = eager[0].to(device), captured[0].to(device)
    return (
        (first, eager[1], OPTIMIZERS[optimizer](first.parameters())),
        (second, captured[1], OPTIMIZERS[optimizer](second.parameters())),
    )


@pytest.mark.parametrize("loss", ["mse", "cross-entropy"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", ["adam", "adam-decay", "adamw"])
def test_adam_recorded_on_torch_tensors_equals_its_step(
    torch: ModuleType, optimizer: str, dtype: str, loss: str
) -> None:
    """What a CUDA graph records for Adam (``RecordedUpdate``: ``Adam.record`` on torch
    tensors, its numbers in a device buffer filled by its host calls) and for
    SoftmaxCrossEntropy (``checked_total``) run eagerly on the CPU, step after step, with the
    learning rate and betas changed on the way: the same losses, weights and moments as
    ``total`` and ``Adam.step``, bit for bit (1e-12 is what is promised)."""
    eager, captured = torch_twins(optimizer, dtype, loss)
    stepped, graphed = GraphedStep(*eager), GraphedStep(*captured)  # on the CPU: eager steps
    update = RecordedUpdate(captured[2])
    xp = captured[2].xp
    for index, (x, y) in enumerate(batches(loss, dtype)):
        if index == 10:
            for opt in (eager[2], captured[2]):
                opt.lr, opt.betas, opt.eps = 3e-3, (0.8, 0.99), 1e-6
        xb, yb = xp.from_host(x), xp.from_host(y)
        expected = float(stepped.eager(xb, yb))  # loss_fn.total, optimizer.step()
        assert update.fits()
        update.before()
        assert float(graphed.eager(xb, yb, update, checked=True)) == expected
    assert eager[2].t == captured[2].t == STEPS
    left, right = state(*eager[::2]), state(*captured[::2])
    assert_same([xp.to_numpy(a) for a in left], [xp.to_numpy(a) for a in right])


def test_a_recorded_update_no_longer_fits_when_adam_changes_shape(torch: ModuleType) -> None:
    _, (model, _, optimizer) = torch_twins("adam", "float64")
    update = RecordedUpdate(optimizer)
    assert update.fits()
    optimizer.weight_decay = 0.1
    assert not update.fits()
    optimizer.weight_decay = 0.0
    optimizer.m = [optimizer.xp.zeros_like(p.data) for p in model.parameters()]
    assert not update.fits()


def test_cross_entropy_checked_total_is_total_without_the_range_check(torch: ModuleType) -> None:
    """``checked_total`` (what a CUDA graph records) leaves the labels' range to its caller;
    ``total`` checks it, on numpy and torch alike."""
    for xp in (hp.backend.NUMPY, hp.backend.torch_namespace("cpu")):
        scores = xp.from_host(np.arange(12.0).reshape(4, 3))
        labels = xp.from_host(np.array([0, 2, 1, 2]))
        loss_fn = hp.SoftmaxCrossEntropy()
        assert float(loss_fn.total(scores, labels)[0]) == float(
            loss_fn.checked_total(scores, labels)[0]
        )
        with pytest.raises(ValueError, match=r"labels in \[0, 2\]"):
            loss_fn.total(scores, xp.from_host(np.array([0, 3, 1, 2])))


def test_what_a_cuda_graph_records_is_decided_by_the_classes() -> None:
    """GraphedStep's choice, as on CUDA (a stand-in namespace): SGD and Adam (their record),
    cross-entropy without class weights; not an optimizer subclass with its own step, nor
    class weights, nor Adam over parameters of two dtypes."""
    cuda = SimpleNamespace(library="torch", device=SimpleNamespace(type="cuda"))
    model = network("relu", "float64")
    params = model.parameters()
    mixed = [*params[:-1], hp.Parameter(params[-1].data.astype(np.float32))]
    cases = [
        (hp.SoftmaxCrossEntropy(), hp.Adam(params), True),
        (hp.SoftmaxCrossEntropy(), hp.SGD(params, lr=0.1), True),
        (hp.MeanSquaredError(), QuietAdam(params), True),
        (hp.MeanSquaredError(), ClippedAdam(params), False),
        (hp.SoftmaxCrossEntropy(weight=np.ones(D_OUT)), hp.Adam(params), False),
        (hp.MeanSquaredError(), hp.Adam(mixed), False),
    ]
    for loss_fn, optimizer, expected in cases:
        assert graphed_module._capturable(cuda, loss_fn, optimizer) is expected
