"""Draw an Explanation: forward tensors in a row, their gradients beneath, shapes on the edges.

matplotlib only (an optional extra, imported when a plot is asked for); no graphviz.
"""

import re
from pathlib import Path

from handprop.cli.plot import save_figure, use_matplotlib
from handprop.explainer import Explanation, Line

Point = tuple[float, float]


def _target(line: Line) -> str:
    return line.code.split("=", 1)[0].split("[")[0].strip(" -*")


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ",".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def layout(explanation: Explanation) -> tuple[dict[str, Point], list[tuple[str, str, str]]]:
    """Where each tensor goes (forward on y=1, gradients of those on y=0, weight gradients
    on y=-1) and the edges (source, target, the lines that compute the target)."""
    forward = [line for line in explanation.lines if line.phase in ("forward", "loss")]
    where: dict[str, Point] = {"x": (0.0, 1.0)}
    edges: list[tuple[str, str, str]] = []
    previous = "x"
    for k, line in enumerate(forward, start=1):
        where[_target(line)] = (float(k), 1.0)
        edges.append((previous, _target(line), line.code.split("=", 1)[1].strip()))
        previous = _target(line)
    for line in explanation.lines:
        if line.phase != "backward":
            continue
        name = _target(line)
        if name in where:  # an in-place line, such as the ReLU mask: same tensor, same edge
            k = next(k for k, edge in enumerate(edges) if edge[1] == name)
            edges[k] = (edges[k][0], name, f"{edges[k][2]}; {line.code}")
            continue
        found = re.findall(r"grad_\w+", line.code.split("=", 1)[1])
        source = found[0] if found else previous  # grad_y_pred comes from the loss
        if name.removeprefix("grad_") in where:
            where[name] = (where[name.removeprefix("grad_")][0], 0.0)
        else:  # a weight's or bias's gradient, under the gradient it is computed from
            column = where[source][0] - 0.5
            taken = sum(1 for x, y in where.values() if y == -1.0 and abs(x - column) < 0.3)
            where[name] = (column + 0.6 * taken, -1.0)
        edges.append((source, name, line.code))
    return where, edges


def plot_explanation(explanation: Explanation, path: Path) -> None:
    """Save a PNG of the step: each tensor with its shape, each edge with its line's shapes."""
    use_matplotlib()
    from matplotlib import pyplot as plt

    where, edges = layout(explanation)
    shapes = {"x": _shape(explanation.lines[0].operands[0])}
    shapes.update((_target(line), _shape(line.result)) for line in explanation.lines)
    operands = {_target(line): line.shapes() for line in reversed(explanation.lines)}
    width = max(x for x, _ in where.values()) + 1
    figure, axes = plt.subplots(figsize=(2.9 * width, 6.0), dpi=110)
    for name, (x, y) in where.items():
        color = "#e8f0fe" if y == 1.0 else "#fde8e8"
        axes.text(x, y, f"{name}\n{shapes[name]}", ha="center", va="center", fontsize=9,
                  bbox={"boxstyle": "round", "facecolor": color})  # fmt: skip
    for source, target, label in edges:
        (x0, y0), (x1, y1) = where[source], where[target]
        axes.annotate("", xy=(x1, y1), xytext=(x0, y0),
                      arrowprops={"arrowstyle": "->", "color": "0.4", "shrinkA": 24,
                                  "shrinkB": 24})  # fmt: skip
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        label = label.replace("; ", "\n")
        if y1 == -1.0:  # a weight's gradient: label it beneath its box, clear of its neighbours
            mx, my, label = x1, y1 - 0.45, label.replace(" = ", " =\n")
        axes.text(mx, my + 0.1, label, ha="center", fontsize=7, family="monospace")
        axes.text(mx, my - 0.14, operands[target], ha="center", fontsize=7, color="0.25")
    axes.set_xlim(-0.6, width - 0.4)
    axes.set_ylim(-1.75, 1.4)
    axes.axis("off")
    axes.set_title(
        f"one training step, batch {explanation.batch_size}, {explanation.dtype}: "
        "forward (top), gradients (below)"
    )
    save_figure(figure, path)
