"""Does a contender compute the tutorial's update? Compared after its first step."""

import numpy as np

from benchmarks.contender import Contender
from benchmarks.problem import Array, Problem
from benchmarks.tutorial_loop import TutorialLoop

# float32 is compared with a float64 reference: where h is within rounding of 0 the ReLU
# mask can differ, which moves a whole row of grad_w by a little (~1e-3 at the large size).
TOLERANCE = {"float64": 1e-8, "float32": 1e-2}


def reference_updates(problem: Problem) -> list[Array]:
    """w_after - w_before of one tutorial step, computed in float64 from the problem's arrays."""
    x, y = problem.x.astype(np.float64), problem.y.astype(np.float64)
    ws = [w.astype(np.float64) for w in problem.weights]
    TutorialLoop(x, y, ws, problem.lr, per_layer=True).step()
    return [after - before for after, before in zip(ws, problem.weights, strict=True)]


def update_error(weights: list[Array], problem: Problem, reference: list[Array]) -> float:
    """||update - reference|| / ||reference|| (Frobenius), the worst over the layers."""
    worst = 0.0
    for after, before, expected in zip(weights, problem.weights, reference, strict=True):
        update = after.astype(np.float64) - before.astype(np.float64)
        scale = float(np.linalg.norm(expected)) or 1.0
        worst = max(worst, float(np.linalg.norm(update - expected)) / scale)
    return worst


def describe_check(contender: Contender, problem: Problem, reference: list[Array]) -> str:
    if contender.weights is None:
        return "n/a"
    error = update_error(contender.weights(), problem, reference)
    verdict = "ok" if error <= TOLERANCE[problem.dtype.name] else "MISMATCH"
    return f"{verdict} {error:.0e}"


def weights_finite(contender: Contender) -> bool:
    return contender.weights is None or all(np.isfinite(w).all() for w in contender.weights())
