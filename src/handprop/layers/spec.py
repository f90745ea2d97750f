"""A network from a compact description: ``"conv 16 3 pad 1, relu, maxpool 2, flatten, linear 10"``.

Layers are separated by commas; in each, a word and its settings::

    conv C_OUT K [stride S] [pad P] [nobias]   Conv2d, a K x K kernel
    maxpool K [stride S]                        MaxPool2d (stride: K unless given)
    avgpool K [stride S]                        AvgPool2d
    flatten                                     Flatten: (C, H, W) -> C * H * W
    linear D_OUT [nobias]                       Linear
    dropout P                                   Dropout with probability P
    batchnorm                                   BatchNorm2d on images, BatchNorm1d on vectors
    layernorm                                   LayerNorm over each sample: (C, H, W) or D
    relu, tanh, sigmoid, identity, leaky_relu [SLOPE]   activations

The input width of each layer follows from ``input_shape`` and the layers before it.
"""

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from handprop.init import as_generator
from handprop.layers.activations import ACTIVATIONS, LeakyReLU
from handprop.layers.conv import Conv2d, output_size
from handprop.layers.dropout import Dropout
from handprop.layers.linear import Linear
from handprop.layers.module import Module
from handprop.layers.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from handprop.layers.pooling import AvgPool2d, Flatten, MaxPool2d
from handprop.layers.sequential import Sequential

Shape = tuple[int, ...]


class _Builder:
    """Builds one layer at a time, tracking the shape (without N) that flows between them."""

    def __init__(self, shape: Shape, rng: np.random.Generator, dtype: npt.DTypeLike) -> None:
        self.shape, self.rng, self.dtype = shape, rng, dtype

    def conv(self, args: list[str]) -> Module:
        out, kernel = _ints(args, 2, "conv C_OUT K")
        settings = _options(args[2:], ("stride", "pad"), ("nobias",))
        c, height, width = self._image("conv")
        stride, pad = settings.get("stride", 1), settings.get("pad", 0)
        bias = "nobias" not in settings
        layer = Conv2d(c, out, kernel, stride, pad, bias, rng=self.rng, dtype=self.dtype)
        self._to_image(out, height, width, kernel, stride, pad)
        return layer

    def pool(self, kind: type[MaxPool2d] | type[AvgPool2d], args: list[str]) -> Module:
        kernel = _ints(args, 1, "maxpool K / avgpool K")[0]
        stride = _options(args[1:], ("stride",), ()).get("stride", kernel)
        c, height, width = self._image(kind.__name__)
        self._to_image(c, height, width, kernel, stride, 0)
        return kind(kernel, stride)

    def linear(self, args: list[str]) -> Module:
        out = _ints(args, 1, "linear D_OUT")[0]
        bias = "nobias" not in _options(args[1:], (), ("nobias",))
        if len(self.shape) != 1:
            raise ValueError(f"linear needs vectors, the shape here is {self.shape}: add flatten")
        layer = Linear(self.shape[0], out, bias, rng=self.rng, dtype=self.dtype)
        self.shape = (out,)
        return layer

    def flatten(self, args: list[str]) -> Module:
        _no_arguments("flatten", args)
        self.shape = (int(np.prod(self.shape)),)
        return Flatten()

    def dropout(self, args: list[str]) -> Module:
        p = _number(args, "dropout P")
        return Dropout(p, rng=self.rng.spawn(1)[0])

    def batchnorm(self, args: list[str]) -> Module:
        _no_arguments("batchnorm", args)
        if len(self.shape) == 3:
            return BatchNorm2d(self.shape[0], dtype=self.dtype)
        return BatchNorm1d(self.shape[0], dtype=self.dtype)

    def layernorm(self, args: list[str]) -> Module:
        _no_arguments("layernorm", args)
        return LayerNorm(self.shape, dtype=self.dtype)  # an image's C, H, W: torch's usual

    def _image(self, what: str) -> Shape:
        if len(self.shape) != 3:
            raise ValueError(f"{what} needs images (C, H, W), the shape here is {self.shape}")
        return self.shape

    def _to_image(self, c: int, height: int, width: int, k: int, stride: int, pad: int) -> None:
        h_out, w_out = output_size(height, k, stride, pad), output_size(width, k, stride, pad)
        if h_out < 1 or w_out < 1:
            raise ValueError(
                f"a {k}x{k} window (padding {pad}) does not fit images of {height}x{width}"
            )
        self.shape = (c, h_out, w_out)


def _ints(args: list[str], count: int, usage: str) -> list[int]:
    try:
        values = [int(word) for word in args[:count]]
    except ValueError:
        values = []
    if len(values) != count:
        raise ValueError(f"expected {usage}, received {' '.join(args)!r}")
    return values


def _number(args: list[str], usage: str) -> float:
    try:
        (value,) = args
        return float(value)
    except ValueError:
        raise ValueError(f"expected {usage}, received {' '.join(args)!r}") from None


def _options(words: list[str], valued: Sequence[str], flags: Sequence[str]) -> dict[str, int]:
    """``stride 2 pad 1 nobias`` -> {"stride": 2, "pad": 1, "nobias": 1}."""
    found: dict[str, int] = {}
    position = 0
    while position < len(words):
        word = words[position]
        if word in flags:
            found[word], position = 1, position + 1
        elif word in valued and position + 1 < len(words) and words[position + 1].isdecimal():
            found[word], position = int(words[position + 1]), position + 2
        else:
            valid = [f"{name} N" for name in valued] + list(flags)
            raise ValueError(f"unexpected {word!r}; valid here: {', '.join(valid) or 'nothing'}")
    return found


def _no_arguments(word: str, args: list[str]) -> None:
    if args:
        raise ValueError(f"{word} takes no settings, received {' '.join(args)!r}")


def _words(builder: _Builder) -> dict[str, Callable[[list[str]], Module]]:
    words: dict[str, Callable[[list[str]], Module]] = {
        "conv": builder.conv,
        "maxpool": lambda args: builder.pool(MaxPool2d, args),
        "avgpool": lambda args: builder.pool(AvgPool2d, args),
        "flatten": builder.flatten,
        "linear": builder.linear,
        "dropout": builder.dropout,
        "batchnorm": builder.batchnorm,
        "layernorm": builder.layernorm,
        "leaky_relu": lambda args: LeakyReLU(_number(args, "leaky_relu SLOPE") if args else 0.01),
    }
    for name in ACTIVATIONS:
        words.setdefault(name, _activation(name))
    return words


def _activation(name: str) -> Callable[[list[str]], Module]:
    def make(args: list[str]) -> Module:
        _no_arguments(name, args)
        return ACTIVATIONS[name]()

    return make


#: The words whose layers take images (N, C, H, W).
IMAGE_WORDS = frozenset({"conv", "maxpool", "avgpool", "flatten"})


def takes_images(spec: str) -> bool:
    """Whether ``spec`` has a layer that takes images (conv, pooling or flatten)."""
    return any((item.split() or [""])[0] in IMAGE_WORDS for item in spec.split(","))


def build_layers(
    spec: str,
    input_shape: Sequence[int],
    *,
    rng: np.random.Generator | int | None = None,
    dtype: npt.DTypeLike = np.float64,
) -> Sequential:
    """The Sequential that ``spec`` describes, for inputs of ``input_shape`` (without N).

    ``build_layers("conv 16 3 pad 1, relu, maxpool 2, flatten, linear 10", (1, 8, 8), rng=0)``.
    Weights are drawn from ``rng`` (a Generator or an int seed); each Dropout gets its
    own generator spawned from it. A ValueError names the layer at fault and lists
    the valid words.
    """
    shape = tuple(int(size) for size in input_shape)
    if not shape or any(size < 1 for size in shape):
        raise ValueError(f"input_shape must be positive sizes, (C, H, W) or (D,), received {shape}")
    generator = as_generator(rng)
    if not isinstance(generator, np.random.Generator):
        raise TypeError("build_layers needs a numpy Generator or an int seed as rng")
    builder = _Builder(shape, generator, dtype)
    words = _words(builder)
    layers = []
    for position, item in enumerate(spec.split(","), start=1):
        word, *args = item.split() or [""]
        if word not in words:
            raise ValueError(
                f"layer {position} of {spec!r}: unknown word {word!r}; valid words: "
                f"{', '.join(sorted(words))}"
            )
        try:
            layers.append(words[word](args))
        except ValueError as error:
            raise ValueError(f"layer {position} ({item.strip()!r}) of {spec!r}: {error}") from None
    return Sequential(*layers)
