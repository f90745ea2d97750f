"""How much CPU other processes (and the hypervisor) took while we were timing.

On a small shared machine one busy neighbour ruins multithreaded BLAS timings (a
2-thread GEMM waits for its second thread to be scheduled). This measures it from
/proc/stat (all CPUs busy, steal included) minus this process's own CPU time.
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_seconds() -> float | None:
    """CPU seconds all CPUs spent not idle since boot, or None off Linux."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(field) for field in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS


def _own_seconds() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


@dataclass
class LoadMeter:
    """``start()``, run, then ``other_cores()``: average cores busy outside this process."""

    wall: float = 0.0
    busy: float | None = None
    own: float = 0.0

    def start(self) -> None:
        self.wall, self.busy, self.own = time.perf_counter(), _busy_seconds(), _own_seconds()

    def other_cores(self) -> float | None:
        busy, wall = _busy_seconds(), time.perf_counter() - self.wall
        if busy is None or self.busy is None or wall <= 0:
            return None
        other = (busy - self.busy) - (_own_seconds() - self.own)
        return max(0.0, other / wall)


NOISY_CORES = 0.25  # other processes' load above which a measurement counts as disturbed


@dataclass
class Patience:
    """Seconds the whole run may spend waiting for quiet and re-running disturbed contenders."""

    seconds_left: float

    def wait_for_quiet(self, settle_s: float) -> float | None:
        """Sleep ``settle_s``; while others keep the CPUs busy, sleep again, as long as
        patience lasts. Returns the other processes' load in the last slice."""
        while True:
            meter = LoadMeter()
            meter.start()
            time.sleep(settle_s)
            other = meter.other_cores()
            if other is None or other < NOISY_CORES or self.seconds_left <= 0:
                return other
            self.seconds_left -= settle_s

    def spend(self, seconds: float) -> None:
        self.seconds_left -= seconds
