"""The CNN layers (Conv2d, the poolings, Flatten, BatchNorm, LayerNorm, Dropout) on torch
tensors (CPU) equal the numpy backend to 1e-12 relative, in float64.

One layer code serves both array libraries; ``tests/test_torch_layers.py`` compares the
numpy backend with ``torch.nn`` itself. Dropout draws its masks on the host from its own
numpy Generator on either backend, so its masks are equal bit for bit.
"""

import copy
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import handprop as hp
from handprop.parameter import ACCUMULATE
from handprop.training.step import train_step
from tests.test_backend_torch import TOLERANCE, assert_close, host, on_torch

# name -> (factory, input shape)
LAYERS: dict[str, tuple[Callable[[], hp.Module], tuple[int, ...]]] = {
    "conv": (lambda: hp.Conv2d(2, 3, 3, rng=1), (4, 2, 6, 7)),
    "conv-pad-stride": (lambda: hp.Conv2d(2, 3, 3, stride=2, padding=1, rng=1), (4, 2, 7, 6)),
    "conv-no-bias": (lambda: hp.Conv2d(3, 2, 2, padding=2, bias=False, rng=2), (2, 3, 5, 5)),
    "maxpool-2": (lambda: hp.MaxPool2d(2), (3, 2, 6, 7)),
    "maxpool-3": (lambda: hp.MaxPool2d(3), (3, 2, 7, 6)),
    "maxpool-3-stride-2": (lambda: hp.MaxPool2d(3, stride=2), (3, 2, 7, 7)),
    "maxpool-2-stride-3": (lambda: hp.MaxPool2d(2, stride=3), (3, 2, 8, 7)),
    "avgpool": (lambda: hp.AvgPool2d(2), (3, 2, 6, 5)),
    "avgpool-3-stride-2": (lambda: hp.AvgPool2d(3, stride=2), (3, 2, 7, 7)),
    "flatten": (hp.Flatten, (3, 2, 4, 5)),
    "batchnorm1d": (lambda: hp.BatchNorm1d(5, momentum=0.3), (6, 5)),
    "batchnorm2d": (lambda: hp.BatchNorm2d(3), (4, 3, 5, 4)),
    "layernorm": (lambda: hp.LayerNorm(5), (4, 3, 5)),
    "layernorm-2d": (lambda: hp.LayerNorm((3, 5)), (4, 3, 5)),
    "layernorm-image": (lambda: hp.LayerNorm((2, 4, 3)), (3, 2, 4, 3)),
    "dropout": (lambda: hp.Dropout(0.4, rng=3), (5, 6)),
}


def randomize(layer: hp.Module, seed: int) -> None:
    """Weights that are not ones and zeros (BatchNorm's, LayerNorm's start so)."""
    rng = np.random.default_rng(seed)
    for parameter in layer.parameters():
        parameter.data[...] = rng.standard_normal(parameter.shape)


def step(model: hp.Module, x: Any, grad_y: Any) -> list[np.ndarray]:
    """Forward and backward; the output, the gradients and the buffers after them."""
    y = host(model.forward(x))
    model.zero_grad()
    grad_x = host(model.backward(grad_y))
    return (
        [y, grad_x]
        + [host(p.grad) for p in model.parameters()]
        + [host(b) for _, b in model.named_buffers()]
    )


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("training", [True, False])
def test_layer_on_torch_equals_numpy(torch: ModuleType, name: str, training: bool) -> None:
    make, shape = LAYERS[name]
    layer = make()
    randomize(layer, 5)
    x = np.random.default_rng(0).standard_normal(shape) * 3
    if not training:  # running statistics that are not the initial ones, then eval mode
        layer.forward(x + 1)
        layer.eval()
    moved = copy.deepcopy(layer).to("torch")
    for seed in range(2):  # the second step reuses every work buffer
        inputs = x * (seed + 1)
        shape = copy.deepcopy(layer).forward(inputs).shape  # (a copy: Dropout draws)
        grad_y = np.random.default_rng(seed + 10).standard_normal(shape)
        expected = step(layer, inputs, grad_y)
        actual = step(moved, on_torch(torch, inputs), on_torch(torch, grad_y))
        assert len(actual) == len(expected) >= 2
        for a, e in zip(actual, expected, strict=True):
            assert_close(a, e)


def test_moved_layers_compute_on_torch(torch: ModuleType) -> None:
    """Parameters, buffers and outputs are tensors after ``to``; and numpy again after."""
    model = hp.Sequential(hp.Conv2d(1, 2, 3, rng=0), hp.BatchNorm2d(2), hp.Dropout(0.2))
    model.to("torch")
    x = on_torch(torch, np.ones((2, 1, 5, 5)))
    assert isinstance(model.forward(x), torch.Tensor)
    assert all(isinstance(b, torch.Tensor) for _, b in model.named_buffers())
    assert int(model[1].num_batches_tracked) == 1  # type: ignore[attr-defined]
    model.to("numpy")
    assert all(isinstance(b, np.ndarray) for _, b in model.named_buffers())
    assert int(model[1].num_batches_tracked) == 1  # type: ignore[attr-defined]
    assert isinstance(model.forward(np.ones((2, 1, 5, 5))), np.ndarray)


def test_dropout_masks_are_numpys_bit_for_bit(torch: ModuleType) -> None:
    layer = hp.Dropout(0.3, rng=11)
    moved = copy.deepcopy(layer).to("torch")
    x = np.random.default_rng(0).standard_normal((4, 50))
    for _ in range(3):
        expected = layer.forward(x)
        assert np.array_equal(host(moved.forward(on_torch(torch, x))), expected)
    assert moved.get_extra_state() == layer.get_extra_state()


CNN = (
    "conv 4 3 pad 1, relu, batchnorm, maxpool 2, conv 6 3 stride 2, dropout 0.2, "
    "avgpool 2, flatten, layernorm, linear 3"
)


def small_cnn() -> hp.Sequential:
    return hp.build_layers(CNN, (2, 12, 12), rng=4)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_small_cnn_trains_on_torch_as_on_numpy(torch: ModuleType, optimizer: str) -> None:
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((12, 2, 12, 12)), rng.integers(0, 3, 12)
    model = small_cnn()
    moved = copy.deepcopy(model).to("torch")

    def make(m: hp.Module) -> hp.Optimizer:
        if optimizer == "sgd":
            return hp.SGD(m.parameters(), lr=0.05, momentum=0.9)
        return hp.Adam(m.parameters(), lr=0.01)

    opt, opt_torch = make(model), make(moved)
    loss_fn, loss_torch = hp.SoftmaxCrossEntropy(), hp.SoftmaxCrossEntropy()
    x_torch, y_torch = on_torch(torch, x), on_torch(torch, y)
    for _ in range(5):
        loss = train_step(model, loss_fn, opt, x, y)
        assert train_step(moved, loss_torch, opt_torch, x_torch, y_torch) == pytest.approx(
            loss, rel=TOLERANCE
        )
    expected, actual = model.state_dict(), moved.state_dict()
    assert actual.keys() == expected.keys()
    for key in expected:
        assert_close(actual[key], expected[key])
    model.eval()
    moved.eval()
    assert_close(moved.forward(x_torch), model.forward(x))


@pytest.mark.parametrize(
    "name", [n for n in LAYERS if n != "dropout"] + ["dropout-eval", "dropout-one-mask"]
)
def test_gradcheck_on_torch(torch: ModuleType, name: str) -> None:
    if name.startswith("dropout"):
        layer: hp.Module = OneMaskDropout() if name == "dropout-one-mask" else hp.Dropout().eval()
        shape: tuple[int, ...] = (3, 4)
    else:
        make, shape = LAYERS[name]
        layer = make()
        randomize(layer, 6)
    x = np.random.default_rng(2).standard_normal(shape)
    report = hp.check_gradients(layer.to("torch"), on_torch(torch, x))
    assert report.passed, report
    assert isinstance(layer.forward(on_torch(torch, x)), torch.Tensor)


def test_gradcheck_on_torch_finds_a_wrong_conv_backward(torch: ModuleType) -> None:
    class Wrong(hp.Conv2d):
        def backward(self, grad_y: Any, grads: Any = ACCUMULATE) -> Any:
            grad = super().backward(grad_y, grads)
            return self.xp.multiply(grad, 1.01)

    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4))
    assert not hp.check_gradients(Wrong(1, 2, 3, rng=0).to("torch"), on_torch(torch, x)).passed


class OneMaskDropout(hp.Dropout):
    """Dropout drawing the same mask on every forward (a fresh generator each time)."""

    def __init__(self) -> None:
        super().__init__(0.4)

    def forward(self, h: Any) -> Any:
        self.rng = np.random.default_rng(5)
        return super().forward(h)


def test_cli_trains_a_cnn_on_torch_as_on_numpy(
    torch: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from safetensors.numpy import load_file

    from handprop.cli import main

    spec = "conv 4 3 pad 1, relu, maxpool 2, flatten, linear 10"
    common = ["train", "--layers", spec, "--data", "digits", "--epochs", "1", "--quiet"]
    for name, flags in (("numpy", []), ("torch", ["--backend", "torch"])):
        assert main([*common, *flags, "--out", str(tmp_path / f"{name}.safetensors")]) == 0
    capsys.readouterr()
    a = load_file(tmp_path / "numpy.safetensors")
    b = load_file(tmp_path / "torch.safetensors")
    assert a.keys() == b.keys() and len(a) == 4
    for key in a:
        assert b[key].dtype == a[key].dtype
        assert_close(b[key], a[key])  # measured: 4e-16 relative after the epoch


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="no CUDA GPU")
@pytest.mark.parametrize("spec", [CNN, CNN.replace("dropout 0.2, ", "")])
def test_small_cnn_fits_on_cuda_as_on_numpy(torch: ModuleType, spec: str) -> None:
    """fit on CUDA, SGD and MSE: steps replayed as a CUDA graph, except with Dropout (its
    masks come from the host: a graph would replay one), equal to numpy's run."""
    from handprop.training.loop import fit

    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((16, 2, 12, 12)), rng.standard_normal((16, 3))
    results = []
    for place in ("numpy", "cuda"):
        model = hp.build_layers(spec, (2, 12, 12), rng=4).to(place)
        optimizer = hp.SGD(model.parameters(), lr=0.05)
        history = fit(model, hp.MeanSquaredError(), optimizer, (x, y), epochs=4, batch_size=4)
        results.append(([log.train_loss for log in history.logs], model.state_dict()))
    (losses, expected), (losses_cuda, actual) = results
    assert losses_cuda == pytest.approx(losses, rel=1e-10)
    for key in expected:
        assert_close(actual[key], expected[key], 1e-10)
