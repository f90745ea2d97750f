"""Reproducibility: what is bit for bit, and by how much the rest differs.

Bit-identical, on one machine with one BLAS thread count: two runs with the same
seed (``fit``, and ``handprop train`` down to the file's bytes), and a run
interrupted after any epoch and resumed from its checkpoint, in process and
through the CLI, for every optimizer, schedule, clipping and early stopping.

Within bounds set from measurements (numpy 2.4, its OpenBLAS 0.3.31, 2 threads):
- BLAS threads, ``threadpool_limits(1)`` against the default: the warmup's 500
  losses differ from step 2 on, by at most 3.7e-11 relative (weights 1.7e-11);
  a digits fit at batch 1024, predictions by 2.2e-16. Bound: 1e-9. OpenBLAS
  splits large products among threads in ways that change the sums' order.
- float32 against float64: the warmup's losses agree to 4.2e-4 relative over the
  first 300 steps (bound 2e-3); then float32 cannot follow a loss that falls to
  6.9e-5 (it ends at 2.4e-4; bound: both below 1e-2), and its predictions end
  1.3e-3 from float64's (bound 1e-2), its weights 4.5e-6 of their largest (bound
  5e-5). A digits fit: losses 1.3e-7, predictions 3.4e-7 relative (bound 1e-5).
"""

import copy
import io
import shutil
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import handprop.cli.training as train_command
from handprop.checkpoint import build_optimizer, load_checkpoint, load_model, save_checkpoint
from handprop.cli import main
from handprop.data import Standardizer, load_dataset
from handprop.layers import Sequential, mlp
from handprop.losses import MeanSquaredError, SoftmaxCrossEntropy
from handprop.optim import SGD, Adam, Optimizer
from handprop.schedules import CosineSchedule, StepSchedule
from handprop.training import Callback, EpochLog, FitOptions, History, TrainingState, fit
from handprop.warmup import WarmupConfig, WarmupRun, run_warmup

EPOCHS = 6
THREADS_BOUND = 1e-9
FLOAT32_BOUND = 1e-5


def run_cli(*argv: object) -> None:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in argv])
    assert (code, out.getvalue(), err.getvalue()) == (0, "", "")


def weights(model: Sequential) -> list[np.ndarray]:
    return [p.data.copy() for p in model.parameters()]


def assert_identical(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


# ---- a small problem, and the training set-ups resumed --------------------------------------


def problem() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((64, 3))
    y = np.sin(x @ [[1.0], [-2.0], [0.5]]) + 0.3 * rng.standard_normal((64, 1))
    return (x[:48], y[:48]), (x[48:], y[48:])


@dataclass(frozen=True)
class Setup:
    optimizer: Callable[[Sequential], Optimizer]
    options: FitOptions
    validation: bool = False


SETUPS = {
    "sgd": Setup(lambda m: SGD(m.parameters(), lr=0.05), FitOptions()),
    "momentum": Setup(
        lambda m: SGD(m.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-3), FitOptions()
    ),
    "adam": Setup(lambda m: Adam(m.parameters(), lr=0.01), FitOptions()),
    "adam+step schedule+clipping": Setup(
        lambda m: Adam(m.parameters(), lr=0.02),
        FitOptions(schedule=StepSchedule(2, 0.5), clip_norm=0.5),
    ),
    "momentum+cosine schedule": Setup(
        lambda m: SGD(m.parameters(), lr=0.05, momentum=0.5), FitOptions(schedule=CosineSchedule(6))
    ),
    "adam+early stopping": Setup(
        lambda m: Adam(m.parameters(), lr=0.3), FitOptions(patience=1), validation=True
    ),
}


class Interrupted(Exception):
    pass


class Interrupt(Callback):
    """At the end of epoch ``epoch``: save a checkpoint (as the CLI's does), then stop."""

    def __init__(self, epoch: int, path: Path, model: Sequential, optimizer: Optimizer,
                 rng: np.random.Generator) -> None:  # fmt: skip
        self.epoch, self.path, self.model, self.optimizer, self.rng = (
            epoch, path, model, optimizer, rng,
        )  # fmt: skip
        self.state: TrainingState | None = None

    def on_epoch_end(self, log: EpochLog, state: TrainingState) -> None:
        if log.epoch == self.epoch:
            metadata = {"rng": self.rng.bit_generator.state}
            save_checkpoint(self.path, self.model, self.optimizer, metadata=metadata)
            self.state = copy.deepcopy(state)
            raise Interrupted


def train(
    setup: Setup,
    interrupt: int | None = None,
    path: Path | None = None,
    seed: int = 0,
) -> tuple[list[np.ndarray], History]:
    """Train ``setup`` for EPOCHS epochs, or interrupt it after ``interrupt`` and resume."""
    data, validation = problem()
    model = mlp(3, [8], 1, rng=np.random.default_rng([seed, 1]))
    optimizer, rng = setup.optimizer(model), np.random.default_rng([seed, 2])
    common: dict[str, Any] = {
        "epochs": EPOCHS, "batch_size": 8, "options": setup.options,
        "validation": validation if setup.validation else None,
    }  # fmt: skip
    if interrupt is None:
        history = fit(model, MeanSquaredError(), optimizer, data, rng=rng, **common)
        return weights(model), history
    assert path is not None
    stop = Interrupt(interrupt, path, model, optimizer, rng)
    with pytest.raises(Interrupted):
        fit(model, MeanSquaredError(), optimizer, data, rng=rng, callbacks=[stop], **common)
    del model, optimizer, rng  # model, optimizer and generator from the file, as a new process
    model, info, optimizer_state = load_checkpoint(path)
    rng = np.random.default_rng()
    rng.bit_generator.state = info["rng"]
    optimizer = build_optimizer(model.parameters(), optimizer_state)
    history = fit(model, MeanSquaredError(), optimizer, data, rng=rng, state=stop.state, **common)
    return weights(model), history


def test_the_setups_are_what_they_claim() -> None:
    histories = {name: train(setup)[1] for name, setup in SETUPS.items()}
    assert [log.lr for log in histories["adam+step schedule+clipping"].logs] == [
        0.02, 0.02, 0.01, 0.01, 0.005, 0.005
    ]  # fmt: skip
    stopped = histories["adam+early stopping"]  # at epoch 5: resuming there must stay stopped
    assert (stopped.stop_reason, stopped.best_epoch, len(stopped.logs)) == ("early stopping", 4, 5)
    assert all(h.stop_reason == "completed" for n, h in histories.items() if "early" not in n)


# ---- (a) the same seed ----------------------------------------------------------------------


@pytest.mark.parametrize("name", SETUPS)
def test_fit_twice_with_one_seed_is_bit_identical(name: str) -> None:
    first, history = train(SETUPS[name])
    second, again = train(SETUPS[name])
    assert_identical(first, second)
    assert history == again
    other, _ = train(SETUPS[name], seed=1)
    assert not np.array_equal(other[0], first[0])  # the seed is what decides


def write_data(folder: Path) -> Path:
    (x, y), (vx, vy) = problem()
    path = folder / "data.npz"
    np.savez(path, x=np.concatenate([x, vx]), y=np.concatenate([y, vy]))
    return path


def test_cli_train_twice_with_one_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    data, model, log = write_data(tmp_path), tmp_path / "model.st", tmp_path / "log.jsonl"
    argv = ["train", "--data", data, "--out", model, "--log", log, "--epochs", EPOCHS,
            "--hidden", 8, "--batch-size", 8, "--quiet"]  # fmt: skip
    outputs = []
    for seed in (3, 3, 4):
        run_cli(*argv, "--seed", seed)
        outputs.append((model.read_bytes(), log.read_bytes()))
    assert outputs[0] == outputs[1]
    assert outputs[2][0] != outputs[0][0] and outputs[2][1] != outputs[0][1]


# ---- (b) interrupted and resumed at any epoch -----------------------------------------------


@pytest.mark.parametrize("epoch", range(1, EPOCHS))
@pytest.mark.parametrize("name", SETUPS)
def test_fit_resumed_after_any_epoch_is_bit_identical(
    tmp_path: Path, name: str, epoch: int
) -> None:
    straight, history = train(SETUPS[name])
    resumed, resumed_history = train(SETUPS[name], epoch, tmp_path / "checkpoint.st")
    assert_identical(resumed, straight)
    assert resumed_history == history


CLI_SETUPS = {
    "sgd": ["--optimizer", "sgd", "--momentum", 0, "--lr", 0.05],
    "momentum": ["--optimizer", "sgd", "--momentum", 0.9, "--lr", 0.02, "--weight-decay", 1e-3],
    "adam": ["--optimizer", "adam", "--lr", 0.01],
    "adam+step schedule+clipping": [
        "--lr", 0.02, "--schedule", "step", "--step-size", 2, "--gamma", 0.5, "--clip-norm", 0.5,
    ],
    "momentum+cosine schedule": ["--optimizer", "sgd", "--momentum", 0.5, "--schedule", "cosine"],
    "adam+early stopping": ["--lr", 0.2, "--patience", 2, "--validation-fraction", 0.25],
}  # fmt: skip


@pytest.fixture
def snapshots(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[int, Path]:
    """The checkpoint (and its .best file) as each epoch's save left it: what a kill leaves."""
    saved: dict[int, Path] = {}
    real_save = train_command.save_checkpoint

    def save_and_copy(path: Path, *args: Any, metadata: dict[str, Any], **kwargs: Any) -> None:
        real_save(path, *args, metadata=metadata, **kwargs)
        epoch = metadata["state"]["epoch"]
        copy_path = tmp_path / f"epoch{epoch}.st"
        shutil.copy(path, copy_path)
        if Path(f"{path}.best").exists():
            shutil.copy(f"{path}.best", f"{copy_path}.best")
        saved[epoch] = copy_path

    monkeypatch.setattr(train_command, "save_checkpoint", save_and_copy)
    return saved


@pytest.mark.parametrize("name", CLI_SETUPS)
def test_cli_resumed_after_any_epoch_is_bit_identical(
    tmp_path: Path, snapshots: dict[int, Path], name: str
) -> None:
    data = write_data(tmp_path)
    run_cli("train", "--data", data, "--out", tmp_path / "straight.st", "--log",
            tmp_path / "straight.jsonl", "--checkpoint", tmp_path / "run.st",
            "--checkpoint-every", 1, "--epochs", EPOCHS, "--hidden", 8, "--batch-size", 8,
            "--quiet", *CLI_SETUPS[name])  # fmt: skip
    straight, _ = load_model(tmp_path / "straight.st")
    log = (tmp_path / "straight.jsonl").read_text()
    stopped = len(log.splitlines())  # early stopping may end the run before EPOCHS
    assert sorted(snapshots) == list(range(1, stopped + 1))
    assert ("early" in name) == (stopped < EPOCHS)
    for epoch in range(1, min(stopped + 1, EPOCHS)):  # with the epoch early stopping ended
        out, resumed_log = tmp_path / f"resumed{epoch}.st", tmp_path / f"resumed{epoch}.jsonl"
        run_cli("train", "--resume", snapshots[epoch], "--epochs", EPOCHS, "--out", out,
                "--log", resumed_log, "--checkpoint", tmp_path / "resumed.st")  # fmt: skip
        assert_identical(weights(load_model(out)[0]), weights(straight))
        assert resumed_log.read_text() == log, f"resumed after epoch {epoch}"


# ---- (c) BLAS threads, (d) float32 against float64 ------------------------------------------

needs_openblas = pytest.mark.skipif(
    not any(pool["internal_api"] == "openblas" for pool in threadpool_info()),
    reason="the bounds were measured with OpenBLAS; another BLAS may round differently",
)


@pytest.fixture(scope="module")
def warmup() -> WarmupRun:
    return run_warmup(WarmupConfig())


def losses_and_weights(run: WarmupRun) -> tuple[np.ndarray, list[np.ndarray]]:
    return np.array(run.losses), weights(run.model)


@needs_openblas
def test_one_blas_thread_changes_the_warmup_by_less_than_1e_9(warmup: WarmupRun) -> None:
    with threadpool_limits(1):
        one_thread = run_warmup(WarmupConfig())
    losses, final = losses_and_weights(warmup)
    single_losses, single_final = losses_and_weights(one_thread)
    np.testing.assert_allclose(single_losses, losses, rtol=THREADS_BOUND, atol=0)
    for single, default in zip(single_final, final, strict=True):
        np.testing.assert_allclose(single, default, rtol=THREADS_BOUND, atol=0)


def digits_fit(dtype: str = "float64") -> tuple[np.ndarray, History]:
    data = load_dataset("digits", task="classification")
    x = Standardizer.fit(data.x).transform(data.x).astype(dtype)
    model = mlp(64, [128], 10, rng=np.random.default_rng(0), dtype=dtype)
    optimizer = Adam(model.parameters(), lr=1e-3)
    history = fit(model, SoftmaxCrossEntropy(), optimizer, (x, data.y), epochs=5,
                  batch_size=1024, rng=np.random.default_rng(1))  # fmt: skip
    return model(x).astype(np.float64), history


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, History]:
    return digits_fit()


@needs_openblas
def test_one_blas_thread_changes_a_digits_fit_by_less_than_1e_9(
    digits: tuple[np.ndarray, History],
) -> None:
    # Batches of 1024 make products large enough for OpenBLAS to use its threads.
    predictions, history = digits
    with threadpool_limits(1):
        single_predictions, single_history = digits_fit()
    scale = np.abs(predictions).max()
    np.testing.assert_allclose(single_predictions, predictions, rtol=0, atol=THREADS_BOUND * scale)
    for single, default in zip(single_history.logs, history.logs, strict=True):
        assert single.train_loss == pytest.approx(default.train_loss, rel=THREADS_BOUND)


@needs_openblas
def test_float32_warmup_follows_float64(warmup: WarmupRun) -> None:
    run32 = run_warmup(WarmupConfig(dtype="float32"))
    losses, final = losses_and_weights(warmup)
    losses32, final32 = losses_and_weights(run32)
    np.testing.assert_allclose(losses32[:300], losses[:300], rtol=2e-3)
    assert losses32[-1] < 1e-2 and losses[-1] < 1e-2  # both converged from 2.6e7
    predictions, predictions32 = warmup.model(warmup.x), run32.model(run32.x)
    np.testing.assert_allclose(predictions32, predictions, rtol=0, atol=1e-2)
    for w32, w64 in zip(final32, final, strict=True):
        np.testing.assert_allclose(w32, w64, rtol=0, atol=5e-5 * np.abs(w64).max())


@needs_openblas
def test_float32_digits_fit_follows_float64(digits: tuple[np.ndarray, History]) -> None:
    predictions, history = digits
    predictions32, history32 = digits_fit("float32")
    scale = np.abs(predictions).max()
    np.testing.assert_allclose(predictions32, predictions, rtol=0, atol=FLOAT32_BOUND * scale)
    for log32, log in zip(history32.logs, history.logs, strict=True):
        assert log32.train_loss == pytest.approx(log.train_loss, rel=FLOAT32_BOUND)
