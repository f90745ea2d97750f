"""Convolution, pooling, dropout, normalisation and the new losses against PyTorch, in float64.

Forward, the input gradient and every parameter gradient (and BatchNorm's running
statistics) to 1e-10 relative. The torch twins get the same numbers through
``load_state_dict(strict=True)`` of handprop's own ``state_dict``, so the file
layout is checked on the way. torch comes only through the ``torch`` fixture.
"""

from types import ModuleType
from typing import Any

import numpy as np
import pytest

import handprop as hp
from handprop._types import Array

RTOL = 1e-10
ATOL = 1e-12  # for entries that can be ~0


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def twin_of(torch: ModuleType, layer: hp.Module) -> Any:
    """The torch.nn module for ``layer``, loaded from its state_dict (strict)."""
    nn = torch.nn
    make = {
        hp.Conv2d: lambda c: nn.Conv2d(**c),
        hp.MaxPool2d: lambda c: nn.MaxPool2d(c["kernel_size"], c["stride"]),
        hp.AvgPool2d: lambda c: nn.AvgPool2d(c["kernel_size"], c["stride"]),
        hp.Flatten: lambda c: nn.Flatten(),
        hp.BatchNorm1d: lambda c: nn.BatchNorm1d(c["num_features"], c["eps"], c["momentum"]),
        hp.BatchNorm2d: lambda c: nn.BatchNorm2d(c["num_features"], c["eps"], c["momentum"]),
        hp.LayerNorm: lambda c: nn.LayerNorm(c["normalized_shape"], c["eps"]),
        hp.ReLU: lambda c: nn.ReLU(),
        hp.Linear: lambda c: nn.Linear(c["in_features"], c["out_features"], bias=c["bias"]),
    }
    if isinstance(layer, hp.Sequential):
        twin = nn.Sequential(*(twin_of(torch, inner) for inner in layer))
    else:
        twin = make[type(layer)](layer.config()).double()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    return twin.train(layer.training)


def check_layer(torch: ModuleType, layer: hp.Module, x: Array) -> None:
    """Forward, input gradient, parameter gradients and buffers equal torch's."""
    twin = twin_of(torch, layer)
    x_torch = torch.tensor(x, requires_grad=True)
    y = layer.forward(x)
    y_torch = twin(x_torch)
    np.testing.assert_allclose(y, y_torch.detach().numpy(), rtol=RTOL, atol=ATOL)

    grad_y = rng(99).standard_normal(y.shape)
    layer.zero_grad()
    grad_x = layer.backward(grad_y)
    y_torch.backward(torch.tensor(grad_y))
    np.testing.assert_allclose(grad_x, x_torch.grad.numpy(), rtol=RTOL, atol=ATOL)
    twin_parameters = dict(twin.named_parameters())
    assert [name for name, _ in layer.named_parameters()] == list(twin_parameters)
    for name, parameter in layer.named_parameters():
        expected = twin_parameters[name].grad.numpy()
        actual = parameter.grad.T if parameter.grad.ndim == 2 else parameter.grad  # Linear
        np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, err_msg=name)
    twin_buffers = {k: v.numpy() for k, v in twin.named_buffers()}
    assert [name for name, _ in layer.named_buffers()] == list(twin_buffers)
    for name, buffer in layer.named_buffers():
        np.testing.assert_allclose(buffer, twin_buffers[name], rtol=RTOL, err_msg=name)


def randomised(layer: hp.Module, seed: int = 3) -> hp.Module:
    """``layer`` with every parameter and float buffer drawn at random (positive variances)."""
    for _, parameter in layer.named_parameters():
        parameter.data[...] = rng(seed).standard_normal(parameter.shape)
        seed += 1
    for name, buffer in layer.named_buffers():
        if buffer.dtype.kind == "f":
            values = rng(seed).standard_normal(buffer.shape)
            buffer[...] = np.abs(values) + 0.5 if name.endswith("var") else values
            seed += 1
    return layer


CONVS = {
    "3x3": lambda: hp.Conv2d(3, 4, 3, rng=0),
    "3x3 pad 1": lambda: hp.Conv2d(3, 4, 3, padding=1, rng=0),
    "3x3 stride 2 pad 1": lambda: hp.Conv2d(3, 5, 3, stride=2, padding=1, rng=0),
    "2x2 stride 3 no bias": lambda: hp.Conv2d(3, 2, 2, stride=3, bias=False, rng=0),
    "1x1": lambda: hp.Conv2d(3, 6, 1, rng=0),
    "5x5 pad 2": lambda: hp.Conv2d(3, 2, 5, padding=2, rng=0),
}


@pytest.mark.parametrize("name", CONVS)
def test_conv2d(torch: ModuleType, name: str) -> None:
    check_layer(torch, randomised(CONVS[name]()), rng(1).standard_normal((2, 3, 7, 8)))


@pytest.mark.parametrize(
    "layer",
    [
        hp.MaxPool2d(2),
        hp.MaxPool2d(3),
        hp.MaxPool2d(3, 2),
        hp.MaxPool2d(2, 3),
        hp.AvgPool2d(2),
        hp.AvgPool2d(3, 2),
    ],
    ids=repr,
)
def test_pooling(torch: ModuleType, layer: hp.Module) -> None:
    check_layer(torch, layer, rng(2).standard_normal((2, 3, 7, 8)))


@pytest.mark.parametrize(
    "layer", [hp.MaxPool2d(2), hp.MaxPool2d(3), hp.MaxPool2d(3, 2), hp.MaxPool2d(2, 3)], ids=repr
)
def test_max_pooling_ties_go_to_the_first_maximum(torch: ModuleType, layer: hp.Module) -> None:
    # after a ReLU most windows hold ties (zeros); torch sends the gradient to the first
    check_layer(torch, layer, np.maximum(rng(3).integers(-2, 2, (2, 3, 7, 8)), 0.0))


def test_flatten(torch: ModuleType) -> None:
    check_layer(torch, hp.Flatten(), rng(2).standard_normal((2, 3, 4, 5)))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        (hp.BatchNorm1d(5), (7, 5)),
        (hp.BatchNorm1d(4, eps=1e-3, momentum=0.3), (6, 4)),
        (hp.BatchNorm2d(3), (4, 3, 5, 6)),
        (hp.LayerNorm(6), (4, 6)),
        (hp.LayerNorm(5, eps=1e-3), (2, 3, 4, 5)),
        (hp.LayerNorm((3, 4, 5)), (2, 3, 4, 5)),  # whole images (C, H, W)
        (hp.LayerNorm([4, 5], eps=1e-3), (2, 3, 4, 5)),
    ],
    ids=repr,
)
def test_normalisation(
    torch: ModuleType, layer: hp.Module, shape: tuple[int, ...], training: bool
) -> None:
    layer = randomised(layer).train(training)
    check_layer(torch, layer, 2 + 3 * rng(4).standard_normal(shape))


def test_running_statistics_over_several_batches(torch: ModuleType) -> None:
    layer = hp.BatchNorm2d(3, momentum=0.2)
    twin = twin_of(torch, layer)
    for seed in range(4):
        x = rng(seed).standard_normal((5, 3, 4, 4)) * (seed + 1)
        layer.forward(x)
        twin(torch.from_numpy(x))
    for name, buffer in layer.named_buffers():
        np.testing.assert_allclose(buffer, dict(twin.named_buffers())[name].numpy(), rtol=RTOL)
    assert int(layer.num_batches_tracked) == 4


def test_small_cnn(torch: ModuleType) -> None:
    model = hp.Sequential(
        hp.Conv2d(1, 4, 3, padding=1, rng=0),
        hp.BatchNorm2d(4),
        hp.ReLU(),
        hp.MaxPool2d(2),
        hp.Conv2d(4, 6, 3, rng=1),
        hp.Flatten(),
        hp.Linear(6, 3, rng=2),
    )
    check_layer(torch, randomised(model), rng(5).standard_normal((4, 1, 6, 6)))


def test_dropout_matches_torch_with_the_same_mask(torch: ModuleType) -> None:
    layer = hp.Dropout(0.3, rng=0)
    x = rng(1).standard_normal((50, 40))
    y = layer.forward(x)
    grad_y = rng(2).standard_normal(y.shape)
    grad_x = layer.backward(grad_y)
    kept = y != 0
    assert 0.6 < kept.mean() < 0.8  # about 1 - p
    x_torch = torch.tensor(x, requires_grad=True)
    y_torch = x_torch * torch.tensor(kept) / (1 - 0.3)  # torch's dropout formula, this mask
    y_torch.backward(torch.tensor(grad_y))
    np.testing.assert_allclose(y, y_torch.detach().numpy(), rtol=RTOL)
    np.testing.assert_allclose(grad_x, x_torch.grad.numpy(), rtol=RTOL)


def check_loss(torch: ModuleType, loss: hp.Loss, twin: Any, y_pred: Array, y: Array) -> None:
    y_pred_torch = torch.tensor(y_pred, requires_grad=True)
    expected = twin(y_pred_torch, torch.tensor(y))
    expected.backward()
    np.testing.assert_allclose(loss.forward(y_pred, y), expected.item(), rtol=RTOL)
    np.testing.assert_allclose(loss.backward(), y_pred_torch.grad.numpy(), rtol=RTOL, atol=ATOL)


def test_mean_absolute_error(torch: ModuleType) -> None:
    y_pred, y = rng(0).standard_normal((6, 3)), rng(1).standard_normal((6, 3))
    y[0, 0] = y_pred[0, 0]  # an exact zero: the gradient is 0 there, as torch's
    check_loss(torch, hp.MeanAbsoluteError(), torch.nn.L1Loss(), y_pred, y)


@pytest.mark.parametrize("delta", [1.0, 0.3, 2.5])
def test_huber(torch: ModuleType, delta: float) -> None:
    y_pred, y = 2 * rng(0).standard_normal((8, 3)), rng(1).standard_normal((8, 3))
    check_loss(torch, hp.Huber(delta), torch.nn.HuberLoss(delta=delta), y_pred, y)


def test_cross_entropy_with_class_weights(torch: ModuleType) -> None:
    y_pred, y = rng(0).standard_normal((9, 4)), rng(1).integers(0, 4, 9)
    weight = np.array([0.5, 2.0, 1.0, 3.0])
    twin = torch.nn.CrossEntropyLoss(weight=torch.tensor(weight))
    check_loss(torch, hp.SoftmaxCrossEntropy(weight), twin, y_pred, y)
