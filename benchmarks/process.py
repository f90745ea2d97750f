"""Whole-process timing: ``handprop warmup --quiet`` against the tutorial's script.

    .venv/bin/python -m benchmarks.process [--runs 7] [--json PATH] [--markdown PATH]

Each command runs as its own process with stdout to /dev/null (the tutorial prints its
500 lines there; handprop prints nothing). Commands run round-robin, after one untimed
run of each; reported: the median, min and max wall time of --runs runs, and the ratio of
medians. Three floors show what a run pays before any step: the interpreter alone, the
interpreter importing numpy, and handprop's start-up (``--steps 0``). Before timing, both
programs run once with their output captured, and their 500 losses are compared.

Python caches compiled modules (``__pycache__``) unless PYTHONDONTWRITEBYTECODE is set,
as it is on some machines (this project's among them): every start then recompiles
handprop's sources, which a default install never does. The children run without that
variable unless --no-bytecode-cache; the report says which.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.environment import git_revision
from benchmarks.load import LoadMeter

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "process.json"


def commands() -> dict[str, list[str]]:
    script = Path(sys.executable).with_name("handprop")
    handprop = [str(script)] if script.exists() else [sys.executable, "-m", "handprop"]
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import numpy'": [sys.executable, "-c", "import numpy"],
        "handprop warmup --quiet --steps 0": [*handprop, "warmup", "--quiet", "--steps", "0"],
        "tutorial script": [sys.executable, str(HERE / "tutorial_warmup.py")],
        "handprop warmup --quiet": [*handprop, "warmup", "--quiet"],
    }


def child_environment(bytecode_cache: bool) -> dict[str, str]:
    env = dict(os.environ)
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_once(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True, env=env)
    return time.perf_counter() - start


def time_commands(
    named: dict[str, list[str]], runs: int, env: dict[str, str]
) -> dict[str, list[float]]:
    for command in named.values():
        run_once(command, env)  # warm the page cache and any bytecode caches
    seconds: dict[str, list[float]] = {name: [] for name in named}
    for _ in range(runs):
        for name, command in named.items():
            seconds[name].append(run_once(command, env))
    return seconds


def losses(command: list[str]) -> list[float]:
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return [float(line.split()[1]) for line in out.splitlines()]


def parity(named: dict[str, list[str]]) -> str:
    """The largest relative difference between the two programs' per-step losses."""
    loud = named["handprop warmup --quiet"][:-1]  # the same run, printing every step
    ours, theirs = losses(loud), losses(named["tutorial script"])
    if len(ours) != len(theirs):
        return f"different number of steps: {len(ours)} vs {len(theirs)}"
    worst = max(abs(a - b) / abs(b) for a, b in zip(ours, theirs, strict=True))
    return f"{len(ours)} losses, max relative difference {worst:.1e}"


def markdown(seconds: dict[str, list[float]], parity_line: str, other: float | None) -> str:
    lines = ["| process | median s | min s | max s |", "|---|---|---|---|"]
    for name, values in seconds.items():
        med = statistics.median(values)
        lines.append(f"| {name} | {med:.3f} | {min(values):.3f} | {max(values):.3f} |")
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    ours, theirs = medians["handprop warmup --quiet"], medians["tutorial script"]
    base = medians["python -c 'import numpy'"]
    net = (ours - base) / (theirs - base)
    other_text = "unknown" if other is None else f"{other:.2f}"
    lines += ["", f"handprop / tutorial (medians): {ours / theirs:.2f}"]
    lines += [f"the same, less the 'import numpy' process from each: {net:.2f}"]
    lines += [f"parity (printing runs): {parity_line}"]
    lines += [f"other CPU (cores busy outside these processes while timing): {other_text}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.process", description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each (default 7)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"default {DEFAULT_JSON}")
    parser.add_argument("--markdown", type=Path, help="also write the Markdown here")
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="keep PYTHONDONTWRITEBYTECODE for the children if it is set (recompile every start)",
    )
    args = parser.parse_args(argv)
    env = child_environment(bytecode_cache=not args.no_bytecode_cache)
    cache = "off" if "PYTHONDONTWRITEBYTECODE" in env else "on"
    named, revision = commands(), git_revision()
    parity_line = parity(named)
    meter = LoadMeter()
    meter.start()
    seconds = time_commands(named, args.runs, env)
    other = meter.other_cores()
    text = markdown(seconds, parity_line, other) + f"bytecode cache: {cache}\n"
    text += f"handprop git revision: {revision}\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    data = {"commands": named, "seconds": seconds, "parity": parity_line, "other_cores": other}
    data["git"], data["bytecode_cache"] = revision, cache
    args.json.write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
