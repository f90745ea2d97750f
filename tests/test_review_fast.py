"""Review of "a cheaper replayed small step" (Adam's m and v in one buffer, Tape.flatten
taking a stretch of a larger buffer, np.dot for small products): what it must still do."""

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import handprop as hp
from handprop.training import FitOptions, fit, train_step
from handprop.training.capture import capture_step
from handprop.training.tape import Tape, same_gemm

N, D_IN, H, D_OUT = 8, 5, 7, 3


OPTIMIZERS: dict[str, Callable[[list[hp.Parameter]], hp.Optimizer]] = {
    "adam": lambda p: hp.Adam(p, lr=1e-2),
    "sgd": lambda p: hp.SGD(p, lr=1e-2),
    "sgd-momentum-decay": lambda p: hp.SGD(p, lr=1e-2, momentum=0.9, weight_decay=1e-2),
}


def twins(
    dtype: str = "float64", single: bool = False, optimizer: str = "adam"
) -> tuple[tuple[Any, Any, Any], tuple[Any, Any, Any]]:
    """Two equal models (``single``: one weight, no bias) with cross-entropy and an
    optimizer (Adam by default) each."""
    if single:
        model = hp.Sequential(hp.Linear(D_IN, D_OUT, bias=False, rng=1, dtype=dtype))
    else:
        model = hp.Sequential(
            hp.Linear(D_IN, H, rng=1, dtype=dtype),
            hp.ReLU(),
            hp.Linear(H, D_OUT, rng=2, dtype=dtype),
        )
    copied = copy.deepcopy(model)
    return (
        (model, hp.SoftmaxCrossEntropy(), OPTIMIZERS[optimizer](model.parameters())),
        (copied, hp.SoftmaxCrossEntropy(), OPTIMIZERS[optimizer](copied.parameters())),
    )


def batches(count: int, dtype: str = "float64") -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(3)
    return [
        (rng.standard_normal((N, D_IN)).astype(dtype), rng.integers(0, D_OUT, N))
        for _ in range(count)
    ]


def assert_same_state(left: tuple[Any, Any, Any], right: tuple[Any, Any, Any]) -> None:
    """The weights and the optimizers' state (``slots``) equal, bit for bit."""
    arrays_a, arrays_b = (
        [p.data for p in model.parameters()] + [a for s in opt.slots().values() for a in s]
        for model, _, opt in (left, right)
    )
    for a, b in zip(arrays_a, arrays_b, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_flatten_takes_no_strided_view_for_a_stretch_of_its_buffer() -> None:
    """A strided or transposed view starts where a stretch would and has its shape, but
    is not it: flatten must hand back a flat buffer that the views it returns view."""
    rng = np.random.default_rng(0)
    strided = np.zeros(12)[::2].reshape(2, 3)  # half of a larger buffer, every other one
    transposed = np.zeros(6).reshape(3, 2).T  # the whole buffer, in another order
    for arrays in ([strided], [transposed], [np.zeros(4)[::2], np.zeros(4)[1::2]]):
        flat, views = Tape(np.dtype(np.float64)).flatten(arrays)
        flat[...] = rng.standard_normal(flat.shape)
        assert np.array_equal(flat, np.concatenate([view.ravel() for view in views]))


def test_flatten_of_arrays_over_bytes_makes_its_own_buffer() -> None:
    """np.frombuffer's base is the bytes' owner, not an array: no stretch of a buffer."""
    arrays = [np.frombuffer(bytearray(48), dtype=np.float64)]
    flat, views = Tape(np.dtype(np.float64)).flatten(arrays)
    flat[...] = 1.0
    assert np.array_equal(views[0], np.ones(6))


def test_adam_moments_replaced_by_strided_views_train_as_train_step() -> None:
    """A one-parameter Adam whose m is replaced (before capture) by a view that steps over
    a larger buffer: the tape updates what opt.m shows, as train_step does, not the
    buffer's first elements (what a stretch of it would be)."""
    eager, captured = twins(single=True)
    for _, _, adam in (eager, captured):
        (m,) = adam.m
        adam.m = [np.zeros(2 * m.size)[::2].reshape(m.shape)]  # every other element
    step = capture_step(*captured, (N, D_IN), (N,))
    for x, y in batches(4):
        assert step(x, y) == train_step(*eager, x, y)
    assert_same_state(eager, captured)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize(("built", "moved"), [("float64", "float32"), ("float32", "float64")])
def test_an_optimizer_built_before_model_to_trains_captured_as_eager(
    optimizer: str, built: str, moved: str
) -> None:
    """The optimizer built, then model.to(another dtype): its state (Adam's moments, SGD's
    scratch and velocities) keeps the old dtype, in which step computes; the tape's
    buffers do not, so fit trains it eagerly (the same bits)."""
    eager, captured = twins(built, optimizer=optimizer)
    for model, _, _ in (eager, captured):
        model.to(moved)
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((40, D_IN)).astype(moved), rng.integers(0, D_OUT, 40)
    run: dict[str, Any] = {"epochs": 2, "batch_size": N}
    fit(*eager, (x, y), rng=np.random.default_rng(0), options=FitOptions(capture=False), **run)
    fit(*captured, (x, y), rng=np.random.default_rng(0), **run)
    assert_same_state(eager, captured)


def _placed(array: np.ndarray, offset: int, fortran: bool) -> np.ndarray:
    """``array``'s values in a C- or F-ordered view ``offset`` elements into a larger buffer."""
    buffer = np.zeros(array.size + offset + 3, array.dtype)[offset : offset + array.size]
    view = buffer.reshape(array.shape[::-1]).T if fortran else buffer.reshape(array.shape)
    view[...] = array
    return view


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_dot_equals_matmul_bit_for_bit_where_same_gemm_says_so(dtype: str) -> None:
    """Property: over shapes from 1 to 65 (BLAS kernel edges), C- or F-ordered operands at
    any offset into a buffer, every product same_gemm lets through gives np.matmul's bits."""
    rng = np.random.default_rng(11)
    sides = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 32, 33, 64, 65]
    checked = 0
    for _ in range(400):
        m, k, n = (int(side) for side in rng.choice(sides, 3))
        a = _placed(rng.standard_normal((m, k)).astype(dtype), *rng.integers(0, [9, 2]))
        b = _placed(rng.standard_normal((k, n)).astype(dtype), *rng.integers(0, [9, 2]))
        by_matmul = _placed(np.zeros((m, n), dtype), int(rng.integers(0, 9)), False)
        by_dot = _placed(np.zeros((m, n), dtype), int(rng.integers(0, 9)), False)
        assert same_gemm(a, b, by_dot) == (min(m, k, n) > 1)
        if same_gemm(a, b, by_dot):
            np.matmul(a, b, by_matmul)
            np.dot(a, b, by_dot)
            assert np.array_equal(by_matmul.view(np.uint8), by_dot.view(np.uint8))
            checked += 1
    assert checked > 200
