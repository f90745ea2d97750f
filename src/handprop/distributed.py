"""Data-parallel training over MPI (mpi4py): the few collective calls training needs.

K processes train one model: rank r owns the r-th contiguous part of the rows (and may
hold only those, ``RowShard``); of every global mini-batch each rank computes the
gradients of the rows it owns, weighted by their share of the batch, into one contiguous
buffer (every parameter's gradient, the loss, the share); one exchange a step sums the
buffers, and every rank applies the same update. The exchange is one ``Allreduce``, or,
when every rank runs on one machine, a sum in MPI shared memory (``SharedSum``), which
copies nothing. Scores, standardisation statistics and BatchNorm's running statistics
are merged across ranks. Rank 0 alone writes files.

A plain ``python`` run imports nothing from MPI: ``world()`` imports mpi4py only when an
MPI launcher (``mpiexec``, ``srun``) started this process, and returns None for a world of
one process, which is the plain single-process path.
"""

import hashlib
import importlib.util
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from handprop._types import Array
from handprop.moments import Moments
from handprop.parameter import Parameter

#: Set in every process an MPI launcher starts: MPICH's hydra and Slurm's PMI (PMI_RANK,
#: PMI_SIZE; hydra also MPI_LOCALRANKID, MPI_LOCALNRANKS: this machine's ranks), PMIx
#: (PMIX_RANK: Open MPI 5, srun --mpi=pmix), Open MPI (OMPI_COMM_WORLD_RANK, _SIZE).
_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MPI_LOCALRANKID")
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")


class EveryRankError(ValueError):
    """Raised by every rank alike, at the same point of a collective run: no rank waits.

    A command reports it once (rank 0), not once per rank.
    """


class MissingMPI(RuntimeError):
    """An MPI launcher started this process as one of several, but mpi4py is not installed."""


def launched() -> tuple[int, int] | None:
    """(rank, size) that an MPI launcher's environment gives this process, or None.

    Read from the launchers' variables, before (and without) MPI: a size the variables
    do not say counts as at least ``rank + 1``.
    """
    ranks = [_integer(name) for name in _RANK_VARIABLES if name in os.environ]
    sizes = [_integer(name) for name in _SIZE_VARIABLES if name in os.environ]
    if not ranks and not sizes:
        return None
    rank = ranks[0] if ranks else 0
    return rank, max([rank + 1, *sizes])


def _integer(name: str) -> int:
    try:
        return int(os.environ[name])
    except ValueError:
        return 0


def mpi_installed() -> bool:
    """Whether mpi4py can be imported (without importing it, which starts MPI)."""
    return importlib.util.find_spec("mpi4py") is not None


def check_mpi(rank: int, size: int) -> None:
    """Raise MissingMPI if this process is one of ``size`` > 1 and mpi4py is not installed.

    Without mpi4py the launched processes would each train alone on all the data and
    write the same files.
    """
    if size > 1 and not mpi_installed():
        raise MissingMPI(
            f"started by an MPI launcher as rank {rank} of {size}, but mpi4py is not installed, "
            f"so the {size} processes would each train alone and write the same files: "
            "pip install 'handprop[mpi]' (or run one process, without mpiexec)"
        )


class Communicator:
    """A world of ``size`` processes; this one is ``rank``. Wraps an mpi4py communicator.

    Every method is collective: each rank calls it, in the same order.
    """

    def __init__(self, comm: Any, shared_memory: bool = True) -> None:
        self.comm = comm
        self.rank: int = comm.Get_rank()
        self.size: int = comm.Get_size()
        self.shared_memory = shared_memory  # False: gradients always travel by Allreduce

    def allreduce_sum(self, buffer: Array) -> None:
        """``buffer`` becomes the element-wise sum of every rank's ``buffer``: one Allreduce."""
        from mpi4py import MPI

        self.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)

    def shared_sum(self, n: int, dtype: np.dtype[Any]) -> "SharedSum | None":
        """A ``SharedSum`` of ``n`` numbers if every rank runs on this machine, else None.

        None too with ``shared_memory=False``, or if ``/dev/shm`` (where MPICH puts shared
        windows) has no room for it: a container's is often 64 MB, and a window larger
        than its room can be mapped all the same, to fail (tmpfs: SIGBUS) at the first
        write past it.
        Collective: every rank calls it.
        """
        node = self._machine((self.size + 1) * n * np.dtype(dtype).itemsize)
        return None if node is None else SharedSum(node, n, dtype)

    def shared_array(self, n: int, dtype: np.dtype[Any]) -> "SharedArray | None":
        """A ``SharedArray`` of ``n`` numbers if every rank runs on this machine, else None.

        None as ``shared_sum`` says. Collective: every rank calls it.
        """
        node = self._machine(n * np.dtype(dtype).itemsize)
        return None if node is None else SharedArray(node, n, dtype)

    def _machine(self, needed: int) -> Any:
        """The communicator of this machine's ranks if it holds every rank and ``needed``
        bytes fit in ``/dev/shm`` on every rank, else None (see ``shared_sum``)."""
        if not self.shared_memory or self.size < 2:
            return None
        from mpi4py import MPI

        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        fits = node.Get_size() == self.size and shared_memory_room() >= needed
        if not node.allreduce(fits, op=MPI.LAND):  # several machines, or no room
            node.Free()
            return None
        return node

    def allgather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (small Python objects), in rank order."""
        return list(self.comm.allgather(value))

    def broadcast(self, value: Any, root: int = 0) -> Any:
        """Rank ``root``'s ``value``, on every rank."""
        return self.comm.bcast(value, root=root)

    def merge_moments(self, local: Moments) -> Moments:
        """Count, mean and squared deviations of every rank's rows (Chan et al.'s merge).

        Merged in rank order, so every rank gets the same bits.
        """
        merged = Moments.empty(len(local.mean))
        for part in self.allgather(local):
            merged = merged.merge(part)
        return merged

    def average(self, arrays: Sequence[Array]) -> None:
        """Every array becomes the mean over the ranks (integer arrays: the maximum).

        Floating arrays of one dtype travel in one Allreduce, integer arrays in another.
        """
        from mpi4py import MPI

        for floating, op in ((True, MPI.SUM), (False, MPI.MAX)):
            chosen = [a for a in arrays if np.issubdtype(a.dtype, np.floating) == floating]
            if not chosen:
                continue
            dtype = np.result_type(*chosen)
            buffer = np.concatenate([np.ravel(a).astype(dtype) for a in chosen])
            self.comm.Allreduce(MPI.IN_PLACE, buffer, op=op)
            if floating:
                buffer /= self.size
            offset = 0
            for array in chosen:
                array[...] = buffer[offset : offset + array.size].reshape(array.shape)
                offset += array.size

    def rows(self, n: int) -> slice:
        """This rank's contiguous share of ``n`` rows (sizes differ by at most 1)."""
        return shard(n, self.rank, self.size)

    def shard_of(self, n: int, rank: int) -> slice:
        """Rank ``rank``'s contiguous share of ``n`` rows."""
        return shard(n, rank, self.size)

    def check_same(self, arrays: Sequence[Array], what: str) -> None:
        """Raise RuntimeError unless ``arrays`` hold the same bytes on every rank."""
        digest = hashlib.sha256()
        for array in arrays:
            digest.update(np.ascontiguousarray(array).tobytes())
        digests = self.allgather(digest.hexdigest())
        differ = [rank for rank, d in enumerate(digests) if d != digests[0]]
        if differ:
            raise RuntimeError(f"{what} differ between rank 0 and rank(s) {differ}")

    def abort(self, code: int) -> None:
        """End every rank of the job with exit code ``code`` (MPI_Abort)."""
        sys.stdout.flush()
        sys.stderr.flush()
        # MPICH's launcher can kill the job before it forwards what this rank just wrote
        # (the reason went missing in 2 of 12 runs); a moment lets it through.
        time.sleep(0.25)
        self.comm.Abort(code)
        os._exit(code)  # MPICH's MPI_Abort may return in the rank that calls it


def world() -> Communicator | None:
    """The MPI world this process was launched into, or None for a plain, single process.

    mpi4py is imported (MPI initialised) only under an MPI launcher; a launched process
    one of several without mpi4py (the ``mpi`` extra) raises MissingMPI.
    """
    place = launched()
    if place is None:
        return None
    check_mpi(*place)
    try:
        from mpi4py import MPI
    except ImportError:  # a world of one process: the plain path
        return None
    communicator = Communicator(MPI.COMM_WORLD)
    return communicator if communicator.size > 1 else None


def shared_memory_room() -> float:
    """Bytes free in ``/dev/shm``; infinite where there is none to ask (not Linux)."""
    try:
        place = os.statvfs("/dev/shm")
    except OSError:
        return math.inf
    return place.f_bavail * place.f_frsize


def shard(n: int, rank: int, size: int) -> slice:
    """Rank ``rank``'s contiguous share of ``n`` rows among ``size`` ranks."""
    return slice(n * rank // size, n * (rank + 1) // size)


class RowShard:
    """This rank's rows of an array of ``total`` rows, standing in for the whole array.

    Indexed as the whole array is, by row numbers (an index array, or a slice of step
    1) among this rank's own, ``comm.rows(total)``; ``len`` and ``shape`` are the whole
    array's. ``fit(comm=...)`` reads a rank's own rows alone, so a rank may hold these.
    Shape: rows (stop - start, ...); shape (total, ...).
    """

    def __init__(self, rows: Array, start: int, total: int) -> None:
        self.rows, self.start, self.stop, self.total = rows, start, start + len(rows), total
        self.shape = (total, *rows.shape[1:])
        self.ndim, self.dtype = rows.ndim, rows.dtype

    @classmethod
    def of(cls, array: Array, comm: "Communicator") -> "RowShard":
        """A copy of ``array``'s rows that are ``comm``'s rank's (the array can then go)."""
        rows = comm.rows(len(array))
        return cls(np.array(array[rows]), rows.start, len(array))

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, index: Array | slice) -> Array:
        if isinstance(index, slice):
            start, stop, step = index.indices(self.total)
            if step == 1 and (start >= stop or (self.start <= start and stop <= self.stop)):
                return self.rows[max(start - self.start, 0) : max(stop - self.start, 0)]
        else:
            index = np.asarray(index)
            if not index.size or (self.start <= index.min() and index.max() < self.stop):
                gathered: Array = self.rows[index - self.start]
                return gathered
        raise IndexError(
            f"this rank holds rows {self.start} to {self.stop - 1} of {self.total}, "
            f"received rows outside them: {index!r:.60}"
        )


class SharedArray:
    """``n`` numbers in one MPI shared window, which every rank of one machine maps.

    Rank 0 allocates it; every rank's ``array`` views the same memory. What a rank
    writes, the others read after a ``barrier``. Shape: array (n,).
    """

    def __init__(self, node: Any, n: int, dtype: np.dtype[Any]) -> None:
        from mpi4py import MPI

        self.node, itemsize = node, np.dtype(dtype).itemsize
        self.rank, self.size = node.Get_rank(), node.Get_size()
        self.window = MPI.Win.Allocate_shared(
            n * itemsize if self.rank == 0 else 0, itemsize, comm=node
        )
        memory, _ = self.window.Shared_query(0)
        self.array: Array = np.ndarray((n,), dtype=dtype, buffer=memory)  # type: ignore[arg-type]

    def barrier(self) -> None:
        """Wait for every rank of the machine."""
        self.node.Barrier()

    def close(self) -> None:
        """Free the window (collective); ``array`` and its views must not be read after."""
        self.window.Free()
        self.node.Free()


class SharedSum:
    """The ranks of one machine sum their buffers in shared memory, each a part of the sum.

    An MPI shared window holds K + 1 rows of ``n`` numbers: row r is rank r's buffer
    (``mine``), row K the sum (``total``), which every rank reads. ``add_up`` waits for
    every rank (a barrier), adds up its K-th part of the rows, in rank order, and waits
    again: no message is copied (an Allreduce copies each number in and out of MPI's own
    shared memory), and every rank reads the same bits. Shape: the window (K + 1, n).
    """

    #: Numbers added at a time: the rows' parts stay in cache while they are summed.
    part_size = 32768

    def __init__(self, node: Any, n: int, dtype: np.dtype[Any]) -> None:
        self.node, self.size, rank = node, node.Get_size(), node.Get_rank()
        self.shared = SharedArray(node, (self.size + 1) * n, dtype)
        self.rows: Array = self.shared.array.reshape(self.size + 1, n)
        self.mine, self.total = self.rows[rank], self.rows[self.size]
        self.part = shard(n, rank, self.size)

    def add_up(self, normalise: bool = False) -> None:
        """``total`` becomes the sum of every rank's ``mine``.

        ``normalise``: then divided by its last entry (the ranks' weights, which stays)
        where that is > 0.
        """
        self.node.Barrier()  # every rank's buffer is written
        rows, total, mine = self.rows[: self.size], self.total, self.part
        for start in range(mine.start, mine.stop, self.part_size):
            part = slice(start, min(start + self.part_size, mine.stop))
            np.add(rows[0, part], rows[1, part], out=total[part])
            for row in rows[2:]:
                np.add(total[part], row[part], out=total[part])
        if normalise:
            divisor = rows[0, -1]
            for row in rows[1:]:  # total[-1], in the same order, whichever rank sums it
                divisor = divisor + row[-1]
            if divisor > 0:
                total[mine.start : min(mine.stop, len(total) - 1)] /= divisor
        self.node.Barrier()  # every part is summed: the sum is whole, the buffers free

    def close(self) -> None:
        """Free the shared window (collective); ``rows`` and its views must not be read after."""
        self.shared.close()


class GradientExchange:
    """Every parameter's gradient, the loss and a weight in one buffer, summed once a step.

    Each Parameter's ``.grad`` is rebound to a view of the buffer, so backward writes
    straight into it, already scaled by this rank's share of the global batch (the
    share scales ``grad_y_pred``); ``average(loss, share)`` sums gradients and losses
    over the ranks and returns the batch's loss.

    When every rank runs on one machine (``comm.shared_sum``), the buffer is this rank's
    row of a ``SharedSum`` instead of an Allreduce's, and after ``average`` each
    ``.grad`` views the summed row, which every rank of the machine reads: read it, do
    not write it (``average(private=True)`` copies it into this rank's buffer first).
    ``collect()`` points ``.grad`` back at the buffer before the next backward.

    ``normalise``: the shares are weights whose sum the ranks do not know (a
    class-weighted loss: each rank's rows' class weights); the sums are then divided by
    the sum of the shares, exchanged in the same sum.
    """

    def __init__(
        self,
        comm: Communicator,
        params: Sequence[Parameter],
        normalise: bool = False,
        dtype: np.dtype[Any] | None = None,
    ) -> None:
        params = list({id(p): p for p in params}.values())  # a parameter held twice: once
        dtypes = {p.dtype for p in params} | ({np.dtype(dtype)} if dtype is not None else set())
        if len(dtypes) != 1:  # ``dtype``: that of the loss when no parameter is left here
            names = sorted(map(str, dtypes))
            raise TypeError(f"the parameters must share one dtype, received {names}")
        self.comm, self.params, self.normalise = comm, list(params), normalise
        dtype = dtypes.pop()
        # the last two entries: the loss, and the ranks' weights summed (see average)
        n = sum(p.data.size for p in self.params) + 2
        self.shared = comm.shared_sum(n, dtype)
        self.buffer = np.zeros(n, dtype=dtype) if self.shared is None else self.shared.mine
        self.views = self._views(self.buffer)
        self.sums = self.views if self.shared is None else self._views(self.shared.total)
        self.collect()

    def _views(self, buffer: Array) -> list[Array]:
        """Each parameter's part of ``buffer``, in its shape."""
        offsets = np.cumsum([0, *(p.data.size for p in self.params)])
        return [
            buffer[a:b].reshape(p.shape)
            for p, a, b in zip(self.params, offsets[:-1], offsets[1:], strict=True)
        ]

    def collect(self) -> None:
        """Point every ``.grad`` at its view of this rank's buffer (before ``zero_grad``)."""
        for parameter, view in zip(self.params, self.views, strict=True):
            parameter.grad = view

    def average(self, loss: float, share: float, private: bool = False) -> float:
        """Sum the (scaled) gradients and ``loss`` over the ranks into every ``.grad``; the loss.

        ``share``: this rank's weight, summed too (``normalise`` divides by the sum).
        ``private``: the summed ``.grad`` will be written (clipping): not shared then.
        """
        for parameter, view in zip(self.params, self.views, strict=True):
            grad = parameter.grad  # reading it writes the zeros of a lazy zero_grad
            if grad is not view:  # rebound since (Module.to, a layer's own array)
                np.copyto(view, grad)
                parameter.grad = view
        self.buffer[-2:] = loss, share
        if self.shared is None:
            self.comm.allreduce_sum(self.buffer)
            if self.normalise and self.buffer[-1] > 0:
                self.buffer[:-1] /= self.buffer[-1]
            return float(self.buffer[-2])
        self.shared.add_up(self.normalise)
        if private:
            np.copyto(self.buffer, self.shared.total)  # no rank reads this one's row now
        else:
            for parameter, summed in zip(self.params, self.sums, strict=True):
                parameter.grad = summed
        return float(self.shared.total[-2])

    def close(self) -> None:
        """Free the shared memory, if any (collective): ``.grad`` and the buffer become copies."""
        if self.shared is None:
            return
        for parameter in self.params:
            parameter.grad = np.array(parameter.grad)
        self.buffer = np.array(self.buffer)
        self.views = self.sums = self._views(self.buffer)
        self.shared.close()
        self.shared = None
