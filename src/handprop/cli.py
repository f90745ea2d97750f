"""The ``handprop`` command: ``warmup`` runs the tutorial, ``gradcheck`` checks every backward,
``train``/``evaluate``/``predict`` work with data sets and model files (commands/).

``main(argv)`` returns the exit code: 0 on success, 1 when a gradient check
fails or training diverges, 2 for bad input (one line on stderr, no traceback).
"""

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from handprop import __version__
from handprop.arguments import non_negative_float, non_negative_int, positive_int
from handprop.commands import TrainingFailed
from handprop.commands.parsers import add_evaluate, add_predict, add_train
from handprop.explain_cli import add_parser as add_explain


def _warmup(args: argparse.Namespace) -> int:
    from handprop.warmup import WarmupConfig, run_warmup

    config = WarmupConfig(steps=args.steps, lr=args.lr, seed=args.seed, dtype=args.dtype)
    last = config.steps - 1
    log = None if args.log is None else args.log.open("w", encoding="utf-8")

    def on_step(t: int, loss: float) -> None:
        if not args.quiet and (t % args.print_every == 0 or t == last):
            sys.stdout.write(f"{t} {float(loss)!r}\n")
        if log is not None:
            log.write(f'{{"step": {t}, "loss": {float(loss)!r}}}\n')

    try:
        run = run_warmup(config, on_step=on_step)
    finally:
        if log is not None:
            log.close()
    if args.plot is not None:
        from handprop.plot import plot_losses

        title = (
            f"handprop warmup: {config.steps} steps of SGD, lr {config.lr:g}, seed {config.seed}"
        )
        plot_losses(
            args.plot, {"training loss": run.losses}, xlabel="step",
            ylabel="sum of squared errors", title=title,
        )  # fmt: skip
    return 0


def _gradcheck(args: argparse.Namespace) -> int:
    from handprop.gradcheck import format_reports
    from handprop.selfcheck import builtin_checks

    reports = builtin_checks(seed=args.seed, max_entries=args.max_entries)
    print(format_reports(reports))
    failed = [report.subject for report in reports if not report.passed]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"all {len(reports)} gradient checks passed")
    return 0


_BENCH_HELP = """\
usage: handprop bench [process] [OPTIONS]

Run the benchmark harness of a source checkout (benchmarks/, not part of the installed
package): `handprop bench OPTIONS` is `python -m benchmarks.step OPTIONS`, one training
step side by side with the tutorial's loop, PyTorch, JAX, scikit-learn and the matrix
products alone; `handprop bench process OPTIONS` is `python -m benchmarks.process
OPTIONS`, whole processes (`handprop warmup --quiet` against the tutorial's script).
`handprop bench --help` and `handprop bench process --help` list the OPTIONS.
"""


def _bench(argv: Sequence[str]) -> int:
    """``handprop bench``: hand over to the checkout's ``benchmarks`` package."""
    checkout = _checkout_with_benchmarks()
    if checkout is None:
        print(
            "handprop: error: handprop bench needs the benchmarks/ folder of a source "
            "checkout; run it from the repository's root (or install the repository with "
            "pip install -e .)",
            file=sys.stderr,
        )
        return 2
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    import importlib

    process = bool(argv) and argv[0] == "process"
    harness = importlib.import_module("benchmarks.process" if process else "benchmarks.step")
    try:
        code: int = harness.main(list(argv[1:] if process else argv))
    except SystemExit as exit_:  # the harness's --help or usage errors
        return exit_.code if isinstance(exit_.code, int) else 0
    return code


def _checkout_with_benchmarks() -> Path | None:
    """The repository root that holds benchmarks/step.py: the editable install's, or cwd."""
    installed_from = Path(__file__).resolve().parents[2]  # src/handprop/cli.py -> root
    for root in (installed_from, Path.cwd()):
        if (root / "benchmarks" / "step.py").is_file():
            return root
    return None


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="handprop",
        description="Neural networks whose backward pass is written by hand.",
    )
    parser.add_argument("--version", action="version", version=f"handprop {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

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
    warmup.add_argument(
        "--log", type=Path, metavar="FILE", help='write one JSON line per step: {"step", "loss"}'
    )
    warmup.add_argument(
        "--plot", type=Path, metavar="PNG", help="draw the loss curve (needs matplotlib)"
    )
    warmup.set_defaults(run=_warmup)

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
    gradcheck.set_defaults(run=_gradcheck)
    add_train(commands)
    add_evaluate(commands)
    add_predict(commands)
    add_explain(commands)
    commands.add_parser(
        "bench",
        help="time a training step against the tutorial, PyTorch, JAX and scikit-learn "
        "(needs a source checkout; see handprop bench --help)",
        add_help=False,
    )  # listed here for --help; main() hands `bench ...` to the harness before parsing
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code instead of exiting."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["bench"]:
        if arguments[1:2] in (["--help"], ["-h"]):
            print(_BENCH_HELP)
        return _bench(arguments[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(arguments)
    except SystemExit as exit_:  # --help, --version, or a usage error (code 2)
        return exit_.code if isinstance(exit_.code, int) else 0
    command: Callable[[argparse.Namespace], int] = args.run
    try:
        return command(args)
    except TrainingFailed as error:
        print(f"handprop: {error}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as error:
        print(f"handprop: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `handprop warmup | head`: stop quietly
        sys.stderr.close()
        return 0
    except OSError as error:  # e.g. a --log or --plot path in a folder that does not exist
        print(f"handprop: error: {error.strerror or error}: {error.filename}", file=sys.stderr)
        return 2
