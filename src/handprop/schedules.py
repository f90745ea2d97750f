"""Learning-rate schedules: the factor by which the base rate is multiplied in each epoch."""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class StepSchedule:
    """Multiply the rate by ``gamma`` every ``step_size`` epochs, as torch's ``StepLR``."""

    step_size: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.step_size < 1 or not (math.isfinite(self.gamma) and self.gamma > 0):
            raise ValueError(
                f"StepSchedule needs step_size >= 1 and gamma > 0, received {self.step_size}, "
                f"{self.gamma}"
            )

    def factor(self, epoch: int) -> float:
        return float(self.gamma ** (epoch // self.step_size))


@dataclass(frozen=True)
class CosineSchedule:
    """Half a cosine from 1 at epoch 0 to ``min_factor`` at ``epochs``, as ``CosineAnnealingLR``."""

    epochs: int
    min_factor: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or not 0 <= self.min_factor <= 1:
            raise ValueError(
                f"CosineSchedule needs epochs >= 1 and 0 <= min_factor <= 1, received "
                f"{self.epochs}, {self.min_factor}"
            )

    def factor(self, epoch: int) -> float:
        progress = min(epoch, self.epochs) / self.epochs
        return self.min_factor + (1 - self.min_factor) * (1 + math.cos(math.pi * progress)) / 2


Schedule = StepSchedule | CosineSchedule
