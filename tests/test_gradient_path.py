"""Where parameter gradients go: ``backward(grad_y, grads)``, and the fused SGD path.

Plain SGD can fuse its update into the weight-gradient products; ``train_step``
then hands backward the optimizer's ``Gradients`` and still calls ``step()``,
which updates every parameter the fused path did not reach. A layer that writes
``.grad`` itself must therefore train exactly as it does without fusion.
"""

from pathlib import Path

import numpy as np
import pytest

import handprop as hp
from handprop.checkpoint import save_checkpoint
from handprop.parameter import ACCUMULATE, Gradients


class Scale(hp.Module):
    """``y = x * s`` with a learnt vector ``s``; its backward writes ``.grad`` directly."""

    def __init__(self, width: int) -> None:
        self.s = hp.Parameter(np.linspace(0.5, 1.5, width))
        self.x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return x * self.s.data

    def backward(self, grad_y: np.ndarray, grads: Gradients = ACCUMULATE) -> np.ndarray:
        assert self.x is not None
        grad_x = grad_y * self.s.data
        self.s.grad += (grad_y * self.x).sum(axis=0)  # bypasses grads, as Module allows
        return grad_x

    def named_parameters(self) -> list[tuple[str, hp.Parameter]]:
        return [("s", self.s)]


class Unused(hp.Module):
    """A parameter that never receives a gradient (kept, say, for a later stage)."""

    def __init__(self) -> None:
        self.w = hp.Parameter(np.full(3, 2.0))

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def backward(self, grad_y: np.ndarray, grads: Gradients = ACCUMULATE) -> np.ndarray:
        return grad_y

    def named_parameters(self) -> list[tuple[str, hp.Parameter]]:
        return [("w", self.w)]


def trained(fold: bool, exact: bool, steps: int = 25) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    model = hp.Sequential(
        hp.Linear(5, 6, rng=rng), hp.Tanh(), Scale(6), Unused(), hp.Linear(6, 2, rng=rng)
    )
    x, y = rng.standard_normal((16, 5)), rng.standard_normal((16, 2))
    optimizer = hp.SGD(model.parameters(), lr=0.05)
    for _ in range(steps):
        hp.train_step(model, hp.MeanSquaredError(), optimizer, x, y, fold=fold, exact=exact)
    return [p.data.copy() for p in model.parameters()]


def test_a_layer_writing_grad_itself_trains_bit_for_bit_with_fusion_on_and_off() -> None:
    unfused = trained(fold=False, exact=False)
    fused = trained(fold=True, exact=True)  # exact: the fused path rounds as step() does
    for with_fusion, without in zip(fused, unfused, strict=True):
        np.testing.assert_array_equal(with_fusion, without)
    start = trained(fold=False, exact=False, steps=0)
    assert not np.array_equal(unfused[2], start[2])  # the custom layer's s did train
    np.testing.assert_array_equal(unfused[3], start[3])  # the unused parameter did not move


def test_the_fused_path_moves_only_what_it_was_given_and_step_does_the_rest() -> None:
    rng = np.random.default_rng(1)
    linear, scale = hp.Linear(3, 4, rng=rng), Scale(4)
    model = hp.Sequential(linear, scale)
    optimizer = hp.SGD(model.parameters(), lr=0.1)
    x = rng.standard_normal((8, 3))
    y_pred = model.forward(x)
    optimizer.zero_grad()
    fused = optimizer.fused_gradients()
    assert fused is not None
    weight_before, s_before = linear.weight.data.copy(), scale.s.data.copy()
    model.backward_parameters(np.ones_like(y_pred), fused)
    assert not np.array_equal(linear.weight.data, weight_before)  # moved inside backward
    np.testing.assert_array_equal(scale.s.data, s_before)  # written to .grad: not yet
    s_grad = scale.s.grad.copy()
    weight_after_backward = linear.weight.data.copy()
    optimizer.step()
    np.testing.assert_array_equal(linear.weight.data, weight_after_backward)  # not twice
    np.testing.assert_array_equal(scale.s.data, s_before - 0.1 * s_grad)


def test_fused_gradients_exist_only_for_plain_sgd_over_distinct_parameters() -> None:
    params = hp.Linear(3, 3, rng=0).parameters()
    assert isinstance(hp.SGD(params, lr=0.1).fused_gradients(), Gradients)
    assert hp.SGD(params + params[:1], lr=0.1).fused_gradients() is None
    assert hp.SGD(params, lr=0.1, momentum=0.5).fused_gradients() is None
    assert hp.SGD(params, lr=0.1, weight_decay=0.5).fused_gradients() is None
    assert hp.Adam(params).fused_gradients() is None


def test_a_parameter_the_optimizer_does_not_hold_keeps_its_gradient_under_fusion() -> None:
    rng = np.random.default_rng(2)
    frozen, head = hp.Linear(3, 4, rng=rng), hp.Linear(4, 2, rng=rng)
    model = hp.Sequential(frozen, hp.ReLU(), head)
    optimizer = hp.SGD(head.parameters(), lr=0.1)  # the first layer is frozen
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    frozen_before = frozen.weight.data.copy()
    model.zero_grad()
    hp.train_step(model, hp.MeanSquaredError(), optimizer, x, y)
    np.testing.assert_array_equal(frozen.weight.data, frozen_before)
    assert np.abs(frozen.weight.grad).sum() > 0  # accumulated, as without fusion


def test_clipping_goes_through_train_step() -> None:
    rng = np.random.default_rng(3)
    model = hp.Linear(4, 2, rng=rng)
    optimizer = hp.SGD(model.parameters(), lr=1.0)
    x, y = 100 * rng.standard_normal((8, 4)), rng.standard_normal((8, 2))
    before = [p.data.copy() for p in model.parameters()]
    hp.train_step(model, hp.SumSquaredError(), optimizer, x, y, clip_norm=0.5)
    pairs = zip(model.parameters(), before, strict=True)
    moved = np.sqrt(sum(np.sum((p.data - b) ** 2) for p, b in pairs))
    assert moved == pytest.approx(0.5, rel=1e-12)  # lr 1 times a gradient of norm 0.5


class Failing(hp.Module):
    """Raises in backward, after the layers above it have had their fused update."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def backward(self, grad_y: np.ndarray, grads: Gradients = ACCUMULATE) -> np.ndarray:
        raise RuntimeError("backward failed")


def test_a_backward_that_fails_leaves_nothing_for_the_next_step_to_skip() -> None:
    rng = np.random.default_rng(4)
    model = hp.Sequential(hp.Linear(3, 4, rng=rng), Failing(), hp.Linear(4, 2, rng=rng))
    optimizer = hp.SGD(model.parameters(), lr=0.1)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    with pytest.raises(RuntimeError, match="backward failed"):
        hp.train_step(model, hp.MeanSquaredError(), optimizer, x, y)  # the head moved, fused
    model.layers[1] = hp.Identity()
    before = [p.data.copy() for p in model.parameters()]
    hp.train_step(model, hp.MeanSquaredError(), optimizer, x, y, fold=False)
    for after, start in zip(model.parameters(), before, strict=True):
        assert not np.array_equal(after.data, start)  # every parameter took this step


def test_a_checkpoint_refuses_an_optimizer_built_before_to(tmp_path: Path) -> None:
    model = hp.mlp(3, [4], 2, rng=0)
    optimizer = hp.Adam(model.parameters())
    model.to(np.float32)
    with pytest.raises(TypeError, match=r"build the optimizer after model\.to"):
        save_checkpoint(tmp_path / "c.safetensors", model, optimizer)
    assert list(tmp_path.iterdir()) == []
