"""Warm-up, then repeats of K steps each; also page faults and numpy's temporary memory per step.

The first warm-up step can run under tracemalloc (cheap: a step makes few allocations)
to measure its temporary memory. Each repeat is the wall time of K back-to-back steps
divided by K, with the garbage collector off (as ``timeit`` does). K is chosen from the
warm-up so that a repeat takes about ``repeat_s`` seconds (at least one step).
"""

import gc
import resource
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks.load import LoadMeter


@dataclass(frozen=True)
class Plan:
    repeats: int
    repeat_s: float = 0.2  # target duration of one repeat
    warmup_s: float = 0.2  # warm up for at least this long ...
    warmup_steps: int = 2  # ... and at least this many steps
    paired_floor: bool = False  # also time the GEMM floor right after each contender


@dataclass
class Timing:
    seconds: list[float]  # per step, one entry per repeat
    steps_per_repeat: int
    warmup_steps: int
    faults_per_step: float  # minor page faults (getrusage), over the timed steps
    other_cores: float | None  # CPU used outside this process during the repeats (load.py)
    truncated: int  # repeats stopped before K steps because they ran 5x too long
    temp_bytes: int | None = None  # peak numpy/Python memory above the start, one warm-up step
    median: float = field(init=False)

    def __post_init__(self) -> None:
        self.median = statistics.median(self.seconds)


def warm_up(
    step: Callable[[], float], plan: Plan, trace_memory: bool
) -> tuple[list[float], int | None]:
    """Untimed steps: their durations, and the traced temporary bytes of the first of them."""
    durations: list[float] = []
    temp = None
    if trace_memory:
        start = time.perf_counter()
        temp = temp_bytes(step)
        durations.append(time.perf_counter() - start)
    while len(durations) < plan.warmup_steps or sum(durations) < plan.warmup_s:
        start = time.perf_counter()
        step()
        durations.append(time.perf_counter() - start)
    return durations, temp


def timed_repeat(step: Callable[[], float], k: int, limit_s: float) -> tuple[float, int]:
    """Seconds per step over K steps, and the steps run: fewer than K once past ``limit_s``,
    so that a neighbour's load arriving after calibration cannot stretch the run unbounded."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for done in range(1, k + 1):
            step()
            elapsed = time.perf_counter() - start
            if elapsed > limit_s and done < k:
                return elapsed / done, done
        return elapsed / k, k
    finally:
        gc.enable()


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def measure(step: Callable[[], float], plan: Plan, trace_memory: bool = False) -> Timing:
    """Warm up (tracing the first warm-up step's memory if asked), then time the repeats."""
    durations, temp = warm_up(step, plan, trace_memory)
    per_step = statistics.median(durations[1:] or durations)
    k = max(1, round(plan.repeat_s / max(per_step, 1e-9)))
    meter = LoadMeter()
    meter.start()
    faults_before = minor_faults()
    repeats = [timed_repeat(step, k, 5 * plan.repeat_s) for _ in range(plan.repeats)]
    steps = [done for _, done in repeats]
    faults = (minor_faults() - faults_before) / sum(steps)
    seconds = [seconds for seconds, _ in repeats]
    truncated = sum(done < k for done in steps)
    return Timing(seconds, k, len(durations), faults, meter.other_cores(), truncated, temp)


def temp_bytes(step: Callable[[], float]) -> int:
    """Peak memory traced during one step above what was live before it (numpy's data
    allocations are traced, as are Python objects); run after the first step."""
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return max(0, peak - before)
