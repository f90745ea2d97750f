"""Run under ``mpiexec -n K`` by tests/test_review_scores.py: the steps' scores over ranks.

Every rank trains ``exploding()`` (finite steps, last weights whose loss overflows) with the
steps' scores on 2 rows (a rank of 3 holds none), in memory and as RowShards; rank 0 saves
each rank's stop reason and weight.
"""

import sys

import numpy as np

import handprop as hp
from handprop.distributed import RowShard, world
from handprop.training import fit
from tests.test_review_scores import exploding


def main(out: str) -> None:
    comm = world()
    assert comm is not None, "run under mpiexec -n K with K > 1"
    saved = {}
    for shards in (False, True):
        model, optimizer, (x, y) = exploding()
        data = (RowShard.of(x, comm), RowShard.of(y, comm)) if shards else (x, y)
        with np.errstate(over="ignore"):
            history = fit(model, hp.SumSquaredError(), optimizer, data, epochs=1, batch_size=1,
                          comm=comm)  # fmt: skip
        said = comm.allgather((history.stop_reason, model.parameters()[0].data.item()))
        saved[f"shards={shards}"] = np.array([[reason, weight] for reason, weight in said])
    if comm.rank == 0:
        np.savez(out, **saved)


if __name__ == "__main__":
    main(sys.argv[1])
