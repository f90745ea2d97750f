"""``handprop warmup``: the tutorial's loop, one ``t loss`` line per step."""

import argparse
import sys
from pathlib import Path
from typing import Any

from handprop.cli.arguments import (
    add_backend_options,
    non_negative_float,
    non_negative_int,
    placement,
    positive_int,
)
from handprop.cli.outputs import check_distinct
from handprop.cli.plot import check_plot


def add_parser(commands: Any) -> None:
    warmup = commands.add_parser(
        "warmup",
        help="run the 'Warm-up: numpy' tutorial, printing 't loss' for every step",
        description=(
            "Train the tutorial's network (N, D_in, H, D_out = 64, 1000, 100, 10; one hidden "
            "ReLU layer, no biases) on random data with the sum of squared errors and plain "
            "SGD. x, y, w1, w2 are drawn in that order from numpy.random.RandomState(SEED), so "
            "each printed loss matches the tutorial's loop after np.random.seed(SEED)."
        ),
    )
    warmup.add_argument("--seed", type=non_negative_int, default=0, help="default: 0")
    warmup.add_argument("--steps", type=non_negative_int, default=500, help="default: 500")
    warmup.add_argument("--lr", type=non_negative_float, default=1e-6, help="default: 1e-6")
    warmup.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    warmup.add_argument(
        "--print-every",
        type=positive_int,
        default=1,
        metavar="K",
        help="print every K-th step (and the last); default: 1",
    )
    warmup.add_argument("--quiet", action="store_true", help="print nothing")
    add_backend_options(warmup)
    warmup.add_argument(
        "--log", type=Path, metavar="FILE", help='write one JSON line per step: {"step", "loss"}'
    )
    warmup.add_argument(
        "--plot", type=Path, metavar="PNG", help="draw the loss curve (needs matplotlib)"
    )
    warmup.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from handprop.warmup import WarmupConfig, run_warmup

    xp = placement(args)  # before the run: no torch, no CUDA is one line
    config = WarmupConfig(
        steps=args.steps, lr=args.lr, seed=args.seed, dtype=args.dtype,
        backend=xp.library, device=None if xp.library == "numpy" else str(xp.device),
    )  # fmt: skip
    check_distinct({"--log": args.log, "--plot": args.plot}, {})
    if args.plot is not None:  # before the run: a wrong extension must not cost one
        check_plot("--plot", args.plot)
    last = config.steps - 1
    log = None if args.log is None else args.log.open("w", encoding="utf-8")

    def on_step(t: int, loss: float) -> None:
        if not args.quiet and (t % args.print_every == 0 or t == last):
            sys.stdout.write(f"{t} {float(loss)!r}\n")
        if log is not None:
            log.write(f'{{"step": {t}, "loss": {float(loss)!r}}}\n')

    try:
        result = run_warmup(config, on_step=on_step)
    finally:
        if log is not None:
            log.close()
    if args.plot is not None:
        from handprop.cli.plot import plot_losses

        title = (
            f"handprop warmup: {config.steps} steps of SGD, lr {config.lr:g}, seed {config.seed}"
        )
        plot_losses(
            args.plot, {"training loss": result.losses}, xlabel="step",
            ylabel="sum of squared errors", title=title,
        )  # fmt: skip
    return 0
