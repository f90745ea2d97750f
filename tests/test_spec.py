"""``build_layers``: networks from a compact description; and image data as (N, C, H, W)."""

from pathlib import Path

import numpy as np
import pytest

import handprop as hp
from handprop.data import DataError, digits_images, load_images


def test_the_issue_example_builds_with_shapes_worked_out() -> None:
    model = hp.build_layers("conv 16 3 pad 1, relu, maxpool 2, flatten, linear 10", (1, 8, 8))
    conv, relu, pool, flatten, linear = model
    assert isinstance(conv, hp.Conv2d) and conv.config() == {
        "in_channels": 1, "out_channels": 16, "kernel_size": 3, "stride": 1, "padding": 1,
        "bias": True,
    }  # fmt: skip
    assert isinstance(relu, hp.ReLU) and isinstance(flatten, hp.Flatten)
    assert isinstance(pool, hp.MaxPool2d) and (pool.kernel_size, pool.stride) == (2, 2)
    # 8x8 padded by 1 stays 8x8 under a 3x3 kernel; pooled by 2: 4x4; 16 * 4 * 4 = 256
    assert isinstance(linear, hp.Linear) and (linear.in_features, linear.out_features) == (256, 10)
    assert model.forward(np.zeros((3, 1, 8, 8))).shape == (3, 10)


def test_every_word() -> None:
    spec = (
        "conv 4 3 stride 2 pad 1 nobias, batchnorm, leaky_relu 0.2, avgpool 2 stride 1, "
        "conv 2 2, tanh, flatten, dropout 0.5, linear 6 nobias, layernorm, batchnorm, sigmoid, "
        "linear 2, identity"
    )
    model = hp.build_layers(spec, (3, 9, 9), rng=0, dtype=np.float32)
    types = [type(layer).__name__ for layer in model]
    assert types == [
        "Conv2d", "BatchNorm2d", "LeakyReLU", "AvgPool2d", "Conv2d", "Tanh", "Flatten",
        "Dropout", "Linear", "LayerNorm", "BatchNorm1d", "Sigmoid", "Linear", "Identity",
    ]  # fmt: skip
    conv = model[0]
    assert isinstance(conv, hp.Conv2d) and (conv.stride, conv.padding, conv.bias) == (2, 1, None)
    # 9x9, pad 1, 3x3 stride 2: (9 + 2 - 3) // 2 + 1 = 5; avgpool 2 stride 1: 4; conv 2x2: 3
    flat = model[8]
    assert isinstance(flat, hp.Linear) and flat.in_features == 2 * 3 * 3 and flat.bias is None
    assert model[2].negative_slope == 0.2  # type: ignore[attr-defined]
    assert model.forward(np.zeros((4, 3, 9, 9), np.float32)).shape == (4, 2)


def test_layernorm_normalises_each_sample_whole() -> None:
    # Was: over an image's last axis alone (each row of pixels on its own scale).
    model = hp.build_layers("conv 4 3, layernorm, flatten, linear 5, layernorm", (2, 6, 6), rng=0)
    assert model[1].normalized_shape == (4, 4, 4)  # type: ignore[attr-defined]
    assert model[4].normalized_shape == (5,)  # type: ignore[attr-defined]
    y = model[1].forward(model[0].forward(np.random.default_rng(0).standard_normal((3, 2, 6, 6))))
    per_image = y.reshape(3, -1)
    np.testing.assert_allclose(per_image.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(per_image.var(axis=1), 1.0, rtol=1e-4)  # eps 1e-5


def test_the_same_seed_builds_the_same_weights() -> None:
    spec = "conv 4 3, relu, flatten, dropout 0.5, linear 2"
    first, second = (hp.build_layers(spec, (1, 5, 5), rng=7) for _ in range(2))
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data)
    x = np.ones((2, 1, 5, 5))
    np.testing.assert_array_equal(first.forward(x), second.forward(x))  # the dropout masks too


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("conv 16 3, pool 2", r"layer 2 of .*unknown word 'pool'; valid words: avgpool, batchnorm"),
        ("conv 16", r"layer 1 \('conv 16'\).*expected conv C_OUT K"),
        ("linear 10", r"linear needs vectors, the shape here is \(1, 8, 8\): add flatten"),
        ("flatten, conv 2 3", r"conv needs images \(C, H, W\), the shape here is \(64,\)"),
        ("conv 2 3 stride", r"unexpected 'stride'; valid here: stride N, pad N, nobias"),
        ("maxpool 9", r"a 9x9 window \(padding 0\) does not fit images of 8x8"),
        ("relu 2", r"relu takes no settings"),
        ("flatten, dropout 1.5", r"Dropout p must be a number in \[0, 1\)"),
        ("conv 0 3", r"out_channels must be a positive integer"),
        ("relu,, relu", r"layer 2 of .*unknown word ''"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        hp.build_layers(spec, (1, 8, 8))


def test_digits_as_images() -> None:
    x, y = digits_images()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == np.float64 and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    from sklearn.datasets import load_digits

    flat = load_digits()
    np.testing.assert_array_equal(x.reshape(1797, 64) * 16, flat.data)
    np.testing.assert_array_equal(y, flat.target)


def test_load_images_from_npz_and_npy(tmp_path: Path) -> None:
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([1, 0]))
    np.save(tmp_path / "x.npy", x)
    images, labels = load_images(tmp_path / "d.npz")
    assert images.dtype == np.float64 and labels is not None
    np.testing.assert_array_equal(images, x)
    np.testing.assert_array_equal(labels, [1, 0])
    only, none = load_images(tmp_path / "x.npy")
    assert none is None and only.shape == (2, 3, 4, 5)


def test_load_images_refuses_what_is_not_images(tmp_path: Path) -> None:
    np.savez(tmp_path / "flat.npz", x=np.zeros((2, 3)), y=np.zeros(2))
    np.savez(tmp_path / "no_y.npz", x=np.zeros((2, 1, 3, 3)))
    np.savez(tmp_path / "short_y.npz", x=np.zeros((2, 1, 3, 3)), y=np.zeros(3))
    with pytest.raises(DataError, match=r"expected images of shape \(N, C, H, W\)"):
        load_images(tmp_path / "flat.npz")
    with pytest.raises(DataError, match=r"needs arrays 'x' \(N, C, H, W\) and 'y'"):
        load_images(tmp_path / "no_y.npz")
    with pytest.raises(DataError, match=r"expected targets y of shape \(2,\)"):
        load_images(tmp_path / "short_y.npz")
    with pytest.raises(DataError, match=r"\.npz \(x and y\) or \.npy"):
        load_images(tmp_path / "x.csv")
