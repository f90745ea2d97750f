"""Bad input is refused at the boundary with a message that says what was expected and received."""

import math

import numpy as np
import pytest

import handprop as hp
from handprop.init import get_initializer
from handprop.warmup import WarmupConfig


def test_wrong_input_width_names_both_shapes() -> None:
    layer = hp.Linear(1000, 100, rng=np.random.default_rng(0))
    expected = r"Linear expected input of shape \(N, 1000\), received \(64, 999\)"
    with pytest.raises(ValueError, match=expected):
        layer.forward(np.zeros((64, 999)))


def test_one_dimensional_input_is_refused() -> None:
    with pytest.raises(ValueError, match=r"received \(4,\)"):
        hp.Linear(4, 2).forward(np.zeros(4))


def test_wrong_dtype_names_both_dtypes() -> None:
    layer = hp.Linear(3, 2, dtype=np.float64)
    with pytest.raises(TypeError, match=r"float64.*float32"):
        layer.forward(np.zeros((2, 3), dtype=np.float32))


@pytest.mark.parametrize("bad", [np.zeros((2, 3), dtype=np.int64), [[0.0, 1.0, 2.0]]])
def test_non_float_arrays_are_refused(bad: object) -> None:
    with pytest.raises(TypeError, match="Linear expected"):
        hp.Linear(3, 2).forward(bad)  # type: ignore[arg-type]


def test_losses_refuse_mixed_dtypes_and_shapes() -> None:
    with pytest.raises(TypeError, match="float32"):
        hp.SumSquaredError().forward(np.zeros((2, 3)), np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(3, 2\)"):
        hp.MeanSquaredError().forward(np.zeros((2, 3)), np.zeros((3, 2)))


@pytest.mark.parametrize(
    ("labels", "error", "message"),
    [
        (np.array([0.0, 1.0]), TypeError, "integer class labels"),
        (np.array([0, 3]), ValueError, r"labels in \[0, 2\]"),
        (np.array([-1, 0]), ValueError, r"labels in \[0, 2\]"),
        (np.array([0, 1, 2]), ValueError, r"shape \(2,\)"),
    ],
)
def test_cross_entropy_refuses_bad_labels(labels: np.ndarray, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        hp.SoftmaxCrossEntropy().forward(np.zeros((2, 3)), labels)


@pytest.mark.parametrize("lr", [math.nan, math.inf, -1.0, -math.inf])
@pytest.mark.parametrize("optimizer", [hp.SGD, hp.Adam])
def test_learning_rates_must_be_finite_and_non_negative(optimizer: type, lr: float) -> None:
    with pytest.raises(ValueError, match="lr must be finite"):
        optimizer(hp.Linear(2, 2).parameters(), lr=lr)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"momentum": 1.0}, "momentum"),
        ({"momentum": -0.1}, "momentum"),
        ({"nesterov": True}, "nesterov"),
        ({"weight_decay": math.nan}, "weight_decay"),
    ],
)
def test_sgd_hyperparameters_are_checked(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        hp.SGD(hp.Linear(2, 2).parameters(), lr=0.1, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"betas": (1.0, 0.999)}, r"betas\[0\]"), ({"betas": (0.9,)}, "pair"), ({"eps": -1.0}, "eps")],
)
def test_adam_hyperparameters_are_checked(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        hp.Adam(hp.Linear(2, 2).parameters(), **kwargs)  # type: ignore[arg-type]


def test_optimizers_need_parameters() -> None:
    with pytest.raises(ValueError, match="empty parameter list"):
        hp.SGD(hp.ReLU().parameters(), lr=0.1)
    with pytest.raises(TypeError, match="Parameter objects"):
        hp.SGD([np.zeros(3)], lr=0.1)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="must be a number"):
        hp.SGD(hp.Linear(2, 2).parameters(), lr="0.1")  # type: ignore[arg-type]


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown activation 'relux'; valid names: .*relu"):
        hp.activation("relux")
    with pytest.raises(ValueError, match=r"valid names: .*he_normal"):
        get_initializer("kaiming")


@pytest.mark.parametrize(("d_in", "d_out"), [(-1, 3), (3, 0), (2.5, 3), (True, 3)])
def test_layer_sizes_must_be_positive_integers(d_in: object, d_out: object) -> None:
    with pytest.raises(ValueError, match="must be a positive integer"):
        hp.Linear(d_in, d_out)  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", ["float16", "int32", "complex128", "nonsense"])
def test_only_float32_and_float64(dtype: str) -> None:
    with pytest.raises(TypeError, match="float64 or float32"):
        hp.Linear(2, 2, dtype=dtype)
    with pytest.raises(TypeError, match="float64 or float32"):
        WarmupConfig(dtype=dtype)


def test_sequential_takes_modules_only() -> None:
    with pytest.raises(TypeError, match="position 1"):
        hp.Sequential(hp.ReLU(), lambda x: x)  # type: ignore[arg-type]


def test_leaky_relu_slope_must_be_finite() -> None:
    with pytest.raises(ValueError, match="negative_slope"):
        hp.LeakyReLU(math.nan)


def test_loss_backward_before_forward() -> None:
    with pytest.raises(RuntimeError, match="before"):
        hp.SoftmaxCrossEntropy().backward()
