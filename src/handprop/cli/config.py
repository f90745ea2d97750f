"""``handprop train``'s settings: a frozen dataclass built from the command line, or from a
checkpoint when resuming (then only the settings that cannot change the arithmetic may differ).
"""

import argparse
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from handprop.cli.metadata import is_finite_number, is_integer
from handprop.data import DATASET_TASKS
from handprop.data.encoding import IMPUTE
from handprop.layers import ACTIVATIONS
from handprop.layers.spec import takes_images
from handprop.losses import LOSSES
from handprop.optim import OPTIMIZERS

#: Where a run writes. Only the command line names them: a checkpoint's config never
#: does, so a checkpoint handed to a user cannot make a resumed run overwrite their files.
OUTPUTS = frozenset({"out", "checkpoint", "checkpoint_every", "log", "plot"})
#: What a resumed run may change: where things go, and how far it trains.
RESUMABLE = frozenset({"data", "epochs", "quiet", "train_scores"} | OUTPUTS)  # not training


@dataclass(frozen=True)
class TrainConfig:
    data: str
    target: str | None = None
    task: str | None = None  # None until the data says (inferred when --task is not given)
    hidden: tuple[int, ...] = (100,)
    layers: str | None = None  # --layers: the whole network (then hidden, activation unused)
    activation: str = "relu"
    bias: bool = True
    loss: str | None = None  # None: cross-entropy for classification, else mse
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 32
    epochs: int = 200
    seed: int = 0
    validation_fraction: float = 0.1
    test_fraction: float = 0.0
    patience: int | None = 20
    monitor: str = "val-metric"
    schedule: str = "none"
    step_size: int = 30
    gamma: float = 0.1
    clip_norm: float | None = None
    on_divergence: str = "stop"
    train_scores: str = "steps"
    drop_nonfinite: bool = False
    features: tuple[str, ...] | None = None
    drop: tuple[str, ...] = ()
    categorical: tuple[str, ...] | None = None
    impute: str | None = None
    delimiter: str | None = None
    decimal: str = "."
    class_weight: str | None = None
    standardize: bool = True
    dtype: str = "float64"
    out: str | None = None
    checkpoint: str | None = None
    checkpoint_every: int | None = None
    log: str | None = None
    plot: str | None = None
    quiet: bool = False

    def to_json(self) -> dict[str, Any]:
        """The settings a model file records: everything but where this run writes."""
        saved = {k: v for k, v in asdict(self).items() if k not in OUTPUTS}
        lists = {k: list(v) for k, v in saved.items() if isinstance(v, tuple)}
        return {**saved, **lists}

    def with_task(self, task: str) -> "TrainConfig":
        """These settings once the data has decided the task (and so the default loss)."""
        loss = self.loss or ("cross-entropy" if task == "classification" else "mse")
        config = replace(self, task=task, loss=loss)
        _check(config)
        return config


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The settings given on the command line, with defaults that depend on the task."""
    given = _given(args)
    if "data" not in given:
        raise ValueError("train needs --data (a .csv/.npy/.npz file or a bundled data set name)")
    optimizer = given.get("optimizer", "adam")
    defaults: dict[str, Any] = {"lr": OPTIMIZERS[optimizer].default_lr}
    if given.get("validation_fraction") == 0 and "patience" not in given:
        defaults["patience"] = None  # nothing to watch: no early stopping
    mixed = sorted({"hidden", "activation", "bias"} & set(given))
    if "layers" in given and mixed:
        flags = ", ".join("--no-bias" if name == "bias" else f"--{name}" for name in mixed)
        raise ValueError(
            f"--layers describes the whole network: leave out {flags}, and say it in --layers"
        )
    config = TrainConfig(**{**defaults, **given})
    if config.patience == 0:  # --patience 0: no early stopping
        config = replace(config, patience=None)
    task = config.task or DATASET_TASKS.get(config.data)
    if task is not None:
        config = config.with_task(task)
    elif config.loss is not None:  # a loss says the task
        config = config.with_task("classification" if config.loss == "cross-entropy" else
                                  "regression")  # fmt: skip
    _check(config)
    return config


def resumed_config(source: str, saved: object, args: argparse.Namespace) -> TrainConfig:
    """The checkpoint's settings, with the command line's changes to what may change.

    Outputs (``--out``, ``--checkpoint``, ``--log``, ``--plot``) come from the command line
    alone; every saved setting is checked first (ValueError naming ``source`` and the field).
    """
    config = saved_config(source, saved)
    changes = _given(args)
    refused = sorted(
        name for name in changes if name not in RESUMABLE and changes[name] != getattr(config, name)
    )
    if refused:
        flags = ", ".join("--" + name.replace("_", "-") for name in refused)
        raise ValueError(
            f"{flags} cannot change when resuming (the checkpoint fixes them); "
            "only --data, --epochs, --out, --checkpoint(-every), --log, --plot, --quiet and "
            "--train-scores can"
        )
    config = replace(config, **{k: v for k, v in changes.items() if k in RESUMABLE})
    _check(config)
    return config


def saved_config(source: str, saved: object) -> TrainConfig:
    """The settings a checkpoint's ``config`` holds, each checked; outputs are left unset."""
    if not isinstance(saved, dict) or not isinstance(saved.get("data"), str):
        raise ValueError(f"{source} was not written by handprop train --checkpoint")
    names = {f.name for f in fields(TrainConfig)} - OUTPUTS
    kept = {k: v for k, v in saved.items() if k in names}
    kept.setdefault("train_scores", "full")  # a file from before the setting: as it scored
    for name, value in kept.items():
        valid, expected = _SAVED_FIELDS[name]
        if not valid(value):
            raise ValueError(
                f"{source}: saved setting {name} must be {expected}, received {value!r:.80}"
            )
    for name, value in kept.items():
        if isinstance(value, list):
            kept[name] = tuple(value)
    if kept.get("task") is None:
        raise ValueError(f"{source}: saved setting task must be regression or classification")
    return TrainConfig(**kept).with_task(kept["task"])


def _integer(low: int) -> Callable[[object], bool]:
    return lambda v: is_integer(v) and v >= low


def _number(low: float, high: float = math.inf) -> Callable[[object], bool]:
    return lambda v: is_finite_number(v) and low <= v < high


def _one_of(*choices: object) -> Callable[[object], bool]:
    return lambda v: isinstance(v, str | bool) and v in choices


def _optional(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda v: v is None or check(v)


def _names(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _widths(value: object) -> bool:
    return isinstance(value, list) and all(_integer(1)(v) for v in value)


_SAVED_FIELDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "data": (lambda v: isinstance(v, str), "a string"),
    "target": (_optional(lambda v: isinstance(v, str)), "a string or null"),
    "task": (_optional(_one_of("regression", "classification")), "regression or classification"),
    "hidden": (_widths, "a list of positive integers"),
    "layers": (_optional(lambda v: isinstance(v, str)), "null or a string"),
    "activation": (_one_of(*ACTIVATIONS), f"one of {', '.join(ACTIVATIONS)}"),
    "bias": (_one_of(True, False), "true or false"),
    "loss": (_optional(_one_of(*LOSSES)), f"one of {', '.join(LOSSES)}"),
    "optimizer": (_one_of(*OPTIMIZERS), f"one of {', '.join(OPTIMIZERS)}"),
    "lr": (_number(0), "a finite number > 0"),
    "momentum": (_number(0), "a finite number >= 0"),
    "weight_decay": (_number(0), "a finite number >= 0"),
    "batch_size": (_integer(1), "an integer >= 1"),
    "epochs": (_integer(0), "an integer >= 0"),
    "seed": (_integer(0), "an integer >= 0"),
    "validation_fraction": (_number(0, 1), "a number in [0, 1)"),
    "test_fraction": (_number(0, 1), "a number in [0, 1)"),
    "patience": (_optional(_integer(1)), "null or an integer >= 1"),
    "monitor": (_one_of("val-metric", "val-loss"), "val-metric or val-loss"),
    "schedule": (_one_of("none", "step", "cosine"), "none, step or cosine"),
    "step_size": (_integer(1), "an integer >= 1"),
    "gamma": (_number(0), "a finite number >= 0"),
    "clip_norm": (_optional(_number(0)), "null or a finite number >= 0"),
    "on_divergence": (_one_of("stop", "rollback"), "stop or rollback"),
    "train_scores": (_one_of("steps", "full"), "steps or full"),
    "drop_nonfinite": (_one_of(True, False), "true or false"),
    "features": (_optional(_names), "null or a list of column names"),
    "drop": (_names, "a list of column names"),
    "categorical": (_optional(_names), "null or a list of column names"),
    "impute": (_optional(_one_of(*IMPUTE)), f"null or one of {', '.join(IMPUTE)}"),
    "delimiter": (_optional(_one_of(",", ";", "\t")), "null, comma, semicolon or tab"),
    "decimal": (_one_of(".", ","), '"." or ","'),
    "class_weight": (_optional(_one_of("balanced")), "null or balanced"),
    "standardize": (_one_of(True, False), "true or false"),
    "dtype": (_one_of("float64", "float32"), "float64 or float32"),
    "quiet": (_one_of(True, False), "true or false"),
}


def _given(args: argparse.Namespace) -> dict[str, Any]:
    names = {f.name for f in fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    for flag in ("quiet",):
        if given.get(flag) is False:
            del given[flag]
    return given


def _check(config: TrainConfig) -> None:
    _check_images(config)
    if config.task == "classification" and config.loss not in (None, "cross-entropy"):
        raise ValueError(
            f"--task classification needs --loss cross-entropy, received --loss {config.loss}"
        )
    if config.task == "regression" and config.loss == "cross-entropy":
        raise ValueError("--loss cross-entropy needs --task classification (class labels)")
    if config.class_weight is not None and config.task == "regression":
        raise ValueError("--class-weight needs --task classification (class labels)")
    if not 0 <= config.test_fraction < 1:
        raise ValueError(f"--test-fraction must be in [0, 1), received {config.test_fraction}")
    if not 0 <= config.validation_fraction < 1:
        raise ValueError(
            f"--validation-fraction must be in [0, 1), received {config.validation_fraction}"
        )
    if config.patience is not None and config.validation_fraction == 0:
        raise ValueError(
            "--patience watches the validation set: give --validation-fraction > 0, or leave "
            "--patience out"
        )
    if config.checkpoint_every is not None and config.checkpoint is None:
        raise ValueError("--checkpoint-every needs --checkpoint PATH (where to write it)")
    if not math.isfinite(config.lr) or config.lr <= 0:
        raise ValueError(f"--lr must be a finite number > 0, received {config.lr}")


def _check_images(config: TrainConfig) -> None:
    """Options for a table's columns mean nothing for images: refused, not ignored."""
    if config.layers is None or not takes_images(config.layers):
        return
    columns = {
        "--target": config.target is not None,
        "--features": config.features is not None,
        "--drop": bool(config.drop),
        "--categorical": config.categorical is not None,
        "--impute": config.impute is not None,
        "--delimiter": config.delimiter is not None,
        "--drop-nonfinite": config.drop_nonfinite,
    }
    given = [flag for flag, present in columns.items() if present]
    if given:
        raise ValueError(
            f"{', '.join(given)} pick a table's columns; --layers with conv, pooling or flatten "
            "reads images (digits, or an .npz holding x (N, C, H, W) and y)"
        )
