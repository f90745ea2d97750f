"""One row of the benchmark: a contender on one size and dtype."""

from dataclasses import dataclass

from benchmarks.load import NOISY_CORES


@dataclass
class Result:
    size: str
    dtype: str
    key: str  # the --only name
    label: str
    status: str  # "ok", "skipped (...)" or "failed: ..."
    attempts: int = 1  # 2 when a disturbed run was repeated (the less disturbed one is kept)
    note: str = ""
    median_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    repeats_ms: list[float] | None = None
    steps_per_repeat: int | None = None
    truncated_repeats: int | None = None  # repeats cut short (ran > 5x the target)
    warmup_steps: int | None = None
    first_step_ms: float | None = None
    faults_per_step: float | None = None
    temp_mib: float | None = None
    other_cores: float | None = None  # CPU taken by other processes while timing
    check: str = ""
    paired_floor_ms: float | None = None  # the floor, timed in this contender's process
    paired_floor_other_cores: float | None = None  # other processes' load meanwhile
    vs_gemm: float | None = None
    vs_tutorial: float | None = None
    gflops: float | None = None  # the floor's FLOPs / this contender's median time
    pools: list[str] | None = None  # BLAS / OpenMP pools loaded in its process (threadpoolctl)


def usable_paired_floor(r: Result) -> float | None:
    """The paired floor, unless other processes disturbed its timing."""
    if (r.paired_floor_other_cores or 0.0) > NOISY_CORES:
        return None
    return r.paired_floor_ms


def add_ratios(group: list[Result], gemm_flops: int) -> None:
    """Ratios within one size and dtype.

    x GEMMs: median / the floor timed right after it in the same process where there is
    one (paired) and other processes left it alone, else / the faster of the group's two
    floor runs. x tutorial: the ratio of the two paired ratios where both exist, else of
    the medians.
    """
    done = [r for r in group if r.status == "ok" and r.median_ms]
    floor = min((r.median_ms or 0.0 for r in done if r.key == "gemm"), default=None)
    for r in done:
        r.gflops = gemm_flops / ((r.median_ms or 0.0) * 1e6)
        own_floor = usable_paired_floor(r) or floor
        r.vs_gemm = (r.median_ms or 0.0) / own_floor if own_floor else None
    tutorial = next((r for r in done if r.key == "tutorial"), None)
    for r in done if tutorial else []:
        assert tutorial is not None  # for the type checker
        paired = usable_paired_floor(r) and usable_paired_floor(tutorial)
        if paired and r.vs_gemm and tutorial.vs_gemm:
            r.vs_tutorial = r.vs_gemm / tutorial.vs_gemm
        else:
            r.vs_tutorial = (r.median_ms or 0.0) / (tutorial.median_ms or 1.0)
