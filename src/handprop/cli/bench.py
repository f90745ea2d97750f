"""``handprop bench``: the benchmark harness of a source checkout, run as a child process."""

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HELP = """\
usage: handprop bench [process] [OPTIONS]

Run the benchmark harness of a source checkout (benchmarks/, not part of the installed
package): `handprop bench OPTIONS` is `python -m benchmarks.step OPTIONS`, one training
step side by side with the tutorial's loop, PyTorch, JAX, scikit-learn and the matrix
products alone; `handprop bench process OPTIONS` is `python -m benchmarks.process
OPTIONS`, whole processes (`handprop warmup --quiet` against the tutorial's script).
`handprop bench --help` and `handprop bench process --help` list the OPTIONS.
"""


def add_parser(commands: Any) -> None:
    commands.add_parser(
        "bench",
        help="time a training step against the tutorial, PyTorch, JAX and scikit-learn "
        "(needs a source checkout; see handprop bench --help)",
        add_help=False,
    )  # listed here for --help; main() hands `bench ...` to the harness before parsing


def run(argv: Sequence[str]) -> int:
    """Run ``python -m benchmarks.step ARGV`` (or ``benchmarks.process``) in the checkout.

    Returns the harness's exit code.
    """
    if list(argv[:1]) in (["--help"], ["-h"]):
        print(HELP, flush=True)
    checkout = checkout_with_benchmarks()
    if checkout is None:
        print(
            "handprop: error: handprop bench needs the benchmarks/ folder of a source "
            "checkout; run it from the repository's root (or install the repository with "
            "pip install -e .)",
            file=sys.stderr,
        )
        return 2
    process = list(argv[:1]) == ["process"]
    harness = "benchmarks.process" if process else "benchmarks.step"
    options = list(argv[1:] if process else argv)
    sys.stdout.flush()
    import subprocess  # here: every other command starts without it

    return subprocess.run([sys.executable, "-m", harness, *options], cwd=checkout).returncode


def checkout_with_benchmarks() -> Path | None:
    """The repository root that holds benchmarks/step.py: the editable install's, or cwd."""
    installed_from = Path(__file__).resolve().parents[3]  # src/handprop/cli/bench.py -> root
    for root in (installed_from, Path.cwd()):
        if (root / "benchmarks" / "step.py").is_file():
            return root
    return None
