"""Every layer, loss and optimizer against PyTorch autograd, in float64.

One helper runs handprop and its torch twin on the same numbers and compares
them (after tinygrad's ``helper_test_op``); each test below is a line or two.
handprop keeps a weight as (D_in, D_out), torch as (D_out, D_in): the twins
are built from the transposed numbers and compared through ``.T`` (which
leaves a 1-D bias as it is). torch is only ever reached through the ``torch``
fixture, so this file skips cleanly where torch is absent (and fails in CI).
"""

from collections.abc import Callable
from functools import partial
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from handprop import (
    SGD,
    Adam,
    Identity,
    LeakyReLU,
    Linear,
    Loss,
    MeanSquaredError,
    Module,
    Optimizer,
    Parameter,
    ReLU,
    Sequential,
    Sigmoid,
    SoftmaxCrossEntropy,
    SumSquaredError,
    Tanh,
    train_step,
)
from handprop._types import Array
from handprop.warmup import WarmupConfig, make_problem, run_warmup

RTOL = 1e-10
ATOL = 1e-12  # only where an entry can be ~0 and its relative error means nothing


def assert_close(actual: Any, expected: Any, atol: float = 0.0) -> None:
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=atol)


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def torch_twin(torch: ModuleType, module: Module) -> Any:
    """A torch.nn module computing what ``module`` computes, from the same numbers."""
    nn = torch.nn
    match module:
        case Sequential():
            return nn.Sequential(*(torch_twin(torch, layer) for layer in module))
        case Linear():
            twin = nn.Linear(
                module.in_features,
                module.out_features,
                bias=module.bias is not None,
                dtype=torch.float64,
            )
            with torch.no_grad():
                for (_, parameter), tensor in zip(
                    module.named_parameters(), twin.parameters(), strict=True
                ):
                    tensor.copy_(torch.tensor(parameter.data.T))
            return twin
        case LeakyReLU():
            return nn.LeakyReLU(module.negative_slope)
        case ReLU():
            return nn.ReLU()
        case Tanh():
            return nn.Tanh()
        case Sigmoid():
            return nn.Sigmoid()
        case Identity():
            return nn.Identity()
    raise TypeError(f"no torch twin for {type(module).__name__}")


def assert_same_parameters(module: Module, twin: Any, grads: bool = False) -> None:
    """Same names (handprop uses torch's dotted names) and same values, or gradients."""
    named = module.named_parameters()
    twin_named = list(twin.named_parameters())
    assert [name for name, _ in named] == [name for name, _ in twin_named]
    for (name, parameter), (_, tensor) in zip(named, twin_named, strict=True):
        actual = parameter.grad if grads else parameter.data
        expected = tensor.grad if grads else tensor.detach()
        np.testing.assert_allclose(
            actual, expected.numpy().T, rtol=RTOL, atol=ATOL, err_msg=f"parameter {name}"
        )


def check_layer(torch: ModuleType, layer: Module, x: Array) -> None:
    """Forward, input gradient and every parameter gradient equal torch autograd's."""
    twin = torch_twin(torch, layer)
    assert_same_parameters(layer, twin)
    x_torch = torch.tensor(x, requires_grad=True)

    y = layer.forward(x)
    y_torch = twin(x_torch)
    assert_close(y, y_torch.detach().numpy())

    grad_y = rng(99).standard_normal(y.shape)
    layer.zero_grad()
    grad_x = layer.backward(grad_y)
    y_torch.backward(torch.tensor(grad_y))
    assert_close(grad_x, x_torch.grad.numpy())
    assert_same_parameters(layer, twin, grads=True)


def linear(d_in: int, d_out: int, bias: bool = True, seed: int = 0) -> Linear:
    """A Linear with He-normal weights and (unlike the default zeros) a random bias."""
    layer = Linear(d_in, d_out, bias=bias, rng=rng(seed))
    if layer.bias is not None:
        layer.bias.data[:] = rng(seed + 1000).standard_normal(d_out)
    return layer


# ---- layers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
def test_linear(torch: ModuleType, bias: bool) -> None:
    check_layer(torch, linear(5, 3, bias=bias), rng(1).standard_normal((4, 5)))


def test_relu(torch: ModuleType) -> None:
    # No input is exactly 0: there handprop passes the gradient (as the tutorial's
    # grad_h[h < 0] = 0 does) and torch blocks it; see the next test.
    x = rng(2).standard_normal((4, 6))
    assert np.all(x != 0)
    check_layer(torch, ReLU(), x)


@pytest.mark.parametrize(
    ("make_layer", "torch_slope_at_zero"),
    [pytest.param(ReLU, 0.0, id="relu"), pytest.param(partial(LeakyReLU, 0.2), 0.2, id="leaky")],
)
def test_gradient_at_exactly_zero_is_passed_where_torch_uses_the_negative_slope(
    torch: ModuleType, make_layer: Callable[[], Module], torch_slope_at_zero: float
) -> None:
    # handprop follows the tutorial (grad_h[h < 0] = 0): at h == 0 the slope is 1.
    # torch takes the negative side there: ReLU blocks the gradient, LeakyReLU scales it.
    h = np.array([[-1.0, 0.0, 2.0], [0.0, -0.0, 3.0]])
    grad_y = np.array([[0.5, 0.7, -1.5], [-0.25, 0.125, 2.0]])
    layer = make_layer()
    layer.forward(h)
    grad_h = layer.backward(grad_y)
    h_torch = torch.tensor(h, requires_grad=True)
    torch_twin(torch, layer)(h_torch).backward(torch.tensor(grad_y))
    grad_h_torch = h_torch.grad.numpy()

    at_zero = h == 0
    np.testing.assert_array_equal(grad_h[at_zero], grad_y[at_zero])
    np.testing.assert_array_equal(grad_h_torch[at_zero], torch_slope_at_zero * grad_y[at_zero])
    np.testing.assert_array_equal(grad_h[~at_zero], grad_h_torch[~at_zero])


@pytest.mark.parametrize("negative_slope", [0.0, 0.01, 0.3])
def test_leaky_relu(torch: ModuleType, negative_slope: float) -> None:
    x = rng(3).standard_normal((4, 6))
    assert np.all(x != 0)  # at exactly 0 the slopes differ as for ReLU
    check_layer(torch, LeakyReLU(negative_slope), x)


def test_tanh(torch: ModuleType) -> None:
    check_layer(torch, Tanh(), 3 * rng(4).standard_normal((4, 6)))


def test_sigmoid_including_large_inputs(torch: ModuleType) -> None:
    # At |h| = 30 the output (or 1 - output) and the gradient are ~1e-13; check_layer
    # compares them with no absolute tolerance, so they must agree to rel 1e-10 too.
    x = np.concatenate([rng(5).uniform(-30, 30, (5, 6)), [[-30, -20, -5, 5, 20, 30]]])
    check_layer(torch, Sigmoid(), x)


def test_identity(torch: ModuleType) -> None:
    check_layer(torch, Identity(), rng(6).standard_normal((4, 6)))


def test_sequential_nested(torch: ModuleType) -> None:
    model = Sequential(
        linear(6, 8, seed=10),
        LeakyReLU(0.2),
        Sequential(linear(8, 8, bias=False, seed=11), Tanh()),
        linear(8, 5, seed=12),
        ReLU(),
        linear(5, 4, seed=13),
        Sigmoid(),
        Identity(),
    )
    check_layer(torch, model, rng(7).standard_normal((5, 6)))


# ---- losses -------------------------------------------------------------------------------------


def check_loss(
    torch: ModuleType, loss_fn: Loss, torch_loss: Callable[..., Any], y_pred: Array, y: Array
) -> None:
    """Loss value and grad_y_pred equal torch's, without a floating-point warning."""
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        loss = loss_fn.forward(y_pred, y)
        grad_y_pred = loss_fn.backward()
    y_pred_torch = torch.tensor(y_pred, requires_grad=True)
    loss_torch = torch_loss(y_pred_torch, torch.tensor(y))
    loss_torch.backward()

    assert isinstance(loss, float)
    assert np.isfinite(loss)
    assert_close(loss, loss_torch.item())
    assert_close(grad_y_pred, y_pred_torch.grad.numpy(), atol=ATOL)


def test_sum_squared_error(torch: ModuleType) -> None:
    y_pred, y = rng(20).standard_normal((2, 6, 3))
    check_loss(torch, SumSquaredError(), lambda a, b: ((a - b) ** 2).sum(), y_pred, y)


def test_mean_squared_error(torch: ModuleType) -> None:
    y_pred, y = rng(21).standard_normal((2, 6, 3))
    check_loss(torch, MeanSquaredError(), torch.nn.functional.mse_loss, y_pred, y)


@pytest.mark.parametrize("scale", [1.0, 30.0, 1e3])
def test_softmax_cross_entropy(torch: ModuleType, scale: float) -> None:
    generator = rng(22)
    y_pred = scale * generator.standard_normal((8, 5))
    y = generator.integers(0, 5, size=8)
    check_loss(torch, SoftmaxCrossEntropy(), torch.nn.functional.cross_entropy, y_pred, y)


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_softmax_cross_entropy_with_class_weights(torch: ModuleType, scale: float) -> None:
    generator = rng(23)
    y_pred = scale * generator.standard_normal((8, 5))
    y = generator.integers(0, 5, size=8)
    weight = np.array([0.5, 2.0, 1.0, 0.0, 3.0])
    torch_loss = partial(torch.nn.functional.cross_entropy, weight=torch.tensor(weight))
    check_loss(torch, SoftmaxCrossEntropy(weight=weight), torch_loss, y_pred, y)


def test_softmax_cross_entropy_without_weights_is_unchanged_bit_for_bit() -> None:
    generator = rng(24)
    y_pred, y = generator.standard_normal((16, 4)), generator.integers(0, 4, size=16)
    loss_fn = SoftmaxCrossEntropy()
    loss = loss_fn.forward(y_pred, y)
    log_probs = y_pred - y_pred.max(axis=1, keepdims=True)
    log_probs = log_probs - np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
    assert loss == float(-log_probs[np.arange(16), y].mean())  # the formula before weights
    expected = np.exp(log_probs)
    expected[np.arange(16), y] -= 1
    np.testing.assert_array_equal(loss_fn.backward(), expected / 16)


# ---- optimizers ---------------------------------------------------------------------------------

# (handprop optimizer, the torch.optim class that should match it, shared keyword arguments)
OPTIMIZERS = [
    pytest.param(SGD, "SGD", {"lr": 0.1}, id="sgd"),
    pytest.param(SGD, "SGD", {"lr": 0.1, "momentum": 0.9}, id="sgd-momentum"),
    pytest.param(SGD, "SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}, id="sgd-nesterov"),
    pytest.param(SGD, "SGD", {"lr": 0.1, "weight_decay": 0.01}, id="sgd-weight-decay"),
    pytest.param(
        SGD,
        "SGD",
        {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01, "nesterov": True},
        id="sgd-nesterov-weight-decay",
    ),
    pytest.param(Adam, "Adam", {"lr": 0.01}, id="adam"),
    pytest.param(Adam, "Adam", {"lr": 0.01, "weight_decay": 0.1}, id="adam-weight-decay"),
    pytest.param(
        partial(Adam, decoupled=True), "AdamW", {"lr": 0.01, "weight_decay": 0.1}, id="adamw"
    ),
    pytest.param(
        Adam, "Adam", {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6}, id="adam-betas-eps"
    ),
]
STEPS = 20


@pytest.mark.parametrize("fold", [True, False])
@pytest.mark.parametrize(("make_optimizer", "torch_name", "kwargs"), OPTIMIZERS)
def test_optimizer_trains_a_network_as_torch_does(
    torch: ModuleType,
    make_optimizer: Callable[..., Optimizer],
    torch_name: str,
    kwargs: dict[str, Any],
    fold: bool,
) -> None:
    model = Sequential(linear(4, 16, seed=30), Tanh(), linear(16, 3, seed=31))
    twin = torch_twin(torch, model)
    x, y = rng(32).standard_normal((8, 4)), rng(33).standard_normal((8, 3))
    x_torch, y_torch = torch.tensor(x), torch.tensor(y)
    loss_fn = MeanSquaredError()
    optimizer = make_optimizer(model.parameters(), **kwargs)
    torch_optimizer = getattr(torch.optim, torch_name)(twin.parameters(), **kwargs)

    losses = []
    for _ in range(STEPS):
        losses.append(train_step(model, loss_fn, optimizer, x, y, fold=fold))
        torch_optimizer.zero_grad()
        loss_torch = torch.nn.functional.mse_loss(twin(x_torch), y_torch)
        loss_torch.backward()
        torch_optimizer.step()

        assert_close(losses[-1], loss_torch.item())
        fused = fold and optimizer.fused_gradients() is not None
        if not fused:  # a fused step moves the weights without filling .grad
            assert_same_parameters(model, twin, grads=True)  # the gradients the step used
        assert_same_parameters(model, twin)  # the parameters after the step
    assert losses[-1] < losses[0]  # it trained: the comparison is not between frozen models


@pytest.mark.parametrize(("make_optimizer", "torch_name", "kwargs"), OPTIMIZERS)
def test_optimizer_step_on_given_gradients_as_torch(
    torch: ModuleType,
    make_optimizer: Callable[..., Optimizer],
    torch_name: str,
    kwargs: dict[str, Any],
) -> None:
    generator = rng(40)
    params = [Parameter(generator.standard_normal(shape)) for shape in [(3, 4), (4,)]]
    tensors = [torch.tensor(p.data, requires_grad=True) for p in params]
    optimizer = make_optimizer(params, **kwargs)
    torch_optimizer = getattr(torch.optim, torch_name)(tensors, **kwargs)
    start = [p.data.copy() for p in params]

    for _ in range(STEPS):
        for parameter, tensor in zip(params, tensors, strict=True):
            grad = generator.standard_normal(parameter.shape)
            parameter.grad[...] = grad
            tensor.grad = torch.tensor(grad)
        optimizer.step()
        torch_optimizer.step()
        for parameter, tensor in zip(params, tensors, strict=True):
            assert_close(parameter.data, tensor.detach().numpy())

    for parameter, initial in zip(params, start, strict=True):
        assert not np.allclose(parameter.data, initial)  # the parameters did move


# ---- a whole training run -----------------------------------------------------------------------


def test_warmup_run_matches_torch_step_by_step(torch: ModuleType) -> None:
    """The tutorial's network, SumSquaredError and SGD(lr=1e-6), as in "PyTorch: Tensors and
    autograd": ``y_pred = x.mm(w1).clamp(min=0).mm(w2)``, ``w -= learning_rate * w.grad``."""
    config = WarmupConfig(steps=50)
    problem = make_problem(config)
    x, y = torch.tensor(problem.x), torch.tensor(problem.y)
    w1, w2 = (torch.tensor(p.data, requires_grad=True) for p in problem.model.parameters())

    losses_torch = []
    for _ in range(config.steps):
        y_pred = x.mm(w1).clamp(min=0).mm(w2)
        loss = (y_pred - y).pow(2).sum()
        losses_torch.append(loss.item())
        loss.backward()
        with torch.no_grad():
            for w in (w1, w2):
                w -= config.lr * w.grad
                w.grad.zero_()

    run = run_warmup(config)
    assert len(run.losses) == config.steps
    assert_close(run.losses, losses_torch)
    assert run.losses[-1] < run.losses[0] / 10
    final = [p.data for p in run.model.parameters()]
    assert_close(final[0], w1.detach().numpy(), atol=ATOL)  # an entry can end near 0
    assert_close(final[1], w2.detach().numpy(), atol=ATOL)
