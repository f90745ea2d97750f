"""Layers in a row: forward in order, backward in reverse."""

from collections.abc import Iterator
from typing import TYPE_CHECKING

from handprop._types import Array
from handprop.layers.module import Module
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

    def forward(self, x: Array) -> Array:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_y: Array, grads: Gradients = ACCUMULATE) -> Array:
        for layer in reversed(self.layers):
            grad_y = layer.backward(grad_y, grads)
        return grad_y

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
        for layer in reversed(self.layers[1:]):
            grad_y = layer.backward(grad_y, grads)
        self.layers[0].backward_parameters(grad_y, grads)

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
