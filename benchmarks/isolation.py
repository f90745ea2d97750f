"""Each contender in a process of its own, on the same data.

Why: a process remembers what ran in it. glibc's malloc raises its mmap and trim
thresholds after large frees, so a function-form tutorial step took 1.2 ms with 358 page
faults alone, and 0.46 ms with none after handprop had run in the same process; thread
pools (OpenBLAS, OpenMP, XLA) and JIT caches linger too. So the parent draws the problem
once, saves it (and the reference update) as .npy files, and runs
``python -m benchmarks.child`` for every contender, which loads the very same arrays.
"""

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from benchmarks.problem import SIZES, Array, Problem
from benchmarks.result import Result
from benchmarks.timing import Plan

ROOT = Path(__file__).resolve().parent.parent
CHILD_TIMEOUT_S = 1800


def save_group(folder: Path, problem: Problem, reference: list[Array]) -> None:
    meta = {"size": problem.size.name, "dtype": problem.dtype.name, "lr": problem.lr}
    (folder / "meta.json").write_text(json.dumps(meta))
    np.save(folder / "x.npy", problem.x)
    np.save(folder / "y.npy", problem.y)
    for index, (w, update) in enumerate(zip(problem.weights, reference, strict=True)):
        np.save(folder / f"w{index}.npy", w)
        np.save(folder / f"reference{index}.npy", update)


def load_group(folder: Path) -> tuple[Problem, list[Array]]:
    meta = json.loads((folder / "meta.json").read_text())
    size = SIZES[meta["size"]]
    layers = len(size.widths) - 1
    x, y = np.load(folder / "x.npy"), np.load(folder / "y.npy")
    weights = tuple(np.load(folder / f"w{index}.npy") for index in range(layers))
    reference = [np.load(folder / f"reference{index}.npy") for index in range(layers)]
    for array in (x, y, *weights):
        array.flags.writeable = False
    return Problem(size, x.dtype, x, y, weights, meta["lr"]), reference


def measure_in_child(folder: Path, key: str, label: str, plan: Plan, threads: int | None) -> Result:
    """Run the contender in ``python -m benchmarks.child`` and read back its row."""
    out = folder / f"result-{key}.json"
    out.unlink(missing_ok=True)
    command = [sys.executable, "-m", "benchmarks.child", str(folder), key, label]
    command += ["--plan", json.dumps(asdict(plan)), "--out", str(out)]
    if threads is not None:
        command += ["--threads", str(threads)]
    meta = json.loads((folder / "meta.json").read_text())
    try:
        finished = subprocess.run(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, timeout=CHILD_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return Result(meta["size"], meta["dtype"], key, label, f"failed: over {CHILD_TIMEOUT_S} s")
    if finished.returncode != 0 or not out.exists():
        status = f"failed: child process exited with code {finished.returncode}"
        return Result(meta["size"], meta["dtype"], key, label, status)
    return Result(**json.loads(out.read_text()))
