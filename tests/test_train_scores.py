"""fit's training scores: by default those of the predictions each step made, before its
update (training/scores.py); ``train_scores="full"`` scores the epoch's final weights."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import handprop as hp
from handprop.cli import main
from handprop.cli.config import TrainConfig, saved_config
from handprop.sample_weight import WeightedTargets
from handprop.training import FitOptions, batches, evaluate, fit, train_step
from handprop.training.scores import EpochScores

D_IN, D_OUT, ROWS, BATCH = 5, 3, 45, 8


def network(seed: int = 0) -> hp.Sequential:
    return hp.Sequential(hp.Linear(D_IN, 7, rng=seed), hp.ReLU(), hp.Linear(7, D_OUT, rng=seed + 1))


def data(task: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((ROWS, D_IN))
    if task == "classification":
        return x, rng.integers(0, D_OUT, ROWS)
    return x, x @ rng.standard_normal((D_IN, D_OUT)) + 0.1 * rng.standard_normal((ROWS, D_OUT))


def by_hand(task: str, epochs: int, weights: np.ndarray | None = None) -> list[tuple[float, float]]:
    """Each epoch's (loss, metric) of the predictions made before each update, computed here
    with numpy from a twin trained with ``train_step`` on the batches ``fit`` draws."""
    x, y = data(task)
    model = network()
    loss_fn = hp.SoftmaxCrossEntropy() if task == "classification" else hp.MeanSquaredError()
    optimizer = hp.Adam(model.parameters(), lr=0.01)
    rng, scores = np.random.default_rng(0), []
    w = np.ones(ROWS) if weights is None else weights
    for _ in range(epochs):
        rows, predictions = [], []
        for batch in batches(ROWS, BATCH, rng):
            predictions.append(model.forward(x[batch]).copy())  # before the update
            targets = y[batch] if weights is None else WeightedTargets(y[batch], w[batch])
            train_step(model, loss_fn, optimizer, x[batch], targets)
            rows.append(batch)
        order = np.concatenate(rows)
        p, t, v = np.concatenate(predictions), y[order], w[order]
        if task == "classification":
            shifted = p - p.max(axis=1, keepdims=True)
            nll = np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(ROWS), t]
            right = (p.argmax(axis=1) == t).astype(float)
            scores.append((np.sum(v * nll) / v.sum(), np.sum(v * right) / v.sum()))
        else:
            squares = ((p - t) ** 2).mean(axis=1)
            residual = ((p - t) ** 2).sum(axis=0)
            total = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
            scores.append((np.sum(v * squares) / v.sum(), float(np.mean(1 - residual / total))))
    return scores


def fitted(task: str, epochs: int, options: FitOptions, y: Any = None) -> hp.training.History:
    x, targets = data(task)
    model = network()
    loss_fn = hp.SoftmaxCrossEntropy() if task == "classification" else hp.MeanSquaredError()
    optimizer = hp.Adam(model.parameters(), lr=0.01)
    return fit(
        model, loss_fn, optimizer, (x, targets if y is None else y), epochs=epochs,
        batch_size=BATCH, rng=np.random.default_rng(0), options=options,
    )  # fmt: skip


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("capture", [True, False])
def test_the_scores_are_those_of_the_steps_predictions(task: str, capture: bool) -> None:
    history = fitted(task, 3, FitOptions(capture=capture))
    for log, (loss, metric) in zip(history.logs, by_hand(task, 3), strict=True):
        assert log.train_loss == pytest.approx(loss, rel=1e-12)
        assert log.train_metric == pytest.approx(metric, rel=1e-12)


def test_sample_weights_weigh_the_steps_scores() -> None:
    weights = np.random.default_rng(9).uniform(0, 3, ROWS)
    y = data("classification")[1]
    history = fitted("classification", 2, FitOptions(), WeightedTargets(y, weights))
    for log, (loss, metric) in zip(
        history.logs, by_hand("classification", 2, weights), strict=True
    ):
        assert log.train_loss == pytest.approx(loss, rel=1e-12)
        assert log.train_metric == pytest.approx(metric, rel=1e-12)


def test_full_scores_score_the_final_weights_in_evaluation_mode() -> None:
    x, y = data("classification")
    model = hp.Sequential(
        hp.Linear(D_IN, 7, rng=0), hp.Dropout(0.5, rng=1), hp.Linear(7, D_OUT, rng=2)
    )
    loss_fn = hp.SoftmaxCrossEntropy()
    optimizer = hp.Adam(model.parameters(), lr=0.01)
    options = FitOptions(train_scores="full")
    history = fit(model, loss_fn, optimizer, (x, y), epochs=1, batch_size=BATCH, options=options)
    model.eval()
    assert (history.logs[0].train_loss, history.logs[0].train_metric) == evaluate(
        model, loss_fn, x, y, "accuracy"
    )


def test_the_steps_scores_differ_from_the_full_ones() -> None:
    """The two settings are not the same number by accident (the test above would not see
    "steps" silently scoring the final weights)."""
    steps = fitted("regression", 1, FitOptions()).logs[0]
    full = fitted("regression", 1, FitOptions(train_scores="full")).logs[0]
    assert steps.train_loss > 1.01 * full.train_loss  # the first steps' predictions are worse


class Rows:
    """Rows read on demand, as a memory map is (not an ndarray): fit scores them in parts."""

    def __init__(self, a: np.ndarray) -> None:
        self.a, self.shape, self.dtype = a, a.shape, a.dtype

    def __len__(self) -> int:
        return len(self.a)

    def __getitem__(self, index: Any) -> np.ndarray:
        return np.array(self.a[index])


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_rows_read_on_demand_are_scored_in_parts_alike(task: str) -> None:
    x, y = data(task)
    whole = fitted(task, 2, FitOptions(capture=False))
    model = network()
    loss_fn = hp.SoftmaxCrossEntropy() if task == "classification" else hp.MeanSquaredError()
    optimizer = hp.Adam(model.parameters(), lr=0.01)
    parts = fit(
        model, loss_fn, optimizer, (Rows(x), Rows(y)), epochs=2, batch_size=BATCH,
        rng=np.random.default_rng(0),
    )  # fmt: skip
    for a, b in zip(parts.logs, whole.logs, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-12)
        assert a.train_metric == pytest.approx(b.train_metric, rel=1e-12)


@pytest.mark.parametrize(
    ("metric", "loss_fn"),
    [
        ("accuracy", hp.SoftmaxCrossEntropy()),
        ("accuracy", hp.SoftmaxCrossEntropy(weight=[1.0, 2.0, 0.5])),  # the loss recomputed
        ("r2", hp.MeanSquaredError()),
    ],
)
def test_parts_of_any_size_give_the_whole_scores(metric: str, loss_fn: hp.Loss) -> None:
    rng = np.random.default_rng(4)
    x, y = data("classification" if metric == "accuracy" else "regression")
    predictions = rng.standard_normal((ROWS, D_OUT))
    results, weighted = [], 0.0  # the batches' losses (made up) times their rows
    for whole, chunk in [(True, ROWS), (False, 5), (False, 8), (False, ROWS)]:
        scores = EpochScores(loss_fn, metric, (x, y), whole=whole, chunk_rows=chunk)
        scores.begin()
        for batch in batches(ROWS, BATCH, np.random.default_rng(1)):
            scores.add_predictions(batch, predictions[batch])
            batch_loss = float(np.sum(predictions[batch]))
            scores.add_loss(len(batch), batch_loss)
            weighted += batch_loss * len(batch) if whole else 0.0
        results.append(scores.result())
    for result in results[1:]:
        assert result == pytest.approx(results[0], rel=1e-12)
    if getattr(loss_fn, "weight", None) is None:  # the steps' losses, weighted by their rows
        assert results[0][0] == pytest.approx(weighted / ROWS, rel=1e-12)
    else:  # the loss over the predictions
        assert results[0][0] == pytest.approx(loss_fn.forward(predictions, y), rel=1e-12)


def test_a_bad_train_scores_is_refused() -> None:
    x, y = data("regression")
    model = network()
    with pytest.raises(ValueError, match="train_scores must be 'steps' or 'full', received 'al"):
        fit(
            model, hp.MeanSquaredError(), hp.SGD(model.parameters(), lr=0.1), (x, y), epochs=1,
            options=FitOptions(train_scores="all"),  # type: ignore[arg-type]
        )  # fmt: skip


def test_the_command_line_reports_either_scores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = {}
    for setting in ("steps", "full"):
        log = tmp_path / f"{setting}.jsonl"
        argv = ["train", "--data", "iris", "--epochs", "2", "--log", str(log), "--quiet"]
        assert main([*argv, "--train-scores", setting]) == 0
        records[setting] = [json.loads(line) for line in log.read_text().splitlines()]
    steps, full = records["steps"], records["full"]
    assert [r["val_loss"] for r in steps] == [r["val_loss"] for r in full]  # the same training
    assert all(s["train_loss"] != f["train_loss"] for s, f in zip(steps, full, strict=True))
    assert main(["train", "--data", "iris", "--train-scores", "all"]) == 2
    assert "--train-scores: invalid choice: 'all'" in capsys.readouterr().err


def test_a_checkpoint_from_before_the_setting_keeps_scoring_as_it_did() -> None:
    saved = TrainConfig(data="iris", task="classification").to_json()
    assert saved_config("c.safetensors", saved).train_scores == "steps"
    del saved["train_scores"]
    assert saved_config("c.safetensors", saved).train_scores == "full"
    saved["train_scores"] = "some"
    with pytest.raises(ValueError, match="saved setting train_scores must be steps or full"):
        saved_config("c.safetensors", saved)


def test_a_resumed_run_may_change_how_it_scores_the_training_set(tmp_path: Path) -> None:
    checkpoint = tmp_path / "c.safetensors"
    argv = ["train", "--data", "iris", "--quiet", "--checkpoint", str(checkpoint)]
    assert main([*argv, "--checkpoint-every", "1", "--epochs", "1", "--train-scores", "full"]) == 0
    logs = {}
    for setting in ("full", "steps"):
        log = tmp_path / f"{setting}.jsonl"
        resumed = ["--resume", str(checkpoint), "--epochs", "2", "--log", str(log)]
        assert main(["train", *resumed, "--train-scores", setting, "--quiet"]) == 0
        logs[setting] = [json.loads(line) for line in log.read_text().splitlines()]
    full, steps = logs["full"], logs["steps"]
    assert full[0] == steps[0]  # epoch 1, from the checkpoint
    assert full[1]["val_loss"] == steps[1]["val_loss"]  # the same training
    assert full[1]["train_loss"] != steps[1]["train_loss"]  # scored as asked
