"""Review of "fit's training scores from the steps": what the steps' scores must not lose."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import handprop as hp
from handprop.sample_weight import WeightedTargets
from handprop.sklearn import HandpropRegressor
from handprop.training import FitOptions, fit
from handprop.training.capture import CapturedStep
from tests.test_capture import counted_calls
from tests.test_distributed import launch
from tests.test_train_scores import Rows


def exploding() -> tuple[hp.Sequential, hp.SGD, tuple[np.ndarray, np.ndarray]]:
    """y_pred = w * x with w = 1 on 2 rows x = 1, y = 0; SumSquaredError, lr 1e100, batches of 1:
    step 1 (loss 1) moves w to -2e100, step 2 (loss 4e200) to 4e200, a finite weight whose
    loss, (4e200)**2, overflows."""
    model = hp.Sequential(hp.Linear(1, 1, bias=False, rng=0))
    model.parameters()[0].data[...] = 1.0
    return model, hp.SGD(model.parameters(), lr=1e100), (np.ones((2, 1)), np.zeros((2, 1)))


@pytest.mark.parametrize("train_scores", ["steps", "full"])
@pytest.mark.parametrize("on_divergence", ["stop", "rollback"])
@pytest.mark.parametrize("validation", [False, True])
def test_finite_last_weights_whose_loss_overflows_are_divergence(
    train_scores: str, on_divergence: str, validation: bool
) -> None:
    """Every step's loss is finite and so is every weight, but the epoch's last update made
    weights whose outputs overflow: "full" saw it in its pass; the steps' scores never see
    the last update, and fit said "completed" with useless weights."""
    model, optimizer, data = exploding()
    options = FitOptions(train_scores=train_scores, on_divergence=on_divergence)  # type: ignore[arg-type]
    with np.errstate(over="ignore"):
        history = fit(model, hp.SumSquaredError(), optimizer, data, epochs=1, batch_size=1,
                      options=options, validation=data if validation else None)  # fmt: skip
    assert history.stop_reason == "diverged"
    assert "became inf" in history.message
    assert history.logs == []
    assert model.parameters()[0].data.item() == 1.0  # the epoch's start, the last good weights


def test_a_regressor_whose_last_step_overflows_is_a_value_error() -> None:
    """scikit-learn's contract: fit raises rather than return a model that predicts inf."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3))
    y = x @ np.array([1.0, -2.0, 0.5])
    model = HandpropRegressor(
        hidden_layer_sizes=(4,), optimizer="sgd", momentum=0.0, learning_rate=0.2,
        loss="sum_squared_error", max_epochs=1, batch_size=16, random_state=0, dtype="float32",
    )  # fmt: skip
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
        model.fit(x, y)


@pytest.mark.parametrize("ranks", [2, 3])
def test_over_ranks_every_rank_checks_the_last_weights_alike(tmp_path: Path, ranks: int) -> None:
    """The check is collective (a rank of 3 holds no row of 2): every rank stops alike."""
    out = tmp_path / "ranks.npz"
    done = launch(ranks, "-m", "tests.review_scores_ranks", out, timeout=60)
    assert done.returncode == 0, done.stderr
    with np.load(out) as saved:
        for name in ("shards=False", "shards=True"):
            assert saved[name].tolist() == [["diverged", "1.0"]] * ranks


@pytest.mark.parametrize("train_scores", ["steps", "full"])
@pytest.mark.parametrize("classification", [True, False])
def test_rows_read_on_demand_keep_their_sample_weights_in_the_scores(
    train_scores: str, classification: bool
) -> None:
    """Rows behind a map were scored part by part, which dropped the WeightedTargets'
    weights (np.asarray): the training scores (both settings) and validation's were the
    unweighted ones, while the steps trained weighted."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((45, 5))
    y = rng.integers(0, 3, 45) if classification else x @ rng.standard_normal((5, 3))
    targets = WeightedTargets(y, rng.uniform(0, 3, 45))
    logs = []
    for rows in (x, Rows(x)):
        model = hp.mlp(5, [7], 3, rng=0)
        loss_fn = hp.SoftmaxCrossEntropy() if classification else hp.MeanSquaredError()
        options = FitOptions(train_scores=train_scores, capture=False)  # type: ignore[arg-type]
        history = fit(
            model, loss_fn, hp.Adam(model.parameters(), lr=0.01), (rows, targets), epochs=2,
            batch_size=8, rng=np.random.default_rng(0), validation=(rows, targets), options=options,
        )  # fmt: skip
        logs.append(
            [(g.train_loss, g.train_metric, g.val_loss, g.val_metric) for g in history.logs]
        )
    np.testing.assert_allclose(logs[1], logs[0], rtol=1e-12)


@pytest.mark.parametrize("last", [hp.ReLU, hp.Tanh, hp.Identity])
@pytest.mark.parametrize(
    "optimizer",
    [
        lambda p: hp.SGD(p, lr=0.05),  # fused into the backward (fold)
        lambda p: hp.SGD(p, lr=0.05, momentum=0.9),
        lambda p: hp.Adam(p, lr=0.01),
    ],
    ids=["sgd", "momentum", "adam"],
)
@pytest.mark.parametrize("classification", [True, False])
def test_the_tapes_output_buffer_holds_the_predictions_after_a_replay(
    last: type[hp.Module],
    optimizer: Any,
    classification: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """fit reads the tape's y_pred after the whole replay (backward and update included):
    no later call may write it, whatever the model ends in. Captured scores equal eager ones
    bit for bit, and the replays ran."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((45, 5))
    y = rng.integers(0, 3, 45) if classification else np.tanh(x @ rng.standard_normal((5, 3)))
    replays = counted_calls(monkeypatch, CapturedStep, "replay")
    logs = []
    for capture in (True, False):
        model = hp.Sequential(hp.Linear(5, 7, rng=0), hp.ReLU(), hp.Linear(7, 3, rng=1), last())
        loss_fn = hp.SoftmaxCrossEntropy() if classification else hp.MeanSquaredError()
        history = fit(
            model, loss_fn, optimizer(model.parameters()), (x, y), epochs=2, batch_size=8,
            options=FitOptions(capture=capture),
        )  # fmt: skip
        logs.append([(g.train_loss, g.train_metric) for g in history.logs])
    assert len(replays) == 2 * 6  # every batch, the short one too, replayed
    assert logs[0] == logs[1]


def test_a_validation_row_that_makes_its_loss_nan_is_not_divergence() -> None:
    """The last weights are checked on training rows, not validation's: a NaN there (a bad
    row) with sound weights is logged, as before the steps' scores."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 2)), rng.standard_normal((16, 1))
    bad_x = x.copy()
    bad_x[3, 0] = np.nan
    model = hp.Sequential(hp.Linear(2, 1, rng=0))
    with np.errstate(invalid="ignore"):
        history = fit(model, hp.MeanSquaredError(), hp.SGD(model.parameters(), lr=0.01), (x, y),
                      epochs=2, batch_size=4, validation=(bad_x, y))  # fmt: skip
    assert history.stop_reason == "completed"
    assert [np.isnan(log.val_loss) for log in history.logs] == [True, True]
