"""Layers: each one's backward sits directly under its forward."""

from handprop.layers.activations import (
    ACTIVATIONS,
    Identity,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Tanh,
    activation,
)
from handprop.layers.linear import Linear
from handprop.layers.mlp import mlp
from handprop.layers.module import LAYERS, Module
from handprop.layers.sequential import Sequential

__all__ = [
    "ACTIVATIONS",
    "LAYERS",
    "Identity",
    "LeakyReLU",
    "Linear",
    "Module",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "activation",
    "mlp",
]
