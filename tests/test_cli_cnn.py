"""handprop train --layers on images (.npz with x (N, C, H, W) and y, or the bundled digits),
then evaluate and predict with the saved model; bad combinations are one line, exit 2."""

import json
from pathlib import Path

import numpy as np
import pytest

from handprop.checkpoint import load_model
from handprop.cli import main

SPEC = "conv 4 3 pad 1, relu, maxpool 2, flatten, linear 3"


def run(argv: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_failure(
    argv: list[object], capsys: pytest.CaptureFixture[str], *words: str
) -> None:
    code, out, err = run(argv, capsys)
    assert (code, out) == (2, ""), err
    assert len(err.splitlines()) == 1 and err.startswith("handprop"), err
    for word in words:
        assert word in err, err


def images(n: int = 150, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two-channel 6x6 images whose class is where the bright square is; pixels 0-255 with
    channels on different scales, so that standardising each channel matters."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.uniform(0, 60, (n, 2, 6, 6))
    for i, label in enumerate(y):
        x[i, :, 2 * label : 2 * label + 2, 1:5] += 180
    x[:, 1] /= 100  # channel 1 on another scale
    return x, y * 10 + 5  # labels 5, 15, 25


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    x, y = images()
    np.savez(tmp_path / "images.npz", x=x, y=y)
    return tmp_path / "images.npz"


def test_train_evaluate_and_predict_on_images(
    npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "cnn.safetensors"
    code, _, err = run(["train", "--data", npz, "--layers", SPEC, "--epochs", 15, "--lr", "0.01",
                        "--out", model, "--quiet"], capsys)  # fmt: skip
    assert code == 0, err
    _network, info = load_model(model)
    assert info["input_shape"] == [2, 6, 6]
    assert info["feature_names"] is None
    assert len(info["x_scaler"]["mean"]) == 2  # one mean and one scale per channel
    x, y = images()
    np.testing.assert_allclose(info["x_scaler"]["mean"][1], x[:, 1].mean(), rtol=0.05)

    code, out, err = run(["evaluate", model, "--data", npz, "--json"], capsys)
    assert code == 0, err
    scores = json.loads(out)
    assert scores["n"] == 150 and scores["accuracy"] > 0.9
    assert [row["class"] for row in scores["per_class"]] == [5, 15, 25]

    labels = tmp_path / "labels.npy"
    assert run(["predict", model, "--data", npz, "--output", labels], capsys)[0] == 0
    predicted = np.load(labels)
    assert (predicted == y).mean() == scores["accuracy"]
    np.save(tmp_path / "alone.npy", x[:7])  # a .npy of images alone: predict reads it too
    assert (
        run(["predict", model, "--data", tmp_path / "alone.npy", "--output", labels], capsys)[0]
        == 0
    )
    np.testing.assert_array_equal(np.load(labels), predicted[:7])


def test_digits_as_images_with_a_test_part(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("sklearn")
    model = tmp_path / "digits.safetensors"
    code, out, err = run(["train", "--data", "digits", "--layers",
                          "conv 4 3, relu, maxpool 2, flatten, linear 10", "--epochs", 2,
                          "--test-fraction", "0.25", "--out", model], capsys)  # fmt: skip
    assert code == 0, err
    assert "test:" in out and "(449 rows)" in out
    _network, info = load_model(model)
    assert info["input_shape"] == [1, 8, 8] and info["config"]["layers"].startswith("conv 4 3")
    code, out, _ = run(["evaluate", model, "--data", "digits", "--json"], capsys)
    assert code == 0 and json.loads(out)["n"] == 1797


def saved_arrays(path: Path) -> list[np.ndarray]:
    model, _ = load_model(path)
    return [p.data for p in model.parameters()] + [b for _, b in model.named_buffers()]


def test_a_resumed_run_with_batchnorm_and_dropout_equals_a_straight_one(
    npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = "conv 4 3 pad 1, batchnorm, relu, maxpool 2, flatten, dropout 0.3, linear 3"
    common = ["--data", npz, "--layers", spec, "--quiet", "--patience", 0, "--batch-size", 16]
    straight, resumed, checkpoint = (tmp_path / f"{n}.safetensors" for n in "abc")
    assert run(["train", *common, "--epochs", 4, "--out", straight], capsys)[0] == 0
    assert run(["train", *common, "--epochs", 2, "--checkpoint", checkpoint,
                "--checkpoint-every", 2], capsys)[0] == 0  # fmt: skip
    code, _, err = run(["train", "--resume", checkpoint, "--epochs", 4, "--out", resumed,
                        "--quiet"], capsys)  # fmt: skip
    assert code == 0, err
    arrays = saved_arrays(straight)
    assert len(arrays) == 9  # conv 2, batchnorm 2, linear 2; the running statistics 3
    for a, b in zip(arrays, saved_arrays(resumed), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_network_on_a_table_from_layers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 3))
    np.savez(tmp_path / "t.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    model = tmp_path / "m.safetensors"
    code, _, err = run(["train", "--data", tmp_path / "t.npz", "--layers",
                        "linear 8, tanh, layernorm, linear 2", "--epochs", 3, "--out", model,
                        "--quiet"], capsys)  # fmt: skip
    assert code == 0, err
    assert "input_shape" not in load_model(model)[1]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--hidden", "10"], ["--layers describes the whole network", "--hidden"]),
        (["--target", "y"], ["--target", "images"]),
        (["--layers", "conv 4 3, relu, flatten, linear 7"], ["linear 3", "3 classes"]),
        (["--layers", "conv 4 3, relu, linear 3"], ["layer 3", "add flatten"]),
        (["--layers", "conv 4 3, frobnicate"], ["unknown word 'frobnicate'", "maxpool"]),
    ],
)
def test_bad_combinations_are_one_line(
    npz: Path, tmp_path: Path, extra: list[str], words: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    argv = ["train", "--data", npz, "--layers", SPEC, "--out", tmp_path / "m.safetensors", *extra]
    assert_clean_failure(argv, capsys, *words)
    assert not (tmp_path / "m.safetensors").exists()


def test_images_and_tables_do_not_mix(
    npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "t.csv"
    table.write_text("a,b\n1,0\n2,1\n", encoding="utf-8")
    assert_clean_failure(
        ["train", "--data", table, "--layers", SPEC], capsys, ".npz", "x (N, C, H, W)"
    )
    x, y = images()
    np.save(tmp_path / "alone.npy", x)
    assert_clean_failure(
        ["train", "--data", tmp_path / "alone.npy", "--layers", SPEC], capsys, ".npz"
    )
    model = tmp_path / "m.safetensors"
    assert run(["train", "--data", npz, "--layers", SPEC, "--epochs", 1, "--out", model,
                "--quiet"], capsys)[0] == 0  # fmt: skip
    assert_clean_failure(["evaluate", model, "--data", table], capsys, "images")
    np.savez(tmp_path / "small.npz", x=x[:, :, :4, :4], y=y)
    assert_clean_failure(["evaluate", model, "--data", tmp_path / "small.npz"], capsys,
                         "(2, 4, 4)", "(2, 6, 6)")  # fmt: skip
    assert_clean_failure(["evaluate", model, "--data", npz, "--target", "y"], capsys, "--target")


def test_regression_on_images_in_float32_without_standardising(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = np.random.default_rng(0).standard_normal((60, 2, 5, 5))
    np.savez(tmp_path / "reg.npz", x=x, y=x.mean(axis=(2, 3)))  # targets (N, 2)
    model = tmp_path / "reg.safetensors"
    code, _, err = run(["train", "--data", tmp_path / "reg.npz", "--layers",
                        "conv 3 3, tanh, flatten, linear 2", "--epochs", 2, "--dtype", "float32",
                        "--no-standardize", "--out", model, "--quiet"], capsys)  # fmt: skip
    assert code == 0, err
    network, info = load_model(model)
    assert info["x_scaler"] is None and info["y_scaler"] is None and info["task"] == "regression"
    assert network.parameters()[0].dtype == np.float32
    code, out, _ = run(["predict", model, "--data", tmp_path / "reg.npz", "--output", "-"], capsys)
    rows = out.splitlines()
    assert code == 0 and rows[0] == "y0,y1" and len(rows) == 61
    expected = network.eval()(x[:1].astype(np.float32))[0]  # the images as they are
    np.testing.assert_allclose([float(v) for v in rows[1].split(",")], expected, rtol=1e-6)
