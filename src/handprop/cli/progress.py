"""Callbacks the command line uses to show and record training: a progress bar and a JSONL log."""

import contextlib
import json
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from handprop.training import Callback, EpochLog, TrainingState


def epoch_record(log: EpochLog, metric: str) -> dict[str, Any]:
    """One epoch as a flat JSON-able dict: epoch, lr, train_loss, train_<metric>, val_..."""
    record: dict[str, Any] = {"epoch": log.epoch, "lr": log.lr, "train_loss": log.train_loss}
    record[f"train_{metric}"] = log.train_metric
    if log.val_loss is not None:
        record["val_loss"] = log.val_loss
        record[f"val_{metric}"] = log.val_metric
    return record


class ProgressBar(Callback):
    """A tqdm bar over all steps, showing the epoch and the running loss.

    Silent when stderr is not a terminal (tqdm's ``disable=None``) or when ``enabled`` is False.
    """

    def __init__(self, total_steps: int, epochs: int, metric: str, enabled: bool = True) -> None:
        from tqdm import tqdm  # imported here: only `train` needs it

        self.bar = tqdm(
            total=total_steps, unit="step", disable=None if enabled else True, leave=False
        )
        self.epochs, self.metric = epochs, metric
        self.running: float | None = None

    def on_step_end(self, step: int, loss: float) -> None:
        self.running = loss if self.running is None else 0.9 * self.running + 0.1 * loss
        self.bar.update(1)
        if step % 10 == 0:
            self.bar.set_postfix_str(f"loss {self.running:.4g}", refresh=False)

    def on_epoch_end(self, log: EpochLog, state: TrainingState) -> None:
        shown = log.val_metric if log.val_metric is not None else log.train_metric
        where = "val" if log.val_metric is not None else "train"
        self.bar.set_description(
            f"epoch {log.epoch}/{self.epochs} {where} {self.metric} {shown:.4f}"
        )

    def close(self) -> None:
        self.bar.close()


class JsonlLog(Callback):
    """Writes one JSON object per epoch to a file, a whole line at a time.

    A write that fails (disk full, file too large) is undone back to the last whole
    line and raises a ValueError that names the file.
    """

    def __init__(self, path: Path, metric: str) -> None:
        self.path, self.metric = path, metric
        self.file: IO[bytes] = path.open("wb", buffering=0)
        self.size = 0  # bytes in whole lines so far

    def on_epoch_end(self, log: EpochLog, state: TrainingState) -> None:
        self.write(epoch_record(log, self.metric))

    def write(self, record: dict[str, Any]) -> None:
        line = memoryview((json.dumps(record) + "\n").encode("utf-8"))
        try:
            while line:
                line = line[self.file.write(line) or 0 :]
        except OSError as error:
            with contextlib.suppress(OSError):
                self.file.truncate(self.size)  # no torn last line
            reason = error.strerror or type(error).__name__
            raise ValueError(f"cannot write the log {self.path}: {reason}") from None
        self.size = self.file.tell()

    def __enter__(self) -> "JsonlLog":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.file.close()
