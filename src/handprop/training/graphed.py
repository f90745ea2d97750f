"""A training step replayed as a CUDA graph: the same layers, recorded once, replayed.

On a GPU, a small step costs far more in kernel launches and Python than in arithmetic.
``GraphedStep`` runs the first steps of a batch shape eagerly (they also allocate every
work buffer), then records one step, forward, loss, backward and update, as a CUDA
graph on fixed input buffers, and from then on copies each batch into those buffers
and replays the graph: one launch per step, no Python per layer, no host sync. The
loss comes back as a 0-d tensor on the device; read it (``float(loss)``) only when you
need it, or stack many and read them at once.

What is recorded is what the step did when it was recorded, so a step is replayed only
while nothing it baked in changes; anything else runs eagerly, with the same results:

- a batch of another shape (the last, short batch of an epoch) or dtype;
- a learning rate, momentum or weight decay other than the recorded ones, or a parameter
  array replaced (a schedule: the next batches warm up and record again, and the new
  graph replaces the old one of that shape, so memory does not grow with the epochs);
- a step that reads values on the host: gradient clipping (the norm is read), a loss
  without ``total``, SoftmaxCrossEntropy with class weights: eager, every time.
  SoftmaxCrossEntropy's label check reads the labels: the graph records its
  ``checked_total``, and each batch's labels are checked before the replay (one read of
  their least and largest value, a device sync, as the eager step makes). Adam's numbers
  change every step (the step count, the bias corrections): its update is the one a
  captured step replays (``Adam.record``, ``RecordedUpdate``), on torch tensors, its
  numbers computed on the host and copied into a device buffer before each replay, which
  the graph reads; the learning rate and betas are read live there, but a change still
  records a new graph, as for SGD;
- numpy, or torch on the CPU: eager (there is no graph to record);
- a model with Dropout: eager (its masks are drawn on the host: a graph would replay one).
"""

from collections.abc import Callable
from typing import Any

from handprop._types import Array
from handprop.layers.dropout import Dropout
from handprop.layers.module import Module
from handprop.losses import Loss, SoftmaxCrossEntropy, check_label_range
from handprop.optim import SGD, Optimizer
from handprop.parameter import ACCUMULATE
from handprop.training.tape import NotCapturable, Tape, check_optimizer


class GraphedStep:
    """``step(x, y)``: ``train_step`` for fixed shapes, replayed as a CUDA graph once warm.

    Shape: x (N, D_in); y as ``loss_fn`` expects. Returns the loss of the batch (before
    the update) as a 0-d array of the model's library: on CUDA a tensor that is not read
    back until asked. ``warmup`` eager steps of a shape come before it is recorded.
    ``fold`` and ``exact`` are ``train_step``'s.
    """

    def __init__(
        self,
        model: Module,
        loss_fn: Loss,
        optimizer: Optimizer,
        *,
        warmup: int = 2,
        fold: bool = True,
        exact: bool = False,
    ) -> None:
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.warmup, self.fold, self.exact = warmup, fold, exact
        self.xp: Any = optimizer.xp
        self.capturable = _capturable(self.xp, loss_fn, optimizer) and not any(
            isinstance(module, Dropout) for module in model.modules()
        )
        self.seen: dict[tuple[Any, ...], int] = {}  # eager steps by shapes, dtypes and rate
        # by the same key: the recorded step, its x, y, loss and output (the predictions),
        # the optimizer's recorded update (None for SGD, whose numbers the graph holds) and
        # the buffers it uses
        self.graphs: dict[tuple[Any, ...], tuple[Any, Any, Any, Any, Any, Any, list[Any]]] = {}
        # the number of classes whose labels a replay checks first (SoftmaxCrossEntropy)
        self.classes: dict[tuple[Any, ...], int] = {}
        self.replays = 0  # steps replayed (for tests and benchmarks)
        self.stream: Any = None  # made on the first warm-up

    def step(
        self, x: Array, y: Array, on_predictions: Callable[[Array], object] | None = None
    ) -> Any:
        """One training step on (x, y); the loss as a 0-d array (on the device).
        ``on_predictions``: ``train_step``'s (called with the model's output)."""
        if not self.capturable:
            return self.eager(x, y, on_predictions=on_predictions)
        shapes = _shapes(x, y)
        key = (*shapes, self._settings())
        if key not in self.graphs:
            self.seen[key] = self.seen.get(key, 0) + 1
            if self.seen[key] <= self.warmup:
                return self._warm(x, y, on_predictions)
            # one graph a shape: a schedule's new rate replaces the old graph (and its memory)
            for old in [k for k in self.graphs if k[:4] == shapes]:
                del self.graphs[old]
                self.classes.pop(old, None)
            self.seen = {key: self.seen[key]}
            self.graphs[key] = self._record(x, y)
        graph, static_x, static_y, static_loss, static_pred, update, _ = self.graphs[key]
        if key in self.classes:
            check_label_range(y, self.classes[key], self.xp)  # as the eager step checks them
        if update is not None:
            if not update.fits():  # the optimizer's arrays replaced, weight decay switched
                return self.eager(x, y, on_predictions=on_predictions)
            update.before()  # the step's numbers into the buffer the graph reads
        static_x.copy_(x, non_blocking=True)
        static_y.copy_(y, non_blocking=True)
        graph.replay()
        self.replays += 1
        if on_predictions is not None:
            on_predictions(static_pred)  # the recorded step's output, which the replay wrote
        return static_loss.clone()

    def _settings(self) -> tuple[Any, ...]:
        """What a recorded step holds fixed besides shapes: the optimizer's numbers (rate,
        momentum, weight decay...) and the parameters' arrays (a replaced one is not the
        array the graph writes to)."""
        numbers = sorted((k, repr(v)) for k, v in self.optimizer.hyperparameters().items())
        return tuple(numbers), tuple(id(p.data) for p in self.optimizer.params)

    def eager(
        self,
        x: Array,
        y: Array,
        update: "RecordedUpdate | None" = None,
        checked: bool = False,
        on_predictions: Callable[[Array], object] | None = None,
    ) -> Any:
        """The step without a graph: ``train_step``'s body, the loss left on the device;
        with ``update``, its array calls in place of ``optimizer.step()`` (what a graph
        records: its host calls, ``update.before()``, must have run first); ``checked``:
        labels already checked (``SoftmaxCrossEntropy.checked_total``, which a graph records)."""
        model, loss_fn, optimizer = self.model, self.loss_fn, self.optimizer
        y_pred = model.forward(x)
        if on_predictions is not None:
            on_predictions(y_pred)
        if checked and isinstance(loss_fn, SoftmaxCrossEntropy):
            total, divisor = loss_fn.checked_total(y_pred, y)
        else:
            total, divisor = loss_fn.total(y_pred, y)
        optimizer.zero_grad()
        grad_y_pred = loss_fn.backward()
        fused = optimizer.fused_gradients(self.exact) if self.fold else None
        model.backward_parameters(grad_y_pred, fused or ACCUMULATE)
        if update is None:
            optimizer.step()
        else:
            update.apply()
        return loss_fn.xp.divide(total, divisor) if divisor != 1 else total

    def _side_stream(self) -> Any:
        """The stream that warm-up steps and recording run on (PyTorch's recipe)."""
        if self.stream is None:
            self.stream = self.xp.torch.cuda.Stream(device=self.xp.device)
        return self.stream

    def _warm(self, x: Any, y: Any, on_predictions: Callable[[Array], object] | None) -> Any:
        """An eager step on the side stream, so that libraries set up there before recording."""
        cuda = self.xp.torch.cuda
        side = self._side_stream()
        side.wait_stream(cuda.current_stream())
        with cuda.stream(side):
            loss = self.eager(x, y, on_predictions=on_predictions)
        cuda.current_stream().wait_stream(side)
        return loss

    def _record(self, x: Any, y: Any) -> tuple[Any, Any, Any, Any, Any, Any, list[Any]]:
        """Record one step on copies of (x, y) as a CUDA graph (nothing runs while recording).

        The graph holds the addresses of the layers' work buffers; a batch of another
        shape makes the layers allocate new ones, so the recorded ones are kept alive here.
        """
        torch = self.xp.torch
        static_x, static_y = x.clone(), y.clone()
        update = None if isinstance(self.optimizer, SGD) else RecordedUpdate(self.optimizer)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self._side_stream()):
            outputs: list[Any] = []  # the model's output buffer, which each replay writes
            static_loss = self.eager(
                static_x, static_y, update, checked=True, on_predictions=outputs.append
            )
        # the classes from the recorded step's probs: there even with warmup=0 (no eager step yet)
        if isinstance(self.loss_fn, SoftmaxCrossEntropy) and self.loss_fn.probs is not None:
            self.classes[(*_shapes(x, y), self._settings())] = self.loss_fn.probs.shape[1]
        owners = [*self.model.modules(), self.loss_fn]
        buffers = [v for o in owners for v in vars(o).values() if isinstance(v, torch.Tensor)]
        buffers += [p.data for p in self.optimizer.params]  # alive while the graph is: ids hold
        return graph, static_x, static_y, static_loss, outputs[0], update, buffers


class RecordedUpdate:
    """``optimizer.step()`` as a captured step records it (its ``record``), on its own arrays:
    ``before()`` runs the host calls (Adam: the step count, the bias corrections, into a
    0-d buffer each), ``apply()`` the array calls, which a CUDA graph records in place of
    ``step()``. On any device: the CPU runs the same calls eagerly (tests compare them with
    ``step()``). Every ``.grad`` becomes a view of one flat buffer (its values kept), so
    that each of Adam's lines is one call over every parameter.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        params = optimizer.params
        if len({parameter.dtype for parameter in params}) != 1 or not optimizer.distinct:
            raise NotCapturable("capture needs distinct parameters of one dtype")
        check_optimizer(optimizer)
        tape = Tape(params[0].dtype, optimizer.xp)
        flat_grad, views = tape.flatten([parameter.grad for parameter in params])
        for parameter, grad in zip(params, views, strict=True):
            parameter.grad = grad
        self.fits = tape.optimizer(optimizer, flat_grad)
        self.before = tape.replay_hosts
        self.calls = tape.array_calls()

    def apply(self) -> None:
        for function, args in self.calls:
            function(*args)


def _shapes(x: Any, y: Any) -> tuple[Any, ...]:
    return tuple(x.shape), x.dtype, tuple(y.shape), y.dtype


def _capturable(xp: Any, loss_fn: Loss, optimizer: Optimizer) -> bool:
    """Whether a step of these can be recorded: CUDA, a loss with ``total`` that reads
    nothing on the host (SoftmaxCrossEntropy's ``checked_total``: without class weights, no
    subclass changing it), an optimizer whose step takes no per-step host scalar (SGD) or
    whose class states its captured form (``record`` beside ``step``: Adam; handprop's own
    ``record``, which calls the tape's namespace, as a graph on torch tensors needs)."""
    if xp.library != "torch" or xp.device.type != "cuda":
        return False
    if type(loss_fn).total is Loss.total:
        return False
    if isinstance(loss_fn, SoftmaxCrossEntropy) and (
        loss_fn.weight is not None
        or any(
            getattr(type(loss_fn), name) is not getattr(SoftmaxCrossEntropy, name)
            for name in ("total", "checked_total", "backward")
        )
    ):
        return False
    try:  # a subclass with its own step (SGD's too) may read numbers on the host
        check_optimizer(optimizer)
    except NotCapturable:
        return False
    if isinstance(optimizer, SGD):
        return True
    if type(optimizer).record.__module__ != "handprop.optim":  # type: ignore[attr-defined]
        return False  # a user's record may call numpy (a numpy tape's), not the tape's xp
    # RecordedUpdate's flat buffers hold one dtype, each parameter once
    return len({parameter.dtype for parameter in optimizer.params}) == 1 and optimizer.distinct


def read_losses(losses: list[Any]) -> list[float]:
    """The floats of many 0-d losses from ``GraphedStep.step``, with one host sync."""
    if not losses:
        return []
    first = losses[0]
    if hasattr(first, "device") and type(first).__module__.startswith("torch"):
        import torch

        return [float(v) for v in torch.stack(losses).tolist()]
    return [float(v) for v in losses]
