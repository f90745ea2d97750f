"""``handprop gradcheck``: every built-in layer and loss, and the tutorial's network,
checked against central differences."""

import argparse
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from handprop.cli.arguments import non_negative_int, positive_int

if TYPE_CHECKING:
    from handprop.gradcheck import GradientReport
    from handprop.layers import Module


def add_parser(commands: Any) -> None:
    gradcheck = commands.add_parser(
        "gradcheck",
        help="check every built-in backward against central differences",
        description=(
            "Compare the hand-written backward of every built-in layer and loss, and of the "
            "tutorial's network, with central differences in float64. Prints a table; exits "
            "0 only if every check passes, 1 otherwise."
        ),
    )
    gradcheck.add_argument("--seed", type=non_negative_int, default=0, help="default: 0")
    gradcheck.add_argument(
        "--max-entries",
        type=positive_int,
        default=200,
        metavar="K",
        help="check at most K random entries of each large tensor; default: 200",
    )
    gradcheck.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from handprop.gradcheck import format_reports

    reports = builtin_checks(seed=args.seed, max_entries=args.max_entries)
    print(format_reports(reports))
    failed = [report.subject for report in reports if not report.passed]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"all {len(reports)} gradient checks passed")
    return 0


def builtin_checks(seed: int = 0, max_entries: int | None = 200) -> list["GradientReport"]:
    """Check each built-in layer and loss on small random inputs, then the warmup network."""
    # imported here: `handprop warmup` should not pay for them
    from handprop.gradcheck import check_gradients
    from handprop.layers import (
        BatchNorm1d,
        Identity,
        LayerNorm,
        LeakyReLU,
        Linear,
        ReLU,
        Sequential,
        Sigmoid,
        Tanh,
    )
    from handprop.losses import (
        Huber,
        MeanAbsoluteError,
        MeanSquaredError,
        SoftmaxCrossEntropy,
        SumSquaredError,
    )
    from handprop.warmup import WarmupConfig, make_problem

    rng = np.random.default_rng(seed)
    n, d_in, d_out = 4, 5, 3

    def x(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape)

    layers: list[tuple[str, Module, np.ndarray]] = [
        ("Linear", Linear(d_in, d_out, rng=rng), x(n, d_in)),
        ("Linear(bias=False)", Linear(d_in, d_out, bias=False, rng=rng), x(n, d_in)),
        ("ReLU", ReLU(), x(n, d_in)),
        ("LeakyReLU(0.1)", LeakyReLU(0.1), x(n, d_in)),
        ("Tanh", Tanh(), x(n, d_in)),
        ("Sigmoid", Sigmoid(), x(n, d_in)),
        ("Identity", Identity(), x(n, d_in)),
        (
            "Sequential(Linear, Tanh, Linear, Sigmoid)",
            Sequential(Linear(d_in, 6, rng=rng), Tanh(), Linear(6, d_out, rng=rng), Sigmoid()),
            x(n, d_in),
        ),
        *_image_layers(rng),
        ("BatchNorm1d", BatchNorm1d(d_in), x(n, d_in)),
        ("LayerNorm", LayerNorm(d_in), x(n, d_in)),
    ]
    reports = [check_gradients(m, inp, rng=rng, name=name) for name, m, inp in layers]
    reports += [
        check_gradients(SumSquaredError(), x(n, d_out), x(n, d_out), name="SumSquaredError"),
        check_gradients(MeanSquaredError(), x(n, d_out), x(n, d_out), name="MeanSquaredError"),
        check_gradients(
            SoftmaxCrossEntropy(),
            x(n, d_out),
            rng.integers(0, d_out, n),
            name="SoftmaxCrossEntropy",
        ),
        check_gradients(MeanAbsoluteError(), x(n, d_out), x(n, d_out), name="MeanAbsoluteError"),
        check_gradients(Huber(), 2 * x(n, d_out), x(n, d_out), name="Huber"),
        check_gradients(
            SoftmaxCrossEntropy(weight=np.array([0.5, 1.0, 2.0])),
            x(n, d_out),
            rng.integers(0, d_out, n),
            name="SoftmaxCrossEntropy(weight)",
        ),
    ]
    problem = make_problem(WarmupConfig(seed=seed))
    reports.append(
        check_gradients(
            problem.model,
            problem.x,
            problem.y,
            loss=SumSquaredError(),
            max_entries=max_entries,
            rng=rng,
            name=f"warmup network + SumSquaredError (seed {seed})",
        )
    )
    return reports


def _image_layers(rng: np.random.Generator) -> list[tuple[str, "Module", np.ndarray]]:
    """The image layers on (2, 2, 5, 6) inputs (N, C, H, W)."""
    from handprop.layers import AvgPool2d, BatchNorm2d, Conv2d, Flatten, MaxPool2d

    def images() -> np.ndarray:
        return rng.standard_normal((2, 2, 5, 6))

    return [
        ("Conv2d(2, 3, 3, padding=1)", Conv2d(2, 3, 3, padding=1, rng=rng), images()),
        ("Conv2d(2, 3, 2, stride=2)", Conv2d(2, 3, 2, stride=2, rng=rng), images()),
        ("MaxPool2d(2)", MaxPool2d(2), images()),
        ("AvgPool2d(3, stride=2)", AvgPool2d(3, 2), images()),
        ("Flatten", Flatten(), images()),
        ("BatchNorm2d", BatchNorm2d(2), images()),
    ]
