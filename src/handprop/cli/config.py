"""``handprop train``'s settings: a frozen dataclass built from the command line, or from a
checkpoint when resuming (then only the settings that cannot change the arithmetic may differ).
"""

import argparse
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from handprop.data import DATASET_TASKS

#: What a resumed run may change: where things go, and how far it trains.
RESUMABLE = frozenset(
    {"data", "epochs", "out", "checkpoint", "checkpoint_every", "log", "plot", "quiet"}
)


@dataclass(frozen=True)
class TrainConfig:
    data: str
    target: str | None = None
    task: str = "regression"
    hidden: tuple[int, ...] = (100,)
    activation: str = "relu"
    bias: bool = True
    loss: str = "mse"
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 32
    epochs: int = 200
    seed: int = 0
    validation_fraction: float = 0.1
    patience: int | None = 20
    schedule: str = "none"
    step_size: int = 30
    gamma: float = 0.1
    clip_norm: float | None = None
    on_divergence: str = "stop"
    drop_nonfinite: bool = False
    standardize: bool = True
    dtype: str = "float64"
    out: str | None = None
    checkpoint: str | None = None
    checkpoint_every: int | None = None
    log: str | None = None
    plot: str | None = None
    quiet: bool = False

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "hidden": list(self.hidden)}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The settings given on the command line, with defaults that depend on the task."""
    given = _given(args)
    if "data" not in given:
        raise ValueError("train needs --data (a .csv/.npy/.npz file or a bundled data set name)")
    task = given.get("task") or DATASET_TASKS.get(given["data"], "regression")
    optimizer = given.get("optimizer", "adam")
    defaults: dict[str, Any] = {
        "task": task,
        "loss": "cross-entropy" if task == "classification" else "mse",
        "lr": 1e-3 if optimizer == "adam" else 0.01,
    }
    config = TrainConfig(**{**defaults, **given})
    if config.patience == 0:  # --patience 0: no early stopping
        config = replace(config, patience=None)
    _check(config)
    return config


def resumed_config(saved: dict[str, Any], args: argparse.Namespace) -> TrainConfig:
    """The checkpoint's settings, with the command line's changes to what may change."""
    names = {f.name for f in fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in saved.items() if k in names})
    config = replace(config, hidden=tuple(config.hidden))
    changes = _given(args)
    refused = sorted(
        name for name in changes if name not in RESUMABLE and changes[name] != getattr(config, name)
    )
    if refused:
        flags = ", ".join("--" + name.replace("_", "-") for name in refused)
        raise ValueError(
            f"{flags} cannot change when resuming (the checkpoint fixes them); "
            "only --data, --epochs, --out, --checkpoint(-every), --log, --plot and --quiet can"
        )
    config = replace(config, **{k: v for k, v in changes.items() if k in RESUMABLE})
    _check(config)
    return config


def _given(args: argparse.Namespace) -> dict[str, Any]:
    names = {f.name for f in fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    for flag in ("quiet",):
        if given.get(flag) is False:
            del given[flag]
    return given


def _check(config: TrainConfig) -> None:
    if config.task == "classification" and config.loss != "cross-entropy":
        raise ValueError(
            f"--task classification needs --loss cross-entropy, received --loss {config.loss}"
        )
    if config.task == "regression" and config.loss == "cross-entropy":
        raise ValueError("--loss cross-entropy needs --task classification (class labels)")
    if not 0 <= config.validation_fraction < 1:
        raise ValueError(
            f"--validation-fraction must be in [0, 1), received {config.validation_fraction}"
        )
    if config.patience is not None and config.validation_fraction == 0:
        raise ValueError(
            "--patience watches the validation set: give --validation-fraction > 0 or --patience 0"
        )
    if config.checkpoint_every is not None and config.checkpoint is None:
        raise ValueError("--checkpoint-every needs --checkpoint PATH (where to write it)")
    if not math.isfinite(config.lr) or config.lr <= 0:
        raise ValueError(f"--lr must be a finite number > 0, received {config.lr}")
