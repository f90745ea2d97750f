"""Training: one step (``train_step``), the epoch loop (``fit``), what it keeps
(``TrainingState``, ``History``) and how others observe it (``Callback``)."""

from handprop.training.callbacks import Callback
from handprop.training.loop import FitOptions, batches, evaluate, fit
from handprop.training.state import EpochLog, History, TrainingState
from handprop.training.step import clip_gradients, train_step

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
