"""The "small" size: where Python dispatch, not arithmetic, is the step.

    .venv/bin/python -m benchmarks.small                # float64, one BLAS thread
    .venv/bin/python -m benchmarks.small --dtype float32 --repeats 9
    .venv/bin/python -m benchmarks.small --instructions   # callgrind: instructions per step
    .venv/bin/python -m benchmarks.small --instructions --epoch   # ... and per fit epoch

Batch 32 through 64 -> 100 -> 10 with biases, ReLU, SoftmaxCrossEntropy and Adam
(~1.4 MFLOP a step, ~10 us of arithmetic), the size tabular models train at. Rows, all
in this one process with one BLAS thread (``threadpool_limits(1)``):

- ``eager step``: ``train_step`` on one batch, again and again;
- ``captured step``: ``capture_step``'s replay of the same step (``handprop.training.capture``);
- ``fit epoch``: an epoch of ``fit`` over 1,347 samples (digits' training split: 42 full
  batches and one of 3), its training scores included (a fit of 10 epochs / 10; by
  default the scores of the steps' own predictions and losses, training/scores.py);
  ``sum of its steps``: the same 43 batches, already gathered, through the step alone;
  the ratio is what ``fit`` adds. ``fit epoch, full scores``: the same with
  ``train_scores="full"``, which scores the training set again at each epoch's end;
  ``scores alone``: that scoring by itself (one forward over all 1,347 rows, about a
  third of the epoch's products). Once eager (``FitOptions(capture=False)``), once
  captured (one tape for the full batches, one for the last).

Each figure is the median of ``--repeats`` repeats (``--best``: the fastest, the least
disturbed on a busy machine), each lasting about 0.2 s; the garbage collector is off
while timing. The epoch, its steps and its scores are timed in turn within each repeat,
and the ratios printed are the medians of the repeats' own ratios (figures timed a
minute apart on a shared machine can differ by 30%). ``--clock cpu`` times this thread's
CPU time instead of the wall's (one BLAS thread runs in this thread): steadier while
other processes share the cores. The machine is noisy: compare ratios from one run, or
count instructions (``--instructions``; ``--epoch`` adds the epoch's three rows, captured).
"""

import argparse
import gc
import math
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

import handprop as hp
from handprop.training import FitOptions, evaluate, fit

N, WIDTHS, SAMPLES, CLASSES, EPOCHS = 32, (64, 100, 10), 1347, 10, 10
CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}


def make_model(dtype: str, seed: int = 0) -> hp.Sequential:
    d_in, hidden, d_out = WIDTHS
    return hp.Sequential(
        hp.Linear(d_in, hidden, rng=seed, dtype=dtype),
        hp.ReLU(),
        hp.Linear(hidden, d_out, rng=seed + 1, dtype=dtype),
    )


def make_data(dtype: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((SAMPLES, WIDTHS[0])).astype(dtype)
    return x, rng.integers(0, CLASSES, SAMPLES)


@dataclass(frozen=True)
class Timer:
    """How to time: ``repeats`` repeats of ~``repeat_s`` each, on ``clock``; median or best."""

    repeats: int
    clock: Callable[[], float] = time.perf_counter
    best: bool = False  # the fastest repeat instead of the median
    repeat_s: float = 0.2

    def seconds_per_call(self, call: Callable[[], Any]) -> float:
        """Over the repeats, the mean time of K back-to-back calls (K: ~repeat_s)."""
        return self.summary(self.interleaved({"call": call})["call"])

    def interleaved(self, calls: dict[str, Callable[[], Any]]) -> dict[str, list[float]]:
        """Per repeat, each call for ~``repeat_s`` in turn: seconds per call, repeat by repeat.

        Calls timed back to back see the machine in the same state, so their ratio within a
        repeat is steadier than the ratio of figures timed minutes apart."""
        counts = {name: self._calls_in_repeat(call) for name, call in calls.items()}
        times: dict[str, list[float]] = {name: [] for name in calls}
        gc.collect()
        gc.disable()
        try:
            for _ in range(self.repeats):
                for name, call in calls.items():
                    start = self.clock()
                    for _ in range(counts[name]):
                        call()
                    times[name].append((self.clock() - start) / counts[name])
        finally:
            gc.enable()
        return times

    def summary(self, times: list[float]) -> float:
        return min(times) if self.best else statistics.median(times)

    def _calls_in_repeat(self, call: Callable[[], Any]) -> int:
        clock, start, warm = self.clock, self.clock(), 0
        while warm < 3 or clock() - start < 0.1:
            call()
            warm += 1
        return max(1, round(self.repeat_s / ((clock() - start) / warm)))


def trainer(dtype: str) -> tuple[hp.Sequential, hp.SoftmaxCrossEntropy, hp.Adam]:
    model = make_model(dtype)
    return model, hp.SoftmaxCrossEntropy(), hp.Adam(model.parameters(), lr=1e-3)


def step_rows(dtype: str, timer: Timer) -> dict[str, float]:
    x, y = make_data(dtype)
    xb, yb = x[:N].copy(), y[:N].copy()
    model, loss_fn, optimizer = trainer(dtype)
    rows = {
        "eager step": timer.seconds_per_call(
            lambda: hp.train_step(model, loss_fn, optimizer, xb, yb)
        )
    }
    capture = _capture_step()
    if capture is not None:
        model, loss_fn, optimizer = trainer(dtype)
        step = capture(model, loss_fn, optimizer, xb.shape, yb.shape)
        rows["captured step"] = timer.seconds_per_call(lambda: step(xb, yb))
    return rows


def epoch_rows(
    dtype: str, timer: Timer, captured: bool
) -> tuple[dict[str, float], tuple[float, float]]:
    """One epoch of ``fit`` against the sum of its steps, each alone, timed in turn in every
    repeat; and the median over the repeats of epoch / steps, and of (epoch - scores) / steps.
    """
    x, y = make_data(dtype)
    options: dict[str, Any] = {}
    if _capture_step() is not None:
        options["options"] = FitOptions(capture=captured)
    elif captured:
        return {}, (math.nan, math.nan)
    model, loss_fn, optimizer = trainer(dtype)
    rng = np.random.default_rng(0)

    def epochs() -> None:  # fit's set-up (and capture) shared by EPOCHS epochs
        fit(model, loss_fn, optimizer, (x, y), epochs=EPOCHS, batch_size=N, rng=rng, **options)

    full: dict[str, Any] = {}
    if "train_scores" in FitOptions.__dataclass_fields__:  # a revision before: always full
        full["options"] = FitOptions(capture=captured, train_scores="full")

    def full_epochs() -> None:
        fit(model, loss_fn, optimizer, (x, y), epochs=EPOCHS, batch_size=N, rng=rng, **full)

    step, batches = _steps(captured, x, y), _batches(x, y)

    def steps() -> None:
        for xb, yb in batches:
            step(xb, yb)

    def scores() -> None:  # what fit computes at each epoch's end besides the steps
        model.eval()
        evaluate(model, loss_fn, x, y, loss_fn.metric)
        model.train()

    name = "captured" if captured else "eager"
    calls = {"scores": scores, "epoch": epochs, "full": full_epochs, "steps": steps}
    times = timer.interleaved(calls)
    for kind in ("epoch", "full"):
        times[kind] = [seconds / EPOCHS for seconds in times[kind]]
    rows = {
        "scores alone (an epoch's end)": timer.summary(times["scores"]),
        f"fit epoch ({name})": timer.summary(times["epoch"]),
        f"fit epoch, full scores ({name})": timer.summary(times["full"]),
        f"sum of its steps ({name})": timer.summary(times["steps"]),
    }
    ratio = statistics.median(e / s for e, s in zip(times["epoch"], times["steps"], strict=True))
    full_ratio = statistics.median(
        e / s for e, s in zip(times["full"], times["steps"], strict=True)
    )
    return rows, (ratio, full_ratio)


def _batches(x: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first epoch's batches of ``fit`` with ``rng=np.random.default_rng(0)``."""
    order = np.random.default_rng(0).permutation(len(x))
    return [(x[part], y[part]) for part in (order[i : i + N] for i in range(0, len(x), N))]


def _steps(captured: bool, x: np.ndarray, y: np.ndarray) -> Callable[[Any, Any], Any]:
    """The step alone: ``train_step``, or (as ``fit`` does) one tape per batch size."""
    model, loss_fn, optimizer = trainer(str(x.dtype))
    capture = _capture_step()
    if not captured or capture is None:
        return lambda xb, yb: hp.train_step(model, loss_fn, optimizer, xb, yb)
    steps = {
        size: capture(model, loss_fn, optimizer, (size, *x.shape[1:]), (size,))
        for size in (N, SAMPLES % N)
    }
    return lambda xb, yb: steps[len(xb)](xb, yb)


STEPS = """
import sys
import numpy as np
import handprop as hp
from benchmarks.small import N, _capture_step, make_data, trainer
steps, kind, dtype = int(sys.argv[1]), sys.argv[2], sys.argv[3]
x, y = make_data(dtype)
xb, yb = x[:N].copy(), y[:N].copy()
model, loss_fn, optimizer = trainer(dtype)
step = lambda: hp.train_step(model, loss_fn, optimizer, xb, yb)
if kind == "captured":
    captured = _capture_step()(model, loss_fn, optimizer, xb.shape, yb.shape)
    step = lambda: captured(xb, yb)
for _ in range(steps):
    step()
"""


EPOCHS_SCRIPT = """
import sys
import numpy as np
from handprop.training import FitOptions, evaluate, fit
from benchmarks.small import N, _batches, _steps, make_data, trainer
epochs, kind, dtype = int(sys.argv[1]), sys.argv[2], sys.argv[3]
x, y = make_data(dtype)
model, loss_fn, optimizer = trainer(dtype)
if kind == "fit epoch":
    rng = np.random.default_rng(0)
    fit(model, loss_fn, optimizer, (x, y), epochs=epochs, batch_size=N, rng=rng)
elif kind == "sum of its steps":
    step, batches = _steps(True, x, y), _batches(x, y)
    for _ in range(epochs):
        for xb, yb in batches:
            step(xb, yb)
else:
    for _ in range(epochs):
        evaluate(model, loss_fn, x, y, loss_fn.metric)
"""
EPOCH_KINDS = ("fit epoch", "sum of its steps", "scores")


def instructions(kind: str, dtype: str) -> float:
    """Instructions per step under callgrind (105 steps less 5, / 100), one BLAS thread;
    for the ``EPOCH_KINDS`` (captured), per epoch (6 epochs less 1, / 5)."""
    epoch = kind in EPOCH_KINDS
    counts = []
    for repeats in (6, 1) if epoch else (105, 5):
        command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
        command += [sys.executable, "-c", EPOCHS_SCRIPT if epoch else STEPS]
        command += [str(repeats), kind, dtype]
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": _paths()}
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        match = re.search(r"I\s+refs:\s+([\d,]+)", result.stderr)
        if match is None:
            raise SystemExit(f"no instruction count in valgrind's output:\n{result.stderr[-2000:]}")
        counts.append(int(match.group(1).replace(",", "")))
    return (counts[0] - counts[1]) / (5 if epoch else 100)


def _paths() -> str:
    here = str(Path(__file__).resolve().parent.parent)
    return os.pathsep.join([here, *filter(None, [os.environ.get("PYTHONPATH")])])


def _capture_step() -> Callable[..., Any] | None:
    try:
        from handprop.training.capture import capture_step
    except ImportError:  # a revision before capture
        return None
    return capture_step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--clock", choices=list(CLOCKS), default="wall",
        help="wall time, or this thread's CPU time (steadier on a busy machine)",
    )  # fmt: skip
    parser.add_argument(
        "--instructions", action="store_true",
        help="count instructions per step under valgrind's callgrind instead of timing",
    )  # fmt: skip
    parser.add_argument(
        "--epoch", action="store_true",
        help="with --instructions: also an epoch of fit, its steps and its scores (captured)",
    )  # fmt: skip
    parser.add_argument(
        "--best", action="store_true",
        help="the fastest repeat, not the median: the least disturbed one on a busy machine",
    )  # fmt: skip
    args = parser.parse_args(argv)
    timer = Timer(args.repeats, CLOCKS[args.clock], args.best)
    if args.instructions:
        counts = {kind: instructions(kind, args.dtype) for kind in ("eager", "captured")}
        for kind, count in counts.items():
            print(f"small {args.dtype} {kind} step: {count:,.0f} instructions")
        print(f"captured / eager: {counts['captured'] / counts['eager']:.3f}")
        if args.epoch:
            epoch = {kind: instructions(kind, args.dtype) for kind in EPOCH_KINDS}
            for kind, count in epoch.items():
                print(f"small {args.dtype} {kind} (captured): {count:,.0f} instructions")
            steps = epoch["sum of its steps"]
            print(f"fit epoch / sum of its steps: {epoch['fit epoch'] / steps:.3f}"
                  f"  (scores alone / steps: {epoch['scores'] / steps:.3f})")  # fmt: skip
        return 0
    print(f"small {args.dtype}: N={N}, {' -> '.join(map(str, WIDTHS))}, biases, ReLU, "
          f"SoftmaxCrossEntropy, Adam; one BLAS thread; {args.clock} clock; "
          f"{'fastest' if args.best else 'median'} of {args.repeats} repeats")  # fmt: skip
    ratios = {}
    with threadpool_limits(limits=1):
        rows = step_rows(args.dtype, timer)
        for captured in (False, True):
            epoch, ratios["captured" if captured else "eager"] = epoch_rows(
                args.dtype, timer, captured
            )
            rows |= epoch
    for name, seconds in rows.items():
        print(f"  {name:28s} {seconds * 1e6:10.1f} us")
    for name, (ratio, full) in ratios.items():
        if math.isfinite(ratio):
            print(f"  fit epoch / sum of its steps ({name}): {ratio:.3f}"
                  f"  (full scores: {full:.3f}; medians of the repeats' ratios)")  # fmt: skip
    if "captured step" in rows:
        print(f"  eager / captured step: {rows['eager step'] / rows['captured step']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
