"""``Module.predict``'s batch_size: rows at a time, a positive integer or a clear ValueError."""

import numpy as np
import pytest

import handprop as hp


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, True, None])
def test_predict_refuses_a_batch_size_that_is_not_a_positive_integer(batch_size: object) -> None:
    model = hp.mlp(3, [4], 2, rng=0)
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer, received"):
        model.predict(np.ones((5, 3)), batch_size=batch_size)  # type: ignore[arg-type]


def test_predict_in_batches_of_one_row_is_forward() -> None:
    model = hp.mlp(3, [4], 2, rng=0)
    x = np.random.default_rng(0).standard_normal((5, 3))
    # one row is a matrix-vector product in BLAS: the same numbers up to rounding
    predicted = model.predict(x, batch_size=np.int64(1))
    np.testing.assert_allclose(predicted, model.forward(x), rtol=1e-12, atol=1e-15)
