"""gemm through numpy's BLAS, and the lazy, temporary-free gradient accumulation built on it."""

import numpy as np
import pytest

import handprop as hp
from handprop import _blas


def _operand(
    rng: np.random.Generator, shape: tuple[int, int], transposed: bool, dtype: str
) -> np.ndarray:
    """A C-contiguous matrix, or the transpose of one (F-contiguous), with the given shape."""
    if transposed:
        return rng.standard_normal(shape[::-1]).astype(dtype).T
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 0.0), (1.0, 1.0), (-0.25, 1.0), (2.0, 0.5)])
def test_gemm_matches_numpy(dtype: str, ta: bool, tb: bool, alpha: float, beta: float) -> None:
    rng = np.random.default_rng(0)
    a, b = _operand(rng, (5, 7), ta, dtype), _operand(rng, (7, 3), tb, dtype)
    out = rng.standard_normal((5, 3)).astype(dtype)
    expected = alpha * (a.astype(np.float64) @ b) + beta * out

    _blas.gemm(a, b, out, alpha=alpha, beta=beta)

    tolerance = (
        {"rtol": 1e-5, "atol": 1e-5} if dtype == "float32" else {"rtol": 1e-13, "atol": 1e-14}
    )
    np.testing.assert_allclose(out, expected, **tolerance)


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("memory", ["read-only", "bytes", "offset view"])
def test_gemm_reads_every_kind_of_memory_at_the_right_address(ta: bool, memory: str) -> None:
    # The operands' addresses come through the buffer protocol, which read-only memory
    # refuses (then the slower ndarray.ctypes path); a view must start where it starts.
    rng = np.random.default_rng(1)
    rows = 2 if memory == "offset view" else 0  # rows of base before the operand's
    base = rng.standard_normal((rows + 9, 5) if ta else (rows + 5, 9))
    if memory == "read-only":
        base.setflags(write=False)
    elif memory == "bytes":
        base = np.frombuffer(base.tobytes(), dtype=np.float64).reshape(base.shape)
    a = base[rows:].T if ta else base[rows:]  # (5, 9), C- or F-contiguous
    b = rng.standard_normal((9, 4))
    out = np.zeros((5, 4))
    _blas.gemm(a, b, out, alpha=1.0, beta=0.0)
    np.testing.assert_allclose(out, a @ b, rtol=1e-13, atol=1e-14)
    y = np.ones_like(base[rows:])
    _blas.add(base[rows:], y)
    np.testing.assert_array_equal(y, base[rows:] + 1)


def test_gemm_refuses_a_read_only_output() -> None:
    out = np.zeros((2, 2))
    out.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        _blas.gemm(np.ones((2, 3)), np.ones((3, 2)), out)


def test_numpys_own_blas_is_found() -> None:
    # numpy's wheels ship OpenBLAS; if this fails, products fall back to numpy with temporaries.
    assert _blas._kernel(np.dtype(np.float64)) is not None
    assert _blas._kernel(np.dtype(np.float32)) is not None


def test_gemm_falls_back_for_strided_and_mixed_operands() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((6, 8))[:, ::2]  # neither C- nor F-contiguous
    b = rng.standard_normal((4, 2))
    out = np.ones((6, 2))
    _blas.gemm(a, b, out, alpha=0.5, beta=1.0)
    np.testing.assert_allclose(out, 0.5 * a @ b + 1.0, rtol=1e-13)


def test_zero_grad_is_lazy_but_reads_as_zero() -> None:
    p = hp.Parameter(np.ones((2, 2)))
    p.grad[...] = 5.0
    p.zero_grad()
    np.testing.assert_array_equal(p.grad, np.zeros((2, 2)))


def test_gradient_products_overwrite_after_zero_grad_and_add_otherwise() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    p = hp.Parameter(np.zeros((3, 2)))
    p.grad[...] = 100.0
    p.zero_grad()
    p.accumulate_product(a, b)
    np.testing.assert_allclose(p.grad, a @ b, rtol=1e-14)
    p.accumulate_product(a, b)
    p.accumulate(np.ones((3, 2)))
    np.testing.assert_allclose(p.grad, 2 * (a @ b) + 1, rtol=1e-14)


def test_tied_weights_are_not_folded() -> None:
    # Folding updates a weight as soon as its gradient is known; a weight used twice would
    # then be read after its update. An optimizer holding a parameter twice never folds.
    layer = hp.Linear(3, 3, rng=np.random.default_rng(0))
    params = layer.parameters()
    assert hp.SGD(params, lr=0.1).fused_gradients() is not None
    assert hp.SGD(params + params[:1], lr=0.1).fused_gradients() is None
    assert hp.SGD(params, lr=0.1, momentum=0.5).fused_gradients() is None
    assert hp.SGD(params, lr=0.1, weight_decay=0.5).fused_gradients() is None
    assert hp.Adam(params).fused_gradients() is None


def test_folded_and_unfolded_steps_agree() -> None:
    def trained(fold: bool, exact: bool = False) -> list[np.ndarray]:
        rng = np.random.default_rng(3)
        model = hp.Sequential(hp.Linear(6, 8, rng=rng), hp.ReLU(), hp.Linear(8, 2, rng=rng))
        x, y = rng.standard_normal((16, 6)), rng.standard_normal((16, 2))
        sgd = hp.SGD(model.parameters(), lr=0.01)
        for _ in range(20):
            hp.train_step(model, hp.MeanSquaredError(), sgd, x, y, fold=fold, exact=exact)
        return [p.data.copy() for p in model.parameters()]

    unfolded = trained(False)
    for folded, reference in zip(trained(True), unfolded, strict=True):
        np.testing.assert_allclose(folded, reference, rtol=1e-12, atol=1e-15)
    for exact, reference in zip(trained(True, exact=True), unfolded, strict=True):
        np.testing.assert_array_equal(exact, reference)  # rounded as gradient-then-update


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_blas_add_rounds_as_numpy_add(dtype: str) -> None:
    rng = np.random.default_rng(4)
    x, y = (
        rng.standard_normal((300, 70)).astype(dtype),
        rng.standard_normal((300, 70)).astype(dtype),
    )
    expected = y + x
    _blas.add(x, y)
    np.testing.assert_array_equal(y, expected)


def test_weights_shared_by_two_layers_are_never_folded() -> None:
    # A tied weight would be read by the earlier layer after the later one's folded update.
    def trained(fold: bool) -> np.ndarray:
        rng = np.random.default_rng(6)
        model = hp.Sequential(
            hp.Linear(4, 5, rng=rng), hp.Tanh(), hp.Linear(5, 5, rng=rng), hp.Tanh(),
            hp.Linear(5, 5, rng=rng),
        )  # fmt: skip
        model[4].weight = model[2].weight  # type: ignore[attr-defined]
        sgd = hp.SGD(list(dict.fromkeys(model.parameters())), lr=0.5)
        x, y = rng.standard_normal((8, 4)), rng.standard_normal((8, 5))
        hp.train_step(model, hp.MeanSquaredError(), sgd, x, y, fold=fold)
        return model[0].weight.data  # type: ignore[attr-defined,no-any-return]

    np.testing.assert_array_equal(trained(True), trained(False))
