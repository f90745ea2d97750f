"""Time one training step of the tutorial's network: handprop against its peers and the GEMM floor.

    .venv/bin/python -m benchmarks.step                 # every size, float64 and float32
    .venv/bin/python -m benchmarks.step --quick         # tutorial size, few repeats
    .venv/bin/python -m benchmarks.step --sizes tutorial,deep --only gemm,tutorial,handprop

Every contender runs in a fresh process of its own on the same saved arrays (see
isolation.py), unless --in-process. Progress goes to stderr; the Markdown table to stdout
(and --markdown), all numbers to --json.
"""

import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from benchmarks.check import reference_updates
from benchmarks.environment import environment, git_revision
from benchmarks.isolation import measure_in_child, save_group
from benchmarks.load import NOISY_CORES, Patience
from benchmarks.measure_one import measure_here
from benchmarks.options import build_parser, settings_from
from benchmarks.problem import SIZES, Array, Problem, make_problem
from benchmarks.registry import CONTENDERS
from benchmarks.report import markdown, write_json
from benchmarks.result import Result, add_ratios
from benchmarks.timing import Plan


@dataclass(frozen=True)
class Group:
    """One size and dtype: the shared problem, the reference update and how to time."""

    problem: Problem
    reference: list[Array]
    plan: Plan
    settings: dict[str, Any]
    patience: Patience  # shared by the whole run
    folder: Path | None  # where the problem is saved for child processes; None: in-process


def run_contender(key: str, label: str, group: Group) -> Result:
    # let the previous contender's threads go idle, and any neighbour finish
    group.patience.wait_for_quiet(group.settings["settle_seconds"])
    if group.folder is None:
        result = measure_here(key, label, group.problem, group.reference, group.plan)
    else:
        threads = group.settings["threads"]
        result = measure_in_child(group.folder, key, label, group.plan, threads)
    median, other = result.median_ms or math.nan, result.other_cores or 0.0
    line = f"  {label:28s} {median:10.4g} ms  other CPU {other:4.2f}  {result.status}"
    print(line, file=sys.stderr)
    return result


def disturbed(result: Result) -> bool:
    return result.other_cores is not None and result.other_cores > NOISY_CORES


def run_patiently(key: str, label: str, group: Group) -> Result:
    """Run a contender; if other processes disturbed it, run it again while patience lasts
    and keep the less disturbed of the two."""
    result = run_contender(key, label, group)
    if disturbed(result) and group.patience.seconds_left > 0:
        start = time.perf_counter()
        again = run_contender(key, label, group)
        group.patience.spend(time.perf_counter() - start)
        again.attempts = 2
        if (again.other_cores or 0.0) < (result.other_cores or 0.0):
            result = again
    return result


def run_group(group: Group) -> list[Result]:
    """Every contender in turn; the floor runs first and again last, to show drift."""
    size, keys = group.problem.size, group.settings["contenders"]
    print(f"{size.name} {group.problem.dtype.name}: {size.describe()}", file=sys.stderr)
    results = [run_patiently(key, CONTENDERS[key][0], group) for key in keys]
    if "gemm" in keys and len(keys) > 1:
        results.append(run_patiently("gemm", "GEMMs alone (rerun last)", group))
    add_ratios(results, size.gemm_flops())
    return results


def measure_group(
    name: str, dtype: str, settings: dict[str, Any], patience: Patience
) -> list[Result]:
    size = SIZES[name]
    problem = make_problem(size, dtype, settings["seed"])
    reference = reference_updates(problem)
    plan = Plan(
        repeats=settings["repeats"] or size.repeats,
        repeat_s=settings["repeat_seconds"],
        warmup_s=settings["warmup_seconds"],
        warmup_steps=size.warmup_steps,
        paired_floor=size.paired_floor,
    )
    if not settings["isolated"]:
        return run_group(Group(problem, reference, plan, settings, patience, None))
    with tempfile.TemporaryDirectory(prefix="handprop-bench-") as folder:
        save_group(Path(folder), problem, reference)
        return run_group(Group(problem, reference, plan, settings, patience, Path(folder)))


def main(argv: list[str] | None = None) -> int:
    args = build_parser(__doc__).parse_args(argv)
    settings = settings_from(args)
    load_start, revision, start = list(os.getloadavg()), git_revision(), time.perf_counter()
    results: list[Result] = []
    patience = Patience(settings["patience_seconds"])
    with threadpool_limits(limits=args.threads):  # None: leave every pool as it is
        for name in settings["sizes"]:
            for dtype in settings["dtypes"]:
                results += measure_group(name, dtype, settings, patience)
    env = environment() | {"loadavg_start": load_start, "git": revision}
    env["run_seconds"] = round(time.perf_counter() - start, 1)
    text = markdown(results, env, settings)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    write_json(args.json, results, env, settings)
    print(f"JSON written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
