"""The same layers, losses and optimizers on torch tensors (CPU) as on numpy, to 1e-12.

CI has no GPU: the torch CPU backend carries the proof that one layer code serves both
array libraries. Every comparison is float64; ``close`` is relative to the array's scale.
"""

import copy
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import handprop as hp
from handprop.backend import NUMPY, namespace, select, torch_namespace
from handprop.training.loop import fit
from handprop.training.step import train_step
from handprop.warmup import WarmupConfig, make_problem, run_warmup

TOLERANCE = 1e-12


def host(array: Any) -> np.ndarray:
    return np.asarray(namespace(array).to_numpy(array), dtype=np.float64)


def assert_close(actual: Any, expected: Any, tolerance: float = TOLERANCE) -> None:
    a, e = host(actual), host(expected)
    assert a.shape == e.shape
    scale = max(float(np.max(np.abs(e), initial=0.0)), 1e-300)
    assert float(np.max(np.abs(a - e), initial=0.0)) <= tolerance * scale


def on_torch(torch: ModuleType, array: np.ndarray) -> Any:
    return torch.from_numpy(array.copy())


def twin(model: hp.Module) -> hp.Module:
    """A copy of ``model`` (same weights, bit for bit) on torch's CPU."""
    return copy.deepcopy(model).to("cpu")


LAYERS = {
    "linear": lambda: hp.Linear(5, 4, rng=1),
    "linear-no-bias": lambda: hp.Linear(5, 4, bias=False, rng=1),
    "relu": hp.ReLU,
    "leaky_relu": lambda: hp.LeakyReLU(0.1),
    "tanh": hp.Tanh,
    "sigmoid": hp.Sigmoid,
    "identity": hp.Identity,
    "mlp": lambda: hp.mlp(5, [7, 6], 3, rng=2),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_forward_backward_equal_numpy(torch: ModuleType, name: str) -> None:
    rng = np.random.default_rng(0)
    layer = LAYERS[name]()
    x = rng.standard_normal((8, 5)) * 3
    y_numpy = layer.forward(x).copy()
    grad_y = rng.standard_normal(y_numpy.shape)
    layer.zero_grad()
    grad_x_numpy = layer.backward(grad_y).copy()
    grads_numpy = [p.grad.copy() for p in layer.parameters()]

    moved = twin(layer)
    moved.zero_grad()
    assert_close(moved.forward(on_torch(torch, x)), y_numpy)
    assert_close(moved.backward(on_torch(torch, grad_y)), grad_x_numpy)
    for parameter, expected in zip(moved.parameters(), grads_numpy, strict=True):
        assert isinstance(parameter.data, torch.Tensor)
        assert_close(parameter.grad, expected)


LOSSES = {
    "sse": (hp.SumSquaredError, False),
    "mse": (hp.MeanSquaredError, False),
    "mae": (hp.MeanAbsoluteError, False),
    "huber": (lambda: hp.Huber(0.5), False),
    "cross-entropy": (hp.SoftmaxCrossEntropy, True),
    "weighted-cross-entropy": (lambda: hp.SoftmaxCrossEntropy(weight=[1.0, 2.0, 0.5]), True),
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_forward_backward_equal_numpy(torch: ModuleType, name: str) -> None:
    make, labels = LOSSES[name]
    rng = np.random.default_rng(1)
    y_pred = rng.standard_normal((6, 3)) * 2
    y = rng.integers(0, 3, 6) if labels else rng.standard_normal((6, 3))
    loss_numpy, loss_torch = make(), make()
    value = loss_numpy.forward(y_pred, y)
    grad = loss_numpy.backward().copy()
    assert loss_torch.forward(on_torch(torch, y_pred), on_torch(torch, y)) == pytest.approx(
        value, rel=TOLERANCE
    )
    assert_close(loss_torch.backward(), grad)


OPTIMIZERS = {
    "sgd": lambda ps: hp.SGD(ps, lr=0.05),
    "sgd-momentum": lambda ps: hp.SGD(ps, lr=0.05, momentum=0.9),
    "sgd-nesterov-decay": lambda ps: hp.SGD(
        ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01
    ),
    "adam": lambda ps: hp.Adam(ps, lr=0.01),
    "adamw": lambda ps: hp.Adam(ps, lr=0.01, weight_decay=0.1, decoupled=True),
    "adam-l2": lambda ps: hp.Adam(ps, lr=0.01, weight_decay=0.1),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("step_options", [{}, {"exact": True}, {"fold": False}, {"clip_norm": 0.5}])
def test_training_steps_equal_numpy(
    torch: ModuleType, name: str, step_options: dict[str, Any]
) -> None:
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((16, 5)), rng.standard_normal((16, 3))
    model = hp.mlp(5, [8], 3, activation="tanh", rng=3)
    moved = twin(model)
    optimizer, optimizer_torch = (
        OPTIMIZERS[name](model.parameters()),
        OPTIMIZERS[name](moved.parameters()),
    )
    loss_fn, loss_torch = hp.MeanSquaredError(), hp.MeanSquaredError()
    x_torch, y_torch = on_torch(torch, x), on_torch(torch, y)
    for _ in range(20):
        loss = train_step(model, loss_fn, optimizer, x, y, **step_options)
        loss_on_torch = train_step(
            moved, loss_torch, optimizer_torch, x_torch, y_torch, **step_options
        )
        assert loss_on_torch == pytest.approx(loss, rel=TOLERANCE)
        for p, q in zip(model.parameters(), moved.parameters(), strict=True):
            assert_close(q.data, p.data)


def test_warmup_each_step_equals_numpy(torch: ModuleType) -> None:
    """500 tutorial steps; before each, the torch model is given numpy's weights, so each
    step is compared from the same point: y_pred and the updated weights to 1e-12.

    The loss, sum((y_pred - y)**2), falls 12 orders of magnitude while y_pred stays of
    order 1: late in the run it is a difference of nearly equal numbers, and two BLAS
    libraries' rounding of y_pred (1e-16 relative) moves it by up to 1e-10 relative. So
    the loss is held to 1e-12 of its sensitivity to y_pred, 2 * |y_pred - y| * |y_pred|,
    and to 1e-12 relative while it is above 1 (the first ~200 steps).
    """
    numpy_run = make_problem(WarmupConfig())
    torch_run = make_problem(WarmupConfig(backend="torch"))
    assert isinstance(torch_run.x, torch.Tensor)
    sgd = hp.SGD(numpy_run.model.parameters(), lr=1e-6)
    sgd_torch = hp.SGD(torch_run.model.parameters(), lr=1e-6)
    loss_fn, loss_torch = hp.SumSquaredError(), hp.SumSquaredError()
    for _ in range(500):
        for p, q in zip(numpy_run.model.parameters(), torch_run.model.parameters(), strict=True):
            q.data.copy_(torch.from_numpy(p.data))
        y_pred = numpy_run.model.forward(numpy_run.x).copy()
        assert_close(torch_run.model.forward(torch_run.x), y_pred)
        loss = train_step(numpy_run.model, loss_fn, sgd, numpy_run.x, numpy_run.y, exact=True)
        loss_t = train_step(
            torch_run.model, loss_torch, sgd_torch, torch_run.x, torch_run.y, exact=True
        )
        sensitivity = 2 * np.linalg.norm(y_pred - numpy_run.y) * np.linalg.norm(y_pred)
        assert abs(loss_t - loss) <= TOLERANCE * min(sensitivity, abs(loss) if loss > 1 else np.inf)
        for p, q in zip(numpy_run.model.parameters(), torch_run.model.parameters(), strict=True):
            assert_close(q.data, p.data)


def test_warmup_losses_follow_numpy(torch: ModuleType) -> None:
    """The whole run, each on its own: equal to 1e-12 for the first 250 steps, and the last
    loss (12 orders of magnitude below the first) still to 1e-9 (measured: 1.6e-11)."""
    losses = np.array(run_warmup(WarmupConfig()).losses)
    losses_torch = np.array(run_warmup(WarmupConfig(backend="torch")).losses)
    relative = np.abs(losses_torch - losses) / np.abs(losses)
    assert relative[:250].max() <= TOLERANCE
    assert relative.max() <= 1e-9


def test_warmup_float32_on_torch(torch: ModuleType) -> None:
    losses = np.array(run_warmup(WarmupConfig(dtype="float32", steps=100)).losses)
    config = WarmupConfig(dtype="float32", steps=100, backend="torch")
    losses_torch = np.array(run_warmup(config).losses)
    assert np.allclose(losses_torch, losses, rtol=1e-3)


def test_gradcheck_passes_on_both_backends(torch: ModuleType) -> None:
    model = hp.mlp(4, [6], 3, activation="tanh", rng=0)
    x = np.random.default_rng(0).standard_normal((5, 4))
    assert hp.check_gradients(model, x).passed
    report = hp.check_gradients(model.to("torch"), on_torch(torch, x))
    assert report.passed and {t.name for t in report.tensors} >= {"input", "0.weight"}
    labels = np.array([0, 2, 1, 1, 0])
    assert hp.check_gradients(
        hp.SoftmaxCrossEntropy(), on_torch(torch, x[:, :3]), on_torch(torch, labels)
    ).passed


def test_gradcheck_on_torch_finds_a_wrong_backward(torch: ModuleType) -> None:
    class Doubled(hp.Tanh):
        def backward(self, grad_y: Any, grads: Any = None) -> Any:
            grad = super().backward(grad_y)
            return self.xp.multiply(grad, 2.0)

    x = np.random.default_rng(0).standard_normal((3, 4))
    assert not hp.check_gradients(Doubled().to("torch"), on_torch(torch, x)).passed


def test_fit_on_torch_equals_numpy(torch: ModuleType) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 5))
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    histories = []
    for place in ("numpy", "cpu"):
        model = hp.mlp(5, [16], 2, rng=1).to(place)
        optimizer = hp.Adam(model.parameters(), lr=1e-2)
        history = fit(
            model, hp.SoftmaxCrossEntropy(), optimizer, (x, y), epochs=3, batch_size=32,
            validation=(x[:20], y[:20]),
        )  # fmt: skip
        histories.append(history)
    for a, b in zip(histories[0].logs, histories[1].logs, strict=True):
        assert b.train_loss == pytest.approx(a.train_loss, rel=TOLERANCE)
        assert b.val_metric == a.val_metric


# ----- moving models, mixing, and what cannot move -----------------------------------------


def test_to_moves_and_returns_bit_for_bit(torch: ModuleType) -> None:
    model = hp.mlp(3, [4], 2, rng=0)
    before = model.state_dict()
    model.to("torch")
    assert all(isinstance(p.data, torch.Tensor) for p in model.parameters())
    assert all(module.xp is torch_namespace("cpu") for module in model.modules())
    assert model.parameters()[0].dtype == np.float64  # handprop's dtypes stay numpy's
    on_torch_state = model.state_dict()
    assert all(isinstance(v, np.ndarray) for v in on_torch_state.values())
    model.to("numpy")
    assert all(np.array_equal(model.state_dict()[k], before[k]) for k in before)
    assert model.xp is NUMPY
    model.to("cpu", "float32")
    assert model.parameters()[0].data.dtype == torch.float32
    assert model.forward(torch.ones(2, 3)).dtype == torch.float32


def test_saved_tensors_are_the_same_from_either_backend(torch: ModuleType, tmp_path: Any) -> None:
    model = hp.mlp(3, [4], 2, rng=0)
    model.save(tmp_path / "numpy.safetensors")
    model.to("torch").save(tmp_path / "torch.safetensors")
    from safetensors.numpy import load_file

    a, b = load_file(tmp_path / "numpy.safetensors"), load_file(tmp_path / "torch.safetensors")
    assert a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)
    loaded = hp.load(tmp_path / "torch.safetensors")  # numpy, wherever it was saved from
    assert loaded.xp is NUMPY
    x = np.ones((2, 3))
    assert_close(loaded.to("torch").forward(on_torch(torch, x)), model.forward(on_torch(torch, x)))


def test_mixing_libraries_is_a_type_error_naming_both(torch: ModuleType) -> None:
    model = hp.mlp(3, [4], 2, rng=0)
    with pytest.raises(TypeError, match=r"numpy arrays but received a torch tensor on cpu"):
        model.forward(torch.ones(2, 3, dtype=torch.float64))
    model.to("torch")
    with pytest.raises(TypeError, match=r"torch tensors on cpu but received a numpy array"):
        model.forward(np.ones((2, 3)))
    with pytest.raises(TypeError, match=r"torch tensors on cpu but received a numpy array"):
        hp.MeanSquaredError().forward(torch.ones(2, 2, dtype=torch.float64), np.ones((2, 2)))
    other = hp.Linear(4, 2, rng=0)
    with pytest.raises(TypeError, match=r"on torch \(cpu\) and on numpy"):
        hp.SGD(model.parameters() + other.parameters(), lr=0.1)
    optimizer = hp.SGD(other.parameters(), lr=0.1)
    other.to("torch")  # moved after the optimizer was built
    with pytest.raises(TypeError, match="then build the optimizer"):
        optimizer.step()


def test_layers_not_ported_refuse_to_move(torch: ModuleType) -> None:
    model = hp.Sequential(hp.Linear(4, 4), hp.Dropout(0.5))
    with pytest.raises(TypeError, match="Dropout computes on numpy arrays only"):
        model.to("torch")
    assert model.xp is NUMPY and isinstance(model.parameters()[0].data, np.ndarray)


def test_bad_targets_and_missing_cuda(torch: ModuleType) -> None:
    model = hp.mlp(3, [4], 2, rng=0)
    with pytest.raises(TypeError, match="to\\(\\) expected 'numpy', 'torch', a device"):
        model.to("tpu")
    with pytest.raises(ValueError, match="numpy backend computes on the CPU only"):
        select("numpy", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="finds no CUDA GPU"):
            model.to("cuda")
        assert model.xp is NUMPY


def test_tensors_that_require_grad_are_refused(torch: ModuleType) -> None:
    model = hp.mlp(3, [4], 2, rng=0).to("torch")
    x = torch.ones(2, 3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(TypeError, match="requires grad"):
        model.forward(x)
