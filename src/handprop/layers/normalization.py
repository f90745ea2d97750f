"""Normalisation: BatchNorm1d/2d (over the batch, per channel) and LayerNorm (per sample).

Both compute ``x_hat = (x - mean) / sqrt(var + eps)`` (the biased variance) and
``y = weight * x_hat + bias``. Over the ``n`` values one mean covers, the backward is::

    grad_weight = sum(grad_y * x_hat);  grad_bias = sum(grad_y)
    grad_x_hat = grad_y * weight
    grad_x = (grad_x_hat - mean(grad_x_hat) - x_hat * mean(grad_x_hat * x_hat)) / sqrt(var + eps)

(the two means are the paths through ``mean`` and ``var``).

The arithmetic goes through each layer's array namespace ``xp`` (``handprop.backend``):
the same code computes on numpy arrays and on torch tensors.
"""

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from handprop._types import Array, check_dtype, float_dtype, positive_int
from handprop.backend import convert, namespace
from handprop.layers.module import LAYERS, Module, require_cache
from handprop.parameter import ACCUMULATE, Gradients, Parameter


def _normalized_shape(what: str, value: object) -> int | tuple[int, ...]:
    """A positive int, or a non-empty sequence of them as a tuple (a list from a file)."""
    if isinstance(value, list | tuple) and value:
        return tuple(positive_int(what, size) for size in value)
    if isinstance(value, list | tuple):
        raise ValueError(f"{what} must be a positive integer or a list of them, received []")
    return positive_int(what, value)


def _positive_float(what: str, value: object, upper: float = math.inf) -> float:
    """``value`` as a float if it is a finite number in (0, upper], else a ValueError."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and 0 < value <= upper)
    ):
        bound = f" and <= {upper}" if upper != math.inf else ""
        raise ValueError(f"{what} must be a finite number > 0{bound}, received {value!r}")
    return float(value)


class _Buffer:
    """A BatchNorm buffer (``running_mean``...) kept in ``module.buffer_arrays`` by name, that
    follows the module's namespace: after ``to("torch")`` its first read copies it to a
    tensor there (``Module.to`` drops the arrays it finds among a module's attributes,
    and a buffer must survive the move)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, module: "_BatchNorm | None", owner: type | None = None) -> Any:
        if module is None:
            return self
        array = module.buffer_arrays[self.name]
        if not module.xp.owns(array):  # moved since the last read
            array = convert(array, module.xp, namespace(array).dtype_of(array))
            module.buffer_arrays[self.name] = array
        return array

    def __set__(self, module: "_BatchNorm", array: Array) -> None:
        module.buffer_arrays[self.name] = array


class _BatchNorm(Module):
    """BatchNorm over the batch axis and every axis after the channels (``axes``)."""

    config_fields = ("num_features", "eps", "momentum")
    array_libraries = ("numpy", "torch")
    running_mean = _Buffer()
    running_var = _Buffer()
    num_batches_tracked = _Buffer()
    buffer_dtypes: ClassVar[dict[str, str]] = {"num_batches_tracked": "int64"}
    #: The input's number of dimensions.
    ndim: ClassVar[int] = 2

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        *,
        dtype: npt.DTypeLike = np.float64,
    ) -> None:
        name = type(self).__name__
        self.num_features = positive_int(f"{name} num_features", num_features)
        self.eps = _positive_float(f"{name} eps", eps)
        self.momentum = _positive_float(f"{name} momentum", momentum, upper=1.0)
        dtype = float_dtype(dtype)
        self.weight = Parameter(np.ones(self.num_features, dtype=dtype))
        self.bias = Parameter(np.zeros(self.num_features, dtype=dtype))
        self.buffer_arrays: dict[str, Array] = {}  # running statistics by name (see _Buffer)
        self.running_mean = np.zeros(self.num_features, dtype=dtype)
        self.running_var = np.ones(self.num_features, dtype=dtype)
        self.num_batches_tracked = np.zeros((), dtype=np.int64)
        self.x_hat: Array | None = None  # the cache, with inv_std
        self.inv_std: Array | None = None  # 1 / sqrt(var + eps), per channel
        self.batch_stats = True  # whether the last forward normalised with the batch's statistics
        self.mean: Array | None = None  # work buffers
        self.y: Array | None = None
        self.grad_x: Array | None = None

    @property
    def axes(self) -> tuple[int, ...]:
        return (0, *range(2, self.ndim))

    def config(self) -> dict[str, Any]:
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dtype: str) -> Self:
        return cls(**config, dtype=dtype)

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
        c = positive_int("num_features", config["num_features"])
        _positive_float("eps", config["eps"])
        _positive_float("momentum", config["momentum"], upper=1.0)
        shapes: dict[str, tuple[int, ...]] = {"weight": (c,), "bias": (c,)}
        return {**shapes, "running_mean": (c,), "running_var": (c,), "num_batches_tracked": ()}

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.weight.dtype

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        return [("weight", self.weight), ("bias", self.bias)]

    def named_buffers(self) -> list[tuple[str, Array]]:
        return [
            ("running_mean", self.running_mean),
            ("running_var", self.running_var),
            ("num_batches_tracked", self.num_batches_tracked),
        ]

    def convert_buffers(self, dtype: np.dtype[Any]) -> None:
        self.running_mean = self.xp.astype(self.running_mean, dtype)
        self.running_var = self.xp.astype(self.running_var, dtype)

    def _per_channel(self, values: Array) -> Array:
        """A (C,) array shaped to broadcast against the input: (1, C, 1, ...)."""
        return values.reshape((1, -1) + (1,) * (self.ndim - 2))

    def forward(self, x: Array) -> Array:
        xp = self.xp
        x = self._check_input(x)
        n = math.prod(x.shape) // self.num_features  # the values each channel's mean covers
        self.batch_stats = self.training
        self.x_hat = xp.reuse_like(self.x_hat, x.shape, self.dtype, x)  # in x's memory order
        self.y = xp.reuse_like(self.y, x.shape, self.dtype, x)
        if self.training:
            mean_shape = self._per_channel(self.weight.data).shape
            self.mean = xp.reuse(self.mean, mean_shape, self.dtype)
            xp.mean(x, axis=self.axes, keepdims=True, out=self.mean)
            xp.subtract(x, self.mean, out=self.x_hat)  # x - mean
            xp.multiply(self.x_hat, self.x_hat, out=self.y)  # (x - mean)**2, y as scratch
            var = xp.mean(self.y, axis=self.axes)
            self._update_running(self.mean.reshape(-1), var, n)
        else:
            xp.subtract(x, self._per_channel(self.running_mean), out=self.x_hat)
            var = self.running_var
        self.inv_std = xp.divide(1, xp.sqrt(xp.add(var, self.eps)))
        # x_hat = (x - mean) / sqrt(var + eps)
        xp.multiply(self.x_hat, self._per_channel(self.inv_std), out=self.x_hat)
        xp.multiply(self.x_hat, self._per_channel(self.weight.data), out=self.y)
        xp.add(self.y, self._per_channel(self.bias.data), out=self.y)  # y = weight * x_hat + bias
        return self.y

    def _update_running(self, mean: Array, var: Array, n: int) -> None:
        """As torch: running = (1 - momentum) * running + momentum * batch (var unbiased)."""
        xp, m = self.xp, self.momentum
        running_mean, running_var = self.running_mean, self.running_var
        xp.multiply(running_mean, 1 - m, out=running_mean)
        xp.add(running_mean, xp.multiply(m, mean), out=running_mean)
        xp.multiply(running_var, 1 - m, out=running_var)
        xp.add(running_var, xp.multiply(m * n / max(n - 1, 1), var), out=running_var)
        num_batches_tracked = self.num_batches_tracked
        xp.add(num_batches_tracked, 1, out=num_batches_tracked)

    def backward(self, grad_y: Array, grads: Gradients = ACCUMULATE) -> Array:
        xp = self.xp
        x_hat, grad_y = require_cache(type(self).__name__, self.x_hat, grad_y, None, xp)
        assert self.inv_std is not None
        grad_bias = xp.sum(grad_y, axis=self.axes)  # grad_bias = sum(grad_y)
        self.grad_x = xp.reuse_like(self.grad_x, x_hat.shape, self.dtype, x_hat)
        xp.multiply(grad_y, x_hat, out=self.grad_x)
        grad_weight = xp.sum(self.grad_x, axis=self.axes)  # grad_weight = sum(grad_y * x_hat)
        # grad_x_hat = grad_y * weight, then through (x - mean) / sqrt(var + eps)
        scale = self._per_channel(xp.multiply(self.weight.data, self.inv_std))
        if self.batch_stats:  # the paths through the batch's mean and variance
            n = math.prod(x_hat.shape) // self.num_features
            xp.multiply(x_hat, self._per_channel(xp.divide(grad_weight, n)), out=self.grad_x)
            xp.subtract(grad_y, self.grad_x, out=self.grad_x)
            xp.subtract(self.grad_x, self._per_channel(xp.divide(grad_bias, n)), out=self.grad_x)
            xp.multiply(self.grad_x, scale, out=self.grad_x)
        else:  # evaluation mode: mean and variance are constants
            xp.multiply(grad_y, scale, out=self.grad_x)
        grads.add(self.weight, grad_weight)  # after the weight's last read
        grads.add(self.bias, grad_bias)
        return self.grad_x

    def _check_input(self, x: Array) -> Array:
        name = type(self).__name__
        x = self.xp.require(name, x)
        c, shape = self.num_features, tuple(x.shape)
        expected = {2: f"(N, {c})", 3: f"(N, {c}, L)", 4: f"(N, {c}, H, W)"}[self.ndim]
        if x.ndim != self.ndim or x.shape[1] != c:
            raise ValueError(f"{name} expected input of shape {expected}, received {shape}")
        if self.training and math.prod(shape) // c < 2:
            raise ValueError(
                f"{name} needs more than one value per channel in training, received {shape}"
            )
        check_dtype(name, "input", x, self.dtype)
        return x

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.num_features}, eps={self.eps}, "
            f"momentum={self.momentum}, dtype={self.dtype.name})"
        )


@LAYERS.register("BatchNorm1d")
class BatchNorm1d(_BatchNorm):
    """Batch normalisation of each feature, as ``torch.nn.BatchNorm1d``.

    Shape: x (N, C) -> y (N, C). weight (C,) ones, bias (C,) zeros; buffers
    running_mean, running_var (C,) and num_batches_tracked (int64). Training mode
    normalises with the batch's mean and biased variance and updates the running
    statistics (``running = (1 - momentum) * running + momentum * batch``, the
    variance unbiased); evaluation mode normalises with the running statistics.
    """

    ndim = 2


@LAYERS.register("BatchNorm2d")
class BatchNorm2d(_BatchNorm):
    """Batch normalisation of each channel over (N, H, W), as ``torch.nn.BatchNorm2d``.

    Shape: x (N, C, H, W) -> y (N, C, H, W); otherwise as ``BatchNorm1d``.
    """

    ndim = 4


@LAYERS.register("LayerNorm")
class LayerNorm(Module):
    """Each sample normalised over its last axes, as ``torch.nn.LayerNorm(normalized_shape)``.

    ``normalized_shape``: D (the last axis) or the sizes of the last axes, e.g. (C, H, W)
    for whole images.
    Shape: x (N, ..., *normalized_shape) -> y, the same shape; weight and bias of
    ``normalized_shape``, ones and zeros. Training and evaluation are the same.
    """

    config_fields = ("normalized_shape", "eps")
    array_libraries = ("numpy", "torch")

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        *,
        dtype: npt.DTypeLike = np.float64,
    ) -> None:
        self.normalized_shape = _normalized_shape("LayerNorm normalized_shape", normalized_shape)
        self.eps = _positive_float("LayerNorm eps", eps)
        dtype = float_dtype(dtype)
        stored = self.shape[::-1] if len(self.shape) == 2 else self.shape  # see _as_shape
        self.weight = Parameter(np.ones(stored, dtype=dtype))
        self.bias = Parameter(np.zeros(stored, dtype=dtype))
        self.x_hat: Array | None = None  # the cache, with inv_std
        self.inv_std: Array | None = None  # 1 / sqrt(var + eps), per sample: (M, 1, ...)
        self.y: Array | None = None  # work buffers
        self.grad_x: Array | None = None

    def _as_shape(self, array: Array) -> Array:
        """A parameter (or its gradient) as ``normalized_shape``, and back: a view.

        Model files keep every 2-D parameter as handprop keeps ``Linear``'s weight,
        transposed from PyTorch's layout; a 2-D weight here is kept (B, A) for
        ``normalized_shape`` (A, B), so that its file holds torch's (A, B)."""
        return array.T if len(self.shape) == 2 else array

    @property
    def shape(self) -> tuple[int, ...]:
        """``normalized_shape`` as a tuple: (D,) for D."""
        shape = self.normalized_shape
        return (shape,) if isinstance(shape, int) else shape

    def config(self) -> dict[str, Any]:
        shape = self.normalized_shape
        return {
            "normalized_shape": shape if isinstance(shape, int) else list(shape),
            "eps": self.eps,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dtype: str) -> Self:
        return cls(**config, dtype=dtype)

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
        shape = _normalized_shape("normalized_shape", config["normalized_shape"])
        _positive_float("eps", config["eps"])
        sizes = (shape,) if isinstance(shape, int) else shape
        return {"weight": sizes, "bias": sizes}

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.weight.dtype

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        return [("weight", self.weight), ("bias", self.bias)]

    def forward(self, x: Array) -> Array:
        xp = self.xp
        x = xp.require("LayerNorm", x)
        shape = self.shape
        if x.ndim <= len(shape) or tuple(x.shape[x.ndim - len(shape) :]) != shape:
            expected = ", ".join(map(str, shape))
            raise ValueError(
                f"LayerNorm expected input of shape (N, ..., {expected}), received {tuple(x.shape)}"
            )
        check_dtype("LayerNorm", "input", x, self.dtype)
        axes = tuple(range(x.ndim - len(shape), x.ndim))  # each sample's normalised axes
        self.x_hat = xp.reuse(self.x_hat, x.shape, self.dtype)
        self.y = xp.reuse(self.y, x.shape, self.dtype)
        mean = xp.mean(x, axis=axes, keepdims=True)
        xp.subtract(x, mean, out=self.x_hat)  # x - mean
        xp.multiply(self.x_hat, self.x_hat, out=self.y)  # (x - mean)**2, y as scratch
        var = xp.mean(self.y, axis=axes, keepdims=True)
        self.inv_std = xp.divide(1, xp.sqrt(xp.add(var, self.eps)))
        # x_hat = (x - mean) / sqrt(var + eps)
        xp.multiply(self.x_hat, self.inv_std, out=self.x_hat)
        xp.multiply(self.x_hat, self._as_shape(self.weight.data), out=self.y)
        xp.add(self.y, self._as_shape(self.bias.data), out=self.y)  # y = weight * x_hat + bias
        return self.y

    def backward(self, grad_y: Array, grads: Gradients = ACCUMULATE) -> Array:
        xp = self.xp
        x_hat, grad_y = require_cache("LayerNorm", self.x_hat, grad_y, None, xp)
        assert self.inv_std is not None
        batch_axes = tuple(range(x_hat.ndim - len(self.shape)))
        axes = tuple(range(len(batch_axes), x_hat.ndim))
        self.grad_x = xp.reuse(self.grad_x, x_hat.shape, self.dtype)
        xp.multiply(grad_y, x_hat, out=self.grad_x)
        grad_weight = xp.sum(self.grad_x, axis=batch_axes)  # grad_weight = sum(grad_y * x_hat)
        grad_bias = xp.sum(grad_y, axis=batch_axes)  # grad_bias = sum(grad_y)
        weight = self._as_shape(self.weight.data)
        xp.multiply(grad_y, weight, out=self.grad_x)  # grad_x_hat = grad_y * weight
        mean_grad = xp.mean(self.grad_x, axis=axes, keepdims=True)
        xp.multiply(self.grad_x, x_hat, out=self.grad_x)
        # mean(grad_x_hat * x_hat)
        mean_grad_x_hat = xp.mean(self.grad_x, axis=axes, keepdims=True)
        xp.multiply(grad_y, weight, out=self.grad_x)
        xp.subtract(self.grad_x, mean_grad, out=self.grad_x)
        xp.subtract(self.grad_x, xp.multiply(x_hat, mean_grad_x_hat), out=self.grad_x)
        xp.multiply(self.grad_x, self.inv_std, out=self.grad_x)
        grads.add(self.weight, self._as_shape(grad_weight))  # after the weight's last read
        grads.add(self.bias, self._as_shape(grad_bias))
        return self.grad_x

    def __repr__(self) -> str:
        return f"LayerNorm({self.normalized_shape}, eps={self.eps}, dtype={self.dtype.name})"
