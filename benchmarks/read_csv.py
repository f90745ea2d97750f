"""How fast ``load_dataset`` reads a numeric CSV of 20,000 rows x 50 columns, and the peak
resident memory it takes, beside handprop's own csv-module reader (pandas absent) and
pandas.read_csv. A script, not a test: run it and read.

    .venv/bin/python -m benchmarks.read_csv [--rows 20000] [--columns 50] [--repeat 3]

Each reader runs in a fresh process. There, after the imports, ``/proc/self/clear_refs``
resets the high-water mark of the resident set (VmHWM, which an ``exec`` starts afresh,
unlike ``ru_maxrss``, which keeps the parent's peak); one read follows, and the peak
resident memory it added (VmHWM minus the resident memory before it) is reported in
multiples of the file's size, beside the whole process's peak. The time is the best of
``--repeat`` reads in that process. Linux only.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

#: Each reader: the imports (outside the measure), then the read of ``path``.
READERS = {
    # pandas imported beforehand, as pandas.read_csv's is: its read, not its import, is measured
    "handprop load_dataset": (
        "import pandas\nfrom handprop.data import load_dataset",
        "load_dataset(path)",
    ),
    "handprop, csv module (no pandas)": (
        "import sys; sys.modules['pandas'] = None\nfrom handprop.data import load_dataset",
        "load_dataset(path)",
    ),
    "pandas.read_csv": ("import pandas", "pandas.read_csv(path)"),
}

CHILD = """
import json, sys, time
{imports}
path, repeat = sys.argv[1], int(sys.argv[2])

def status(key):
    with open("/proc/self/status") as file:
        return next(int(line.split()[1]) * 1024 for line in file if line.startswith(key + ":"))

before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as file:
    file.write("5")  # the high-water mark starts again from the resident set now
result = {read}
peak = status("VmHWM")
del result
best = float("inf")
for _ in range(repeat):
    start = time.perf_counter()
    {read}
    best = min(best, time.perf_counter() - start)
print(json.dumps({{"seconds": best, "added": peak - before, "peak": peak}}))
"""


def write_csv(path: str, rows: int, columns: int) -> None:
    values = np.random.default_rng(0).standard_normal((rows, columns))
    header = ",".join(f"c{j}" for j in range(columns))
    np.savetxt(path, values, delimiter=",", header=header, comments="", fmt="%.10g")


def measure(name: str, path: str, repeat: int) -> dict[str, float] | None:
    """The reader's best seconds and peak memory, from a fresh process; None if it cannot run."""
    imports, read = READERS[name]
    code = CHILD.format(imports=imports, read=read)
    done = subprocess.run(
        [sys.executable, "-c", code, path, str(repeat)], capture_output=True, text=True
    )
    if done.returncode != 0:
        print(f"{name}: could not run ({done.stderr.strip().splitlines()[-1]})")
        return None
    found: dict[str, float] = json.loads(done.stdout)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--columns", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "numbers.csv")
        write_csv(path, args.rows, args.columns)
        size = os.path.getsize(path)
        print(f"{args.rows} x {args.columns} CSV, {size / 2**20:.1f} MiB")
        results = {name: measure(name, path, args.repeat) for name in READERS}
    for name, found in results.items():
        if found is not None:
            added = found["added"] / size
            print(
                f"{name:34} {found['seconds']:7.3f} s   peak RSS added {added:5.1f}x the file   "
                f"(process peak {found['peak'] / 2**20:6.1f} MiB)"
            )
    fast, slow = results["handprop load_dataset"], results["handprop, csv module (no pandas)"]
    if fast is not None and slow is not None:
        print(f"load_dataset is {slow['seconds'] / fast['seconds']:.1f}x as fast as the csv module")


if __name__ == "__main__":
    main()
