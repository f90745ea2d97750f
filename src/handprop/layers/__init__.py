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
from handprop.layers.conv import Conv2d
from handprop.layers.dropout import Dropout
from handprop.layers.linear import Linear
from handprop.layers.mlp import mlp
from handprop.layers.module import LAYERS, Module
from handprop.layers.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from handprop.layers.pooling import AvgPool2d, Flatten, MaxPool2d
from handprop.layers.sequential import Sequential
from handprop.layers.spec import build_layers

__all__ = [
    "ACTIVATIONS",
    "LAYERS",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "Dropout",
    "Flatten",
    "Identity",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "MaxPool2d",
    "Module",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "activation",
    "build_layers",
    "mlp",
]
