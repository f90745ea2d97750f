"""How fast ``load_dataset`` reads a numeric CSV of 20,000 rows x 50 columns, and its peak
memory, beside pandas.read_csv (if installed). A script, not a test: run it and read.

    .venv/bin/python benchmarks/read_csv.py [--rows 20000] [--columns 50] [--repeat 3]

Peak memory is what tracemalloc sees (numpy's arrays and Python's objects), in multiples
of the file's size.
"""

import argparse
import os
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from handprop.data import load_dataset


def write_csv(path: str, rows: int, columns: int) -> None:
    values = np.random.default_rng(0).standard_normal((rows, columns))
    header = ",".join(f"c{j}" for j in range(columns))
    np.savetxt(path, values, delimiter=",", header=header, comments="", fmt="%.10g")


def measure(read: Callable[[], Any], repeat: int) -> tuple[float, int]:
    """(best seconds of ``repeat`` reads, peak bytes allocated by one read)."""
    best = min(_timed(read) for _ in range(repeat))
    tracemalloc.start()
    read()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return best, peak


def _timed(read: Callable[[], Any]) -> float:
    start = time.perf_counter()
    read()
    return time.perf_counter() - start


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
        readers: dict[str, Callable[[], Any]] = {
            "handprop load_dataset": lambda: load_dataset(path)
        }
        try:
            import pandas

            readers["pandas.read_csv"] = lambda: pandas.read_csv(path)
        except ImportError:
            pass
        print(f"{args.rows} x {args.columns} CSV, {size / 2**20:.1f} MiB")
        for name, read in readers.items():
            seconds, peak = measure(read, args.repeat)
            print(f"{name:24} {seconds:7.3f} s   peak {peak / size:5.1f}x the file")


if __name__ == "__main__":
    main()
