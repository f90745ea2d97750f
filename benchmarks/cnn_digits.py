"""A small CNN on scikit-learn's 8x8 digits against ``MLPClassifier``, on the same splits.

    python -m benchmarks.cnn_digits [--seeds 5] [--epochs 30]

For each seed s: ``train_test_split(test_size=0.25, random_state=s)`` of the digits;
the CNN (``handprop.build_layers(SPEC, (1, 8, 8), rng=s)``, pixels / 16, Adam,
SoftmaxCrossEntropy, ``fit`` shuffling with seed s), the same CNN from the command line
(the two parts saved as .npz files, ``handprop train --data train.npz --layers SPEC --lr
0.002 --epochs 30 --validation-fraction 0 --seed s`` then ``handprop evaluate --data
test.npz``: each channel standardised, no early stopping) and
``make_pipeline(StandardScaler(), MLPClassifier(random_state=s))`` (scikit-learn's
defaults; its ConvergenceWarning silenced) are trained on the same 75% and scored on
the same 25%. Prints a Markdown table: the test accuracy per seed, the mean, and the
mean training time.
"""

import argparse
import time
import warnings
from typing import Any

import numpy as np

SPEC = "conv 16 3 pad 1, relu, maxpool 2, conv 32 3 pad 1, relu, maxpool 2, flatten, linear 10"
LR = 2e-3
BATCH_SIZE = 32


def cnn_accuracy(seed: int, epochs: int, split: tuple[Any, Any, Any, Any]) -> float:
    import handprop as hp

    x_train, x_test, y_train, y_test = split
    model = hp.build_layers(SPEC, (1, 8, 8), rng=seed)
    optimizer = hp.Adam(model.parameters(), lr=LR)
    hp.fit(model, hp.SoftmaxCrossEntropy(), optimizer, (x_train, y_train), epochs=epochs,
           batch_size=BATCH_SIZE, rng=np.random.default_rng(seed))  # fmt: skip
    predicted = model.eval()(x_test).argmax(axis=1)
    return float((predicted == y_test).mean())


def cli_accuracy(seed: int, epochs: int, split: tuple[Any, Any, Any, Any]) -> float:
    import contextlib
    import io
    import json
    import tempfile
    from pathlib import Path

    from handprop.cli import main

    x_train, x_test, y_train, y_test = split
    with tempfile.TemporaryDirectory() as folder:
        train, test, model = (Path(folder) / name for name in ("train.npz", "test.npz", "m.st"))
        np.savez(train, x=x_train, y=y_train)
        np.savez(test, x=x_test, y=y_test)
        settings = ["--lr", str(LR), "--batch-size", str(BATCH_SIZE), "--epochs", str(epochs),
                    "--seed", str(seed), "--validation-fraction", "0"]  # fmt: skip
        command = ["train", "--data", str(train), "--layers", SPEC, *settings]
        assert main([*command, "--out", str(model), "--quiet"]) == 0
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["evaluate", str(model), "--data", str(test), "--json"]) == 0
    return float(json.loads(out.getvalue())["accuracy"])


def mlp_accuracy(seed: int, split: tuple[Any, Any, Any, Any]) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, x_test, y_train, y_test = split
    n_train, n_test = len(x_train), len(x_test)
    model = make_pipeline(StandardScaler(), MLPClassifier(random_state=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_train.reshape(n_train, -1) * 16, y_train)  # scikit-learn's 0-16 pixels
    return float(model.score(x_test.reshape(n_test, -1) * 16, y_test))


def table(seeds: int, epochs: int) -> str:
    from sklearn.model_selection import train_test_split

    from handprop.data import digits_images

    x, y = digits_images()
    scores: dict[str, list[float]] = {"cnn": [], "cli": [], "mlp": []}
    seconds: dict[str, float] = {"cnn": 0.0, "cli": 0.0, "mlp": 0.0}
    for seed in range(seeds):
        split = train_test_split(x, y, test_size=0.25, random_state=seed)
        start = time.perf_counter()
        scores["cnn"].append(cnn_accuracy(seed, epochs, split))
        seconds["cnn"] += time.perf_counter() - start
        start = time.perf_counter()
        scores["cli"].append(cli_accuracy(seed, epochs, split))
        seconds["cli"] += time.perf_counter() - start
        start = time.perf_counter()
        scores["mlp"].append(mlp_accuracy(seed, split))
        seconds["mlp"] += time.perf_counter() - start
    labels = {
        "cnn": f"handprop CNN `{SPEC}`, Adam lr {LR}, batch {BATCH_SIZE}, {epochs} epochs",
        "cli": "the same CNN, `handprop train --layers` (each channel standardised)",
        "mlp": "`make_pipeline(StandardScaler(), MLPClassifier())`",
    }
    lines = [
        f"| model | test accuracy, seeds 0-{seeds - 1} | mean | training time (mean) |",
        "|---|---|---|---|",
    ]
    for name, label in labels.items():
        shown = ", ".join(f"{score:.4f}" for score in scores[name])
        lines.append(
            f"| {label} | {shown} | {np.mean(scores[name]):.4f} | {seconds[name] / seeds:.2f} s |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1; default 5")
    parser.add_argument("--epochs", type=int, default=30, help="CNN epochs; default 30")
    arguments = parser.parse_args()
    print(table(arguments.seeds, arguments.epochs))


if __name__ == "__main__":
    main()
