"""The run as a Markdown table (with the environment and notes) and as JSON."""

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.environment import describe_pool
from benchmarks.load import NOISY_CORES
from benchmarks.problem import SIZES
from benchmarks.result import Result, usable_paired_floor

HEADER = (
    "| size | dtype | contender | median ms | min ms | max ms | own floor ms | x GEMMs "
    "| x tutorial | GFLOP/s | K x reps | faults/step | temp MiB | other CPU | check |"
)


def _number(value: float | None, digits: str = ".4g") -> str:
    return "-" if value is None else format(value, digits)


def table_row(r: Result) -> str:
    if r.status != "ok":
        cells = [r.size, r.dtype, r.label, r.status] + ["-"] * 11
        return "| " + " | ".join(cells) + " |"
    cells = [
        r.size,
        r.dtype,
        r.label,
        _number(r.median_ms),
        _number(r.min_ms),
        _number(r.max_ms),
        _number(r.paired_floor_ms)
        + ("" if usable_paired_floor(r) or not r.paired_floor_ms else "*"),
        _number(r.vs_gemm, ".2f"),
        _number(r.vs_tutorial, ".2f"),
        _number(r.gflops, ".1f"),
        f"{r.steps_per_repeat} x {len(r.repeats_ms or [])}" + ("*" if r.truncated_repeats else ""),
        _number(r.faults_per_step, ".0f"),
        _number(r.temp_mib, ".2f"),
        _number(r.other_cores, ".2f") + (" (2nd run)" if r.attempts > 1 else ""),
        r.check,
    ]
    return "| " + " | ".join(cells) + " |"


def environment_lines(env: dict[str, Any]) -> list[str]:
    versions = ", ".join(f"{name} {version}" for name, version in env["versions"].items())
    lines = [f"- CPU: {env['cpu']}", f"- platform: {env['platform']}", f"- versions: {versions}"]
    lines += [f"- {describe_pool(pool)}" for pool in env["blas"]]
    lines.append(f"- environment variables: {env['env'] or 'none of OPENBLAS_/OMP_/MKL_...'}")
    lines.append(f"- handprop git revision: {env['git']}")
    start, end = ([round(load, 2) for load in env[key]] for key in ("loadavg_start", "loadavg"))
    lines.append(f"- load average at start / end: {start} / {end}")
    lines.append(f"- the run took {env['run_seconds']} s")
    return lines


COLUMNS = (
    "- columns: median/min/max of the repeats, each the time of K steps / K; own floor: the"
    " GEMM floor timed again in the contender's process right after it (not for large;"
    " * = disturbed by other processes, not used);"
    " x GEMMs: median / own floor (else / the faster of the group's two floor rows);"
    " x tutorial: x GEMMs / the tutorial loop's x GEMMs (else ratio of medians); GFLOP/s:"
    " the floor's FLOPs / median; faults/step: minor"
    " page faults; temp MiB: peak memory above the start of one step (tracemalloc: numpy and"
    " Python objects, so numpy-based contenders only); other CPU: cores busy outside this"
    " process while timing (should be ~0; a disturbed contender is run again, within"
    " --patience, and the less disturbed run kept: '2nd run'); K x reps*: some repeats were"
    " cut short (over 5x the target time, i.e. disturbed); check: relative error (Frobenius)"
    " of the first weight update against a float64 tutorial step"
)


def notes(results: list[Result]) -> list[str]:
    lines = [COLUMNS] + [f"- {size.name}: {size.describe()}" for size in SIZES.values()]
    noisy = [r for r in results if r.other_cores is not None and r.other_cores > NOISY_CORES]
    if noisy:
        worst = max(r.other_cores or 0.0 for r in noisy)
        lines.append(
            f"- WARNING: other processes took up to {worst:.2f} cores during {len(noisy)} rows;"
            " with 2-thread BLAS those timings are unreliable: rerun on a quiet machine"
        )
    seen: dict[str, str] = {}
    for r in results:
        seen.setdefault(r.label, r.note)
    lines += [f"- {label}: {note}" for label, note in seen.items() if note]
    return lines


def pool_lines(results: list[Result], env: dict[str, Any]) -> list[str]:
    """The thread pools each contender's process had loaded, beyond those listed above."""
    known = {describe_pool(pool) for pool in env["blas"]}
    extra: dict[str, list[str]] = {}
    for r in results:
        for pool in r.pools or []:
            if pool not in known and r.label not in extra.get(pool, []):
                extra.setdefault(pool, []).append(r.label)
    return [f"- {pool}: loaded by {', '.join(labels)}" for pool, labels in extra.items()]


def markdown(results: list[Result], env: dict[str, Any], settings: dict[str, Any]) -> str:
    separator = "|" + "---|" * HEADER.count(" | ") + "---|"
    parts = ["## One training step", "", HEADER, separator]
    parts += [table_row(r) for r in results]
    parts += ["", "Notes:", *notes(results), f"- settings: {settings}", ""]
    parts += ["Environment:", *environment_lines(env), *pool_lines(results, env), ""]
    return "\n".join(parts)


def write_json(path: Path, results: list[Result], env: dict[str, Any], settings: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"environment": env, "settings": settings, "results": [asdict(r) for r in results]}
    path.write_text(json.dumps(data, indent=1) + "\n")
