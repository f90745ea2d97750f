"""The tutorial's loop body, verbatim, run as the tutorial runs it.

The tutorial's loop is module-level code: ``h``, ``grad_w1`` and the rest stay alive
until the next step reassigns them. That matters: the same lines inside a function free
every temporary at return, glibc then gives the top of its heap back to the kernel, and
each step takes ~400 page faults (float64, tutorial size) that the script never takes. So
the body is compiled once and executed in a namespace that persists between steps, like
the script's globals. The deep net runs the same lines repeated per Linear/ReLU pair.
"""

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.contender import Contender
from benchmarks.problem import Array, Problem

#: The tutorial's script, verbatim: the one copy of its loop in this repository.
SCRIPT = Path(__file__).with_name("tutorial_warmup.py")


def tutorial_body(script: Path = SCRIPT) -> str:
    """The body of the script's ``for t in range(500):`` loop, dedented, without its print."""
    lines = script.read_text(encoding="utf-8").splitlines()
    start = lines.index("for t in range(500):") + 1
    body = [line.removeprefix("    ") for line in lines[start:]]
    return "\n".join(line for line in body if not line.startswith("print("))


TUTORIAL_BODY = tutorial_body()

DEEP_BODY = """
h_relus, hs = [x], []
for w in ws[:-1]:
    h = h_relus[-1].dot(w)
    hs.append(h)
    h_relus.append(np.maximum(h, 0))
y_pred = h_relus[-1].dot(ws[-1])

loss = np.square(y_pred - y).sum()

grad_y_pred = 2.0 * (y_pred - y)
grad_ws = [None] * len(ws)
for index in reversed(range(len(ws))):
    grad_ws[index] = h_relus[index].T.dot(grad_y_pred)
    if index > 0:
        grad_h_relu = grad_y_pred.dot(ws[index].T)
        grad_h = grad_h_relu.copy()
        grad_h[hs[index - 1] < 0] = 0
        grad_y_pred = grad_h  # the gradient flowing into the layer below

for w, grad_w in zip(ws, grad_ws):
    w -= learning_rate * grad_w
"""


class TutorialLoop:
    """The body over x, y and the weights ``ws`` (updated in place), one step per call.

    Two weights run the tutorial's own lines, unless ``per_layer`` asks for the general form.
    """

    def __init__(
        self, x: Array, y: Array, ws: list[Array], learning_rate: float, per_layer: bool = False
    ) -> None:
        self.ws = ws
        self.namespace: dict[str, Any] = {"np": np, "x": x, "y": y, "ws": ws}
        self.namespace["learning_rate"] = learning_rate
        if len(ws) == 2 and not per_layer:
            self.namespace["w1"], self.namespace["w2"] = ws
            self.code = compile(TUTORIAL_BODY, "<tutorial loop body>", "exec")
        else:
            self.code = compile(DEEP_BODY, "<tutorial loop body, per layer>", "exec")

    def step(self) -> float:
        exec(self.code, self.namespace)
        return float(self.namespace["loss"])

    def step_as_a_function(self) -> float:
        """The body as the lines of a function: its temporaries die when the step returns."""
        local = dict(self.namespace)  # x, y, the weights and np, not the last step's values
        exec(self.code, local)
        return float(local["loss"])


def make_tutorial(problem: Problem, in_a_function: bool = False) -> Contender:
    ws = [w.copy() for w in problem.weights]
    loop = TutorialLoop(problem.x.copy(), problem.y.copy(), ws, problem.lr)
    notes = [] if len(ws) == 2 else ["the tutorial's lines repeated per layer"]
    if in_a_function:
        notes.append("temporaries freed after every step, as in a function")
    step = loop.step_as_a_function if in_a_function else loop.step
    return Contender(step, lambda: [w.copy() for w in ws], True, "; ".join(notes))
