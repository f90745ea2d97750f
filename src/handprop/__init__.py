"""handprop: neural networks whose backward pass is written by hand.

Every layer's backward sits beside its forward, readable like the "Warm-up:
numpy" tutorial, checked by finite differences and against PyTorch.
"""

from typing import TYPE_CHECKING, Any

from handprop import init
from handprop.layers import (
    ACTIVATIONS,
    LAYERS,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Identity,
    LayerNorm,
    LeakyReLU,
    Linear,
    MaxPool2d,
    Module,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    activation,
    build_layers,
    mlp,
)
from handprop.losses import (
    LOSSES,
    Huber,
    Loss,
    MeanAbsoluteError,
    MeanSquaredError,
    SoftmaxCrossEntropy,
    SumSquaredError,
)
from handprop.metrics import METRICS
from handprop.optim import OPTIMIZERS, SGD, Adam, Optimizer
from handprop.parameter import Gradients, Parameter
from handprop.registry import Registry
from handprop.training.callbacks import Callback
from handprop.training.state import History, TrainingState
from handprop.training.step import train_step

if TYPE_CHECKING:
    from handprop.checkpoint import load
    from handprop.explainer import Explanation, explain
    from handprop.gradcheck import GradientReport, TensorCheck, check_gradients
    from handprop.training.loop import FitOptions, fit

__version__ = "0.1.0"

# Imported on first use, so that ``handprop warmup`` starts without them (issue 5). Only
# names unlike their module's: importing ``handprop.x`` binds the module over a name ``x``.
_LAZY = {
    "GradientReport": "handprop.gradcheck",
    "TensorCheck": "handprop.gradcheck",
    "check_gradients": "handprop.gradcheck",
    "load": "handprop.checkpoint",
    "explain": "handprop.explainer",
    "Explanation": "handprop.explainer",
    "fit": "handprop.training.loop",
    "FitOptions": "handprop.training.loop",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name == "gradcheck":  # the submodule, as `import handprop` used to bind it
        return importlib.import_module("handprop.gradcheck")
    if name not in _LAZY:
        raise AttributeError(f"module 'handprop' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "ACTIVATIONS",
    "LAYERS",
    "LOSSES",
    "METRICS",
    "OPTIMIZERS",
    "SGD",
    "Adam",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Callback",
    "Conv2d",
    "Dropout",
    "Explanation",
    "FitOptions",
    "Flatten",
    "GradientReport",
    "Gradients",
    "History",
    "Huber",
    "Identity",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "Loss",
    "MaxPool2d",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "Module",
    "Optimizer",
    "Parameter",
    "ReLU",
    "Registry",
    "Sequential",
    "Sigmoid",
    "SoftmaxCrossEntropy",
    "SumSquaredError",
    "Tanh",
    "TensorCheck",
    "TrainingState",
    "__version__",
    "activation",
    "build_layers",
    "check_gradients",
    "explain",
    "fit",
    "init",
    "load",
    "mlp",
    "train_step",
]
