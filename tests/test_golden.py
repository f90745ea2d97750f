"""One training step of a tiny network, worked out by hand.

The learning rate 0.25 and the small integers keep every number exact in
binary floating point, so the expected values are compared exactly.
"""

import numpy as np
import pytest

import handprop as hp

X = np.array([[1.0, 2.0, -1.0]])
Y = np.array([[5.0]])


def tiny_network() -> tuple[hp.Sequential, hp.Linear, hp.Linear]:
    layer1, layer2 = hp.Linear(3, 2), hp.Linear(2, 1)
    layer1.weight.data[...] = [[1, -1], [0, 1], [2, 0]]
    layer1.bias.data[...] = [0.5, -0.5]
    layer2.weight.data[...] = [[3], [2]]
    layer2.bias.data[...] = [1]
    return hp.Sequential(layer1, hp.ReLU(), layer2), layer1, layer2


def test_one_step_of_a_3_2_1_network_by_hand() -> None:
    model, layer1, layer2 = tiny_network()
    loss_fn, optimizer = hp.SumSquaredError(), hp.SGD(model.parameters(), lr=0.25)

    loss = loss_fn.forward(model.forward(X), Y)
    model.zero_grad()
    model.backward(loss_fn.backward())

    # Forward:
    #   h      = x.w1 + b1 = [1*1 + 2*0 - 1*2, 1*(-1) + 2*1 - 1*0] + [0.5, -0.5] = [-0.5, 0.5]
    #   h_relu = [0, 0.5]
    #   y_pred = 0*3 + 0.5*2 + 1 = 2
    #   loss   = (2 - 5)**2 = 9
    assert loss == 9.0
    # Backward:
    #   grad_y_pred = 2 * (2 - 5) = -6
    #   grad_w2 = h_relu.T . grad_y_pred = [[0 * -6], [0.5 * -6]] = [[0], [-3]];  grad_b2 = [-6]
    #   grad_h_relu = grad_y_pred . w2.T = [-6*3, -6*2] = [-18, -12]
    #   grad_h = [0, -12]   (h[0] = -0.5 < 0 blocks the first)
    #   grad_w1 = x.T . grad_h = [[0, -12], [0, -24], [0, 12]];  grad_b1 = [0, -12]
    np.testing.assert_array_equal(layer2.weight.grad, [[0], [-3]])
    np.testing.assert_array_equal(layer2.bias.grad, [-6])
    np.testing.assert_array_equal(layer1.weight.grad, [[0, -12], [0, -24], [0, 12]])
    np.testing.assert_array_equal(layer1.bias.grad, [0, -12])
    optimizer.step()
    # Update, w -= 0.25 * grad_w:
    #   w1 = [[1, -1 + 3], [0, 1 + 6], [2, 0 - 3]] = [[1, 2], [0, 7], [2, -3]];  b1 = [0.5, 2.5]
    #   w2 = [[3], [2 + 0.75]] = [[3], [2.75]];  b2 = [1 + 1.5] = [2.5]
    np.testing.assert_array_equal(layer1.weight.data, [[1, 2], [0, 7], [2, -3]])
    np.testing.assert_array_equal(layer1.bias.data, [0.5, 2.5])
    np.testing.assert_array_equal(layer2.weight.data, [[3], [2.75]])
    np.testing.assert_array_equal(layer2.bias.data, [2.5])


def test_train_step_folds_the_same_update_into_backward() -> None:
    # With plain SGD, train_step adds -lr * grad straight into the weights; every
    # number here is exact in binary, so the result is the same to the last bit.
    model, layer1, layer2 = tiny_network()
    loss = hp.train_step(model, hp.SumSquaredError(), hp.SGD(model.parameters(), lr=0.25), X, Y)
    assert loss == 9.0
    np.testing.assert_array_equal(layer1.weight.data, [[1, 2], [0, 7], [2, -3]])
    np.testing.assert_array_equal(layer1.bias.data, [0.5, 2.5])
    np.testing.assert_array_equal(layer2.weight.data, [[3], [2.75]])
    np.testing.assert_array_equal(layer2.bias.data, [2.5])
    # The gradients went into the weights, not into .grad.
    assert all(not np.any(p.grad) for p in model.parameters())


def test_relu_passes_the_gradient_at_exactly_zero() -> None:
    # The tutorial masks with grad_h[h < 0] = 0, so h == 0 lets the gradient through.
    relu = hp.ReLU()
    h = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(relu.forward(h), [[0.0, 0.0, 2.0]])
    np.testing.assert_array_equal(relu.backward(np.array([[5.0, 6.0, 7.0]])), [[0.0, 6.0, 7.0]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu_backward_is_the_tutorials_mask_to_the_last_bit(dtype: type) -> None:
    # ReLU.backward masks through the floats' bits; it must equal the tutorial's
    # grad_h = grad_h_relu.copy(); grad_h[h < 0] = 0 bit for bit, signed zeros, infinities
    # and NaNs included, for a gradient that is not contiguous too.
    rng = np.random.default_rng(3)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-310, -1e-310, -5.0, 5.0])
    h = rng.choice(special, size=(40, 30)).astype(dtype)
    grad = rng.choice(special, size=(30, 40)).astype(dtype).T  # a transposed view
    expected = grad.copy()
    expected[h < 0] = 0
    relu = hp.ReLU()
    relu.forward(h)
    got = relu.backward(grad)
    bits = np.uint64 if dtype == np.float64 else np.uint32
    np.testing.assert_array_equal(got.view(bits), expected.view(bits))
    assert np.signbit(got[h < 0]).sum() == 0  # +0.0 where blocked, never -0.0


@pytest.mark.parametrize("dtype", [np.float16, np.longdouble])
def test_relu_backward_in_other_float_widths_is_the_tutorials_mask(dtype: type) -> None:
    # The bit mask needs an unsigned integer as wide as the float: float16 and long double
    # (which ReLU accepts, as any float) raised KeyError in backward.
    rng = np.random.default_rng(4)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -5.0, 5.0])
    h = rng.choice(special, size=(20, 10)).astype(dtype)
    grad = rng.choice(special, size=(20, 10)).astype(dtype)
    expected = grad.copy()
    expected[h < 0] = 0
    relu = hp.ReLU()
    relu.forward(h)
    got = relu.backward(grad)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))


def test_softmax_cross_entropy_by_hand() -> None:
    # Scores [0, ln 3] give softmax [1/4, 3/4]; label 1: loss = -ln(3/4).
    # grad = softmax - one_hot = [1/4, -1/4] (a batch of one).
    loss_fn = hp.SoftmaxCrossEntropy()
    loss = loss_fn.forward(np.array([[0.0, np.log(3.0)]]), np.array([1]))
    np.testing.assert_allclose(loss, -np.log(0.75), rtol=1e-15)
    np.testing.assert_allclose(loss_fn.backward(), [[0.25, -0.25]], rtol=1e-15)
