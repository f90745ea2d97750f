"""A command on every rank of an MPI job: one failing rank ends the job, in one line.

A rank that raises prints ``handprop: rank R of K: ...`` and aborts every rank
(MPI_Abort), with the exit code the error has on one process: 2 for bad input, 1
otherwise, 130 for Ctrl-C. A divergence is decided by every rank alike (the same
weights, the same losses): rank 0 alone says so, and every rank exits with 1.
"""

import sys
from collections.abc import Callable

from handprop._text import one_line
from handprop.cli.errors import Interrupted, TrainingFailed
from handprop.distributed import Communicator


def on_every_rank(comm: Communicator, job: Callable[[], int]) -> int:
    """``job()``'s exit code; an exception on any rank aborts the job naming that rank."""
    try:
        code = job()
        comm.broadcast(code)  # every rank waits for rank 0's writes: a failure there aborts all
        return code
    except TrainingFailed as error:
        if comm.rank == 0:
            print(f"handprop: {error}", file=sys.stderr)
        return 1
    except BaseException as error:  # KeyboardInterrupt and SystemExit too
        reason = one_line(str(error)) or type(error).__name__
        print(f"handprop: rank {comm.rank} of {comm.size}: {reason}", file=sys.stderr)
        comm.abort(_exit_code(error))
        raise  # not reached: abort ends the process


def _exit_code(error: BaseException) -> int:
    if isinstance(error, KeyboardInterrupt | Interrupted):
        return 130
    if isinstance(error, ValueError | TypeError | OSError):
        return 2
    return 1
