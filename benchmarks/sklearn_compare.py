"""handprop's scikit-learn estimators beside scikit-learn's MLP, both with their defaults.

    python -m benchmarks.sklearn_compare [--seeds 5]

digits: ``Pipeline(StandardScaler(), MLPClassifier())`` against the same with
``HandpropClassifier()``. diabetes: ``MLPRegressor()`` against ``HandpropRegressor()``,
each in a Pipeline after a StandardScaler and inside a ``TransformedTargetRegressor``
that standardises the target too. Both data sets are split 75/25 with
``train_test_split(test_size=0.25, random_state=0)``, as for the training bars
(``benchmarks/bars.py``); seed s is ``random_state=s`` for the network. Prints a
Markdown table: the test score of each seed, their mean, and the mean time of
``fit`` (scaling included). scikit-learn's ConvergenceWarning (it stops at
max_iter=200 without converging) is silenced.
"""

import argparse
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np


def _digits_models(seed: int) -> dict[str, Any]:
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from handprop.sklearn import HandpropClassifier

    return {
        "`MLPClassifier()`": make_pipeline(StandardScaler(), MLPClassifier(random_state=seed)),
        "`HandpropClassifier()`": make_pipeline(
            StandardScaler(), HandpropClassifier(random_state=seed)
        ),
    }


#: The README's diabetes bar (``handprop train`` options), as hyperparameters.
DIABETES_RECIPE = {
    "hidden_layer_sizes": (10,),
    "weight_decay": 0.3,
    "batch_size": 32,
    "max_epochs": 100,
}


def _diabetes_models(seed: int) -> dict[str, Any]:
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from handprop.sklearn import HandpropRegressor

    def scaled(network: Any) -> Any:
        pipeline = make_pipeline(StandardScaler(), network)
        return TransformedTargetRegressor(pipeline, transformer=StandardScaler())

    recipe = ", ".join(f"{name}={value!r}" for name, value in DIABETES_RECIPE.items())
    return {
        "`MLPRegressor()`": scaled(MLPRegressor(random_state=seed)),
        "`HandpropRegressor()`": scaled(HandpropRegressor(random_state=seed)),
        f"`HandpropRegressor({recipe})` (the README's recipe)": scaled(
            HandpropRegressor(random_state=seed, **DIABETES_RECIPE)
        ),
    }


PROBLEMS: dict[str, tuple[str, Callable[[int], dict[str, Any]]]] = {
    "digits": ("test accuracy", _digits_models),
    "diabetes": ("test R²", _diabetes_models),
}


def split(name: str) -> tuple[Any, Any, Any, Any]:
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    split_arrays: tuple[Any, Any, Any, Any] = train_test_split(x, y, test_size=0.25, random_state=0)
    return split_arrays


def measure(model: Any, data: tuple[Any, Any, Any, Any]) -> tuple[float, float]:
    """(test score, seconds spent in fit) of one model."""
    from sklearn.exceptions import ConvergenceWarning

    x_train, x_test, y_train, y_test = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(x_train, y_train)
        seconds = time.perf_counter() - start
    return float(model.score(x_test, y_test)), seconds


def table(seeds: int) -> str:
    lines = [
        f"| data set | metric | estimator | seeds 0-{seeds - 1} | mean | fit time (mean) |",
        "|---|---|---|---|---|---|",
    ]
    for name, (metric, models) in PROBLEMS.items():
        data = split(name)
        runs: dict[str, list[tuple[float, float]]] = {}
        for seed in range(seeds):
            for label, model in models(seed).items():
                runs.setdefault(label, []).append(measure(model, data))
        for label, results in runs.items():
            scores = [score for score, _ in results]
            shown = ", ".join(f"{score:.4f}" for score in scores)
            seconds = np.mean([elapsed for _, elapsed in results])
            lines.append(
                f"| {name} | {metric} | {label} | {shown} | {np.mean(scores):.4f} "
                f"| {seconds:.2f} s |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1; default 5")
    print(table(parser.parse_args().seeds))


if __name__ == "__main__":
    main()
