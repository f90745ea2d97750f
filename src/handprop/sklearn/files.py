"""Model files for the estimators, with the metadata ``handprop train`` writes, both ways.

An estimator's file holds what ``handprop evaluate`` and ``handprop predict``
read (task, loss, feature and target names, classes; no scalers) and, under
``"config"``, the estimator's class and hyperparameters. A file written by
``handprop train`` loads too: its training settings become hyperparameters and
its scalers are applied, as ``handprop predict`` applies them.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from handprop._text import plain
from handprop.checkpoint import PathLike, load_model, model_config
from handprop.data import Encoding, Standardizer
from handprop.layers import ACTIVATIONS, Linear, Module, Sequential, mlp
from handprop.losses import LOSSES
from handprop.sklearn._training import Training

#: The estimators' loss names, by the command line's (the names files hold).
LOSS_NAMES = {"mse": "squared_error", "sse": "sum_squared_error", "cross-entropy": "cross_entropy"}

#: ``handprop train`` settings, and the hyperparameters they become.
_FROM_TRAIN_CONFIG = {
    "activation": "activation",
    "bias": "bias",
    "optimizer": "optimizer",
    "lr": "learning_rate",
    "momentum": "momentum",
    "weight_decay": "weight_decay",
    "batch_size": "batch_size",
    "epochs": "max_epochs",
    "seed": "random_state",
    "validation_fraction": "validation_fraction",
    "dtype": "dtype",
}


def metadata(
    estimator: str,
    params: dict[str, Any],
    task: str,
    training: Training,
    feature_names: list[str] | None,
    classes: Sequence[Any] | None,
) -> dict[str, Any]:
    """The keys ``handprop train`` writes, for an estimator's network."""
    d_in, d_out = training.linears[0].in_features, training.linears[-1].out_features
    single = task == "classification" or d_out == 1
    targets = training.target_names or (("y",) if single else tuple(f"y{j}" for j in range(d_out)))
    return {
        "task": task,
        "loss": LOSSES.name_of(training.loss_fn),
        "feature_names": [str(name) for name in feature_names or _default_names(d_in)],
        "target_names": list(targets),
        "classes": None if classes is None else [plain(label) for label in classes],
        "x_scaler": None if training.x_scaler is None else training.x_scaler.to_json(),
        "y_scaler": None if training.y_scaler is None else training.y_scaler.to_json(),
        "config": {"estimator": estimator, "params": _json_params(params)},
    }


def read(path: PathLike, task: str) -> tuple[Sequential, dict[str, Any]]:
    """The network and metadata in ``path``, which must hold a model for ``task``."""
    model, info = load_model(path)
    found = info.get("task", "regression")
    if found != task:
        owner = "HandpropClassifier" if found == "classification" else "HandpropRegressor"
        raise ValueError(f"{path} holds a {found} model; load it with {owner}.load")
    return model, info


def params(
    path: PathLike, info: dict[str, Any], model: Sequential, defaults: dict[str, Any]
) -> dict[str, Any]:
    """Hyperparameters for the network in ``path``: its training settings and its shape."""
    config = info.get("config")
    found: dict[str, Any] = {}
    if isinstance(config, dict) and isinstance(config.get("params"), dict):
        found.update(config["params"])  # written by an estimator
    elif isinstance(config, dict):
        found.update(_from_train_config(config))
    found.update(_architecture(path, model))
    if isinstance(info.get("loss"), str):
        found["loss"] = LOSS_NAMES.get(info["loss"], info["loss"])
    found.setdefault("dtype", model.parameters()[0].dtype.name)
    return {name: value for name, value in found.items() if name in defaults}


def scalers(info: dict[str, Any]) -> tuple[Standardizer | None, Standardizer | None]:
    """The file's input and target standardisers, or None where it has none."""
    x_scaler, y_scaler = info.get("x_scaler"), info.get("y_scaler")
    return (
        None if x_scaler is None else Standardizer.from_json(x_scaler),
        None if y_scaler is None else Standardizer.from_json(y_scaler),
    )


def target_names(info: dict[str, Any]) -> tuple[str, ...] | None:
    names = info.get("target_names")
    return tuple(str(name) for name in names) if isinstance(names, list) and names else None


def encoding(info: dict[str, Any]) -> Encoding | None:
    """The file's one-hot encoding and fills (``handprop train`` on a table), or None."""
    found = info.get("encoding")
    return None if found is None else Encoding.from_json(found)


def feature_names(info: dict[str, Any]) -> list[str] | None:
    """The file's column names, unless they are the ones made up for plain arrays."""
    names = info.get("feature_names")
    if not isinstance(names, list):
        return None
    made_up = (_default_names(len(names)), [str(j) for j in range(len(names))])
    return None if names in made_up else [str(name) for name in names]


def _default_names(width: int) -> list[str]:
    return [f"x{j}" for j in range(width)]


def _from_train_config(config: dict[str, Any]) -> dict[str, Any]:
    found = {name: config[key] for key, name in _FROM_TRAIN_CONFIG.items() if key in config}
    patience = config.get("patience")
    found["early_stopping"] = patience is not None
    if patience is not None:
        found["patience"] = patience
    return found


def _architecture(path: PathLike, model: Sequential) -> dict[str, Any]:
    """hidden_layer_sizes, activation and bias of an ``mlp()``; a ValueError for other networks."""
    linears = [layer for layer in model.layers if isinstance(layer, Linear)]
    others = [layer for layer in model.layers if not isinstance(layer, Linear)]
    activation = _activation_name(others[0]) if others else "relu"
    found = {
        "hidden_layer_sizes": tuple(layer.out_features for layer in linears[:-1]),
        "activation": activation,
        "bias": bool(linears) and linears[0].bias is not None,
    }
    if not linears or not activation or _rebuilt(linears, found) != model_config(model):
        layers = ", ".join(type(layer).__name__ for layer in model.layers) or "no layers"
        raise ValueError(
            f"{path} holds {layers}; the estimators load Linear layers with one kind of "
            "activation between them and none after the last"
        )
    return found


def _activation_name(layer: Module) -> str:
    """The layer's name in ACTIVATIONS, or "" if it is not an activation."""
    try:
        return ACTIVATIONS.name_of(layer)
    except TypeError:
        return ""


def _rebuilt(linears: list[Linear], found: dict[str, Any]) -> dict[str, Any]:
    """The architecture ``mlp()`` makes with ``found``, to compare with the file's."""
    model = mlp(
        linears[0].in_features, found["hidden_layer_sizes"], linears[-1].out_features,
        activation=found["activation"], bias=found["bias"], rng=np.random.default_rng(0),
        dtype=linears[0].dtype,
    )  # fmt: skip
    return model_config(model)


def _json_params(params: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters as JSON; a RandomState random_state is saved as None."""
    found = dict(params)
    hidden = found["hidden_layer_sizes"]
    found["hidden_layer_sizes"] = list(hidden) if isinstance(hidden, Sequence) else hidden
    seed = found["random_state"]
    found["random_state"] = int(seed) if isinstance(seed, int | np.integer) else None
    if found["dtype"] is not None:
        found["dtype"] = np.dtype(found["dtype"]).name
    return found
