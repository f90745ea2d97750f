"""Data-parallel throughput: training steps per second on 1 rank and on K ranks.

    .venv/bin/python -m benchmarks.distributed                 # 1 vs 2 ranks, medium size
    .venv/bin/python -m benchmarks.distributed --ranks 1,2,4 --steps 30
    .venv/bin/python -m benchmarks.distributed --exchange interleaved   # K ranks' steps
        # alternated with the one-rank step in one job: the steadiest ratio on a busy machine

The medium size: global batch 512, D_in 4096, H 1024, D_out 256 (Linear, ReLU, Linear,
mean squared error, plain SGD). K ranks each take 512 / K rows of every batch, by default
both ways: on one machine ("shared") the weights live in shared memory and each rank moves
its block of their rows over the whole batch (``RowSplitSGD``), the biases summed in
shared memory; between machines ("allreduce") every gradient goes through one Allreduce;
one rank runs the plain path (train_step, the fused SGD update). The steps are
``fit``'s (``training.sharded``'s exchange and row split), on fixed rows. Every rank gets
one BLAS thread (OMP_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1 in the children's environment),
so K ranks use K cores: on a machine with fewer idle cores than ranks the ratio says so.
Rank 0's CPU time per step (its arithmetic, copies and Allreduce, busy-waiting included)
tells what the ranks would give with a core each, when other work holds the cores; the
load average is printed before and after.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BATCH, D_IN, H, D_OUT = 512, 4096, 1024, 256


WAYS = ("shared", "allreduce", "alone", "interleaved")


def child(steps: int, warmup: int, way: int, ranks: int) -> None:
    """One rank's part (run under mpiexec, or alone): prints rank 0's seconds per step.

    "alone" alternates rank 0's step with the one-rank step and with rank 0's step split
    by batch rows (every gradient summed in shared memory, then the update: the path before
    the row split), in one process, and prints their medians too: all see the same
    machine, a step apart.
    """
    from handprop.distributed import Communicator, world

    if WAYS[way] == "interleaved":
        interleaved(steps, warmup)
        return
    comm: Any = world()
    if comm is not None and WAYS[way] == "allreduce":
        comm = Communicator(comm.comm, shared_memory=False)
    between: list[_Run] = []  # "alone": the one-rank step, rank 0's by batch rows
    if comm is None and ranks > 1:  # "alone": rank 0's work of K ranks, no rank to wait for
        comm, between = _Alone(ranks), [_Run(None), _Run(_Alone(ranks, shared_weights=False))]
    run = _Run(comm)
    times: list[float] = []
    cpu: list[float] = []
    between_times: list[list[float]] = [[] for _ in between]
    for step in range(warmup + steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        run.step()
        if step >= warmup:
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        for other, other_times in zip(between, between_times, strict=True):
            start = time.perf_counter()
            other.step()
            other_times.append(time.perf_counter() - start)
    exchange, exchange_times = run.exchange, [0.0]
    if exchange is not None:  # the exchange alone (the row split's update), on the same buffers
        exchange_times = []
        for _ in range(steps):
            start = time.perf_counter()
            if run.split is not None:
                run.split.update()
            elif exchange.shared is None:
                exchange.comm.allreduce_sum(exchange.buffer)
            else:
                exchange.shared.add_up()
            exchange_times.append(time.perf_counter() - start)
        if run.split is not None:
            run.split.close(free=True)
        exchange.close()
    if comm is None or comm.rank == 0:
        others = between_times or [[0.0], [0.0]]
        medians = [np.median(t) for t in (times, cpu, exchange_times, *others)]
        print(" ".join(f"{m:.6f}" for m in medians))


def interleaved(steps: int, warmup: int) -> None:
    """K ranks' steps (shared memory) alternated with the one-rank step, in one job.

    Each round times a step of every rank, then rank 0's step of the whole batch on a
    model of its own while the other ranks sleep (they poll a non-blocking barrier, so
    their cores are idle, as when one process trains): the two see the same machine a
    step apart, which ratios of separate runs on a machine that drifts between fast and
    slow states for minutes do not. Prints the medians of the K-rank step, the one-rank
    step and of each round's ratio. Measured here, the one-rank step ran slower inside
    this job than in a run of its own (141-185 against 137-144 ms): compare with the
    plain run printed above it before trusting the ratio.
    """
    from handprop.distributed import world

    comm: Any = world()
    if comm is None:
        raise SystemExit("interleaved runs under mpiexec")
    run, alone = _Run(comm), _Run(None) if comm.rank == 0 else None
    ranks_times, one_times = [], []
    for step in range(warmup + steps):
        start = time.perf_counter()
        run.step()
        ranks_seconds = time.perf_counter() - start
        start = time.perf_counter()
        if alone is not None:
            alone.step()
        one_seconds = time.perf_counter() - start
        request = comm.comm.Ibarrier()
        while not request.Test():
            time.sleep(0.0005)
        if step >= warmup:
            ranks_times.append(ranks_seconds)
            one_times.append(one_seconds)
    if comm.rank == 0:
        ratios = np.array(one_times) / np.array(ranks_times)
        medians = [np.median(ranks_times), np.median(one_times), np.median(ratios)]
        print(" ".join(f"{m:.6f}" for m in medians))
    if run.split is not None:
        run.split.close(free=True)
    if run.exchange is not None:
        run.exchange.close()


class _Run:
    """The medium-size network, its data and SGD; on a world, that rank's rows and exchange."""

    def __init__(self, comm: Any) -> None:
        import handprop as hp
        from handprop.distributed import shard
        from handprop.training.sharded import gradient_exchange

        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((BATCH, D_IN)), rng.standard_normal((BATCH, D_OUT))
        self.model = hp.Sequential(
            hp.Linear(D_IN, H, rng=rng), hp.ReLU(), hp.Linear(H, D_OUT, rng=rng)
        )
        self.loss_fn, self.sgd = hp.MeanSquaredError(), hp.SGD(self.model.parameters(), lr=1e-3)
        self.split = self.exchange = None
        if comm is not None:
            self.split, self.exchange = gradient_exchange(
                comm, self.model, self.sgd, self.loss_fn, None, BATCH
            )
        self.rows = slice(0, BATCH) if comm is None else shard(BATCH, comm.rank, comm.size)
        self.x, self.y = np.ascontiguousarray(x[self.rows]), np.ascontiguousarray(y[self.rows])
        if self.split is not None:  # the rows, gathered once into the first layer's shared input
            self.split.begin(self.rows.start, len(self.x), BATCH)
            self.x = self.split.gather(x, np.arange(self.rows.start, self.rows.stop))
        self.share = len(self.x) / BATCH

    def step(self) -> None:
        from handprop.training import train_step

        if self.split is not None:
            self.split.begin(self.rows.start, len(self.x), BATCH)
        train_step(
            self.model, self.loss_fn, self.sgd, self.x, self.y, exchange=self.exchange,
            share=self.share, split=self.split,
        )  # fmt: skip


class _Alone:
    """Rank 0 of ``size`` ranks that sum in shared memory, in one process: nobody to wait for.

    Its step does a rank's arithmetic and memory traffic (its rows, its part of the sum,
    the update) with the other ranks' rows of the sum left as they are: what each rank
    would take with a core of its own, on a machine whose other cores are busy.
    """

    rank = 0

    def __init__(self, size: int, shared_weights: bool = True) -> None:
        self.size, self.shared_weights = size, shared_weights  # False: split by batch rows

    def check_same(self, arrays: Any, what: str) -> None:
        pass  # nobody else's to compare

    def shared_array(self, n: int, dtype: np.dtype[Any]) -> Any:
        if not self.shared_weights:
            return None

        class Unshared:  # in this process, barriers that pass
            rank, size, array = 0, self.size, np.zeros(n, dtype=dtype)

            def barrier(self) -> None:
                pass

            def close(self) -> None:
                pass

        return Unshared()

    def shared_sum(self, n: int, dtype: np.dtype[Any]) -> Any:
        from handprop.distributed import SharedSum, shard

        class Unshared(SharedSum):
            def __init__(self, size: int) -> None:  # rows in this process, barriers that pass
                self.node, self.size = self, size
                self.rows = np.zeros((size + 1, n), dtype=dtype)
                self.mine, self.total, self.part = self.rows[0], self.rows[size], shard(n, 0, size)

            def Barrier(self) -> None:
                pass

            def close(self) -> None:
                pass

        return Unshared(self.size)


def measure(ranks: int, steps: int, warmup: int, way: str) -> list[float]:
    """Median seconds per global step on ``ranks`` ranks (wall clock, then rank 0's CPU
    time), of its exchange alone (``way``: in shared memory, by an Allreduce, or rank 0's
    work in one process), and for "alone", of the one-rank step and of rank 0's step
    split by batch rows between its steps."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    env["MKL_NUM_THREADS"] = "1"
    child = [
        "--child",
        str(steps),
        str(warmup),
        str(WAYS.index(way) if way in WAYS else 0),
        str(ranks),
    ]
    me = [sys.executable, "-m", "benchmarks.distributed", *child]
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    command = me if ranks == 1 or way == "alone" else [mpiexec, "-n", str(ranks), *me]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return [float(median) for median in done.stdout.split()[-(3 if way == "interleaved" else 5) :]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", default="1,2", help="comma-separated; default 1,2")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--exchange", default="shared,allreduce",
        help="for K > 1 ranks, comma-separated: shared (memory, one machine's ranks), "
        "allreduce, alone (rank 0's work of K ranks, in one process), interleaved (K "
        "ranks' steps alternated with rank 0's one-rank step, in one job)",
    )  # fmt: skip
    parser.add_argument("--child", nargs=4, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    print(f"medium size: batch {BATCH}, {D_IN}-{H}-{D_OUT}, one BLAS thread per rank")
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    base = base_cpu = None
    for ranks in map(int, args.ranks.split(",")):
        for way in ["plain"] if ranks == 1 else args.exchange.split(","):
            if way not in WAYS and ranks > 1:
                parser.error(f"--exchange takes {', '.join(WAYS)}, received {way!r}")
            if way == "interleaved":
                seconds, one, ratio = measure(ranks, args.steps, args.warmup, way)
                print(
                    f"{ranks} rank(s), interleaved with the one-rank step: {seconds * 1e3:7.2f} "
                    f"ms/step, the one-rank step {one * 1e3:7.2f} ms: {ratio:.2f}x one rank "
                    f"(median of the rounds' ratios)"
                )
                continue
            seconds, cpu, exchange, plain, batch_rows = measure(ranks, args.steps, args.warmup, way)
            base, base_cpu = base or seconds, base_cpu or cpu
            print(
                f"{ranks} rank(s), {way:9}: {seconds * 1e3:7.2f} ms/step "
                f"(exchange alone {exchange * 1e3:5.2f} ms), {BATCH / seconds:5.0f} samples/s, "
                f"{base / seconds:.2f}x one rank; rank 0's CPU {cpu * 1e3:.2f} ms/step, "
                f"{base_cpu / cpu:.2f}x"
            )
            if plain:
                print(
                    f"    the one-rank step between these: {plain * 1e3:7.2f} ms, "
                    f"{plain / seconds:.2f}x rank 0's step"
                )
                print(
                    f"    rank 0's step split by batch rows (every gradient summed, then the "
                    f"update), between these: {batch_rows * 1e3:7.2f} ms; the one-rank step "
                    f"{plain / batch_rows:.2f}x it"
                )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
