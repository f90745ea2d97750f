"""What a training run has done so far, as ``fit`` keeps it and checkpoints save it."""

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from handprop._types import Array


@dataclass(frozen=True)
class EpochLog:
    """What one epoch achieved: losses and metric on the training and validation sets."""

    epoch: int  # from 1
    train_loss: float
    train_metric: float
    val_loss: float | None
    val_metric: float | None
    lr: float


@dataclass
class TrainingState:
    """Everything ``fit`` needs to continue where it stopped (saved in checkpoints)."""

    epoch: int = 0  # epochs completed
    step: int = 0  # mini-batch steps completed
    logs: list[EpochLog] = field(default_factory=list)
    lr_scale: float = 1.0  # halved by each divergence rollback
    rollbacks: int = 0
    best_epoch: int | None = None
    best_metric: float = -math.inf
    best_loss: float = math.inf  # breaks ties between epochs with the same metric
    best_parameters: list[Array] | None = None  # parameters' data, then the buffers
    base_lr: float | None = None  # the optimizer's rate when training first started

    def to_json(self) -> dict[str, Any]:
        """JSON-able fields; ``best_parameters`` is left out (save those arrays as a model)."""
        saved = asdict(self)
        saved["logs"] = [asdict(log) for log in self.logs]
        saved["best_parameters"] = None
        if self.best_epoch is None:  # -inf and inf are not JSON
            saved["best_metric"] = saved["best_loss"] = None
        return saved

    @classmethod
    def from_json(cls, saved: dict[str, Any]) -> "TrainingState":
        """The state ``to_json`` wrote (without ``best_parameters``)."""
        names = {f.name for f in fields(cls)}
        values = {key: value for key, value in saved.items() if key in names}
        values["logs"] = [EpochLog(**log) for log in saved.get("logs", [])]
        values["best_parameters"] = None
        if values.get("best_metric") is None:
            values["best_metric"], values["best_loss"] = -math.inf, math.inf
        return cls(**values)


@dataclass
class History:
    """The per-epoch logs, and why training ended."""

    metric: str
    logs: list[EpochLog]
    stop_reason: Literal["completed", "early stopping", "diverged"]
    best_epoch: int | None
    message: str = ""
