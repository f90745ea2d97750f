"""fit: the loop, metrics, early stopping, schedules, clipping, divergence, resumption."""

import numpy as np
import pytest

import handprop as hp
from handprop.schedules import CosineSchedule, StepSchedule
from handprop.training import (
    Callback,
    EpochLog,
    FitOptions,
    TrainingState,
    batches,
    evaluate,
    fit,
)


def regression_problem(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((300, 4))
    y = np.stack([2 * x[:, 0] - x[:, 1], np.sin(x[:, 2])], axis=1)
    return x, y


def network(seed: int = 1, d_in: int = 4, d_out: int = 2) -> hp.Sequential:
    rng = np.random.default_rng(seed)
    return hp.Sequential(hp.Linear(d_in, 32, rng=rng), hp.Tanh(), hp.Linear(32, d_out, rng=rng))


def test_fit_learns_a_regression_and_logs_every_epoch() -> None:
    x, y = regression_problem()
    model = network()
    history = fit(
        model,
        hp.MeanSquaredError(),
        hp.Adam(model.parameters(), lr=1e-2),
        (x[:240], y[:240]),
        validation=(x[240:], y[240:]),
        epochs=40,
        rng=np.random.default_rng(2),
    )
    assert history.metric == "r2"
    assert history.stop_reason == "completed"
    assert [log.epoch for log in history.logs] == list(range(1, 41))
    assert history.logs[-1].val_metric is not None
    assert history.logs[-1].val_metric > 0.95
    assert history.logs[-1].train_loss < history.logs[0].train_loss / 10


def test_classification_reports_accuracy() -> None:
    x, _ = regression_problem()
    labels = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    model = network(d_out=3)
    history = fit(
        model,
        hp.SoftmaxCrossEntropy(),
        hp.Adam(model.parameters(), lr=1e-2),
        (x, labels),
        epochs=30,
        rng=np.random.default_rng(0),
    )
    assert history.metric == "accuracy"
    assert history.logs[-1].train_metric > 0.95


def test_same_seed_same_weights() -> None:
    def train() -> list[np.ndarray]:
        x, y = regression_problem()
        model = network()
        sgd = hp.SGD(model.parameters(), lr=0.05, momentum=0.9)
        fit(model, hp.MeanSquaredError(), sgd, (x, y), epochs=3, rng=np.random.default_rng(5))
        return [p.data for p in model.parameters()]

    for a, b in zip(train(), train(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda params: hp.SGD(params, lr=0.05),
        lambda params: hp.SGD(params, lr=0.05, momentum=0.9, nesterov=True),
        lambda params: hp.Adam(params, lr=1e-2),
    ],
)
def test_stopping_and_continuing_with_the_state_is_bit_identical(make_optimizer) -> None:  # type: ignore[no-untyped-def]
    x, y = regression_problem()
    options = FitOptions(schedule=CosineSchedule(10))

    straight = network()
    fit(
        straight,
        hp.MeanSquaredError(),
        make_optimizer(straight.parameters()),
        (x, y),
        epochs=10,
        rng=np.random.default_rng(3),
        options=options,
    )

    resumed, rng, state = network(), np.random.default_rng(3), TrainingState()
    optimizer = make_optimizer(resumed.parameters())
    fit(
        resumed,
        hp.MeanSquaredError(),
        optimizer,
        (x, y),
        epochs=5,
        rng=rng,
        options=options,
        state=state,
    )
    history = fit(
        resumed,
        hp.MeanSquaredError(),
        optimizer,
        (x, y),
        epochs=10,
        rng=rng,
        options=options,
        state=state,
    )

    assert [log.epoch for log in history.logs] == list(range(1, 11))
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data)


def test_early_stopping_restores_the_best_weights() -> None:
    x, y = regression_problem()
    y_noisy = y + np.random.default_rng(9).standard_normal(y.shape)  # easy to overfit
    model = hp.Sequential(
        hp.Linear(4, 256, rng=np.random.default_rng(1)),
        hp.ReLU(),
        hp.Linear(256, 2, rng=np.random.default_rng(2)),
    )
    loss_fn = hp.MeanSquaredError()
    validation = (x[:100], y_noisy[:100])
    history = fit(
        model,
        loss_fn,
        hp.Adam(model.parameters(), lr=3e-2),
        (x[100:160], y_noisy[100:160]),
        validation=validation,
        epochs=200,
        batch_size=8,
        rng=np.random.default_rng(0),
        options=FitOptions(patience=5),
    )
    assert history.stop_reason == "early stopping"
    assert history.best_epoch is not None
    assert len(history.logs) == history.best_epoch + 5
    best = history.logs[history.best_epoch - 1]
    assert best.val_metric == max(log.val_metric or -np.inf for log in history.logs)
    assert evaluate(model, loss_fn, *validation, "r2") == (best.val_loss, best.val_metric)


def relu_network() -> hp.Sequential:
    # Unbounded activations: a too-large rate overflows to inf within a few steps.
    rng = np.random.default_rng(1)
    return hp.Sequential(hp.Linear(4, 32, rng=rng), hp.ReLU(), hp.Linear(32, 2, rng=rng))


def test_divergence_stops_with_the_last_finite_weights_and_explains() -> None:
    x, y = regression_problem()
    model = relu_network()
    start = [p.data.copy() for p in model.parameters()]
    history = fit(
        model,
        hp.SumSquaredError(),
        hp.SGD(model.parameters(), lr=1.0),
        (x, y),
        epochs=3,
        rng=np.random.default_rng(0),
    )
    assert history.stop_reason == "diverged"
    assert history.logs == []
    for parameter, before in zip(model.parameters(), start, strict=True):
        np.testing.assert_array_equal(parameter.data, before)
    for words in (
        "epoch 1",
        "step",
        "learning rate 1;",
        "SumSquaredError sums over the batch",
        "batch size (32)",
        "a mean loss (MeanSquaredError) does not",
    ):
        assert words in history.message


def test_rollback_halves_the_rate_and_goes_on() -> None:
    x, y = regression_problem()
    model = relu_network()
    # lr 0.05 on a sum over 32 rows diverges; halved three times (0.00625) it trains.
    history = fit(
        model,
        hp.SumSquaredError(),
        hp.SGD(model.parameters(), lr=0.05),
        (x, y),
        epochs=4,
        rng=np.random.default_rng(0),
        options=FitOptions(on_divergence="rollback"),
    )
    assert history.stop_reason == "completed"
    assert [log.lr for log in history.logs] == [0.00625] * 4
    assert history.logs[-1].train_metric > 0.5


def test_schedules_by_hand() -> None:
    assert [StepSchedule(2, 0.5).factor(e) for e in range(5)] == [1, 1, 0.5, 0.5, 0.25]
    cosine = CosineSchedule(4)
    assert cosine.factor(0) == 1.0
    assert cosine.factor(2) == pytest.approx(0.5)
    assert cosine.factor(4) == pytest.approx(0.0)
    assert cosine.factor(9) == pytest.approx(0.0)


def test_the_schedule_sets_each_epochs_rate() -> None:
    x, y = regression_problem()
    model = network()
    history = fit(
        model,
        hp.MeanSquaredError(),
        hp.SGD(model.parameters(), lr=0.1),
        (x, y),
        epochs=5,
        rng=np.random.default_rng(0),
        options=FitOptions(schedule=StepSchedule(2, 0.5)),
    )
    assert [log.lr for log in history.logs] == [0.1, 0.1, 0.05, 0.05, 0.025]


def test_gradient_clipping_bounds_the_update() -> None:
    x, y = regression_problem()
    model = network()
    before = np.concatenate([p.data.ravel() for p in model.parameters()])
    fit(
        model,
        hp.SumSquaredError(),
        hp.SGD(model.parameters(), lr=0.5),
        (x, y),
        epochs=1,
        batch_size=300,
        rng=np.random.default_rng(0),
        options=FitOptions(clip_norm=0.01),
    )
    after = np.concatenate([p.data.ravel() for p in model.parameters()])
    # One step of plain SGD moves the weights by lr * (clipped gradient): norm 0.5 * 0.01.
    assert np.linalg.norm(after - before) == pytest.approx(0.005, rel=1e-9)


def test_callbacks_observe_every_step_and_epoch() -> None:
    class Recorder(Callback):
        def __init__(self) -> None:
            self.steps: list[int] = []
            self.epochs: list[int] = []

        def on_step_end(self, step: int, loss: float) -> None:
            self.steps.append(step)

        def on_epoch_end(self, log: EpochLog, state: TrainingState) -> None:
            self.epochs.append(log.epoch)

    x, y = regression_problem()
    model, recorder = network(), Recorder()
    fit(
        model,
        hp.MeanSquaredError(),
        hp.SGD(model.parameters(), lr=0.01),
        (x, y),
        epochs=2,
        batch_size=100,
        rng=np.random.default_rng(0),
        callbacks=[recorder],
    )
    assert recorder.steps == [1, 2, 3, 4, 5, 6]
    assert recorder.epochs == [1, 2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": -1}, "epochs >= 0"),
        ({"epochs": 1, "batch_size": 0}, "batch_size >= 1"),
        ({"epochs": 1, "options": FitOptions(patience=3)}, "validation data"),
        ({"epochs": 1, "options": FitOptions(clip_norm=0.0)}, "clip_norm"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    x, y = regression_problem()
    model = network()
    with pytest.raises(ValueError, match=message):
        fit(model, hp.MeanSquaredError(), hp.SGD(model.parameters(), lr=0.1), (x, y), **kwargs)  # type: ignore[arg-type]


# ----- batches ------------------------------------------------------------------------------


def test_batches_cover_every_index_once_per_epoch() -> None:
    rng = np.random.default_rng(0)
    epochs = [list(batches(10, 4, rng)) for _ in range(2)]
    for epoch in epochs:
        assert [len(batch) for batch in epoch] == [4, 4, 2]
        np.testing.assert_array_equal(np.sort(np.concatenate(epoch)), np.arange(10))
    assert not np.array_equal(np.concatenate(epochs[0]), np.concatenate(epochs[1]))


def test_batches_without_generator_keep_the_order() -> None:
    assert [b.tolist() for b in batches(5, 2, None)] == [[0, 1], [2, 3], [4]]
    assert [b.tolist() for b in batches(3, 10, None)] == [[0, 1, 2]]
    assert list(batches(0, 3, None)) == []


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_size must be a positive integer, received 0"):
        batches(10, 0, None)  # raised at the call, not at the first batch


@pytest.mark.parametrize("train_scores", ["steps", "full"])
def test_a_loss_that_grows_without_bound_is_divergence(train_scores: str) -> None:
    # Was: 30 epochs "completed" with a training loss of 1.07e53.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3))
    y = x @ np.array([[1.0], [2.0], [3.0]])
    model = hp.Sequential(hp.Linear(3, 1, rng=0))
    optimizer = hp.SGD(model.parameters(), lr=0.05)  # past the stable rate for this sum loss
    options = FitOptions(train_scores=train_scores)  # type: ignore[arg-type]
    history = fit(
        model, hp.SumSquaredError(), optimizer, (x, y), epochs=30, batch_size=64, options=options
    )
    assert history.stop_reason == "diverged"
    assert len(history.logs) == 4  # epoch 5's loss is over 1e6 times epoch 1's
    # one batch an epoch: "steps" scores the untrained weights in epoch 1, "full" the
    # weights after its step
    first = "687.3" if train_scores == "steps" else "2.074e+04"
    untrained = hp.SumSquaredError().forward(hp.Sequential(hp.Linear(3, 1, rng=0)).forward(x), y)
    assert f"{untrained:.4g}" == "687.3"
    assert f"over 1e+06 times the first epoch's, {first})" in history.message
