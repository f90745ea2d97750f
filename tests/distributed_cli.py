"""``handprop`` on every rank of ``mpiexec``, with a failure injected into one rank.

Usage: ``mpiexec -n K python tests/distributed_cli.py RANK STEP HOW handprop-arguments...``:
rank RANK fails at its training step STEP, HOW being ``raise`` (an exception) or
``kill`` (SIGKILL); RANK -1 injects nothing. HOW ``shards=FOLDER``: every rank writes
the rows it holds to FOLDER/RANK (``train START STOP TOTAL HELD validation START STOP TOTAL HELD``).
"""

import os
import signal
import sys
from pathlib import Path
from typing import Any

import handprop.cli.training
import handprop.training.loop
from handprop.cli import main
from handprop.distributed import launched


def report_shards(folder: Path) -> None:
    original = handprop.cli.training.prepare

    def reporting(*args: Any, **kwargs: Any) -> Any:
        prepared = original(*args, **kwargs)
        parts = [("train", prepared.train_x), ("validation", prepared.validation[0])]
        held = " ".join(f"{n} {a.start} {a.stop} {a.total} {len(a.rows)}" for n, a in parts)
        (folder / str(launched()[0])).write_text(held)  # type: ignore[index]
        return prepared

    handprop.cli.training.prepare = reporting


def inject(rank: int, step: int, how: str) -> None:
    if how.startswith("shards="):
        report_shards(Path(how.removeprefix("shards=")))
        return
    place = launched()  # not world(): MPI starts in the process handprop's CLI forks
    if place is None or place[0] != rank:
        return
    original = handprop.training.loop.sharded_step
    done = 0

    def failing(*args: Any, **kwargs: Any) -> float:
        nonlocal done
        done += 1
        if done == step:
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError(f"injected failure at step {step}")
        return original(*args, **kwargs)

    handprop.training.loop.sharded_step = failing  # type: ignore[assignment]


if __name__ == "__main__":
    inject(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
    sys.exit(main(sys.argv[4:]))
