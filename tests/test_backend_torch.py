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


class NumpyOnly(hp.Identity):
    """A layer of one's own that has not said it computes through ``xp``."""

    array_libraries = ("numpy",)


def test_layers_not_ported_refuse_to_move(torch: ModuleType) -> None:
    model = hp.Sequential(hp.Linear(4, 4), NumpyOnly())
    with pytest.raises(TypeError, match="NumpyOnly computes on numpy arrays only"):
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


@pytest.mark.parametrize("place", ["numpy", "cpu"])
def test_graphed_step_off_cuda_is_the_eager_step(torch: ModuleType, place: str) -> None:
    """Without CUDA there is no graph: GraphedStep runs train_step's body, same losses."""
    from handprop.training.graphed import GraphedStep, read_losses

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((10, 4)), rng.standard_normal((10, 2))
    model, twin_model = hp.mlp(4, [5], 2, rng=0), hp.mlp(4, [5], 2, rng=0).to(place)
    optimizer = hp.SGD(model.parameters(), lr=0.1, momentum=0.5)
    graphed = GraphedStep(
        twin_model, hp.MeanSquaredError(), hp.SGD(twin_model.parameters(), lr=0.1, momentum=0.5)
    )
    xp = graphed.xp
    expected = [train_step(model, hp.MeanSquaredError(), optimizer, x, y) for _ in range(5)]
    losses = read_losses([graphed.step(xp.from_host(x), xp.from_host(y)) for _ in range(5)])
    assert not graphed.capturable and graphed.replays == 0
    assert losses == pytest.approx(expected, rel=TOLERANCE)


# ----- the command line ----------------------------------------------------------------------


def _warmup_losses(capsys: Any, *flags: str) -> np.ndarray:
    from handprop.cli import main

    assert main(["warmup", *flags]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 500
    return np.array([float(line.split()[1]) for line in lines])


def test_cli_warmup_on_torch_prints_numpys_losses(torch: ModuleType, capsys: Any) -> None:
    """Equal to 1e-12 relative while the loss is above 1e-3 (about 250 steps); then the
    rounding of two BLAS libraries compounds, and the last steps agree to 1e-9."""
    losses = _warmup_losses(capsys)
    losses_torch = _warmup_losses(capsys, "--backend", "torch")
    relative = np.abs(losses_torch - losses) / losses
    assert relative[:250].max() <= TOLERANCE
    assert relative.max() <= 1e-9


def test_cli_cuda_without_cuda_is_one_line_and_exit_2(torch: ModuleType, capsys: Any) -> None:
    from handprop.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for argv in (
        ["warmup", "--device", "cuda"],
        ["warmup", "--backend", "numpy", "--device", "cuda"],
    ):
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and len(captured.err.splitlines()) == 1
        assert "cuda" in captured.err and "Traceback" not in captured.err


def test_cli_without_torch_is_one_line_and_exit_2(capsys: Any, monkeypatch: Any) -> None:
    import sys

    from handprop.backend import torch_namespace
    from handprop.cli import main

    torch_namespace.cache_clear()
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    try:
        assert main(["warmup", "--backend", "torch", "--steps", "1"]) == 2
    finally:
        torch_namespace.cache_clear()
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "pip install torch" in err


def test_cli_train_on_torch_saves_a_model_that_loads_anywhere(
    torch: ModuleType, tmp_path: Any, capsys: Any
) -> None:
    from safetensors.numpy import load_file

    from handprop.cli import main

    common = ["train", "--data", "warmup", "--epochs", "2", "--hidden", "8", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "n.safetensors")]) == 0
    assert main([*common, "--backend", "torch", "--out", str(tmp_path / "t.safetensors")]) == 0
    a, b = load_file(tmp_path / "n.safetensors"), load_file(tmp_path / "t.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype
        assert_close(b[key], a[key])
    for flags in ([], ["--backend", "torch"]):
        assert (
            main(
                ["evaluate", str(tmp_path / "t.safetensors"), "--data", "warmup", "--json", *flags]
            )
            == 0
        )
    import json

    on_numpy, on_torch_ = (json.loads(line) for line in capsys.readouterr().out.splitlines()[-2:])
    for key, value in on_numpy.items():  # the same scores, computed on numpy and on torch
        assert on_torch_[key] == (
            pytest.approx(value, rel=TOLERANCE) if isinstance(value, float) else value
        )


def test_cli_checkpoint_written_on_torch_resumes_on_either_backend(
    torch: ModuleType, tmp_path: Any
) -> None:
    from safetensors.numpy import load_file

    from handprop.cli import main

    common = ["train", "--data", "warmup", "--hidden", "8", "--quiet", "--optimizer", "adam"]
    checkpoint = str(tmp_path / "c.safetensors")
    flags = ["--backend", "torch", "--checkpoint", checkpoint, "--checkpoint-every", "1"]
    assert main([*common, "--epochs", "2", *flags]) == 0
    for name, backend in (("t", ["--backend", "torch"]), ("n", [])):
        out = str(tmp_path / f"{name}.safetensors")
        assert main([*common, "--epochs", "4", "--resume", checkpoint, "--out", out, *backend]) == 0
    a, b = load_file(tmp_path / "n.safetensors"), load_file(tmp_path / "t.safetensors")
    for key in a:
        assert_close(b[key], a[key])


def test_fit_on_torch_reports_divergence_as_numpy_does(torch: ModuleType) -> None:
    """On torch, fit reads an epoch's losses at once; a loss that is not finite is still
    reported at its own step, as the numpy loop does step by step."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 5)) * 10, rng.standard_normal((64, 2)) * 10
    histories = []
    for place in ("numpy", "cpu"):
        model = hp.mlp(5, [16], 2, rng=1).to(place)
        optimizer = hp.SGD(model.parameters(), lr=10.0)
        histories.append(
            fit(model, hp.SumSquaredError(), optimizer, (x, y), epochs=3, batch_size=16)
        )
    assert histories[0].stop_reason == histories[1].stop_reason == "diverged"
    assert histories[0].message == histories[1].message


def test_fit_on_torch_gives_callbacks_every_step(torch: ModuleType) -> None:
    class Steps(hp.Callback):
        def __init__(self) -> None:
            self.losses: list[float] = []

        def on_step_end(self, step: int, loss: float) -> None:
            self.losses.append(loss)

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 5)), rng.standard_normal((40, 2))
    seen = []
    for place in ("numpy", "cpu"):
        model = hp.mlp(5, [8], 2, rng=1).to(place)
        callback = Steps()
        fit(
            model,
            hp.MeanSquaredError(),
            hp.SGD(model.parameters(), lr=0.01),
            (x, y),
            epochs=2,
            batch_size=16,
            callbacks=[callback],
        )
        seen.append(callback.losses)
    assert len(seen[1]) == 6 and all(isinstance(v, float) for v in seen[1])
    assert seen[1] == pytest.approx(seen[0], rel=TOLERANCE)
