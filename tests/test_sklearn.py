"""handprop.sklearn: scikit-learn's own estimator checks, and the estimators in real use."""

import json
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_diabetes, load_digits, load_iris
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from handprop.cli import main
from handprop.layers import Sequential
from handprop.sklearn import HandpropClassifier, HandpropRegressor


@parametrize_with_checks(
    [HandpropRegressor(max_epochs=100), HandpropClassifier(max_epochs=100)]
)  # max_epochs=100, as scikit-learn checks its MLP with max_iter=100
def test_sklearn_estimator_checks(estimator: Any, check: Callable[[Any], None]) -> None:
    check(estimator)


def regression_data(n: int = 120, outputs: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 4))
    y = x @ rng.standard_normal((4, outputs)) + 0.1 * rng.standard_normal((n, outputs))
    return x, (y[:, 0] if outputs == 1 else y)


def small(estimator: type[Any], **params: Any) -> Any:
    """A quick one: 16 hidden units, 5 epochs, seeded."""
    settings = {"hidden_layer_sizes": (16,), "max_epochs": 5, "random_state": 0, **params}
    return estimator(**settings)


# ----- the library stays free of scikit-learn ------------------------------------------------


def test_import_handprop_does_not_import_sklearn() -> None:
    code = (
        "import sys, handprop, handprop.training, handprop.cli, handprop.checkpoint\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'sklearn'], 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ----- results on the training issue's data sets --------------------------------------------


def test_digits_in_a_pipeline() -> None:
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0)
    model = make_pipeline(StandardScaler(), HandpropClassifier(max_epochs=20, random_state=0))
    assert model.fit(x_train, y_train).score(x_test, y_test) > 0.9


def test_diabetes_with_a_standardised_target() -> None:
    x, y = load_diabetes(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0)
    network = HandpropRegressor(  # the recipe of the README's diabetes bar
        hidden_layer_sizes=(10,), weight_decay=0.3, batch_size=32, max_epochs=100, random_state=0
    )
    model = TransformedTargetRegressor(
        make_pipeline(StandardScaler(), network), transformer=StandardScaler()
    )
    assert model.fit(x_train, y_train).score(x_test, y_test) > 0.3


# ----- model selection, cloning, pickling ----------------------------------------------------


def test_grid_search_and_cross_validation() -> None:
    x, y = load_iris(return_X_y=True)
    network = small(HandpropClassifier, learning_rate=0.01, max_epochs=40)
    pipeline = make_pipeline(StandardScaler(), network)
    grid = {"handpropclassifier__hidden_layer_sizes": [(4,), (16,)]}
    search = GridSearchCV(pipeline, grid, cv=3).fit(x, y)
    assert search.best_params_["handpropclassifier__hidden_layer_sizes"] in [(4,), (16,)]
    assert search.best_score_ > 0.7
    assert cross_val_score(pipeline, x, y, cv=3).mean() > 0.7


def test_clone_keeps_the_hyperparameters_and_drops_the_network() -> None:
    x, y = regression_data()
    fitted = small(HandpropRegressor, learning_rate=0.01).fit(x, y)
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    with pytest.raises(NotFittedError):
        copy.predict(x)


def test_pickle_then_partial_fit_keeps_training() -> None:
    x, y = regression_data()
    original = small(HandpropRegressor).fit(x, y)
    copy = pickle.loads(pickle.dumps(original))
    training = copy._training
    # pickle kept the optimizer's Parameters the network's, and left the cached batches out
    parameters = zip(training.optimizer.params, copy.model_.parameters(), strict=True)
    assert all(a is b for a, b in parameters)
    assert all(layer.x is None for layer in copy.model_.layers[::2])
    np.testing.assert_array_equal(copy.predict(x), original.predict(x))
    before = [w.copy() for w in copy.coefs_]
    copy.partial_fit(x, y)
    original.partial_fit(x, y)
    assert not np.array_equal(before[0], copy.coefs_[0])  # the weights moved
    for a, b in zip(copy.coefs_, original.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)  # exactly as the original went on
    assert copy.n_iter_ == 6


# ----- training goes through handprop.fit ----------------------------------------------------


def test_partial_fit_is_one_epoch_of_fit() -> None:
    x, y = regression_data()
    fitted = small(HandpropRegressor, max_epochs=3).fit(x, y)
    stepped = small(HandpropRegressor)
    for _ in range(3):
        stepped.partial_fit(x, y)
    pairs = zip(
        fitted.coefs_ + fitted.intercepts_, stepped.coefs_ + stepped.intercepts_, strict=True
    )
    for a, b in pairs:
        np.testing.assert_array_equal(a, b)
    assert stepped.loss_curve_ == fitted.loss_curve_ and stepped.n_iter_ == 3


def test_warm_start_goes_on_and_refuses_a_new_shape() -> None:
    x, y = regression_data()
    model = small(HandpropRegressor, warm_start=True).fit(x, y)
    first = model.coefs_[0].copy()
    model.fit(x, y)
    assert model.n_iter_ == 10 and len(model.loss_curve_) == 10
    assert not np.array_equal(first, model.coefs_[0])
    model.set_params(hidden_layer_sizes=(8,))
    with pytest.raises(ValueError, match="cannot change"):
        model.fit(x, y)
    with pytest.raises(ValueError, match="cannot change"):
        model.set_params(hidden_layer_sizes=(16,), dtype="float32").fit(x, y)
    model.set_params(warm_start=False).fit(x, y)
    assert model.coefs_[0].dtype == np.float32 and model.n_iter_ == 5


@pytest.mark.parametrize("change", [{"momentum": 0.5}, {"weight_decay": 0.1}])
def test_warm_start_applies_a_changed_momentum_or_weight_decay(change: dict[str, float]) -> None:
    # They used to be ignored silently: the kept optimizer went on with the old values.
    x, y = regression_data()
    model = small(HandpropRegressor, warm_start=True, optimizer="sgd", momentum=0.9).fit(x, y)
    model.set_params(**change)
    optimizer = model._training.optimizer
    for name, value in change.items():
        assert getattr(optimizer, name) != value
    model.fit(x, y)
    for name, value in change.items():
        assert getattr(model._training.optimizer, name) == value
    unchanged = model._training.optimizer
    model.fit(x, y)  # nothing changed: the same optimizer, its velocities kept
    assert model._training.optimizer is unchanged


def test_early_stopping_keeps_the_best_epoch() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((100, 4)), rng.standard_normal(100)  # noise: it overfits
    model = small(
        HandpropRegressor, hidden_layer_sizes=(64,), learning_rate=0.01, max_epochs=300,
        early_stopping=True, patience=3,
    ).fit(x, y)  # fmt: skip
    scores = model.validation_scores_
    assert scores is not None and len(scores) == model.n_iter_ < 300


def test_partial_fit_classes() -> None:
    x, y = load_iris(return_X_y=True)
    model = small(HandpropClassifier)
    with pytest.raises(ValueError, match="classes="):
        model.partial_fit(x, y)
    model.partial_fit(x[y < 2], y[y < 2], classes=[0, 1, 2])
    assert model.predict_proba(x).shape == (150, 3)
    model.partial_fit(x, y)
    with pytest.raises(ValueError, match="not in classes_"):
        model.partial_fit(x, y + 1)


def test_divergence_is_a_value_error() -> None:
    x, y = regression_data()
    model = small(HandpropRegressor, optimizer="sgd", learning_rate=10.0, loss="sum_squared_error")
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
        model.fit(1e3 * x, y)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"activation": "logistic"}, "unknown activation 'logistic'; valid names"),
        ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'; valid names: adam, sgd"),
        ({"loss": "poisson"}, "loss must be one of 'squared_error', 'sum_squared_error'"),
        ({"hidden_layer_sizes": (10, 0)}, "hidden_layer_sizes must be a positive integer"),
        ({"batch_size": 0}, "batch_size must be 'auto'"),
        ({"learning_rate": -1.0}, "learning_rate must be a finite number > 0"),
        ({"early_stopping": True, "validation_fraction": 1.0}, "validation_fraction in"),
        ({"dtype": "float16"}, "dtype must be float64 or float32"),
        ({"init": "uniform"}, "unknown initializer 'uniform'; valid names"),
    ],
)
def test_bad_hyperparameters_are_refused_by_fit(params: dict[str, object], message: str) -> None:
    x, y = regression_data()
    model = small(HandpropRegressor, **params)  # __init__ only stores them
    with pytest.raises((ValueError, TypeError), match=message):
        model.fit(x, y)


def test_verbose_prints_one_line_per_epoch(capsys: pytest.CaptureFixture[str]) -> None:
    x, y = regression_data()
    small(HandpropRegressor, max_epochs=3).fit(x, y)
    assert capsys.readouterr().out == ""
    small(HandpropRegressor, max_epochs=3, verbose=True).fit(x, y)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 1", "epoch 2", "epoch 3"]


# ----- shapes, dtypes, names, determinism ----------------------------------------------------


def test_multi_output_regression() -> None:
    x, y = regression_data(outputs=3)
    model = small(HandpropRegressor, learning_rate=0.01, max_epochs=100).fit(x, y)
    assert model.predict(x).shape == (120, 3) and model.n_outputs_ == 3
    assert [w.shape for w in model.coefs_] == [(4, 16), (16, 3)]
    assert model.score(x, y) > 0.9


def test_float32_stays_float32() -> None:
    x, y = regression_data()
    model = small(HandpropRegressor).fit(x.astype(np.float32), y)
    assert model.coefs_[0].dtype == np.float32
    assert model.predict(x).dtype == np.float32
    assert small(HandpropRegressor).fit(x, y).predict(x).dtype == np.float64
    forced = small(HandpropRegressor, dtype="float64").fit(x.astype(np.float32), y)
    assert forced.predict(x.astype(np.float32)).dtype == np.float64
    labels = (x[:, 0] > 0).astype(int)
    classifier = small(HandpropClassifier).fit(x.astype(np.float32), labels)
    assert classifier.predict_proba(x).dtype == np.float32


def test_feature_names_from_a_dataframe() -> None:
    pandas = pytest.importorskip("pandas")
    x, y = regression_data()
    frame = pandas.DataFrame(x, columns=["a", "b", "c", "d"])
    model = small(HandpropRegressor).fit(frame, y)
    assert list(model.feature_names_in_) == ["a", "b", "c", "d"]
    with pytest.warns(UserWarning, match="feature names"):
        model.predict(x)


def test_random_state_makes_it_repeatable() -> None:
    x, y = regression_data()
    first = small(HandpropRegressor).fit(x, y).predict(x)
    np.testing.assert_array_equal(small(HandpropRegressor).fit(x, y).predict(x), first)
    assert not np.array_equal(small(HandpropRegressor, random_state=1).fit(x, y).predict(x), first)


def test_string_labels() -> None:
    x, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    model = small(HandpropClassifier, max_epochs=30, learning_rate=0.01).fit(x, names)
    assert list(model.classes_) == ["setosa", "versicolor", "virginica"]
    assert set(model.predict(x)) <= set(names) and model.score(x, names) > 0.8
    np.testing.assert_allclose(model.predict_proba(x).sum(axis=1), 1.0)


# ----- model files, both ways through the command line --------------------------------------


def cli(argv: list[object], capsys: pytest.CaptureFixture[str]) -> str:
    assert main([str(a) for a in argv]) == 0
    return capsys.readouterr().out


def test_regressor_file_serves_evaluate_and_predict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = regression_data()
    data, path, output = tmp_path / "data.npz", tmp_path / "model.safetensors", tmp_path / "y.npy"
    np.savez(data, x=x, y=y)
    model = small(HandpropRegressor).fit(x, y)
    model.save(path)
    scores = json.loads(cli(["evaluate", path, "--data", data, "--json"], capsys))
    assert scores["r2"] == pytest.approx(model.score(x, y), rel=1e-12)
    cli(["predict", path, "--data", data, "--output", output], capsys)
    np.testing.assert_allclose(np.load(output)[:, 0], model.predict(x), rtol=1e-12)
    loaded = HandpropRegressor.load(path)
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    with pytest.raises(ValueError, match=r"load it with HandpropRegressor\.load"):
        HandpropClassifier.load(path)


def test_classifier_file_serves_evaluate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = load_iris(return_X_y=True)
    data, path = tmp_path / "iris.npz", tmp_path / "model.safetensors"
    np.savez(data, x=x, y=y)
    model = small(HandpropClassifier, max_epochs=20).fit(x, y)
    model.save(path)
    command = ["evaluate", path, "--data", data, "--json"]
    assert json.loads(cli(command, capsys))["accuracy"] == model.score(x, y)
    loaded = HandpropClassifier.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))


def test_a_file_from_handprop_train_loads_with_its_scalers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = regression_data()
    data, path, output = tmp_path / "data.npz", tmp_path / "model.safetensors", tmp_path / "y.npy"
    np.savez(data, x=5 * x + 3, y=100 * y - 7)  # far from standardised: the scalers matter
    argv = ["train", "--data", data, "--out", path, "--hidden", 8, "--lr", 0.01, "--quiet"]
    cli([*argv, "--epochs", 20], capsys)
    cli(["predict", path, "--data", data, "--output", output], capsys)
    model = HandpropRegressor.load(path)
    assert not hasattr(model, "feature_names_in_")  # an .npz file's x0, x1... are made up
    assert model.hidden_layer_sizes == (8,) and model.max_epochs == 20
    assert model.early_stopping and model.patience == 20  # the command's defaults
    np.testing.assert_allclose(model.predict(5 * x + 3), np.load(output)[:, 0], rtol=1e-12)
    before = model.coefs_[0].copy()
    model.partial_fit(5 * x + 3, 100 * y - 7)  # trains on scaled data, as the file says
    assert not np.array_equal(before, model.coefs_[0]) and model.n_iter_ == 1
    assert model.score(5 * x + 3, 100 * y - 7) > 0.5
    model.save(path)  # and back: the scalers travel with it
    cli(["predict", path, "--data", data, "--output", output], capsys)
    np.testing.assert_allclose(model.predict(5 * x + 3), np.load(output)[:, 0], rtol=1e-12)


def test_a_classifier_file_from_handprop_train_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = load_iris(return_X_y=True)
    data, path = tmp_path / "iris.npz", tmp_path / "model.safetensors"
    np.savez(data, x=x, y=np.array(["setosa", "versicolor", "virginica"])[y])
    argv = ["train", "--data", data, "--out", path, "--task", "classification", "--quiet"]
    cli([*argv, "--epochs", 20], capsys)
    model = HandpropClassifier.load(path)
    assert list(model.classes_) == ["setosa", "versicolor", "virginica"]
    accuracy = json.loads(cli(["evaluate", path, "--data", data, "--json"], capsys))["accuracy"]
    assert model.score(x, model.classes_[y]) == accuracy
    assert isinstance(model.model_, Sequential)


def test_a_csv_model_knows_its_column_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = regression_data()
    data, path = tmp_path / "data.csv", tmp_path / "model.safetensors"
    rows = [",".join(map(repr, row)) for row in np.column_stack([x, y]).tolist()]
    data.write_text("\n".join(["a,b,c,d,price", *rows]) + "\n", encoding="utf-8")
    cli(["train", "--data", data, "--out", path, "--epochs", 2, "--quiet"], capsys)
    model = HandpropRegressor.load(path)
    assert list(model.feature_names_in_) == ["a", "b", "c", "d"]
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        model.predict(x)
    model.save(path)
    assert json.loads(cli(["evaluate", path, "--data", data, "--json"], capsys))["n"] == 120


def imbalanced(n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(5).standard_normal((n, 2))
    return x, np.where(x[:, 0] > 1.64, "rare", "common")


def test_class_weight_balanced_finds_the_rare_class() -> None:
    x, y = imbalanced()
    recall = {}
    for weight in (None, "balanced"):
        classifier = HandpropClassifier(
            hidden_layer_sizes=(), learning_rate=0.05, max_epochs=20, random_state=0,
            class_weight=weight,
        )  # fmt: skip
        predicted = classifier.fit(x, y).predict(x)
        recall[weight] = np.mean(predicted[y == "rare"] == "rare")
    assert recall["balanced"] > recall[None] + 0.2


def test_class_weight_dict_is_torchs_weighted_mean() -> None:
    x, y = imbalanced(40)
    classifier = HandpropClassifier(max_epochs=1, class_weight={"rare": 3.0}, random_state=0)
    classifier.fit(x, y)
    loss_fn = classifier._training.loss_fn
    np.testing.assert_array_equal(loss_fn.weight, [1.0, 3.0])  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="class_weight names labels not in classes_"):
        HandpropClassifier(max_epochs=1, class_weight={"owl": 2.0}).fit(x, y)


# ----- sample_weight ---------------------------------------------------------------------------


def weighted_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """40 rows, labels 0..2, and whole weights 0..3 (some rows 0)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((40, 3))
    return x, rng.integers(0, 3, 40), x @ rng.standard_normal(3), rng.integers(0, 4, 40)


@pytest.mark.parametrize(
    ("estimator", "params"),
    [
        (HandpropRegressor, {}),
        (HandpropRegressor, {"loss": "sum_squared_error", "learning_rate": 1e-4}),
        (HandpropClassifier, {}),
        (HandpropClassifier, {"class_weight": "balanced"}),
        (HandpropClassifier, {"class_weight": {0: 2.0, 2: 0.5}}),
    ],
)
def test_whole_sample_weights_train_as_repeated_rows(estimator: Any, params: dict) -> None:
    x, labels, values, weight = weighted_data()
    y = labels if estimator is HandpropClassifier else values
    repeated = np.repeat(np.arange(len(x)), weight)
    settings = {"hidden_layer_sizes": (8,), "max_epochs": 30, "batch_size": 200, **params}
    weighted = estimator(random_state=0, **settings).fit(x, y, sample_weight=weight)
    copies = estimator(random_state=0, **settings).fit(x[repeated], y[repeated])
    method = "predict_proba" if estimator is HandpropClassifier else "predict"
    np.testing.assert_allclose(
        getattr(weighted, method)(x), getattr(copies, method)(x), rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("estimator", [HandpropRegressor, HandpropClassifier])
def test_a_zero_sample_weight_drops_the_row(estimator: Any) -> None:
    x, labels, values, _ = weighted_data()
    y = labels if estimator is HandpropClassifier else values
    weight = np.where(np.arange(len(x)) % 3 == 0, 0.0, 1.0)  # mini-batches of 8, Adam
    kept = weight > 0
    settings = {"hidden_layer_sizes": (8,), "max_epochs": 5, "batch_size": 8, "random_state": 0}
    weighted = estimator(**settings).fit(x, y, sample_weight=weight)
    dropped = estimator(**settings).fit(x[kept], y[kept])
    np.testing.assert_array_equal(weighted.predict(x), dropped.predict(x))


def test_sample_weight_moves_a_regression_and_partial_fit_takes_it() -> None:
    x = np.linspace(-1, 1, 20)[:, None]
    y = np.where(x[:, 0] > 0, 1.0, 0.0)
    weight = np.where(x[:, 0] > 0, 10.0, 0.1)  # the right half counts 100 times more
    model = HandpropRegressor(hidden_layer_sizes=(), max_epochs=300, learning_rate=0.05,
                              random_state=0)  # fmt: skip
    plain, weighted = clone(model).fit(x, y), clone(model).fit(x, y, sample_weight=weight)
    right = x[:, 0] > 0
    error = {name: np.abs(m.predict(x) - y)[right].mean() for name, m in
             (("plain", plain), ("weighted", weighted))}  # fmt: skip
    assert error["weighted"] < error["plain"] / 2
    before = weighted.predict(x)
    weighted.partial_fit(x, y, sample_weight=weight)
    assert not np.array_equal(weighted.predict(x), before)


@pytest.mark.parametrize(
    ("weight", "message"),
    [
        (np.array([1.0, -1.0] * 10), "Negative values"),
        (np.array([1.0, np.nan] * 10), "NaN"),
        (np.ones(7), "inconsistent numbers of samples|sample_weight.shape"),
        (np.zeros(20), "(?i)non-zero|zero for every row"),
    ],
)
def test_bad_sample_weights_are_refused(weight: np.ndarray, message: str) -> None:
    x, y = regression_data(20)
    with pytest.raises(ValueError, match=message):
        small(HandpropRegressor).fit(x, y, sample_weight=weight)


# ----- pandas DataFrames with categories ------------------------------------------------------


def shop_frame(n: int = 90) -> tuple[Any, np.ndarray]:
    """A number, a category column, a text column; the price depends on the first two."""
    pandas = pytest.importorskip("pandas")
    rng = np.random.default_rng(3)
    frame = pandas.DataFrame({
        "size": rng.uniform(1, 5, n),
        "color": pandas.Categorical(rng.choice(["red", "blue"], n)),
        "kind": rng.choice(["a", "b", "c"], n).astype(object),
    })  # fmt: skip
    return frame, (3 * frame["size"] + 10 * (frame["color"] == "red")).to_numpy()


def test_a_dataframe_with_categories_is_one_hot_encoded_as_handprop_train_does() -> None:
    frame, price = shop_frame()
    model = HandpropRegressor(hidden_layer_sizes=(8,), max_epochs=200, learning_rate=0.01,
                              random_state=0).fit(frame, price)  # fmt: skip
    assert list(model.feature_names_in_) == ["size", "color", "kind"] and model.n_features_in_ == 3
    assert model.encoding_.feature_names == (
        "size", "color=blue", "color=red", "kind=a", "kind=b", "kind=c"
    )  # fmt: skip
    assert model.coefs_[0].shape == (6, 8) and model.score(frame, price) > 0.9
    with pytest.raises(ValueError, match="'purple' is a category the model never saw"):
        model.predict(frame.assign(color=["purple"] * len(frame)))
    with pytest.raises(ValueError, match="give X as a pandas DataFrame"):
        model.predict(frame.to_numpy())
    with pytest.raises(ValueError, match="Feature names"):
        model.predict(frame[["kind", "size", "color"]])


def test_a_categorical_model_file_goes_both_ways(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame, price = shop_frame()
    data, path = tmp_path / "shop.csv", tmp_path / "m.safetensors"
    frame.assign(price=price).to_csv(data, index=False)
    model = small(HandpropRegressor).fit(frame, price)
    model.save(path)  # the estimator's file, predicted by the command line from the CSV
    out = cli(["predict", path, "--data", data, "--output", "-"], capsys)
    np.testing.assert_allclose(np.loadtxt(out.splitlines()[1:]), model.predict(frame), rtol=1e-6)
    cli(["train", "--data", data, "--out", path, "--epochs", 3, "--quiet"], capsys)
    loaded = HandpropRegressor.load(path)  # the command line's file, on the DataFrame
    assert list(loaded.feature_names_in_) == ["size", "color", "kind"]
    out = cli(["predict", path, "--data", data, "--output", "-"], capsys)
    np.testing.assert_allclose(np.loadtxt(out.splitlines()[1:]), loaded.predict(frame), rtol=1e-6)


def test_a_numeric_dataframe_trains_as_its_array() -> None:
    pandas = pytest.importorskip("pandas")
    x, y = regression_data()
    frame = pandas.DataFrame(x, columns=["a", "b", "c", "d"])
    from_frame = small(HandpropClassifier).fit(frame, y > 0)
    from_array = small(HandpropClassifier).fit(x, y > 0)
    np.testing.assert_array_equal(from_frame.predict_proba(frame), from_array.predict_proba(x))
    assert from_frame.encoding_ is None
