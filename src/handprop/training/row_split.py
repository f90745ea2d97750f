"""Plain SGD on the ranks of one machine, its update split by weight rows: one copy of the weights.

One process folds plain SGD's update into each weight's gradient product (one gemm,
alpha = -lr, beta = 1, into the weights: ``SGD.fused_gradients``). Split by batch rows,
each of K ranks would write a whole gradient, sum it with the others' and then apply it:
three passes over the weights where one process makes one. Here, on one machine, the
weights of every ``Linear`` layer live in one MPI shared window instead (every rank's
``parameter.data`` views it during ``fit``). In backward each rank copies its rows of
``x`` and ``grad_h`` into shared buffers of the whole batch (rank r's rows after those
of ranks < r); once every rank's are there, each rank moves its own block of the
weight's rows over the whole batch, as the one process does::

    w[rows_r] += -lr * x_all[:, rows_r].T @ grad_h_all     # grad_w1 = x.T.dot(grad_h)

No gradient array, no sum, no separate update. The other parameters (biases, other
layers') go through the ``GradientExchange`` as before.
"""

from typing import Any, Protocol, runtime_checkable

import numpy as np

from handprop._types import Array
from handprop.distributed import SharedArray, shard
from handprop.layers import Linear, Sequential
from handprop.layers.module import Module
from handprop.optim import Optimizer
from handprop.parameter import Gradients, Parameter

#: Numbers each part of the window starts on a multiple of (64 bytes of float64).
_ALIGN = 8


@runtime_checkable
class RowUpdates(Protocol):
    """A fused optimizer's Gradients that can move one block of a weight's rows."""

    def add_rows(self, parameter: Parameter, rows: slice, a: Array, b: Array) -> None: ...


class RowSplitSGD(Gradients):
    """The Gradients of one rank's backward: shared weights staged, the rest accumulated.

    ``window``: a ``SharedArray`` (or one process's stand-in) of ``size(weights,
    capacity)`` numbers; ``capacity``: the most rows a batch has; ``first``: the index of
    the weight whose layer reads the model's input (``first_input``), if any. Every rank
    calls each method in the same order. Shape: each weight (D_in, D_out); its staged
    inputs (capacity, D_in) and output gradients (capacity, D_out).
    """

    def __init__(
        self,
        window: SharedArray,
        weights: list[Parameter],
        optimizer: Optimizer,
        capacity: int,
        first: int | None = None,
    ) -> None:
        self.window, self.optimizer, self.weights, self.first = window, optimizer, weights, first
        rank, size = window.rank, window.size
        self.own = [p.data for p in weights]  # the parameters' own arrays, given back at close
        self.slots: dict[int, int] = {id(p): index for index, p in enumerate(weights)}
        self.shared: list[Array] = []
        self.inputs: list[Array] = []
        self.grads: list[Array] = []
        offset = 0
        for parameter in weights:
            d_in, d_out = parameter.shape
            for shape, parts in (
                ((d_in, d_out), self.shared),
                ((capacity, d_in), self.inputs),
                ((capacity, d_out), self.grads),
            ):
                parts.append(window.array[offset : offset + shape[0] * shape[1]].reshape(shape))
                offset = _aligned(offset + shape[0] * shape[1])
        self.blocks = [shard(p.shape[0], rank, size) for p in weights]  # this rank's rows of each
        if rank == 0:
            for shared, own in zip(self.shared, self.own, strict=True):
                np.copyto(shared, own)
        window.barrier()
        for parameter, shared in zip(weights, self.shared, strict=True):
            parameter.data = shared
        self.start = self.rows = self.total = 0
        self.staged: set[int] = set()
        self.fused: Any = None

    @staticmethod
    def size(weights: list[Parameter], capacity: int) -> int:
        """Numbers the window holds: each weight, and its inputs and gradients of a batch."""
        total = 0
        for parameter in weights:
            d_in, d_out = parameter.shape
            for count in (d_in * d_out, capacity * d_in, capacity * d_out):
                total = _aligned(total + count)
        return total

    def begin(self, start: int, rows: int, total: int) -> None:
        """A step: this rank's ``rows`` of the batch's ``total`` go at ``start``."""
        self.start, self.rows, self.total = start, rows, total
        self.staged.clear()
        self.fused = self.optimizer.fused_gradients()

    def gather(self, x: Array, rows: Array) -> Array:
        """``x[rows]``, straight into the staged inputs of the model's first Linear if it can."""
        first = self.first
        if (
            first is None
            or type(x) is not np.ndarray
            or x.dtype != self.shared[first].dtype
            or x.shape[1:] != self.inputs[first].shape[1:]
        ):
            gathered: Array = x[rows]
            return gathered
        out = self.inputs[first][self.start : self.start + self.rows]
        np.take(x, rows, axis=0, out=out)
        return out

    def add(self, parameter: Parameter, grad: Array) -> None:
        if id(parameter) in self.slots:
            raise RuntimeError(f"{parameter} is split by rows over the ranks: it takes products")
        parameter.accumulate(grad)

    def add_product(self, parameter: Parameter, a: Array, b: Array) -> None:
        """Stage this rank's rows of ``a.T`` and ``b`` for a shared weight; else ``.grad``."""
        index = self.slots.get(id(parameter))
        if index is None:
            parameter.accumulate_product(a, b)
            return
        inputs = self.inputs[index][self.start : self.start + self.rows]
        grads = self.grads[index][self.start : self.start + self.rows]
        if index in self.staged or a.T.shape != inputs.shape or b.shape != grads.shape:
            raise RuntimeError(
                f"{parameter} is split by rows over the ranks: it takes one product a step of "
                f"{inputs.shape[::-1]} and {grads.shape}, received {a.shape} and {b.shape}"
            )
        if not (a.ctypes.data == inputs.ctypes.data and a.T.strides == inputs.strides):
            np.copyto(inputs, a.T)  # x.T, unless x was gathered there (``gather``)
        np.copyto(grads, b)
        self.staged.add(index)

    def update(self) -> None:
        """Move this rank's rows of every shared weight over the whole batch (collective).

        A weight backward did not reach this step adds zeros for this rank's rows.
        """
        for index in set(range(len(self.weights))) - self.staged:
            self.inputs[index][self.start : self.start + self.rows] = 0
            self.grads[index][self.start : self.start + self.rows] = 0
        self.window.barrier()  # every rank's rows are staged, every read of the weights done
        for parameter, block, inputs, grads in zip(
            self.weights, self.blocks, self.inputs, self.grads, strict=True
        ):
            x_all, grad_h_all = inputs[: self.total], grads[: self.total]
            self.fused.add_rows(parameter, block, x_all[:, block].T, grad_h_all)
        self.window.barrier()  # every block moved: the weights are whole again

    def barrier(self) -> None:
        """Wait for every rank (around a write of the weights outside a step)."""
        self.window.barrier()

    def close(self, free: bool) -> None:
        """Copy the weights back into the parameters' own arrays, which ``data`` is again.

        ``free``: free the window too (collective: not after an exception on one rank).
        """
        for parameter, own in zip(self.weights, self.own, strict=True):
            np.copyto(own, parameter.data)
            parameter.data = own
        if free:
            self.window.close()


def _aligned(offset: int) -> int:
    return -(-offset // _ALIGN) * _ALIGN


def split_weights(model: Module, optimizer: Optimizer) -> list[Parameter]:
    """The weights plain SGD can move by rows over the ranks: each ``Linear``'s it holds.

    Only a Linear that is a layer of ``Sequential`` (nested or not), or the model: one
    inside another module may see other rows than the batch's (a user's layer that runs
    it on N * T tokens). None (an empty list) unless ``optimizer`` folds its update
    (plain SGD), no parameter of the model is used twice, and the optimizer's parameters
    share one dtype (else the exchange refuses them, as before).
    """
    params = model.parameters()
    fused = optimizer.fused_gradients()
    if not isinstance(fused, RowUpdates) or len({id(p) for p in params}) != len(params):
        return []
    if len({p.dtype for p in optimizer.params}) != 1:
        return []
    held = {id(p) for p in optimizer.params}
    weights = [
        m.weight
        for m in _layers(model)
        if type(m) is Linear and id(m.weight) in held and isinstance(m.weight.data, np.ndarray)
    ]
    return weights


def _layers(model: Module) -> list[Module]:
    """``model`` and, through every ``Sequential``, its layers (not inside other modules)."""
    if not isinstance(model, Sequential):
        return [model]
    return [model, *(m for layer in model.layers for m in _layers(layer))]


def first_input(model: Module, weights: list[Parameter]) -> int | None:
    """The index in ``weights`` of the weight of the layer that reads the model's input."""
    first = model.layers[0] if isinstance(model, Sequential) and model.layers else None
    if isinstance(first, Linear) and any(first.weight is p for p in weights):
        return next(i for i, p in enumerate(weights) if p is first.weight)
    return None
