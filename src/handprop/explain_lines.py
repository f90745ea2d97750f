"""The lines of one training step, written as the tutorial writes them, for ``explain``.

Each Linear layer's forward is ``h = x.dot(w1)`` (``+ b1`` with a bias), its backward
``grad_w1 = x.T.dot(grad_h)`` and, unless it is the first layer, ``grad_x = grad_h.dot(w1.T)``;
each activation its own (ReLU: the tutorial's copy and mask). Layers the step cannot be written
for raise a ValueError that lists the ones it can.
"""

from typing import Any

from handprop.layers import Identity, LeakyReLU, Linear, Module, ReLU, Sigmoid, Tanh

#: A line before it is run: phase, code, operand expressions, whether it is a matrix
#: product, and FLOPs per element of its first operand (of its result, for a product: on
#: top of the product's 2 * m * k * n).
Spec = tuple[str, str, tuple[str, ...], bool, int]

#: The loss and its gradient, by the names ``handprop explain --loss`` takes.
LOSS_LINES: dict[str, list[Spec]] = {
    "sse": [
        ("loss", "loss = np.square(y_pred - y).sum()", ("y_pred", "y"), False, 3),
        ("backward", "grad_y_pred = 2.0 * (y_pred - y)", ("y_pred", "y"), False, 2),
    ],
    "mse": [
        ("loss", "loss = np.square(y_pred - y).mean()", ("y_pred", "y"), False, 3),
        ("backward", "grad_y_pred = 2.0 * (y_pred - y) / y.size", ("y_pred", "y"), False, 3),
    ],
}


def _activation(layer: Module) -> tuple[str, str, int, list[tuple[str, int]]] | None:
    """suffix, forward line, its FLOPs per element, backward lines; None for a Linear."""
    if isinstance(layer, ReLU):
        return "relu", "{o} = np.maximum({a}, 0)", 1, [
            ("grad_{a} = grad_{o}.copy()", 0), ("grad_{a}[{a} < 0] = 0", 1),
        ]  # fmt: skip
    if isinstance(layer, LeakyReLU):
        slope = repr(float(layer.negative_slope))  # a number, never text from a file
        return "leaky", f"{{o}} = np.where({{a}} >= 0, {{a}}, {slope} * {{a}})", 2, [
            ("grad_{a} = grad_{o}.copy()", 0), (f"grad_{{a}}[{{a}} < 0] *= {slope}", 2),
        ]  # fmt: skip
    if isinstance(layer, Tanh):
        return "tanh", "{o} = np.tanh({a})", 1, [("grad_{a} = grad_{o} * (1 - {o} ** 2)", 3)]
    if isinstance(layer, Sigmoid):
        return "sigmoid", "{o} = 1 / (1 + np.exp(-{a}))", 4, [
            ("grad_{a} = grad_{o} * {o} * (1 - {o})", 3),
        ]  # fmt: skip
    if isinstance(layer, Linear):
        return None
    raise ValueError(
        "explain knows Linear, ReLU, LeakyReLU, Tanh, Sigmoid and Identity layers, "
        f"received {type(layer).__name__}"
    )


def step_lines(layers: list[Module], loss: str, env: dict[str, Any]) -> list[Spec]:
    """Forward, loss, backward and update lines, named as in the tutorial.

    Copies of the weights go into ``env`` as ``w1``, ``b1``, ``w2``...; the model is not
    changed. The hidden tensors are ``h``, ``h_relu`` with one hidden Linear layer,
    ``h1``, ``h1_tanh``, ``h2``... with more; the output is ``y_pred``.
    """
    layers = [layer for layer in layers if not isinstance(layer, Identity)]
    n_linear = sum(isinstance(layer, Linear) for layer in layers)
    forward: list[Spec] = []
    backward: list[Spec] = []
    update: list[Spec] = []
    a, i = "x", 0
    for k, layer in enumerate(layers):
        last = k == len(layers) - 1
        act = _activation(layer)
        if act is None:
            assert isinstance(layer, Linear)
            i += 1
            o = "y_pred" if last else ("h" if n_linear == 2 else f"h{i}")
            forward.append(_linear_forward(layer, a, o, i, env))
            backward[:0] = _linear_backward(layer, a, o, i, first=(k == 0))
            update += _linear_update(layer, i)
        else:
            suffix, code, flops, back = act
            o = "y_pred" if last else f"{a}_{suffix}"
            forward.append(("forward", code.format(o=o, a=a), (a,), False, flops))
            backward[:0] = [
                ("backward", c.format(o=o, a=a), (f"grad_{o}",), False, f) for c, f in back
            ]
        a = o
    if a != "y_pred":  # a network that is only activations ends as it started
        forward.append(("forward", f"y_pred = {a}", (a,), False, 0))
    loss_line, grad_line = LOSS_LINES[loss]
    return [*forward, loss_line, grad_line, *backward, *update]


def _linear_forward(layer: Linear, a: str, o: str, i: int, env: dict[str, Any]) -> Spec:
    env[f"w{i}"] = layer.weight.data.copy()
    if layer.bias is None:
        return ("forward", f"{o} = {a}.dot(w{i})", (a, f"w{i}"), True, 0)
    env[f"b{i}"] = layer.bias.data.copy()
    return ("forward", f"{o} = {a}.dot(w{i}) + b{i}", (a, f"w{i}"), True, 1)


def _linear_backward(layer: Linear, a: str, o: str, i: int, first: bool) -> list[Spec]:
    lines: list[Spec] = [
        ("backward", f"grad_w{i} = {a}.T.dot(grad_{o})", (f"{a}.T", f"grad_{o}"), True, 0)
    ]
    if layer.bias is not None:
        lines.append(("backward", f"grad_b{i} = grad_{o}.sum(axis=0)", (f"grad_{o}",), False, 1))
    if not first:  # the tutorial never computes grad_x
        lines.append(
            ("backward", f"grad_{a} = grad_{o}.dot(w{i}.T)", (f"grad_{o}", f"w{i}.T"), True, 0)
        )
    return lines


def _linear_update(layer: Linear, i: int) -> list[Spec]:
    names = [f"w{i}"] + ([] if layer.bias is None else [f"b{i}"])
    return [("update", f"{p} -= learning_rate * grad_{p}", (f"grad_{p}",), False, 2) for p in names]
