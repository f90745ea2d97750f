"""Reliability: checkpoints survive SIGKILL at any moment, and numerical edge cases behave.

(Disk-full and read-only folders are covered in test_checkpoint.py.)
"""

import io
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handprop import train_step
from handprop.checkpoint import load_checkpoint, load_model, save_model
from handprop.checkpoint.files import _HOST, _temporary_prefix
from handprop.cli import main
from handprop.data.transform import Standardizer
from handprop.layers import mlp
from handprop.losses import MeanSquaredError, SoftmaxCrossEntropy
from handprop.metrics import r2_score
from handprop.optim import SGD, Adam
from handprop.training import FitOptions, fit

KILLS = 15


def run(argv: list[object]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def regression_data(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((n, 2))
    return x, (x @ [1.0, -2.0])[:, None]


def write_npz(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    np.savez(path, x=x, y=y)
    return path


def train_argv(data: Path, out: Path, *extra: object) -> list[object]:
    return ["train", "--data", data, "--out", out, "--epochs", 20, "--patience", 0,
            "--hidden", 4, "--quiet", *extra]  # fmt: skip


# --- crash safety -----------------------------------------------------------------------------


def check_safetensors_file(path: Path) -> None:
    """The header parses and the tensors' byte ranges tile the rest of the file exactly."""
    raw = path.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + length])
    sizes = {"F64": 8, "F32": 4}
    ranges = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        assert end - start == math.prod(entry["shape"]) * sizes[entry["dtype"]], name
        ranges.append((start, end))
    ranges.sort()
    assert ranges[0][0] == 0
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert 8 + length + ranges[-1][1] == len(raw)


def temporary_files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name.startswith(".") and p.suffix == ".tmp"}


def wait_for_new_write(path: Path, previous: int | None, process: subprocess.Popen[bytes]) -> None:
    """Until ``path`` is a file other than inode ``previous`` (os.replace made a new one)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if path.stat().st_ino != previous:
                return
        except FileNotFoundError:
            pass
        assert process.poll() is None, process.communicate()
        time.sleep(0.002)
    pytest.fail(f"no checkpoint written to {path} within 20 s")


def test_checkpoint_survives_sigkill_at_any_moment(tmp_path: Path) -> None:
    x, y = regression_data(16)
    data = write_npz(tmp_path / "data.npz", x, y)
    ckpt = tmp_path / "run.safetensors"
    fresh = [sys.executable, "-m", "handprop", "train", "--data", str(data),
             "--checkpoint", str(ckpt), "--checkpoint-every", "1", "--epochs", "1000000",
             "--quiet", "--patience", "0", "--validation-fraction", "0", "--hidden", "4",
             "--batch-size", "16"]  # fmt: skip
    # Outputs come from the command line only (issue 11): the resumed run names its checkpoint.
    resume = [sys.executable, "-m", "handprop", "train", "--resume", str(ckpt),
              "--checkpoint", str(ckpt), "--checkpoint-every", "1",
              "--epochs", "1000000", "--quiet"]  # fmt: skip
    rng = np.random.default_rng(2024)
    last_epoch, inode = 0, None
    leftovers: set[str] = set()
    for kill in range(KILLS):
        process = subprocess.Popen(fresh if kill == 0 else resume, stderr=subprocess.PIPE)
        try:
            wait_for_new_write(ckpt, inode, process)
            time.sleep(rng.uniform(0.02, 0.2))
        finally:
            process.send_signal(signal.SIGKILL)
            process.communicate()
        assert process.returncode == -signal.SIGKILL

        check_safetensors_file(ckpt)
        model, info, optimizer_state = load_checkpoint(ckpt)
        state = info["state"]
        epoch = state["epoch"]
        assert isinstance(epoch, int) and epoch > last_epoch  # the run wrote at least one
        assert state["step"] == epoch  # one batch per epoch: a whole epoch, not a torn one
        assert [log["epoch"] for log in state["logs"]] == list(range(1, epoch + 1))
        assert all(np.isfinite(p.data).all() for p in model.parameters())
        assert all(np.isfinite(t).all() for t in optimizer_state.tensors.values())
        assert optimizer_state.config["scalars"]["t"] == epoch  # Adam's step count agrees
        last_epoch, inode = epoch, ckpt.stat().st_ino

        # SIGKILL runs no cleanup: the one write in flight may leave a temporary file, which
        # never takes the checkpoint's name; the next run's first save removes it.
        now = temporary_files(tmp_path)
        assert len(now) <= 1 and not now & leftovers
        leftovers = now
    assert set(os.listdir(tmp_path)) - leftovers == {"data.npz", ckpt.name}

    done = subprocess.run(
        [*resume[:-3], "--epochs", str(last_epoch + 1), "--quiet"], capture_output=True, timeout=60
    )
    assert (done.returncode, done.stderr) == (0, b"")
    assert load_checkpoint(ckpt)[1]["state"]["epoch"] == last_epoch + 1
    assert set(os.listdir(tmp_path)) == {"data.npz", ckpt.name}


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def test_a_save_removes_the_temporaries_that_dead_writers_left(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    dead, other_host = dead_pid(), f"{int(_HOST, 16) ^ 1:08x}"
    stale = [f"{_temporary_prefix(target, dead)}{suffix}.tmp" for suffix in ("a1b2c3d4", "_x")]
    kept = [
        f"{_temporary_prefix(target, os.getppid())}a1b2c3d4.tmp",  # a live writer's
        f"{_temporary_prefix(target, os.getpid())}a1b2c3d4.tmp",  # this process's, another thread
        f".model.safetensors.{dead}-{other_host}.a1b2c3d4.tmp",  # another host's: pids differ
        ".model.safetensors.a1b2c3d4.tmp",  # no process id (an older handprop's)
        f".model.safetensors.{dead}-{_HOST}.a1b2c3d4.tmp.keep",
        f".other.safetensors.{dead}-{_HOST}.a1b2c3d4.tmp",  # another target's
        f".model.safetensor.{dead}-{_HOST}.a1b2c3d4.tmp",
        f"model.safetensors.{dead}-{_HOST}.a1b2c3d4.tmp",
        "notes.txt",
    ]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"half a checkpoint")
    folder = tmp_path / f"{_temporary_prefix(target, dead)}folder.tmp"
    folder.mkdir()  # named like one, but not a file
    save_model(target, mlp(2, [3], 1, rng=np.random.default_rng(0)))
    assert sorted(os.listdir(tmp_path)) == sorted([*kept, folder.name, target.name])
    assert all((tmp_path / name).read_bytes() == b"half a checkpoint" for name in kept)
    assert load_model(target)[0][0].in_features == 2


# --- numerical edges through the library ----------------------------------------------------


def test_softmax_cross_entropy_with_logits_of_magnitude_1e300() -> None:
    loss_fn = SoftmaxCrossEntropy()
    logits = np.array([[1e300, -1e300, 0.0], [-1e300, 1e300, 1e300], [1e300, 1e300, 1e300]])
    loss = loss_fn.forward(logits, np.array([1, 1, 2]))
    grad = loss_fn.backward()
    assert loss == pytest.approx((2e300 + 0.0 + math.log(2) + math.log(3)) / 3)
    expected = np.array([[1, -1, 0], [0, 0.5 - 1, 0.5], [1 / 3, 1 / 3, 1 / 3 - 1]]) / 3
    np.testing.assert_allclose(grad, expected, rtol=1e-15)


def test_softmax_cross_entropy_with_logits_near_the_float64_limit() -> None:
    loss_fn = SoftmaxCrossEntropy()
    loss = loss_fn.forward(np.array([[1e308, -1e308]]), np.array([0]))
    assert loss == 0.0
    np.testing.assert_array_equal(loss_fn.backward(), [[0.0, 0.0]])


def test_r2_of_constant_targets_is_defined() -> None:
    y = np.full((5, 2), 3.0)
    assert r2_score(y.copy(), y) == 1.0
    assert r2_score(y + np.array([0.0, 0.5]), y) == 0.5  # exact column 0, missed column 1
    assert r2_score(np.zeros((1, 1)), np.ones((1, 1))) == 0.0  # one sample is constant too


def test_train_step_on_a_single_sample_and_a_single_class() -> None:
    model = mlp(3, [4], 1, rng=np.random.default_rng(0))
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.0)
    x, y = np.ones((1, 3)), np.full((1, 1), 2.0)
    losses = [train_step(model, MeanSquaredError(), optimizer, x, y) for _ in range(50)]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < 1e-6 < losses[0]

    classifier = mlp(3, [4], 1, rng=np.random.default_rng(0))  # one class: the loss is 0
    optimizer = SGD(classifier.parameters(), lr=0.1, momentum=0.0)
    before = [p.data.copy() for p in classifier.parameters()]
    loss = train_step(classifier, SoftmaxCrossEntropy(), optimizer, x, np.zeros(1, np.int64))
    assert loss == 0.0
    for parameter, old in zip(classifier.parameters(), before, strict=True):
        np.testing.assert_array_equal(parameter.data, old)


def test_classes_missing_from_a_batch() -> None:
    x = np.random.default_rng(0).standard_normal((30, 2))
    y = np.repeat(np.arange(3), 10)  # sorted labels: each batch of 10 holds one class
    model = mlp(2, [8], 3, rng=np.random.default_rng(0))
    loss_fn = SoftmaxCrossEntropy()
    optimizer = Adam(model.parameters(), lr=0.01)
    assert math.isfinite(train_step(model, loss_fn, optimizer, x[:10], y[:10]))
    assert loss_fn.backward()[:, 1:].max() > 0  # absent classes are pushed down, not skipped
    history = fit(model, loss_fn, optimizer, (x, y), epochs=5, batch_size=10)
    assert history.stop_reason == "completed" and len(history.logs) == 5
    assert all(math.isfinite(log.train_loss) for log in history.logs)


def test_fit_on_all_zero_inputs_learns_the_mean() -> None:
    x, y = np.zeros((20, 3)), np.linspace(-1, 1, 20)[:, None] + 5
    model = mlp(3, [4], 1, rng=np.random.default_rng(0))
    history = fit(model, MeanSquaredError(), Adam(model.parameters(), lr=0.05), (x, y),
                  epochs=300, batch_size=20)  # fmt: skip
    assert history.stop_reason == "completed"
    np.testing.assert_allclose(model.forward(x), 5.0, atol=1e-3)
    assert abs(history.logs[-1].train_metric) < 1e-3  # the mean's R² is 0


@pytest.mark.parametrize("scale", [1e150, 1e-300])
def test_fit_on_huge_and_tiny_unstandardised_inputs(scale: float) -> None:
    x, y = regression_data()
    model = mlp(2, [4], 1, rng=np.random.default_rng(0))
    optimizer = SGD(model.parameters(), lr=0.01, momentum=0.0)
    history = fit(model, MeanSquaredError(), optimizer, (x * scale, y), epochs=5, batch_size=8)
    assert all(np.isfinite(p.data).all() for p in model.parameters())
    if scale > 1:  # the first step's update is ~1e298: the loss overflows, divergence handling
        assert history.stop_reason == "diverged"
        assert "training diverged in epoch 1" in history.message
        assert "kept the weights from the start of epoch 1" in history.message
    else:  # the inputs are zero to working precision: the network fits the targets' mean
        assert history.stop_reason == "completed" and len(history.logs) == 5
        assert all(math.isfinite(log.train_loss) for log in history.logs)


@pytest.mark.parametrize("on_divergence", ["stop", "rollback"])
def test_diverging_learning_rate_keeps_finite_weights(on_divergence: str) -> None:
    x, y = regression_data()
    model = mlp(2, [8], 1, rng=np.random.default_rng(0))
    optimizer = SGD(model.parameters(), lr=1e6, momentum=0.0)
    options = FitOptions(on_divergence=on_divergence, max_rollbacks=3)  # type: ignore[arg-type]
    history = fit(model, MeanSquaredError(), optimizer, (x, y), epochs=10, batch_size=8,
                  options=options)  # fmt: skip
    assert history.stop_reason == "diverged"
    assert history.message.startswith("training diverged in epoch ")
    assert "try a smaller learning rate" in history.message
    assert all(np.isfinite(p.data).all() for p in model.parameters())
    if on_divergence == "rollback":  # three halvings of 1e6 do not save it
        assert optimizer.lr == pytest.approx(1e6 / 8)


def test_standardizer_of_huge_columns() -> None:
    x = regression_data()[0] * 1e150
    scaled = Standardizer.fit(x).transform(x)
    np.testing.assert_allclose(scaled.std(axis=0), 1.0, rtol=1e-12)
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-12)


def test_standardizer_of_tiny_columns() -> None:
    x = regression_data()[0] * 1e-300
    scaled = Standardizer.fit(x).transform(x)
    np.testing.assert_allclose(scaled.std(axis=0), 1.0, rtol=1e-6)


# --- numerical edges through the command line -----------------------------------------------


def test_cli_huge_inputs_train_as_the_unscaled_ones(tmp_path: Path) -> None:
    x, y = regression_data()
    logs: list[list[dict[str, Any]]] = []
    for name, scale in (("plain", 1.0), ("huge", 1e150)):
        data = write_npz(tmp_path / f"{name}.npz", x * scale, y)
        log = tmp_path / f"{name}.jsonl"
        assert run(train_argv(data, tmp_path / f"{name}.st", "--log", log)) == (0, "", "")
        logs.append([json.loads(line) for line in log.read_text().splitlines()])
    assert len(logs[0]) == len(logs[1]) == 20
    for plain, huge in zip(*logs, strict=True):
        assert huge["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-9)
    code, out, _ = run(["evaluate", tmp_path / "huge.st", "--data", tmp_path / "huge.npz",
                        "--json"])  # fmt: skip
    assert code == 0 and math.isfinite(json.loads(out)["r2"])


def test_cli_tiny_inputs_train(tmp_path: Path) -> None:
    x, y = regression_data()
    data = write_npz(tmp_path / "tiny.npz", x * 1e-300, y)
    assert run(train_argv(data, tmp_path / "tiny.st"))[0] == 0


def test_cli_all_zero_inputs_and_constant_targets(tmp_path: Path) -> None:
    x, y = regression_data()
    data = write_npz(tmp_path / "flat.npz", np.zeros_like(x), np.full_like(y, 3.0))
    model = tmp_path / "flat.st"
    assert run(train_argv(data, model)) == (0, "", "")
    _, info = load_model(model)
    assert info["x_scaler"] == {"mean": [0.0, 0.0], "scale": [1.0, 1.0]}
    assert info["y_scaler"] == {"mean": [3.0], "scale": [1.0]}
    code, out, err = run(["evaluate", model, "--data", data, "--json"])
    scores = json.loads(out)
    assert (code, err) == (0, "")
    assert scores["r2"] in (0.0, 1.0)  # defined for a constant target: exact or not
    assert scores["n"] == 40 and math.isfinite(scores["mse"])


def test_cli_single_row_data_set(tmp_path: Path) -> None:
    x, y = regression_data(1)
    data = write_npz(tmp_path / "one.npz", x, y)
    model = tmp_path / "one.st"
    argv = train_argv(data, model, "--validation-fraction", 0, "--batch-size", 1)
    assert run(argv) == (0, "", "")
    code, out, _ = run(["evaluate", model, "--data", data, "--json"])
    scores = json.loads(out)
    assert code == 0 and scores["n"] == 1 and scores["r2"] in (0.0, 1.0)


def test_cli_single_row_needs_validation_fraction_zero(tmp_path: Path) -> None:
    x, y = regression_data(1)
    data = write_npz(tmp_path / "one.npz", x, y)
    code, out, err = run(["train", "--data", data, "--epochs", 2, "--quiet"])
    assert (code, out) == (2, "")
    assert err.startswith("handprop: error: ") and err.count("\n") == 1


def test_cli_single_class(tmp_path: Path) -> None:
    x, _ = regression_data()
    data = write_npz(tmp_path / "one_class.npz", x, np.zeros(40, np.int64))
    model = tmp_path / "one_class.st"
    assert run(train_argv(data, model, "--task", "classification")) == (0, "", "")
    assert load_model(model)[1]["classes"] == [0]
    code, out, _ = run(["evaluate", model, "--data", data, "--json"])
    scores = json.loads(out)
    assert code == 0 and scores["accuracy"] == 1.0 and scores["loss"] == 0.0


def test_cli_evaluate_with_an_unseen_label_is_exit_2(tmp_path: Path) -> None:
    x, _ = regression_data()
    data = write_npz(tmp_path / "three.npz", x, np.arange(40) % 3)
    model = tmp_path / "three.st"
    assert run(train_argv(data, model, "--task", "classification")) == (0, "", "")
    unseen = write_npz(tmp_path / "seven.npz", x[:5], np.array([0, 1, 2, 7, 1]))
    code, out, err = run(["evaluate", model, "--data", unseen])
    assert (code, out) == (2, "")
    assert err == (
        f"handprop: error: the data has labels the model never saw: [7]; {model} knows [0, 1, 2]\n"
    )


@pytest.mark.parametrize("loss", ["mse", "sse"])
def test_cli_diverging_learning_rate_exits_1(tmp_path: Path, loss: str) -> None:
    x, y = regression_data()
    data = write_npz(tmp_path / "data.npz", x, y)
    model = tmp_path / "model.st"
    argv = train_argv(data, model, "--optimizer", "sgd", "--lr", 1e6, "--loss", loss)
    code, out, err = run(argv)
    assert (code, out) == (1, "")
    assert err.startswith("handprop: training diverged in epoch ") and err.count("\n") == 1
    assert "try a smaller learning rate, e.g. 100000" in err
    assert err.endswith(f"the last finite ones; they are saved in {model}.diverged, and {model} "
                        "was left as it was\n")  # fmt: skip
    assert not model.exists()  # --out holds only a model whose training succeeded
    saved, _ = load_model(Path(f"{model}.diverged"))  # the last finite weights, beside it
    assert all(np.isfinite(p.data).all() for p in saved.parameters())
