"""Peak memory of training on, and converting, data larger than memory.

    .venv/bin/python -m benchmarks.memory --gb 2              # a 2 GB .npy and a 2 GB CSV
    .venv/bin/python -m benchmarks.memory --gb 0.5 --no-convert --dir /tmp

Writes a float64 .npy of about GB gigabytes (COLUMNS columns: features, then a target
that depends on them) and a CSV file of about GB gigabytes, and measures, in a fresh
process each, the peak resident memory (ru_maxrss, which counts the file's pages a
memory map holds) of ``handprop train --data big.npy --epochs 1`` and of
``handprop convert big.csv``. The files are written by other processes: a child's
ru_maxrss starts from its parent's peak when the parent forks it (Linux copies the
high-water mark with the address space), so this process must never hold the data.
Nothing here is a timed test; the files are removed afterwards.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

COLUMNS = 64
CHUNK_ROWS = 2**16


def write_npy(path: Path, rows: int) -> None:
    """Rows of standard normal features and a target 2 * x0 - x1 + noise, a chunk at a time."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(rows, COLUMNS))
    rng = np.random.default_rng(0)
    for start in range(0, rows, CHUNK_ROWS):
        block = rng.standard_normal((min(CHUNK_ROWS, rows - start), COLUMNS))
        block[:, -1] = 2 * block[:, 0] - block[:, 1] + 0.1 * block[:, -1]
        array[start : start + len(block)] = block
    array.flush()
    del array


def write_csv(path: Path, gigabytes: float) -> None:
    """About ``gigabytes`` of CSV: COLUMNS columns of 8 significant digits, a chunk at a time."""
    names = [f"x{j}" for j in range(COLUMNS - 1)] + ["y"]
    rng = np.random.default_rng(0)
    with open(path, "w", encoding="utf-8") as file:
        file.write(",".join(names) + "\n")
        while file.tell() < gigabytes * 2**30:
            block = rng.standard_normal((CHUNK_ROWS // 8, COLUMNS))
            block[:, -1] = 2 * block[:, 0] - block[:, 1] + 0.1 * block[:, -1]
            np.savetxt(file, block, delimiter=",", fmt="%.8g")


def in_child(call: str) -> None:
    """Run ``call`` (Python, after ``from benchmarks.memory import *``) in another process."""
    code = f"from pathlib import Path; from benchmarks.memory import *; {call}"
    subprocess.run([sys.executable, "-c", code], check=True)


def peak(argv: list[str]) -> tuple[float, float]:
    """(peak resident MB, seconds) of ``python -m handprop argv`` in a fresh process."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "handprop", *argv])
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"handprop {' '.join(argv)} failed")
    return usage.ru_maxrss / 1024, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=2.0, help="size of each file; default 2")
    parser.add_argument("--dir", default=None, help="where to write them; default: a temp dir")
    parser.add_argument("--no-convert", action="store_true", help="skip the CSV conversion")
    args = parser.parse_args()
    rows = int(args.gb * 2**30 / (COLUMNS * 8))
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        npy = Path(folder) / "big.npy"
        in_child(f"write_npy(Path({str(npy)!r}), {rows})")
        size = npy.stat().st_size / 2**30
        print(f"{npy.name}: {rows} rows x {COLUMNS} float64 columns, {size:.2f} GiB")
        train = ["train", "--data", str(npy), "--epochs", "1", "--batch-size", "512"]
        train += ["--hidden", "64", "--patience", "0", "--quiet", "--out", f"{folder}/m.st"]
        mb, seconds = peak(train)
        print(f"train, one epoch: peak RSS {mb:.0f} MB, {seconds:.0f} s")
        if args.no_convert:
            return
        npy.unlink()
        csv = Path(folder) / "big.csv"
        in_child(f"write_csv(Path({str(csv)!r}), {args.gb})")
        size = csv.stat().st_size / 2**30
        mb, seconds = peak(["convert", str(csv), str(Path(folder) / "converted.npy")])
        print(f"convert a {size:.2f} GiB CSV: peak RSS {mb:.0f} MB, {seconds:.0f} s")


if __name__ == "__main__":
    main()
