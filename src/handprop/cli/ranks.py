"""A command on every rank of an MPI job: one failing rank ends the job, in one line.

A rank that raises prints ``handprop: rank R of K: ...`` and aborts every rank
(MPI_Abort), with the exit code the error has on one process: 2 for bad input, 1
otherwise, 130 for Ctrl-C. A divergence is decided by every rank alike (the same
weights, the same losses): rank 0 alone says so, and every rank exits with 1; so for an
``EveryRankError`` (exit code 2).

A rank killed by a signal (SIGKILL from the out-of-memory killer, a ``kill -9``) can say
nothing, and the launcher's cleanup kills the others at once, before they could notice.
So each rank's work runs in a child process (``watched``): the process the launcher
started waits for it, and if a signal ended it, says which rank died and how, and exits
with 128 + the signal's number, which makes the launcher end the job.
"""

import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable

from handprop._text import one_line
from handprop.cli.errors import Interrupted, TrainingFailed
from handprop.distributed import Communicator, EveryRankError

#: How long a rank's last words get before it ends the job: MPICH's launcher can kill the
#: job before it forwards what the rank just wrote (as in ``Communicator.abort``).
_LAST_WORDS_S = 0.25


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
    except EveryRankError as error:  # every rank stopped at the same point: no abort needed
        if comm.rank == 0:
            print(f"handprop: {one_line(str(error))}", file=sys.stderr)
        return 2
    except BaseException as error:  # KeyboardInterrupt and SystemExit too
        # a second Ctrl-C (the launcher signals the process group, the watching parent
        # forwards it again) must not cut the abort short: the rank would leave without
        # MPI_Abort and the others wait for it forever
        signal.signal(signal.SIGINT, signal.SIG_IGN)
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


def watched(rank: int, size: int, job: Callable[[], int]) -> int:
    """``job()``'s exit code, ``job`` run in a child process this one watches.

    Returns in the child with ``job()``'s code; in this process, once the child ended,
    with its exit code, after one line naming the rank if a signal killed it. Call it
    before MPI is initialised (mpi4py imported): the child is the MPI process.
    """
    sys.stdout.flush()  # else what is buffered would be written twice
    sys.stderr.flush()
    parent = os.getpid()
    child = os.fork()
    if child == 0:
        _die_with(parent)
        return job()
    received: list[int] = []

    def forward(number: int, _frame: object) -> None:
        received.append(number)
        os.kill(child, number)

    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = [signal.signal(number, forward) for number in forwarded]
    try:
        _, status = os.waitpid(child, 0)
    finally:
        for sent, handler in zip(forwarded, before, strict=True):
            signal.signal(sent, handler)
    if not os.WIFSIGNALED(status):
        return os.waitstatus_to_exitcode(status)
    number = os.WTERMSIG(status)
    if number not in received:  # a signal sent to this rank's work alone
        how = f"killed by signal {number} ({signal.Signals(number).name})"
        print(f"handprop: rank {rank} of {size}: {how}", file=sys.stderr)
        sys.stderr.flush()
        time.sleep(_LAST_WORDS_S)
    return 128 + number


def _die_with(parent: int) -> None:
    """End this (child) process when its parent ends, as the launcher kills only the parent."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG: Linux
    except (OSError, AttributeError):  # another system: the launcher kills process groups
        pass
    if os.getppid() != parent:  # it ended before prctl
        os._exit(1)
