"""Training: one step (``train_step``), the epoch loop (``fit``), what it keeps
(``TrainingState``, ``History``) and how others observe it (``Callback``).

The loop (and with it the MPI path) is imported on first use: ``handprop warmup`` needs
only the step.
"""

from typing import TYPE_CHECKING, Any

from handprop.training.callbacks import Callback
from handprop.training.state import EpochLog, History, TrainingState
from handprop.training.step import clip_gradients, train_step

if TYPE_CHECKING:
    from handprop.training.loop import FitOptions, batches, evaluate, fit

_LOOP = ("FitOptions", "batches", "evaluate", "fit")


def __getattr__(name: str) -> Any:
    if name not in _LOOP:
        raise AttributeError(f"module 'handprop.training' has no attribute {name!r}")
    from handprop.training import loop

    return getattr(loop, name)


__all__ = [
    "Callback",
    "EpochLog",
    "FitOptions",
    "History",
    "TrainingState",
    "batches",
    "clip_gradients",
    "evaluate",
    "fit",
    "train_step",
]
