"""handprop: neural networks whose backward pass is written by hand.

Every layer's backward sits beside its forward, readable like the "Warm-up:
numpy" tutorial, checked by finite differences and against PyTorch.
"""

from handprop import init
from handprop.fit import History, fit
from handprop.gradcheck import GradientReport, TensorCheck, check_gradients
from handprop.layers import (
    Identity,
    LeakyReLU,
    Linear,
    Module,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    activation,
    mlp,
)
from handprop.losses import Loss, MeanSquaredError, SoftmaxCrossEntropy, SumSquaredError
from handprop.optim import SGD, Adam, Optimizer
from handprop.parameter import Parameter
from handprop.train import train_step

__version__ = "0.1.0"

__all__ = [
    "SGD",
    "Adam",
    "GradientReport",
    "History",
    "Identity",
    "LeakyReLU",
    "Linear",
    "Loss",
    "MeanSquaredError",
    "Module",
    "Optimizer",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "SoftmaxCrossEntropy",
    "SumSquaredError",
    "Tanh",
    "TensorCheck",
    "__version__",
    "activation",
    "check_gradients",
    "fit",
    "init",
    "mlp",
    "train_step",
]
