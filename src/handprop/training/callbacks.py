"""``Callback``: how code outside ``fit`` observes training (progress bars, logs, checkpoints)."""

from handprop.training.state import EpochLog, TrainingState


class Callback:
    """Observes training; override what you need. Called after each step and each epoch."""

    def on_step_end(self, step: int, loss: float) -> None:
        """After every mini-batch step (``step`` counts from 1 over the whole run)."""

    def on_epoch_end(self, log: EpochLog, state: TrainingState) -> None:
        """After every epoch, once the epoch's metrics are known."""
