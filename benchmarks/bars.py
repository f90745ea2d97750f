"""The training bars: digits and diabetes, split 75/25 with random_state 0 as scikit-learn's
``train_test_split`` does, trained with ``handprop train`` and scored with ``handprop evaluate``.

    python -m benchmarks.bars [--seeds 5]

Needs scikit-learn (for the data and the split). Each run goes through the command line
in-process (``handprop.cli.main``), so it measures exactly what a user gets.
"""

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from handprop.cli import main

#: The command-line options of each bar; digits uses the defaults for classification.
RECIPES = {
    "digits": ["--task", "classification"],
    "diabetes": [
        "--hidden", "10", "--weight-decay", "0.3", "--epochs", "100",
        "--validation-fraction", "0", "--patience", "0",
    ],
}  # fmt: skip


def split(name: str, folder: Path) -> tuple[Path, Path]:
    """The 75/25 split of scikit-learn's bundled copy, as .npz files."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    bunch = getattr(datasets, f"load_{name}")()
    x_train, x_test, y_train, y_test = train_test_split(
        bunch.data, bunch.target, test_size=0.25, random_state=0
    )
    train, test = folder / f"{name}_train.npz", folder / f"{name}_test.npz"
    np.savez(train, x=x_train, y=y_train)
    np.savez(test, x=x_test, y=y_test)
    return train, test


def bar(name: str, seed: int, folder: Path) -> tuple[float, float]:
    """(test score, training seconds) of one seeded run."""
    train, test = split(name, folder)
    model = folder / f"{name}.safetensors"
    argv = ["train", "--data", str(train), "--out", str(model), "--quiet", "--seed", str(seed)]
    start = time.perf_counter()
    if main([*argv, *RECIPES[name]]) != 0:
        raise SystemExit(f"handprop train failed on {name}")
    seconds = time.perf_counter() - start
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        main(["evaluate", str(model), "--data", str(test), "--json"])
    scores = json.loads(output.getvalue())
    return scores.get("accuracy", scores.get("r2")), seconds


def run(seeds: int) -> str:
    lines = [
        "| data set | metric | options | "
        + " | ".join(f"seed {s}" for s in range(seeds))
        + " | train s (seed 0) |"
    ]
    lines.append("|---" * (seeds + 4) + "|")
    with tempfile.TemporaryDirectory() as folder:
        for name, metric in (("digits", "test accuracy"), ("diabetes", "test R²")):
            results = [bar(name, seed, Path(folder)) for seed in range(seeds)]
            scores = " | ".join(f"{score:.4f}" for score, _ in results)
            options = " ".join(RECIPES[name])
            lines.append(f"| {name} | {metric} | `{options}` | {scores} | {results[0][1]:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    print(run(parser.parse_args().seeds))
