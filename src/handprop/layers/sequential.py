"""Layers in a row: forward in order, backward in reverse.

One exception, invisible in the results: a ``ReLU`` directly followed by a ``MaxPool2d``
runs after it (``pooled_first``). Max and ReLU commute, ``max(relu(a), relu(b)) ==
relu(max(a, b))``, so the output is the same, and ReLU's passes, forward and backward,
run over the pooled array, kernel_size**2 times smaller than its input (4x for 2x2
windows). In backward, the pool sends each window's gradient to its winner only, so
ReLU's mask is needed at the winners only: the pooled values. The one case where the
two orders differ is a window whose maximum is exactly 0 (see ``_relu_ties_at_zero``).
"""

from collections.abc import Iterator
from typing import TYPE_CHECKING

from handprop._types import Array
from handprop.layers.activations import ReLU
from handprop.layers.module import Module
from handprop.layers.pooling import MaxPool2d
from handprop.parameter import ACCUMULATE, Gradients, Parameter

if TYPE_CHECKING:
    from handprop.training.tape import RecordedBackward, RecordedGradients, Tape


class Sequential(Module):
    """``Sequential(Linear(D_in, H), ReLU(), Linear(H, D_out))`` is the tutorial's network.

    Parameters are named as in ``torch.nn.Sequential``: ``0.weight``, ``2.bias``,
    ``1.0.weight`` for a nested one.
    """

    array_libraries = ("numpy", "torch")

    def __init__(self, *layers: Module) -> None:
        for index, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(
                    f"Sequential expected Module instances, received {type(layer).__name__} "
                    f"at position {index}"
                )
        self.layers = list(layers)
        self.order: list[int] | None = None  # the cache: the order forward ran the layers in

    def forward(self, x: Array) -> Array:
        self.order = pooled_first(self.layers)
        for index in self.order:
            x = self.layers[index].forward(x)
        return x

    def backward(self, grad_y: Array, grads: Gradients = ACCUMULATE) -> Array:
        layers, order = self.layers, self._order()
        for position in range(len(order) - 1, -1, -1):
            index = order[position]
            grad_y = layers[index].backward(grad_y, grads)
            if index < position:  # a ReLU that ran after the MaxPool2d behind it
                _relu_ties_at_zero(layers[index], layers[position], grad_y)
        return grad_y

    def _order(self) -> list[int]:
        """The order of the last forward (the layers' own if none: their errors then say so)."""
        order = self.order
        if order is None or len(order) != len(self.layers):
            return list(range(len(self.layers)))
        return order

    def record(self, tape: "Tape", x: Array) -> tuple[Array, "RecordedBackward"]:
        """``forward`` and ``backward`` on a tape's fixed buffers: each layer's, in order;
        their backwards in reverse, none for the first layer's input."""
        backwards = []
        for layer in self.layers:
            x, layer_backward = tape.layer(layer, x)
            backwards.append(layer_backward)

        def backward(
            grad_y: Array, need_input_grad: bool, grads: "RecordedGradients"
        ) -> Array | None:
            for index in reversed(range(len(backwards))):
                grad = backwards[index](grad_y, need_input_grad or index > 0, grads)
                if grad is None:
                    return None
                grad_y = grad
            return grad_y

        return x, backward

    def backward_parameters(self, grad_y: Array, grads: Gradients = ACCUMULATE) -> None:
        if not self.layers:
            return
        layers, order = self.layers, self._order()
        for position in range(len(order) - 1, 0, -1):  # as backward, but the first layer
            index = order[position]
            grad_y = layers[index].backward(grad_y, grads)
            if index < position:
                _relu_ties_at_zero(layers[index], layers[position], grad_y)
        layers[order[0]].backward_parameters(grad_y, grads)

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        return [
            (f"{index}.{name}", parameter)
            for index, layer in enumerate(self.layers)
            for name, parameter in layer.named_parameters()
        ]

    def named_buffers(self) -> list[tuple[str, Array]]:
        return [
            (f"{index}.{name}", buffer)
            for index, layer in enumerate(self.layers)
            for name, buffer in layer.named_buffers()
        ]

    def parameters(self) -> list[Parameter]:
        # named_parameters without formatting the names (train_step asks every step), from
        # the same calls, so that the two cannot differ; a subclass's own names decide.
        if type(self).named_parameters is not Sequential.named_parameters:
            return super().parameters()
        return [parameter for layer in self.layers for _, parameter in layer.named_parameters()]

    def modules(self) -> Iterator[Module]:
        yield self
        for layer in self.layers:
            yield from layer.modules()

    def __getitem__(self, index: int) -> Module:
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)

    def __repr__(self) -> str:
        inner = "".join(f"\n  ({index}): {layer!r}" for index, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"


def pooled_first(layers: list[Module]) -> list[int]:
    """The order to run ``layers`` in: their own, but a ``ReLU`` directly followed by a
    ``MaxPool2d`` runs after it (the module's docstring says why the results are the same)."""
    order = list(range(len(layers)))
    for index in range(1, len(layers)):
        if type(layers[index]) is MaxPool2d and type(layers[index - 1]) is ReLU:
            order[index - 1], order[index] = index, index - 1
    return order


def _relu_ties_at_zero(relu: Module, pool: Module, grad_pooled: Array) -> None:
    """Make the swapped pair's gradient the two layers' own in windows whose maximum is 0.

    In the layers' order, ReLU turns the window's negatives into 0, so all its values tie
    at 0 and the first in the window wins; it gets the gradient if it is itself 0 (ReLU
    lets the gradient through at 0). Pooled first, the first 0 wins, wherever it is, and
    gets it. So where the maximum is 0 and the winner is not the first, the gradient is 0.
    Almost never the case with real numbers: on numpy one pass over the pooled values
    checks it; on torch the correction always runs, on the device (no host read: a CUDA
    graph can record it).
    """
    assert isinstance(relu, ReLU) and isinstance(pool, MaxPool2d) and relu.h is not None
    xp, pooled = relu.xp, relu.h
    if not xp.may_hold_zero(pooled):  # numpy: the usual case, one pass; torch: never
        return
    xp.fill_where(grad_pooled, pool.lost_at_zero(), 0)  # pooled is the pool's output
