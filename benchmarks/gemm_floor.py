"""The floor: the step's matrix products alone, into preallocated outputs.

Per Linear layer: forward ``x @ w``, weight gradient ``x.T @ grad``, and input gradient
``grad @ w.T`` for every layer but the first (the tutorial computes none for x). Nothing
else: no ReLU, no loss, no update, no allocation (tracemalloc checks this in the run).
"""

import numpy as np

from benchmarks.contender import Contender
from benchmarks.problem import Problem


class GemmFloor:
    """Buffers for every product, filled once so that all values are those of a real step."""

    def __init__(self, problem: Problem) -> None:
        self.weights = [w.copy() for w in problem.weights]
        n, dtype = problem.x.shape[0], problem.dtype
        self.outputs = [np.empty((n, w.shape[1]), dtype) for w in self.weights]
        self.inputs = [problem.x.copy(), *self.outputs[:-1]]
        self.grad_outputs = [np.empty((n, w.shape[1]), dtype) for w in self.weights]
        self.grad_weights = [np.empty_like(w) for w in self.weights]
        self.forward()
        np.subtract(self.outputs[-1], problem.y, out=self.grad_outputs[-1])
        self.grad_outputs[-1] *= 2.0  # grad_y_pred, fixed from here on

    def forward(self) -> None:
        for x, w, h in zip(self.inputs, self.weights, self.outputs, strict=True):
            np.matmul(x, w, out=h)

    def backward(self) -> None:
        for index in reversed(range(len(self.weights))):
            grad_h = self.grad_outputs[index]
            np.matmul(self.inputs[index].T, grad_h, out=self.grad_weights[index])
            if index > 0:
                np.matmul(grad_h, self.weights[index].T, out=self.grad_outputs[index - 1])

    def step(self) -> float:
        self.forward()
        self.backward()
        return 0.0


def make_gemm_floor(problem: Problem) -> Contender:
    floor = GemmFloor(problem)
    products = 3 * len(floor.weights) - 1
    return Contender(floor.step, None, True, f"{products} np.matmul(out=) calls, nothing else")
