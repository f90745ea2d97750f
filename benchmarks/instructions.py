"""Instructions per training step, counted by valgrind's callgrind: a measure the machine's
noise does not move (one BLAS thread; the same binary, inputs and environment give the
same count).

    .venv/bin/python -m benchmarks.instructions                 # tutorial size, float64 and float32
    PYTHONPATH=OTHER_CHECKOUT/src .venv/bin/python -m benchmarks.instructions   # another revision

Each count is the whole process for 105 steps minus the whole process for 5 steps,
divided by 100: start-up cancels out. Needs valgrind (Debian: apt-get install valgrind).
"""

import argparse
import os
import re
import subprocess
import sys

STEPS = """
import sys
import handprop as hp
from handprop.warmup import WarmupConfig, make_problem
steps, dtype = int(sys.argv[1]), sys.argv[2]
run = make_problem(WarmupConfig(dtype=dtype))
loss_fn, optimizer = hp.SumSquaredError(), hp.SGD(run.model.parameters(), lr=1e-6)
for _ in range(steps):
    hp.train_step(run.model, loss_fn, optimizer, run.x, run.y)
"""


def instructions(steps: int, dtype: str) -> int:
    """Instructions of a whole process that runs ``steps`` training steps."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}  # the child's only: counts repeat
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += [sys.executable, "-c", STEPS, str(steps), dtype]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    match = re.search(r"I\s+refs:\s+([\d,]+)", result.stderr)
    if match is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{result.stderr[-2000:]}")
    return int(match.group(1).replace(",", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", default="float64,float32")
    args = parser.parse_args(argv)
    for dtype in args.dtypes.split(","):
        per_step = (instructions(105, dtype) - instructions(5, dtype)) / 100
        print(f"tutorial {dtype}: {per_step:,.0f} instructions per step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
