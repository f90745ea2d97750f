"""The base class of every layer: forward beside backward, parameters, and the model's API."""

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from handprop._types import Array, dtype_name, float_dtype, positive_int
from handprop.backend import NUMPY, convert, namespace, placement
from handprop.parameter import ACCUMULATE, Gradients, Parameter
from handprop.registry import Registry

if TYPE_CHECKING:
    from pathlib import Path

#: Layer classes by the names model files use (``{"type": "Linear", ...}``).
LAYERS: Registry[type["Module"]] = Registry("layer")


class Module:
    """A layer or a network of layers.

    ``forward(x)`` computes the output and keeps what backward needs in one
    named cache (overwritten on every call). ``backward(grad_y, grads)`` reads
    that cache, hands the gradients of the loss for its parameters to
    ``grads`` (by default: added into their ``.grad``) and returns the gradient
    for its input.

    The arrays that forward and backward return are the layer's own work
    buffers, reused while the batch shape stays the same (a training step then
    allocates nothing): each is valid until the layer's next forward or
    backward. ``model(x)`` (``predict``) returns a new array the caller owns.

    A registered layer (``@LAYERS.register("Name")``) is stored in model files
    by ``config()``, the settings ``from_config`` rebuilds it from;
    ``check_config`` checks a file's settings and gives its parameters' shapes
    before anything is allocated.
    """

    #: The names of ``config()``'s fields, which model files check.
    config_fields: ClassVar[tuple[str, ...]] = ()
    #: The dtypes of buffers that are not in the model's float dtype (BatchNorm's counter).
    buffer_dtypes: ClassVar[dict[str, str]] = {}
    #: Training mode (dropout drops, batch norm uses the batch's statistics) or evaluation.
    training: bool = True
    #: The array libraries this layer computes on; ``to`` refuses to move it elsewhere.
    array_libraries: ClassVar[tuple[str, ...]] = ("numpy",)
    #: The array namespace its forward and backward compute with (``handprop.backend``);
    #: ``to`` sets it on every module of a model.
    xp: Any = NUMPY

    def forward(self, x: Array) -> Array:
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self, grad_y: Array, grads: Gradients = ACCUMULATE) -> Array:
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    def backward_parameters(self, grad_y: Array, grads: Gradients = ACCUMULATE) -> None:
        """Like ``backward``, but only the parameters' gradients are needed.

        The first layer of a network never needs the gradient for its input
        (the tutorial computes five matrix products, not six); layers that can
        skip it override this.
        """
        self.backward(grad_y, grads)

    def predict(self, x: Array, batch_size: int = 4096) -> Array:
        """The output for ``x``, computed ``batch_size`` rows at a time, as a new array.

        Shape: x (N, ...) -> (N, ...), as ``forward``.
        """
        batch_size = positive_int("predict's batch_size", batch_size)
        xp = self.xp
        parts = [
            xp.copy(self.forward(x[start : start + batch_size]))
            for start in range(0, len(x), batch_size)
        ]
        if not parts:
            parts = [xp.copy(self.forward(x))]
        result: Array = parts[0] if len(parts) == 1 else xp.concatenate(parts)
        return result

    def __call__(self, x: Array) -> Array:
        """``model(x)``: ``predict(x)``, a new array that no later call overwrites."""
        return self.predict(x)

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        """Parameters with PyTorch-style dotted names; none unless a subclass has some."""
        return []

    def parameters(self) -> list[Parameter]:
        return [parameter for _, parameter in self.named_parameters()]

    def named_buffers(self) -> list[tuple[str, Array]]:
        """State that is not trained but saved (BatchNorm's running statistics), as torch names it.

        The arrays themselves (``load_state_dict`` copies into them); none by default.
        """
        return []

    def modules(self) -> Iterator["Module"]:
        """This module and every module inside it, depth first."""
        yield self

    def train(self, mode: bool = True) -> Self:
        """Training mode (``mode=True``) or evaluation mode for this module and those inside it.

        As in PyTorch: ``fit`` trains in training mode and scores in evaluation mode;
        ``predict`` and ``model(x)`` run in whatever mode the model is in.
        """
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self) -> Self:
        """``train(False)``: Dropout passes its input through, BatchNorm uses running statistics."""
        return self.train(False)

    def get_extra_state(self) -> dict[str, Any] | None:
        """JSON-able state beyond arrays that a checkpoint keeps (Dropout's generator); or None."""
        return None

    def set_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore what ``get_extra_state`` returned; a ValueError if it does not fit."""
        raise ValueError(f"{type(self).__name__} keeps no extra state, received {state!r:.80}")

    def zero_grad(self) -> None:
        for parameter in self.parameters():
            parameter.zero_grad()

    # ----- settings and state, as model files and PyTorch hold them --------------------------

    def config(self) -> dict[str, Any]:
        """The JSON-able settings ``from_config`` rebuilds this layer from (no weights)."""
        return {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dtype: str) -> Self:
        """A new layer with these settings, its parameters zero (model files fill them in)."""
        return cls(**config)

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
        """Check ``config``'s values (a ValueError says which is wrong), allocating nothing.

        Returns the shapes of the parameters and buffers it implies, by name, in
        PyTorch's layout (a buffer's dtype is the model's unless ``buffer_dtypes`` says).
        """
        return {}

    def state_dict(self) -> dict[str, Array]:
        """Copies of the parameters and buffers by name, in PyTorch's names and layout.

        Weights are (D_out, D_in) as torch has them. numpy arrays, whatever the model
        computes on (a model on a GPU is copied to the host).
        ``torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in ...})`` accepts it.
        """
        return {
            name: torch_layout(namespace(array).to_numpy(array)).copy()
            for name, array in self._named_arrays().items()
        }

    def _named_arrays(self) -> dict[str, Array]:
        """Parameters' data and buffers, by name, in state_dict's order."""
        arrays = {name: p.data for name, p in self.named_parameters()}
        arrays.update(self.named_buffers())
        return arrays

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Copy ``state`` (``state_dict()``'s names, shapes and layout) into parameters and buffers.

        Every name must be there, no other, each of the right shape; values are
        converted to the parameter's dtype. Nothing is copied if anything differs.
        """
        named = self._named_arrays()
        missing, unexpected = sorted(set(named) - set(state)), sorted(set(state) - set(named))
        if missing or unexpected:
            raise ValueError(
                f"load_state_dict: missing {missing or 'nothing'}, unexpected "
                f"{unexpected or 'nothing'}; expected {list(named)}"
            )
        arrays = {name: np.asarray(value) for name, value in state.items()}
        for name, target in named.items():
            expected = torch_layout(target).shape
            if arrays[name].shape != expected:
                raise ValueError(
                    f"load_state_dict: {name!r} has shape {arrays[name].shape}, "
                    f"expected {expected} (PyTorch's layout)"
                )
        for name, target in named.items():
            namespace(target).assign(target, from_torch_layout(arrays[name]))

    def to(self, target: object, dtype: npt.DTypeLike | None = None) -> Self:
        """Move every parameter, in place; returns self.

        ``target``: a dtype (float32 or float64); a library, "numpy" or "torch" (torch
        on the CPU); or a torch device, "cpu", "cuda", "cuda:1", ``torch.device``
        (the model then computes on torch tensors there, without autograd).
        ``model.to("cuda", "float32")`` does both. Gradients restart at zero and work
        buffers are dropped: build the optimizer after moving.
        """
        xp, resolved = placement(target)
        if dtype is not None:
            resolved = float_dtype(dtype)
        if xp is not None:
            self._move_to(xp)
        if resolved is not None:
            for parameter in self.parameters():
                if parameter.dtype != resolved:
                    parameter.move(convert(parameter.data, parameter.xp, resolved))
            for module in self.modules():
                module.convert_buffers(resolved)
        return self

    def _move_to(self, xp: Any) -> None:
        """Put every module and parameter on namespace ``xp`` (a library and a device)."""
        for module in self.modules():
            if xp.library not in type(module).array_libraries:
                libraries = " and ".join(type(module).array_libraries)
                raise TypeError(
                    f"{type(module).__name__} computes on {libraries} arrays only; it cannot "
                    f"move to {xp.name} (keep this model on numpy)"
                )
        for parameter in self.parameters():
            if parameter.xp is not xp:
                parameter.move(convert(parameter.data, xp, parameter.dtype))
        for module in self.modules():
            if module.xp is not xp:
                for name, value in list(vars(module).items()):  # caches and work buffers
                    if isinstance(value, np.ndarray) or type(value).__module__.startswith("torch"):
                        setattr(module, name, None)
                module.xp = xp

    def convert_buffers(self, dtype: np.dtype[Any]) -> None:
        """Convert this module's own floating buffers to ``dtype`` (for ``to``); none by default."""

    def save(self, path: "str | Path", *, metadata: Mapping[str, Any] | None = None) -> None:
        """Write the model to a safetensors file that ``handprop.load`` (and PyTorch) reads.

        Model files hold a ``Sequential`` of registered layers (``LAYERS``).
        """
        from handprop.checkpoint import save_model
        from handprop.layers.sequential import Sequential

        model = self if isinstance(self, Sequential) else Sequential(self)
        save_model(path, model, metadata=metadata)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def weight_and_bias(weight: Parameter, bias: Parameter | None) -> list[tuple[str, Parameter]]:
    """``[("weight", weight), ("bias", bias)]``, without the bias when there is none."""
    return [("weight", weight)] + ([] if bias is None else [("bias", bias)])


def torch_layout(array: Array) -> Array:
    """PyTorch's layout of a parameter: a 2-D (D_in, D_out) weight is (D_out, D_in); a view."""
    return array.T if array.ndim == 2 else array


def from_torch_layout(array: Array) -> Array:
    """handprop's layout of a parameter in PyTorch's: the inverse of ``torch_layout``; a view."""
    return array.T if array.ndim == 2 else array


def require_array(owner: str, x: object, xp: Any = NUMPY) -> Array:
    """``x`` if it is a floating array of ``xp`` (numpy), else a TypeError naming ``owner``."""
    return xp.require(owner, x)  # type: ignore[no-any-return]


def require_cache(
    owner: str,
    cache: Array | None,
    grad: object,
    output_shape: tuple[int, ...] | None = None,
    xp: Any = NUMPY,
) -> tuple[Array, Array]:
    """Return ``(cache, grad)`` for ``owner.backward`` after checking both.

    ``grad`` must have the forward output's shape (``output_shape``, by default
    the cache's own) and the cache's dtype. Raises RuntimeError when backward
    comes before forward, ValueError/TypeError for a gradient that does not fit.
    """
    if cache is None:
        raise RuntimeError(f"{owner}.backward was called before {owner}.forward; run forward first")
    checked: Array = xp.require(f"{owner}.backward", grad)
    expected = cache.shape if output_shape is None else output_shape
    if checked.shape != expected or checked.dtype != cache.dtype:
        raise ValueError(
            f"{owner}.backward expected a gradient of shape {tuple(expected)} and dtype "
            f"{dtype_name(cache)} (like the forward output), received {tuple(checked.shape)} "
            f"{dtype_name(checked)}"
        )
    return cache, checked
