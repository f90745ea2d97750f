"""handprop train, evaluate and predict on files, with every kind of bad input the issue lists."""

import json
import pickle
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from handprop.checkpoint import load_model
from handprop.cli import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    lines = [",".join(header)] + [",".join(str(cell) for cell in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def regression_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 3))
    y = 3 * x[:, 0] - 2 * x[:, 1] + 0.5 * x[:, 2] + 10
    return write_csv(
        tmp_path / "reg.csv", ["a", "b", "c", "price"], np.column_stack([x, y]).tolist()
    )


@pytest.fixture
def classification_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((240, 2))
    names = np.array(["cat", "dog", "owl"])[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5)]
    rows = [[f"{a:.6f}", f"{b:.6f}", label] for (a, b), label in zip(x, names, strict=True)]
    return write_csv(tmp_path / "pets.csv", ["w", "h", "kind"], rows)


def train_args(data: Path, out: Path, *extra: object) -> list[object]:
    return ["train", "--data", data, "--out", out, "--epochs", 60, "--quiet", *extra]


def test_regression_end_to_end(
    regression_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model.safetensors"
    assert run(train_args(regression_csv, model), capsys) == (0, "", "")

    code, out, _ = run(["evaluate", model, "--data", regression_csv, "--json"], capsys)
    scores = json.loads(out)
    assert code == 0
    assert set(scores) == {"r2", "mse", "rmse", "mae", "loss", "loss_scale", "n"}
    assert scores["loss_scale"] == "standardized"
    assert scores["n"] == 200
    assert scores["r2"] > 0.99

    preds = tmp_path / "preds.csv"
    assert run(["predict", model, "--data", regression_csv, "--output", preds], capsys)[0] == 0
    lines = preds.read_text().splitlines()
    assert lines[0] == "price"
    truth = np.loadtxt(regression_csv, delimiter=",", skiprows=1)[:, 3]
    predicted = np.array([float(v) for v in lines[1:]])
    r2 = 1 - np.sum((predicted - truth) ** 2) / np.sum((truth - truth.mean()) ** 2)
    assert r2 == pytest.approx(scores["r2"], rel=1e-12)  # predict and evaluate agree


def test_classification_with_text_labels(
    classification_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "pets.safetensors"
    args = train_args(classification_csv, model, "--task", "classification", "--target", "kind")
    assert run(args, capsys)[0] == 0

    code, out, _ = run(["evaluate", model, "--data", classification_csv, "--json"], capsys)
    assert code == 0
    assert set(json.loads(out)) == {
        "accuracy", "balanced_accuracy", "loss", "per_class", "confusion_matrix", "n"
    }  # fmt: skip
    assert json.loads(out)["accuracy"] > 0.9

    labels, proba = tmp_path / "labels.csv", tmp_path / "proba.npy"
    assert run(["predict", model, "--data", classification_csv, "--output", labels], capsys)[0] == 0
    assert set(labels.read_text().splitlines()[1:]) <= {"cat", "dog", "owl"}
    args = ["predict", model, "--data", classification_csv, "--output", proba, "--proba"]
    assert run(args, capsys)[0] == 0
    probabilities = np.load(proba)
    assert probabilities.shape == (240, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-12)


def test_evaluate_text_output(
    regression_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m.safetensors"
    run(train_args(regression_csv, model, "--epochs", 2), capsys)
    code, out, _ = run(["evaluate", model, "--data", regression_csv], capsys)
    assert code == 0
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == ["r2", "mse", "rmse", "mae", "loss", "n"]
    assert "loss is on the standardised targets" in lines[-1]


def test_regression_scores_are_in_the_targets_units(
    regression_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, preds = tmp_path / "m.safetensors", tmp_path / "p.csv"
    run(train_args(regression_csv, model, "--epochs", 2), capsys)
    scores = json.loads(run(["evaluate", model, "--data", regression_csv, "--json"], capsys)[1])
    run(["predict", model, "--data", regression_csv, "--output", preds], capsys)
    y_pred = np.loadtxt(preds, skiprows=1)
    y = np.loadtxt(regression_csv, delimiter=",", skiprows=1)[:, -1]
    assert scores["mae"] == pytest.approx(np.mean(np.abs(y_pred - y)), rel=1e-12)
    assert scores["rmse"] == pytest.approx(np.sqrt(np.mean((y_pred - y) ** 2)), rel=1e-12)


def test_a_trained_file_loads_into_torch(
    regression_csv: Path, tmp_path: Path, torch: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    from safetensors.torch import load_file

    path = tmp_path / "m.safetensors"
    run(
        train_args(regression_csv, path, "--hidden", "8,4", "--activation", "tanh", "--epochs", 3),
        capsys,
    )
    model, _ = load_model(path)
    twin = torch.nn.Sequential(
        torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4), torch.nn.Tanh(),
        torch.nn.Linear(4, 1),
    ).double()  # fmt: skip
    twin.load_state_dict(load_file(path), strict=True)
    x = np.random.default_rng(5).standard_normal((7, 3))
    with torch.no_grad():
        expected = twin(torch.tensor(x)).numpy()
    np.testing.assert_allclose(model.forward(x), expected, rtol=1e-12, atol=1e-14)


def saved_arrays(path: Path) -> list[np.ndarray]:
    model, _ = load_model(path)
    return [p.data for p in model.parameters()]


@pytest.mark.parametrize("extra", [["--patience", "0"], ["--patience", "3", "--optimizer", "sgd"]])
def test_five_epochs_and_a_resume_equal_ten_epochs(
    regression_csv: Path,
    tmp_path: Path,
    extra: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    straight, resumed, checkpoint = (
        tmp_path / n for n in ("a.safetensors", "b.safetensors", "c.safetensors")
    )
    common = ["--epochs", 10, "--lr", "0.01", *extra]
    assert (
        run(["train", "--data", regression_csv, "--out", straight, "--quiet", *common], capsys)[0]
        == 0
    )
    first = [
        "train",
        "--data",
        regression_csv,
        "--quiet",
        "--checkpoint",
        checkpoint,
        "--checkpoint-every",
        5,
    ]
    assert run([*first, *common[:1], 5, *common[2:]], capsys)[0] == 0
    assert (
        run(["train", "--resume", checkpoint, "--epochs", 10, "--out", resumed, "--quiet"], capsys)[
            0
        ]
        == 0
    )

    for a, b in zip(saved_arrays(straight), saved_arrays(resumed), strict=True):
        np.testing.assert_array_equal(a, b)


def test_resume_refuses_to_change_the_arithmetic(
    regression_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = tmp_path / "c.safetensors"
    run(["train", "--data", regression_csv, "--epochs", 2, "--quiet", "--checkpoint", checkpoint,
         "--checkpoint-every", 1], capsys)  # fmt: skip
    code, _, err = run(["train", "--resume", checkpoint, "--lr", "0.5"], capsys)
    assert code == 2
    assert "--lr cannot change when resuming" in err


def test_log_and_plot(
    regression_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, plot = tmp_path / "m.jsonl", tmp_path / "loss.png"
    args = [
        "train",
        "--data",
        regression_csv,
        "--epochs",
        4,
        "--patience",
        0,
        "--quiet",
        "--log",
        log,
        "--plot",
        plot,
    ]
    assert run(args, capsys)[0] == 0
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert {"lr", "train_loss", "train_r2", "val_loss", "val_r2"} <= set(records[0])
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_divergence_exits_1_explains_and_keeps_finite_weights_beside_the_good_model(
    regression_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A good model already at --out survives a diverged run; the diverged run's last finite
    # weights go beside it, to NAME.diverged, and the message says where.
    model = tmp_path / "m.safetensors"
    good = ["train", "--data", regression_csv, "--out", model, "--epochs", "3", "--quiet"]
    assert run(good, capsys)[0] == 0
    before = model.read_bytes()
    args = ["train", "--data", regression_csv, "--out", model, "--optimizer", "sgd", "--lr", "1e3",
            "--loss", "sse", "--no-standardize", "--quiet"]  # fmt: skip
    code, _, err = run(args, capsys)
    assert code == 1
    assert "diverged" in err and err.count("\n") == 1
    assert "learning rate 1000" in err
    assert "--loss mse" in err
    diverged = tmp_path / "m.safetensors.diverged"
    assert f"saved in {diverged}, and {model} was left as it was" in err
    assert model.read_bytes() == before
    assert all(np.isfinite(a).all() for a in saved_arrays(diverged))


@pytest.mark.parametrize("option", ["--out", "--checkpoint", "--plot", "--log"])
def test_an_output_in_a_missing_folder_is_refused_before_training(
    regression_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    missing = tmp_path / "no such folder" / "file"
    log = tmp_path / "log.jsonl"  # would be written by the first epoch
    extra = [] if option == "--log" else ["--log", log]
    code, out, err = run(["train", "--data", regression_csv, option, missing, *extra], capsys)
    assert (code, out) == (2, "")
    assert (
        err == f"handprop: error: {option} {missing}: the folder {missing.parent} does not exist\n"
    )
    assert not log.exists()
    code, _, err = run(["train", "--data", regression_csv, option, tmp_path], capsys)
    assert (
        code == 2
        and err == f"handprop: error: {option} {tmp_path} is a folder; give a file name in it\n"
    )


@pytest.mark.parametrize(("option", "sidecar"), [("--out", ".diverged"), ("--checkpoint", ".best")])
def test_a_folder_where_a_sidecar_file_goes_is_refused_before_training(
    regression_csv: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: str,
    sidecar: str,
) -> None:
    # OUT.diverged (a diverged run's weights) and CHECKPOINT.best (early stopping's best
    # weights) were written only after epochs of training, and then failed on the folder.
    target = tmp_path / "m.safetensors"
    (tmp_path / f"m.safetensors{sidecar}").mkdir()
    log = tmp_path / "log.jsonl"  # would be written by the first epoch
    code, out, err = run(["train", "--data", regression_csv, option, target, "--log", log], capsys)
    assert (code, out) == (2, "")
    assert err == (f"handprop: error: {option} {target}: {target}{sidecar} is a folder, and "
                   "handprop writes a file there\n")  # fmt: skip
    assert not log.exists()


# --- bad input: one line on stderr, exit code 2, no traceback, no file written ---


def assert_clean_failure(
    argv: list[object], capsys: pytest.CaptureFixture[str], *words: str
) -> str:
    code, out, err = run(argv, capsys)
    assert code == 2, err
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("handprop")
    for word in words:
        assert word in err
    return err


def test_missing_data_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.safetensors"
    assert_clean_failure(train_args(tmp_path / "nope.csv", out), capsys, "nope.csv")
    assert not out.exists()


def test_unknown_data_set_name_lists_the_valid_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_clean_failure(train_args("mnist", tmp_path / "m"), capsys, "digits", "diabetes", "iris")


def test_non_numeric_cell_names_row_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_csv(tmp_path / "d.csv", ["a", "b", "y"], [[1, 2, 3], [4, "x7", 6]])
    assert_clean_failure(train_args(data, tmp_path / "m"), capsys, "line 3", '"b"', "'x7'")


def test_nonfinite_values_are_refused_unless_dropped(
    regression_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = regression_csv.read_text().splitlines()
    lines[5] = "nan," + lines[5].split(",", 1)[1]
    regression_csv.write_text("\n".join(lines) + "\n")
    out = tmp_path / "m.safetensors"
    assert_clean_failure(
        train_args(regression_csv, out), capsys, "line 6", '"a"', "--drop-nonfinite"
    )
    assert not out.exists()
    assert (
        run([*train_args(regression_csv, out, "--epochs", 1), "--drop-nonfinite"], capsys)[0] == 0
    )


def test_target_not_found_lists_the_columns(
    regression_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = assert_clean_failure(
        train_args(regression_csv, tmp_path / "m", "--target", "cost"), capsys
    )
    for column in ("a", "b", "c", "price"):
        assert column in err


def test_model_width_differs_from_the_data(
    regression_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m.safetensors"
    run(train_args(regression_csv, model, "--epochs", 1), capsys)
    narrow = write_csv(tmp_path / "narrow.csv", ["a", "price"], [[1, 2], [3, 4]])
    assert_clean_failure(
        ["evaluate", model, "--data", narrow, "--target", "price"], capsys, 'no feature column "b"'
    )


@pytest.mark.parametrize("damage", ["truncated", "random", "text", "pickle"])
def test_broken_model_files(
    regression_csv: Path, tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m.safetensors"
    run(train_args(regression_csv, model, "--epochs", 1), capsys)
    content = model.read_bytes()
    model.write_bytes({
        "truncated": content[: len(content) // 2],
        "random": np.random.default_rng(0).bytes(500),
        "text": b"this is not a model\n",
        "pickle": pickle.dumps({"0.weight": [1.0, 2.0]}),
    }[damage])  # fmt: skip
    preds = tmp_path / "p.csv"
    assert_clean_failure(
        ["predict", model, "--data", regression_csv, "--output", preds], capsys, str(model)
    )
    assert not preds.exists()


def test_pickle_bearing_npy_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "evil.npy"
    np.save(data, np.array([{"x": 1}, {"y": 2}], dtype=object), allow_pickle=True)
    assert_clean_failure(train_args(data, tmp_path / "m"), capsys, "pickle")


def test_a_failed_predict_leaves_the_old_output_alone(
    regression_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, preds = tmp_path / "m.safetensors", tmp_path / "p.csv"
    run(train_args(regression_csv, model, "--epochs", 1), capsys)
    preds.write_text("precious\n")
    bad = write_csv(tmp_path / "bad.csv", ["a", "b", "c"], [[1, 2, "x?"]])
    assert_clean_failure(["predict", model, "--data", bad, "--output", preds], capsys, "'x?'")
    assert preds.read_text() == "precious\n"


def test_predict_refuses_an_output_in_a_missing_folder_before_reading_the_data(
    regression_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m.safetensors"
    run(train_args(regression_csv, model, "--epochs", 1), capsys)
    missing = tmp_path / "nope" / "p.csv"
    # The data file does not exist either: the output is checked first, before any loading.
    argv = ["predict", model, "--data", tmp_path / "absent.csv", "--output", missing]
    err = assert_clean_failure(argv, capsys, "--output")
    assert (
        err == f"handprop: error: --output {missing}: the folder {missing.parent} does not exist\n"
    )


def test_a_failed_train_leaves_the_old_model_alone(
    regression_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m.safetensors"
    run(train_args(regression_csv, model, "--epochs", 1), capsys)
    before = model.read_bytes()
    assert_clean_failure(train_args(regression_csv, model, "--target", "nope"), capsys, "nope")
    assert model.read_bytes() == before


def test_an_unwritable_log_path_is_a_clean_error(
    regression_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "missing" / "log.jsonl"
    assert_clean_failure(train_args(regression_csv, tmp_path / "m", "--log", log), capsys, str(log))
    assert_clean_failure(["warmup", "--steps", 1, "--log", log], capsys, str(log))


def test_resuming_a_run_that_stopped_early_stops_again(
    regression_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, again, checkpoint = tmp_path / "a.st", tmp_path / "b.st", tmp_path / "c.st"
    args = ["--patience", 1, "--lr", "0.05", "--checkpoint", checkpoint, "--checkpoint-every", 1]
    assert run(train_args(regression_csv, first, "--epochs", 200, *args), capsys)[0] == 0
    assert run(["train", "--resume", checkpoint, "--out", again, "--quiet"], capsys)[0] == 0
    for a, b in zip(saved_arrays(first), saved_arrays(again), strict=True):
        np.testing.assert_array_equal(a, b)
