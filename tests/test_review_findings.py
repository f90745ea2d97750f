"""Bugs a reviewer found in the session's change, and one older (each failed before its fix)."""

from types import ModuleType
from typing import Any

import numpy as np
import pytest

import handprop as hp
from handprop.metrics import accuracy, r2_score
from handprop.sample_weight import WeightedTargets
from handprop.training import FitOptions, fit
from handprop.training.loop import Callback


def test_conv_bias_survives_cols_changing_orientation_at_the_same_shape() -> None:
    """cols is (pixels, columns) or (columns, pixels) by w_out; at 10 x 10 both ways the
    buffer was reused as is and the ones' column not written again: the bias was lost."""
    layer = hp.Conv2d(1, 2, 3, rng=0)
    layer.bias.data[...] = [1.0, -2.0]  # type: ignore[union-attr]
    rng = np.random.default_rng(0)
    tall = rng.standard_normal((1, 1, 7, 4))  # h_out 5, w_out 2: one row per pixel, (10, 10)
    wide = rng.standard_normal((1, 1, 4, 7))  # h_out 2, w_out 5: one column per pixel, (10, 10)
    layer.forward(tall)
    fresh = hp.Conv2d(1, 2, 3, rng=0)
    fresh.bias.data[...] = layer.bias.data  # type: ignore[union-attr]
    np.testing.assert_allclose(layer.forward(wide), fresh.forward(wide), rtol=1e-12)


def test_r2_score_of_1d_targets_is_scikit_learns() -> None:
    """A (N, 1) column of weights broadcast (N,) targets into (N, N)."""
    from sklearn.metrics import r2_score as sklearn_r2

    rng = np.random.default_rng(0)
    y, weight = rng.standard_normal(20), rng.uniform(0.5, 2.0, 20)
    y_pred = y + 0.3 * rng.standard_normal(20)
    assert r2_score(y_pred, y) == pytest.approx(sklearn_r2(y, y_pred), rel=1e-12)
    assert r2_score(y_pred, y, weight) == pytest.approx(
        sklearn_r2(y, y_pred, sample_weight=weight), rel=1e-12
    )


def test_validation_rows_all_weighing_zero_score_nan_and_fit_goes_on() -> None:
    """np.average(weights=...) raised ZeroDivisionError; no row counts: NaN."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 4))
    y = (x[:, 0] > 0).astype(np.int64)
    assert np.isnan(accuracy(np.eye(2)[y], y, np.zeros(40)))
    assert np.isnan(r2_score(x, x, np.zeros(40)))
    model = hp.mlp(4, [8], 2, rng=0)
    train = (x[:30], WeightedTargets(y[:30], np.ones(30)))
    validation = (x[30:], WeightedTargets(y[30:], np.zeros(10)))
    history = fit(
        model, hp.SoftmaxCrossEntropy(), hp.SGD(model.parameters(), lr=0.1), train,
        epochs=2, batch_size=10, validation=validation,
    )  # fmt: skip
    assert len(history.logs) == 2 and all(np.isnan(log.val_metric) for log in history.logs)  # type: ignore[arg-type]


class FrozenLinear(hp.Linear):
    """A first layer whose weights stay: it adds no parameter gradients."""

    def backward_parameters(self, grad_h: Any, grads: Any = None) -> None:
        pass


def test_capture_trains_a_subclass_overriding_backward_parameters_as_train_step_does() -> None:
    """Tape.layer checked forward and backward only; train_step also calls
    backward_parameters, so the tape moved weights the eager step keeps."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 5)), rng.standard_normal((64, 2))
    weights = []
    for capture in (True, False):
        r = np.random.default_rng(1)
        model = hp.Sequential(FrozenLinear(5, 8, rng=r), hp.Tanh(), hp.Linear(8, 2, rng=r))
        before = model.layers[0].weight.data.copy()  # type: ignore[attr-defined]
        fit(
            model, hp.MeanSquaredError(), hp.SGD(model.parameters(), lr=0.1), (x, y),
            epochs=1, batch_size=16, options=FitOptions(capture=capture),
        )  # fmt: skip
        weights.append(model.layers[0].weight.data.copy())  # type: ignore[attr-defined]
    np.testing.assert_array_equal(weights[0], before)
    np.testing.assert_array_equal(weights[0], weights[1])


class Penalised(hp.MeanSquaredError):
    """A loss whose forward adds a constant (a penalty): backward and total are MSE's."""

    def forward(self, y_pred: Any, y: Any) -> float:
        return super().forward(y_pred, y) + 100.0


def test_capture_reports_the_step_loss_of_a_subclass_overriding_forward() -> None:
    """Tape.loss checked total and backward, not forward, which train_step calls."""

    class Losses(Callback):
        def __init__(self) -> None:
            self.seen: list[float] = []

        def on_step_end(self, step: int, loss: float) -> None:  # type: ignore[override]
            self.seen.append(loss)

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 5)), rng.standard_normal((64, 2))
    seen = []
    for capture in (True, False):
        r = np.random.default_rng(1)
        model = hp.Sequential(hp.Linear(5, 8, rng=r), hp.Tanh(), hp.Linear(8, 2, rng=r))
        losses = Losses()
        fit(
            model, Penalised(), hp.SGD(model.parameters(), lr=0.1), (x, y), epochs=1,
            batch_size=16, options=FitOptions(capture=capture), callbacks=[losses],
        )  # fmt: skip
        seen.append(losses.seen)
    assert seen[0] == seen[1] and min(seen[0]) > 100


@pytest.mark.parametrize("stride", [1, 2])
def test_max_pooling_with_a_window_of_one_matches_torch(torch: ModuleType, stride: int) -> None:
    """Older: MaxPool2d(1) failed an assertion (its work buffers exist for k > 2 only)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 4))
    layer = hp.MaxPool2d(1, stride=stride)
    y = layer.forward(x)
    grad_y = rng.standard_normal(y.shape)
    x_t = torch.tensor(x, requires_grad=True)
    y_t = torch.nn.functional.max_pool2d(x_t, 1, stride)
    y_t.backward(torch.tensor(grad_y))
    np.testing.assert_array_equal(y, y_t.detach().numpy())
    np.testing.assert_array_equal(layer.backward(grad_y), x_t.grad.numpy())
