"""Measure one contender on one problem, in the current process: build it, take one step
and check its update, warm up, time. A peer that is missing or breaks gives a row that
says so instead of stopping the run."""

import time

from benchmarks.check import describe_check, weights_finite
from benchmarks.contender import Skipped
from benchmarks.environment import blas_info, describe_pool
from benchmarks.gemm_floor import GemmFloor
from benchmarks.problem import Array, Problem
from benchmarks.registry import CONTENDERS
from benchmarks.result import Result
from benchmarks.timing import Plan, Timing, measure


def _failure(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"failed: {type(error).__name__}: {text[0][:120] if text else ''}".rstrip(": ")


def _time_contender(
    key: str, problem: Problem, reference: list[Array], plan: Plan, result: Result
) -> None:
    contender = CONTENDERS[key][1](problem)
    result.note = contender.note
    start = time.perf_counter()
    contender.step()
    result.first_step_ms = (time.perf_counter() - start) * 1e3
    result.check = describe_check(contender, problem, reference)
    timing = measure(contender.step, plan, trace_memory=contender.numpy_memory)
    ms = [seconds * 1e3 for seconds in timing.seconds]
    result.repeats_ms, result.median_ms = ms, timing.median * 1e3
    result.min_ms, result.max_ms = min(ms), max(ms)
    result.steps_per_repeat, result.warmup_steps = timing.steps_per_repeat, timing.warmup_steps
    result.truncated_repeats = timing.truncated
    result.faults_per_step, result.other_cores = timing.faults_per_step, timing.other_cores
    if timing.temp_bytes is not None:
        result.temp_mib = timing.temp_bytes / 2**20
    if not weights_finite(contender):
        result.check += " (weights not finite after timing)"
    del contender  # free its memory before the floor's
    if plan.paired_floor and key != "gemm":
        floor = _floor_here(problem, plan)
        result.paired_floor_ms, result.paired_floor_other_cores = (
            floor.median * 1e3,
            floor.other_cores,
        )
    result.status = "ok"


def _floor_here(problem: Problem, plan: Plan) -> Timing:
    """The GEMM floor, timed in this process right after the contender: the reference for
    its x GEMMs, immune to what made this process or this minute faster or slower."""
    floor = GemmFloor(problem)
    short = Plan(repeats=3, repeat_s=plan.repeat_s / 2, warmup_s=0.05, warmup_steps=1)
    return measure(floor.step, short)


def measure_here(
    key: str, label: str, problem: Problem, reference: list[Array], plan: Plan
) -> Result:
    result = Result(problem.size.name, problem.dtype.name, key, label, status="")
    try:
        _time_contender(key, problem, reference, plan, result)
    except Skipped as skipped:
        result.status = f"skipped ({skipped})"
    except Exception as error:  # a peer that breaks is reported, not fatal
        result.status = _failure(error)
    result.pools = [describe_pool(pool) for pool in blas_info()]
    return result
