"""check_gradients finds wrong backward passes, tolerates kinks, and changes nothing."""

import numpy as np
import pytest

import handprop as hp


class TransposeBug(hp.Linear):
    """A Linear whose input gradient uses the weight's values but not its transpose."""

    def backward(self, grad_h: np.ndarray) -> np.ndarray:
        super().backward(grad_h)
        assert self.x is not None
        return grad_h.dot(self.weight.data.reshape(self.out_features, self.in_features))


class ForgetsBias(hp.Linear):
    """A Linear that never adds into its bias gradient."""

    def backward(self, grad_h: np.ndarray) -> np.ndarray:
        saved = self.bias.grad.copy()
        grad_x = super().backward(grad_h)
        self.bias.grad[...] = saved
        return grad_x


def _x(n: int = 5, d: int = 4) -> np.ndarray:
    return np.random.default_rng(3).standard_normal((n, d))


def test_a_wrong_input_gradient_fails_and_names_the_tensor() -> None:
    report = hp.check_gradients(TransposeBug(4, 4, rng=np.random.default_rng(0)), _x())
    by_name = {t.name: t for t in report.tensors}
    assert not report.passed
    assert not by_name["input"].passed
    assert by_name["input"].max_rel_error > 1e-2
    assert by_name["input"].worst_index is not None
    assert by_name["weight"].passed and by_name["bias"].passed


def test_a_missing_parameter_gradient_fails() -> None:
    report = hp.check_gradients(ForgetsBias(4, 3, rng=np.random.default_rng(0)), _x())
    assert [t.name for t in report.tensors if not t.passed] == ["bias"]


def test_entries_next_to_a_relu_kink_are_flagged_not_failed() -> None:
    x = _x()
    x[0, 0], x[1, 1], x[2, 2] = 0.0, 1e-9, -1e-9  # within eps = 1e-6 of the kink at 0

    report = hp.check_gradients(hp.ReLU(), x)

    (check,) = report.tensors
    assert check.near_kink == 3
    assert check.checked == x.size - 3
    assert report.passed


def test_kinks_inside_a_network_are_detected_through_the_layers_pieces() -> None:
    rng = np.random.default_rng(0)
    model = hp.Sequential(hp.Linear(4, 3, bias=False, rng=rng), hp.ReLU())
    x = _x()
    x[0] = 0.0  # then h[0] = 0 exactly, whatever the weight: only x[0] moves it off the kink

    report = hp.check_gradients(model, x)

    by_name = {t.name: t for t in report.tensors}
    assert report.passed
    assert by_name["input"].near_kink == 4
    assert by_name["0.weight"].near_kink == 0


def test_the_input_and_the_parameters_are_left_unchanged() -> None:
    model = hp.Linear(4, 3, rng=np.random.default_rng(0))
    x = _x()
    x_before, w_before = x.copy(), model.weight.data.copy()

    hp.check_gradients(model, x)

    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(model.weight.data, w_before)


def test_max_entries_samples_that_many_entries() -> None:
    model = hp.Linear(30, 20, rng=np.random.default_rng(0))
    report = hp.check_gradients(model, _x(5, 30), max_entries=17)
    assert [t.checked for t in report.tensors] == [17, 17, 17]
    assert report.passed


def test_a_loss_with_a_module_is_checked_end_to_end() -> None:
    rng = np.random.default_rng(1)
    model = hp.Sequential(hp.Linear(4, 6, rng=rng), hp.Tanh(), hp.Linear(6, 3, rng=rng))
    labels = np.array([0, 2, 1, 1, 0])
    report = hp.check_gradients(model, _x(), labels, loss=hp.SoftmaxCrossEntropy())
    assert report.passed
    assert len(report.tensors) == 5


def test_a_loss_without_a_target_is_an_error() -> None:
    with pytest.raises(ValueError, match="target"):
        hp.check_gradients(hp.SumSquaredError(), _x())


def test_float32_is_refused_with_advice() -> None:
    with pytest.raises(TypeError, match="float64"):
        hp.check_gradients(hp.Linear(4, 3, dtype=np.float32), _x().astype(np.float32))
