"""The command line of ``python -m benchmarks.step`` and the settings it resolves to."""

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.problem import SIZES
from benchmarks.registry import CONTENDERS, DEFAULT

DEFAULT_JSON = Path(__file__).parent / "results" / "latest.json"


def _names(valid: list[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in valid]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(valid)}")
        return names

    return parse


def build_parser(description: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.step",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--sizes", type=_names(list(SIZES)), help=f"comma-separated: {', '.join(SIZES)}")
    add("--dtypes", type=_names(["float64", "float32"]), default=["float64", "float32"])
    names = ", ".join(CONTENDERS)
    add("--only", type=_names(list(CONTENDERS)), default=DEFAULT, help=f"some of: {names}")
    add("--repeats", type=int, help="timed repeats per contender (default: 7; 3 for large)")
    add("--repeat-seconds", type=float, default=0.2, help="target length of one repeat")
    add("--warmup-seconds", type=float, default=0.2, help="minimum warm-up per contender")
    add("--settle-seconds", type=float, default=0.25, help="pause before each contender")
    add(
        "--patience",
        type=float,
        help="seconds to spend waiting for quiet and re-running "
        "disturbed contenders, over the whole run (default: 180; 30 with --quick)",
    )
    add("--seed", type=int, default=0, help="RandomState seed for x, y and the weights")
    add("--json", type=Path, default=DEFAULT_JSON, help=f"default: {DEFAULT_JSON}")
    add("--markdown", type=Path, help="also write the Markdown report here")
    add("--quick", action="store_true", help="smoke run: tutorial size, 3 short repeats")
    add("--threads", type=int, help="limit BLAS/OpenMP pools (threadpoolctl) and torch to N")
    add(
        "--in-process",
        action="store_true",
        help="run every contender in this one process instead of one process each "
        "(faster to start; results then depend on the order, see benchmarks/README.md)",
    )
    return parser


def settings_from(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    return {
        "sizes": args.sizes or (["tutorial"] if quick else list(SIZES)),
        "dtypes": args.dtypes,
        "contenders": args.only,
        "repeats": args.repeats or (3 if quick else None),
        "repeat_seconds": 0.05 if quick else args.repeat_seconds,
        "warmup_seconds": 0.05 if quick else args.warmup_seconds,
        "settle_seconds": 0.1 if quick else args.settle_seconds,
        "patience_seconds": args.patience if args.patience is not None else (30 if quick else 180),
        "seed": args.seed,
        "threads": args.threads,
        "isolated": not args.in_process,
    }
