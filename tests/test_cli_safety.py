"""Issue 11: the command line never destroys a user's file and never trusts a file's paths,
sizes or fields. Each test is one attack from the issue; bad input is one line on stderr,
exit code 2, and no output written."""

import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from handprop.checkpoint import ModelFileError, load_model, save_model
from handprop.cli import main
from handprop.layers import Linear, Sequential


def run(argv: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def refused(argv: list[object], capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    """Exit 2 with one line on stderr holding every needle; returns the line."""
    code, _, err = run(argv, capsys)
    assert (code, err.count("\n")) == (2, 1), err
    assert err.startswith("handprop: error: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    lines = [",".join(header)] + [",".join(str(cell) for cell in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 3))
    y = x @ np.array([3.0, -2.0, 0.5]) + 10
    return write_csv(
        tmp_path / "reg.csv", ["a", "b", "c", "price"], np.column_stack([x, y]).tolist()
    )


def train(data: Path, *extra: object) -> list[object]:
    return ["train", "--data", data, "--epochs", 2, "--hidden", 4, "--quiet", *extra]


def rewrite(path: Path, change: Callable[[dict[str, Any], dict[str, np.ndarray]], None]) -> None:
    """Edit a handprop file's metadata and tensors, as a hostile sender could."""
    with safe_open(str(path), "np") as file:
        info = json.loads(file.metadata()["handprop"])
    tensors = load_file(str(path))
    change(info, tensors)
    save_file(tensors, str(path), metadata={"handprop": json.dumps(info)})


# Data loss through output paths


@pytest.mark.parametrize(
    ("same", "flags"),
    [
        (["--out", "DATA"], ("--out", "--data")),
        (["--log", "DATA"], ("--log", "--data")),
        (["--plot", "DATA.png", "--out", "DATA.png"], ("--out", "--plot")),
        (["--checkpoint", "S", "--out", "S"], ("--checkpoint", "--out")),
        (["--out", "S", "--log", "S"], ("--log", "--out")),
        (["--checkpoint", "S", "--log", "S"], ("--log", "--checkpoint")),
        (["--out", "SYMLINK"], ("--out", "--data")),
        (["--log", "HARDLINK"], ("--log", "--data")),
    ],
)
def test_train_refuses_an_output_that_is_an_input_or_another_output(
    data: Path,
    tmp_path: Path,
    same: list[str],
    flags: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "link.csv").symlink_to(data)
    os.link(data, tmp_path / "hard.csv")
    paths = {"DATA": str(data), "DATA.png": str(tmp_path / "x.png"),
             "S": str(tmp_path / "s.st"), "SYMLINK": str(tmp_path / "link.csv"),
             "HARDLINK": str(tmp_path / "hard.csv")}  # fmt: skip
    before = data.read_bytes()
    err = refused(train(data, *(paths.get(a, a) for a in same)), capsys, *flags, "same file")
    assert data.read_bytes() == before
    assert not (tmp_path / "s.st").exists()
    assert err.count("--") >= 2


def test_predict_refuses_to_write_over_its_data_or_its_model(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m.safetensors"
    assert run(train(data, "--out", model), capsys)[0] == 0
    x = write_csv(tmp_path / "x.csv", ["a", "b", "c"], [[1, 2, 3], [4, 5, 6]])
    before = x.read_bytes(), model.read_bytes()
    refused(["predict", model, "--data", x, "--output", x], capsys, "--output", "--data")
    model_csv = tmp_path / "m.csv"
    model_csv.symlink_to(model)
    refused(["predict", model, "--data", x, "--output", model_csv], capsys, "--output", "MODEL")
    assert (x.read_bytes(), model.read_bytes()) == before


def test_resuming_may_go_on_writing_its_own_checkpoint(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = tmp_path / "c.st"
    keep = ["--checkpoint", checkpoint, "--checkpoint-every", 1]
    assert run(train(data, *keep), capsys)[0] == 0
    resume = ["train", "--resume", checkpoint, "--epochs", 3, "--quiet", *keep]
    assert run(resume, capsys)[0] == 0
    with safe_open(str(checkpoint), "np") as file:
        assert json.loads(file.metadata()["handprop"])["state"]["epoch"] == 3
    refused(["train", "--resume", checkpoint, "--out", checkpoint], capsys, "--out", "--resume")


@pytest.mark.parametrize("problem", ["extension", "no matplotlib", "unwritable folder"])
def test_every_output_is_checked_before_training(
    data: Path,
    tmp_path: Path,
    problem: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, log = tmp_path / "m.safetensors", tmp_path / "log.jsonl"
    extra: list[object] = ["--out", out, "--log", log, "--plot", tmp_path / "loss.png"]
    if problem == "extension":
        extra[-1] = tmp_path / "loss.xyz"
    elif problem == "no matplotlib":
        monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    else:  # root ignores permissions: /proc takes no new file, even from root
        if not Path("/proc/self").is_dir():
            pytest.skip("needs /proc")
        extra[1] = "/proc/handprop-test-model.safetensors"
    refused(train(data, *extra), capsys, {"extension": "xyz", "no matplotlib": "matplotlib",
                                           "unwritable folder": "/proc"}[problem])  # fmt: skip
    assert not out.exists() and not log.exists()  # nothing trained, nothing written


# Paths and sizes that come from a file


def test_a_resumed_run_writes_only_where_the_command_line_says(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint, victim, log = tmp_path / "c.st", tmp_path / "victim.txt", tmp_path / "l.txt"
    victim.write_text("precious\n")
    log.write_text("precious\n")
    assert run(train(data, "--checkpoint", checkpoint, "--checkpoint-every", 1), capsys)[0] == 0

    def evil(info: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        info["config"].update(out=str(victim), log=str(log), plot=str(tmp_path / "p.png"))

    rewrite(checkpoint, evil)
    assert run(["train", "--resume", checkpoint, "--epochs", 3], capsys)[0] == 0
    assert victim.read_text() == log.read_text() == "precious\n"
    assert not (tmp_path / "p.png").exists()
    model = tmp_path / "m.st"
    assert run(train(data, "--out", model, "--log", tmp_path / "log2"), capsys)[0] == 0
    saved = load_model(model)[1]["config"]
    assert not {"out", "log", "checkpoint", "plot", "checkpoint_every"} & set(saved)


def relu_tower(tmp_path: Path, width: int, relus: int) -> Path:
    path = tmp_path / "tower.safetensors"
    save_model(path, Sequential(Linear(1, width, rng=np.random.default_rng(0))))

    def tower(info: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        info["architecture"]["layers"] += [{"type": "ReLU"}] * relus

    rewrite(path, tower)
    return path


@pytest.mark.parametrize(
    ("width", "relus", "bound"), [(8, 50_000, "layers"), (70_000, 900, "work buffers")]
)
def test_an_architecture_beyond_sane_bounds_is_refused_before_allocating(
    tmp_path: Path, width: int, relus: int, bound: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = relu_tower(tmp_path, width, relus)
    assert path.stat().st_size < 2_000_000  # a small file asking for gigabytes
    with pytest.raises(ModelFileError, match=bound):
        load_model(path)
    x = write_csv(tmp_path / "x.csv", ["a"], [[1.0], [2.0]])
    refused(["predict", path, "--data", x, "--output", tmp_path / "p.csv"], capsys, bound)
    assert not (tmp_path / "p.csv").exists()


def test_train_refuses_a_network_beyond_the_bounds_before_allocating_it(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.st"
    # 10**12 weights (8 TB) between the two hidden layers
    refused(train(data, "--hidden", "1000000,1000000", "--out", out), capsys, "parameters")
    refused(train(data, "--hidden", ",".join(["4"] * 600), "--out", out), capsys, "layers")
    assert not out.exists()


def _set(key: str, value: object) -> Callable[[dict[str, Any], dict[str, np.ndarray]], None]:
    def change(info: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        info[key] = value

    return change


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (_set("loss", "nope"), "loss"),
        (_set("task", "poetry"), "task"),
        (_set("x_scaler", {"mean": [0.0], "scale": [1.0]}), "x_scaler"),
        (_set("target_names", ["price", "extra"]), "target_names"),
        (_set("feature_names", "abc"), "feature_names"),
    ],
)
def test_every_metadata_field_of_a_regression_model_is_checked(
    data: Path,
    tmp_path: Path,
    change: Callable[[dict[str, Any], dict[str, np.ndarray]], None],
    needle: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model, preds = tmp_path / "m.st", tmp_path / "p.csv"
    assert run(train(data, "--out", model), capsys)[0] == 0
    rewrite(model, change)
    refused(["evaluate", model, "--data", data], capsys, str(model), needle)
    refused(["predict", model, "--data", data, "--output", preds], capsys, needle)
    assert not preds.exists()


@pytest.mark.parametrize("classes", [["a", "b"], ["a", "b", "c", "d"], ["a", "a", "b"]])
def test_classes_must_match_the_output_width(
    tmp_path: Path, classes: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [[i % 7, (i * 3) % 5, "abc"[i % 3]] for i in range(30)]
    pets = write_csv(tmp_path / "pets.csv", ["w", "h", "kind"], rows)
    model, preds = tmp_path / "m.st", tmp_path / "p.csv"
    assert run(train(pets, "--out", model, "--task", "classification"), capsys)[0] == 0
    rewrite(model, _set("classes", classes))
    for proba in ([], ["--proba"]):
        argv = ["predict", model, "--data", pets, "--output", preds, *proba]
        refused(argv, capsys, "classes")
    assert not preds.exists()


def _state(key: str, value: object) -> Callable[[dict[str, Any], dict[str, np.ndarray]], None]:
    def change(info: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        info["state"][key] = value

    return change


def _drop(key: str) -> Callable[[dict[str, Any], dict[str, np.ndarray]], None]:
    def change(info: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        del info[key]

    return change


def _config(key: str, value: object) -> Callable[[dict[str, Any], dict[str, np.ndarray]], None]:
    def change(info: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        info["config"][key] = value

    return change


def _adam_steps(info: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
    info["optimizer"]["scalars"]["t"] = 10**400


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (_drop("state"), "state"),
        (_drop("rng"), "rng"),
        (_config("batch_size", 0), "batch_size"),
        (_config("loss", "nope"), "loss"),
        (_adam_steps, "step count"),
        (_state("epoch", -1), "epoch"),
        (_state("step", -5), "step"),
        (_state("logs", "x"), "logs"),
    ],
)
def test_every_field_of_a_checkpoint_is_checked_before_resuming(
    data: Path,
    tmp_path: Path,
    change: Callable[[dict[str, Any], dict[str, np.ndarray]], None],
    needle: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint, out = tmp_path / "c.st", tmp_path / "m.st"
    assert run(train(data, "--checkpoint", checkpoint, "--checkpoint-every", 1), capsys)[0] == 0
    rewrite(checkpoint, change)
    refused(["train", "--resume", checkpoint, "--epochs", 4, "--out", out], capsys, needle)
    assert not out.exists()


@pytest.mark.parametrize("flag", [["--seed", 1], ["--validation-fraction", "0.5"]])
def test_resume_refuses_a_new_seed_or_validation_fraction(
    data: Path, tmp_path: Path, flag: list[object], capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = tmp_path / "c.st"
    assert run(train(data, "--checkpoint", checkpoint, "--checkpoint-every", 1), capsys)[0] == 0
    refused(["train", "--resume", checkpoint, "--epochs", 3, *flag], capsys, str(flag[0]))


@pytest.mark.parametrize(("key", "value"), [("seed", 7), ("validation_fraction", 0.5)])
def test_resume_refuses_a_checkpoint_whose_seed_or_validation_fraction_changed(
    data: Path, tmp_path: Path, key: str, value: object, capsys: pytest.CaptureFixture[str]
) -> None:
    # Edited in the file: the split would move validation rows into training.
    checkpoint, out = tmp_path / "c.st", tmp_path / "m.st"
    assert run(train(data, "--checkpoint", checkpoint, "--checkpoint-every", 1), capsys)[0] == 0
    rewrite(checkpoint, _config(key, value))
    refused(["train", "--resume", checkpoint, "--epochs", 3, "--out", out], capsys, "validation")
    assert not out.exists()


def test_best_weights_from_another_run_are_refused_on_resume(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    narrow, wide = tmp_path / "narrow.st", tmp_path / "wide.st"
    for checkpoint, hidden in ((narrow, 1), (wide, 4)):
        argv = [*train(data, "--checkpoint", checkpoint, "--checkpoint-every", 1),
                "--hidden", hidden]  # fmt: skip
        assert run(argv, capsys)[0] == 0
    # (N, 1)-shaped weights would broadcast into (N, 4) ones without a word
    Path(f"{wide}.best").write_bytes(Path(f"{narrow}.best").read_bytes())
    out = tmp_path / "m.st"
    refused(["train", "--resume", wide, "--epochs", 3, "--out", out], capsys, f"{wide}.best")
    assert not out.exists()


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_a_model_with_non_finite_weights_is_refused(
    data: Path, tmp_path: Path, value: float, capsys: pytest.CaptureFixture[str]
) -> None:
    model, preds = tmp_path / "m.st", tmp_path / "p.csv"
    assert run(train(data, "--out", model), capsys)[0] == 0

    def poison(info: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        tensors["0.weight"][0, 0] = value

    rewrite(model, poison)
    refused(["predict", model, "--data", data, "--output", preds], capsys, "'0.weight'")
    refused(["evaluate", model, "--data", data], capsys, "'0.weight'")
    assert not preds.exists()


def test_evaluate_json_is_valid_json_when_a_score_overflows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Finite weights of 1e300 times features of 1e10 overflow: MSE inf, R² NaN.
    model = tmp_path / "m.st"
    linear = Linear(1, 1, rng=np.random.default_rng(0))
    linear.weight.data[...] = 1e300
    metadata = {"task": "regression", "loss": "mse", "feature_names": ["a"]}
    save_model(model, Sequential(linear), metadata=metadata)
    rows = write_csv(tmp_path / "big.csv", ["a", "y"], [[1e10, 1.0], [2e10, 2.0]])
    code, out, _ = run(["evaluate", model, "--data", rows, "--target", "y", "--json"], capsys)

    def strict(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    scores = json.loads(out, parse_constant=strict)
    assert code == 0 and scores["mse"] is None and scores["n"] == 2
    preds = tmp_path / "p.csv"
    refused(["predict", model, "--data", rows, "--output", preds], capsys, "not finite")
    assert not preds.exists()


# Signals, faults and sizes


def test_ctrl_c_is_one_line_that_says_how_to_resume(data: Path, tmp_path: Path) -> None:
    checkpoint = tmp_path / "c.st"
    argv = [sys.executable, "-m", "handprop", *map(str, train(data)), "--epochs", "1000000",
            "--checkpoint", str(checkpoint), "--checkpoint-every", "1",
            "--patience", "0"]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not checkpoint.exists() and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert err.count("\n") == 1, err
    assert f"--resume {checkpoint}" in err


def test_a_failing_log_write_names_the_file_and_leaves_whole_lines(
    data: Path, tmp_path: Path
) -> None:
    # A 300-byte file size limit: the third epoch's line does not fit.
    log = tmp_path / "log.jsonl"
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300))\n"
        "from handprop.cli import main\n"
        f"sys.exit(main(['train', '--data', {str(data)!r}, '--epochs', '50', '--quiet',"
        f" '--log', {str(log)!r}]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and str(log) in result.stderr, result.stderr
    text = log.read_text()
    assert text and text.endswith("\n")
    assert all(json.loads(line)["epoch"] >= 1 for line in text.splitlines())


def test_finite_inputs_near_the_float64_limit_are_not_called_a_divergence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(1.0, 1.7, (40, 1))
    rows = np.column_stack([x * 1e308, 2 * x[:, 0] + 1]).tolist()
    huge = write_csv(tmp_path / "huge.csv", ["a", "y"], rows)
    # Standardised with the training statistics, these are ordinary numbers.
    code, _, err = run(train(huge, "--lr", "0.01"), capsys)
    assert (code, err) == (0, "")
    # Unstandardised in float32 they are infinite: said so, not called a divergence.
    err = refused(train(huge, "--dtype", "float32", "--no-standardize"), capsys, "overflow")
    assert "diverge" not in err


def _classification_model(tmp_path: Path, classes: int) -> Path:
    path = tmp_path / "wide.st"
    model = Sequential(Linear(2, classes, rng=np.random.default_rng(0)))
    save_model(path, model, metadata={
        "task": "classification", "loss": "cross-entropy", "feature_names": ["a", "b"],
        "target_names": ["label"], "classes": list(range(classes)),
    })  # fmt: skip
    return path


def test_classification_evaluate_and_proba_memory_is_bounded_by_the_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 6,000 rows x 1,000 classes: 48 MB of scores at once, several times that in softmax.
    rows, classes = 6_000, 1_000
    model = _classification_model(tmp_path, classes)
    rng = np.random.default_rng(0)
    table = [[f"{a:.3f}", f"{b:.3f}", int(c)] for a, b, c in
             zip(rng.standard_normal(rows), rng.standard_normal(rows),
                 rng.integers(0, classes, rows), strict=True)]  # fmt: skip
    data = write_csv(tmp_path / "d.csv", ["a", "b", "label"], table)
    proba = tmp_path / "p.npy"
    for argv in (["evaluate", model, "--data", data, "--target", "label", "--json"],
                 ["predict", model, "--data", data, "--output", proba, "--proba"]):  # fmt: skip
        tracemalloc.start()
        try:
            code = main([str(a) for a in argv])
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert code == 0
        assert peak < 80_000_000, (argv[0], peak)  # all at once: 48 MB of scores alone
    scores = json.loads(capsys.readouterr().out)
    assert scores["n"] == rows and 0 <= scores["accuracy"] <= 1
    probabilities = np.load(proba)
    assert probabilities.shape == (rows, classes)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def test_sklearn_absurd_sizes_and_mixed_labels_are_one_value_error() -> None:
    from handprop.sklearn import HandpropClassifier, HandpropRegressor

    x = np.random.default_rng(0).standard_normal((20, 2))
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        HandpropRegressor(hidden_layer_sizes=(10**12,), max_epochs=1).fit(x, x[:, 0])
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        HandpropRegressor(hidden_layer_sizes=(8,) * 2000, max_epochs=1).fit(x, x[:, 0])
    for labels in (np.array(["a", 1] * 10, dtype=object), ["a", 1] * 10, [1, "a"] * 10):
        with pytest.raises(ValueError, match="mixes text"):
            HandpropClassifier(max_epochs=1).fit(x, labels)
