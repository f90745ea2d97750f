"""A fully-connected network of any depth: the tutorial's two layers, generalised."""

import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from handprop.init import INITIALIZERS, Initializer, RandomSource, as_generator
from handprop.layers.activations import ACTIVATIONS
from handprop.layers.linear import Linear
from handprop.layers.module import Module
from handprop.layers.sequential import Sequential


def mlp(
    d_in: int,
    hidden: Sequence[int],
    d_out: int,
    *,
    activation: str = "relu",
    bias: bool = True,
    rng: RandomSource | int | None = None,
    dtype: npt.DTypeLike = np.float64,
    init: Initializer | None = None,
) -> Sequential:
    """``Linear(d_in, hidden[0]), act, ..., Linear(hidden[-1], d_out)``.

    Weights come from ``init``; by default He normal after ReLU-like
    activations and Glorot uniform after tanh, sigmoid or identity.
    Shape: x (N, d_in) -> y (N, d_out).
    """
    make_activation = ACTIVATIONS[activation]  # the error for an unknown name comes first
    if init is None:
        init = INITIALIZERS["he_normal" if "relu" in activation else "glorot_uniform"]
    rng = as_generator(rng)
    widths = [d_in, *hidden, d_out]
    layers: list[Module] = []
    for index, (width_in, width_out) in enumerate(itertools.pairwise(widths)):
        layers.append(Linear(width_in, width_out, bias, init=init, rng=rng, dtype=dtype))
        if index < len(hidden):
            layers.append(make_activation())
    return Sequential(*layers)
