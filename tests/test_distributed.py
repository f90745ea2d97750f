"""Data-parallel training: one Allreduce a step, and K ranks that train as one process does.

The runs under ``mpiexec -n 2`` and ``-n 3`` (uneven slices) need the ``mpi`` extra; they
skip without it, and fail under CI=true. Each child gets one BLAS thread.
"""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import handprop as hp
from handprop import _blas
from handprop.checkpoint import load_model
from handprop.cli import main
from handprop.cli.ranks import watched
from handprop.distributed import (
    EveryRankError,
    GradientExchange,
    MissingMPI,
    RowShard,
    launched,
    shard,
    world,
)
from handprop.moments import Moments
from handprop.training import train_step
from handprop.training.sharded import check_batch_statistics, sharded_step
from tests.distributed_cases import CASES, ROW_SPLIT, batch_norm_run, steps_per_epoch, train
from tests.distributed_raise import model_and_data
from tests.distributed_raise import train as train_raising

ROOT = Path(__file__).resolve().parent.parent


def mpiexec() -> str:
    """The mpiexec beside this Python (the MPICH wheel's), or on PATH; skips or fails if none."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but mpi4py is not installed: pip install -e '.[mpi]'")
        pytest.skip("mpi4py is not installed (pip install -e '.[mpi]')")
    found = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which(
        "mpiexec"
    )
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but there is no mpiexec (pip install mpich)")
        pytest.skip("no mpiexec (pip install mpich)")
    return found


def launch(ranks: int, *argv: object, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``mpiexec -n ranks python argv...``, one BLAS thread per rank."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    env["MKL_NUM_THREADS"] = "1"
    command = [mpiexec(), "-n", str(ranks), sys.executable, *map(str, argv)]
    return subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


# ----- one process: the parts -----------------------------------------------------------


def test_shards_are_contiguous_cover_every_row_and_differ_by_at_most_one() -> None:
    for n in (0, 1, 2, 7, 32):
        for size in (1, 2, 3):
            parts = [shard(n, rank, size) for rank in range(size)]
            assert [r for part in parts for r in range(n)[part]] == list(range(n))
            assert max(len(range(n)[p]) for p in parts) - min(len(range(n)[p]) for p in parts) <= 1


def test_merged_moments_equal_numpy_on_the_whole() -> None:
    a = np.random.default_rng(0).standard_normal((1000, 3)) * [1, 1e3, 1e-3] + [5, -7, 100]
    merged = Moments.empty(3)
    for part in np.array_split(a, [10, 11, 400, 999]):
        merged = merged.merge(Moments.of(part))
    assert merged.count == 1000
    np.testing.assert_allclose(merged.mean, a.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(merged.std, a.std(axis=0), rtol=1e-9)
    chunked = Moments.of_chunks(a, slice(100, 700), chunk_rows=64)
    np.testing.assert_allclose(chunked.std, a[100:700].std(axis=0), rtol=1e-12)


LAUNCHER_VARIABLES = (
    "PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
    "MPI_LOCALRANKID", "MPI_LOCALNRANKS",
)  # fmt: skip


def plain_process(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def test_a_plain_process_is_no_world(monkeypatch: pytest.MonkeyPatch) -> None:
    plain_process(monkeypatch)
    assert launched() is None
    assert world() is None
    assert "mpi4py" not in sys.modules or "mpi4py.MPI" not in sys.modules


@pytest.mark.parametrize(
    ("variables", "place"),
    [
        ({"PMI_RANK": "1", "PMI_SIZE": "3"}, (1, 3)),  # MPICH's hydra, srun --mpi=pmi2
        ({"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "4"}, (2, 4)),  # Open MPI
        ({"PMIX_RANK": "1"}, (1, 2)),  # PMIx says no size: at least rank + 1
        ({"MPI_LOCALRANKID": "0", "MPI_LOCALNRANKS": "2"}, (0, 2)),
        ({"PMI_RANK": "0", "PMI_SIZE": "1"}, (0, 1)),  # mpiexec -n 1
    ],
)
def test_the_launchers_variables_give_rank_and_size(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], place: tuple[int, int]
) -> None:
    plain_process(monkeypatch, **variables)
    assert launched() == place


@pytest.mark.parametrize("rank", [0, 1])
def test_mpiexec_without_mpi4py_stops_before_k_copies_train(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    regression_csv: Path,
    tmp_path: Path,
    rank: int,
) -> None:
    """Without mpi4py the K processes would each train alone and write the same --out."""
    plain_process(monkeypatch, PMI_RANK=str(rank), PMI_SIZE="2", MPI_LOCALNRANKS="2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # not installed, as find_spec sees it
    out = tmp_path / "m.safetensors"
    code = main(["train", "--data", str(regression_csv), "--epochs", "1", "--out", str(out)])
    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    if rank == 0:  # one line for the job, not one per process
        assert captured.err.startswith("handprop: started by an MPI launcher as rank 0 of 2, ")
        assert "pip install 'handprop[mpi]'" in captured.err
        assert captured.err.count("\n") == 1
    else:
        assert captured.err == ""
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(MissingMPI, match="mpi4py is not installed"):
        world()  # fit(comm=world()) from Python: the same refusal


class TwoIdenticalRanks:
    """A stand-in world of two ranks holding the same data: a sum doubles the buffer."""

    rank, size = 0, 2

    def __init__(self) -> None:
        self.buffers: list[np.ndarray] = []

    def shared_sum(self, n: int, dtype: np.dtype) -> None:  # type: ignore[type-arg]
        return None  # on two machines: the Allreduce

    def allreduce_sum(self, buffer: np.ndarray) -> None:
        self.buffers.append(buffer)
        buffer *= 2


def test_every_gradient_lives_in_one_buffer_exchanged_once_a_step() -> None:
    rng = np.random.default_rng(0)
    model = hp.Sequential(hp.Linear(4, 8, rng=rng), hp.ReLU(), hp.Linear(8, 2, rng=rng))
    sgd = hp.SGD(model.parameters(), lr=0.1)
    comm = TwoIdenticalRanks()
    exchange = GradientExchange(comm, sgd.params)  # type: ignore[arg-type]
    x, y = rng.standard_normal((6, 4)), rng.standard_normal((6, 2))
    for _ in range(3):
        train_step(model, hp.MeanSquaredError(), sgd, x, y, exchange=exchange, share=0.5)
    assert len(comm.buffers) == 3
    assert all(buffer is exchange.buffer for buffer in comm.buffers)
    assert exchange.buffer.size == sum(p.data.size for p in sgd.params) + 2  # loss, weights
    for parameter in sgd.params:
        assert np.shares_memory(parameter.grad, exchange.buffer)


def test_a_fused_sgd_does_not_skip_the_exchange() -> None:
    """Plain SGD offers to fold its update into backward; with an exchange it must not."""

    def one_step(exchange_share: float | None) -> list[np.ndarray]:
        rng = np.random.default_rng(0)
        model = hp.Sequential(hp.Linear(4, 8, rng=rng), hp.Tanh(), hp.Linear(8, 2, rng=rng))
        sgd = hp.SGD(model.parameters(), lr=0.1)
        assert sgd.fused_gradients() is not None
        x, y = rng.standard_normal((6, 4)), rng.standard_normal((6, 2))
        before = [p.data.copy() for p in model.parameters()]
        exchange = None
        if exchange_share is not None:
            exchange = GradientExchange(TwoIdenticalRanks(), sgd.params)  # type: ignore[arg-type]
        train_step(
            model, hp.MeanSquaredError(), sgd, x, y, exchange=exchange,
            share=exchange_share or 1.0,
        )  # fmt: skip
        return [p.data - b for p, b in zip(model.parameters(), before, strict=True)]

    plain, halves, doubled = one_step(None), one_step(0.5), one_step(1.0)
    for a, b, c in zip(plain, halves, doubled, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-16)  # 2 ranks * 0.5: the same step
        np.testing.assert_allclose(c, 2 * a, rtol=1e-13, atol=1e-16)  # the exchanged sum moved it


@pytest.mark.parametrize(
    "options", [{}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1}]
)
def test_the_unfused_sgd_update_rounds_as_the_whole_array_update(options: dict[str, float]) -> None:
    """An exchanged step's update (SGD.step) goes a cache-sized part at a time: same bits."""
    rng = np.random.default_rng(0)
    shape = (300, 250)  # 75000 numbers: more than two parts, the last one short
    w, grad = rng.standard_normal(shape), rng.standard_normal(shape)
    parameter = hp.Parameter(w.copy())
    parameter.grad = grad.copy()
    sgd = hp.SGD([parameter], lr=0.01, **options)
    velocity = np.zeros(shape)
    for _ in range(2):
        sgd.step()
        g = grad + options.get("weight_decay", 0.0) * w
        if "momentum" in options:
            velocity = options["momentum"] * velocity + g
            g = g + options["momentum"] * velocity if options.get("nesterov") else velocity
        w = w - 0.01 * g
        np.testing.assert_array_equal(parameter.data, w)


def test_a_block_of_weight_rows_moves_over_the_whole_batch_in_one_gemm() -> None:
    """``w[rows] += -lr * x_all[:, rows].T @ grad_h_all``: BLAS reads the columns in place."""
    rng = np.random.default_rng(0)
    x_all, grad_h_all = rng.standard_normal((9, 7)), rng.standard_normal((9, 5))
    w = rng.standard_normal((7, 5))
    parameter = hp.Parameter(w.copy())
    sgd = hp.SGD([parameter], lr=0.1)
    fused = sgd.fused_gradients()
    for rows in (slice(0, 3), slice(3, 7)):  # two ranks' blocks
        fused.add_rows(parameter, rows, x_all[:, rows].T, grad_h_all)  # type: ignore[union-attr]
    np.testing.assert_allclose(parameter.data, w - 0.1 * x_all.T @ grad_h_all, rtol=1e-13)
    parameter.grad = np.ones_like(w)
    sgd.step()  # moved by rows: step leaves it alone
    np.testing.assert_allclose(parameter.data, w - 0.1 * x_all.T @ grad_h_all, rtol=1e-13)
    assert _blas._layout(x_all[:, 3:7].T) == (112, 7)  # transposed, leading dimension 7


class SecondOfTwoRanks:
    """Rank 1 of 2 that sums with no one (its sums are its own buffer)."""

    rank, size = 1, 2

    def rows(self, n: int) -> slice:
        return shard(n, self.rank, self.size)

    def shared_sum(self, n: int, dtype: np.dtype) -> None:  # type: ignore[type-arg]
        return None

    def allreduce_sum(self, buffer: np.ndarray) -> None:
        pass


def test_a_rank_with_no_row_of_a_batch_draws_its_dropout_masks_all_the_same() -> None:
    """The generator moves by the whole batch's masks, as the single process's; a CNN too."""
    rng = np.random.default_rng(0)
    dropout = hp.Dropout(0.5, rng=3)
    model = hp.Sequential(
        hp.Conv2d(1, 2, 3, rng=rng), hp.ReLU(), hp.Flatten(), dropout, hp.Linear(72, 2, rng=rng)
    )
    sgd = hp.SGD(model.parameters(), lr=0.1)
    exchange = GradientExchange(SecondOfTwoRanks(), sgd.params)  # type: ignore[arg-type]
    x, y = rng.standard_normal((10, 1, 8, 8)), rng.standard_normal((10, 2))
    batch = np.array([3, 0, 4])  # rank 1 owns rows 5 to 9: none of these
    sharded_step(exchange, model, hp.MeanSquaredError(), sgd, (x, y), batch, None)
    single = np.random.default_rng(3)
    single.random((3, 72))  # the single process's masks of the batch: 3 rows of 72
    assert dropout.rng.bit_generator.state == single.bit_generator.state


class ThreeRanks:
    """Where rows live on 3 ranks, without MPI."""

    size = 3

    def shard_of(self, n: int, rank: int) -> slice:
        return shard(n, rank, self.size)


@pytest.mark.parametrize(
    ("n", "batch", "alone"),
    [
        (9, [0, 1, 3, 4, 6, 7], None),  # 2 rows each
        (9, [0, 1, 3, 6, 7], 1),  # rank 1 owns row 3 alone
        (9, [6, 7, 8], None),  # ranks 0 and 1 own none: they skip the step
        (2, [0, 1], 1),  # 2 rows over 3 ranks: rank 0 owns none, ranks 1 and 2 one each
    ],
)
def test_every_rank_finds_the_rank_that_owns_one_row_of_a_batch(
    n: int, batch: list[int], alone: int | None
) -> None:
    comm = ThreeRanks()
    if alone is None:
        check_batch_statistics(comm, n, np.array(batch))  # type: ignore[arg-type]
        return
    with pytest.raises(EveryRankError, match=f"gives rank {alone} of 3 one row"):
        check_batch_statistics(comm, n, np.array(batch))  # type: ignore[arg-type]


def test_a_watched_rank_killed_by_a_signal_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    """The launched process outlives its killed child and says which rank died, and how."""
    code = watched(1, 3, lambda: os.kill(os.getpid(), signal.SIGKILL) or 0)
    assert code == 128 + 9
    assert capsys.readouterr().err == "handprop: rank 1 of 3: killed by signal 9 (SIGKILL)\n"


def test_a_watched_rank_that_exits_passes_its_exit_code_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert watched(0, 2, lambda: os._exit(3)) == 3
    assert capsys.readouterr().err == ""


# ----- K processes -----------------------------------------------------------------------


@pytest.fixture(scope="module", params=[2, 3])
def distributed_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    ranks = request.param
    out = tmp_path_factory.mktemp(f"mpi{ranks}") / "runs.npz"
    done = launch(ranks, "tests/distributed_cases.py", out)
    assert done.returncode == 0, done.stderr
    with np.load(out) as saved:
        return ranks, dict(saved)


@pytest.mark.parametrize("path", ["shared", "allreduce"])
@pytest.mark.parametrize("name", list(CASES))
def test_k_ranks_train_the_single_process_weights(distributed_runs, name: str, path: str) -> None:  # type: ignore[no-untyped-def]
    """On one machine the ranks sum in shared memory; across machines by Allreduce (forced here)."""
    ranks, saved = distributed_runs
    weights, history = train(name)
    key = f"{path}/{name}"
    for rank in range(ranks):
        for index, expected in enumerate(weights):
            got = saved[f"{key}/rank{rank}/{index}"]
            assert np.abs(got - expected).max() <= 1e-12 * np.abs(expected).max()
            np.testing.assert_array_equal(got, saved[f"{key}/rank0/{index}"])  # every rank
    logs = [
        [g.train_loss, g.train_metric, g.val_loss or 0, g.val_metric or 0] for g in history.logs
    ]
    np.testing.assert_allclose(saved[f"{key}/logs"], logs, rtol=1e-10, atol=1e-12)
    assert str(saved[f"{key}/stop"]) == history.stop_reason
    # one exchange a step, the fused SGD's included, by the path asked for alone
    steps = int(saved[f"{key}/steps"])
    assert saved[f"{key}/calls"][:2].tolist() == ([0, steps] if path == "shared" else [steps, 0])
    assert steps == len(history.logs) * steps_per_epoch(name)
    # on one machine plain SGD moves the weights by rows in shared memory, once a step;
    # after fit each parameter holds its own array again
    split = path == "shared" and name in ROW_SPLIT
    assert saved[f"{key}/calls"][2] == (steps if split else 0)
    assert all(saved[f"{key}/rank{rank}/owndata"] for rank in range(ranks))


@pytest.mark.parametrize("path", ["shared", "allreduce"])
def test_the_exchange_sums_every_ranks_gradients_and_losses(distributed_runs, path: str) -> None:  # type: ignore[no-untyped-def]
    """Rank r's gradients are (r + 1) * g: every rank reads (1 + ... + K) * g; close() copies."""
    ranks, saved = distributed_runs
    for rank in range(ranks):
        for index, shape in enumerate([(5, 7), (3,)]):
            expected = ranks * (ranks + 1) / 2 * np.arange(np.prod(shape)).reshape(shape)
            np.testing.assert_array_equal(saved[f"exchange-{path}/rank{rank}/{index}"], expected)
        loss, on_one_machine, own_data = saved[f"exchange-{path}/rank{rank}/facts"]
        assert loss == ranks * (ranks - 1) / 2
        assert on_one_machine == (path == "shared")
        assert own_data or path == "allreduce"  # no .grad left viewing freed shared memory


def test_a_fit_that_raises_on_a_rank_gives_its_parameters_their_own_arrays_back(
    tmp_path: Path,
) -> None:
    """Plain SGD on one machine trains weights in shared memory; rank 1 raises after epoch 1."""
    out = tmp_path / "rank1.npz"
    done = launch(2, "-m", "tests.distributed_raise", out, timeout=60)
    assert done.returncode != 0  # rank 1 ended the job
    assert "injected failure" not in done.stderr  # caught: fit raised it, and gave arrays back
    model, data = model_and_data()
    train_raising(model, data, 1)  # one process, the first epoch
    with np.load(out) as saved:
        assert saved["own"].tolist() == [True] * 4  # the arrays the parameters held before fit
        for index, parameter in enumerate(model.parameters()):
            expected, got = parameter.data, saved[f"weight{index}"]
            assert np.abs(got - expected).max() <= 1e-12 * np.abs(expected).max()


def test_different_starting_weights_are_refused(distributed_runs) -> None:  # type: ignore[no-untyped-def]
    """Plain SGD shares one copy of the weights, rank 0's: every rank checks them first."""
    ranks, saved = distributed_runs
    others = list(range(1, ranks))
    for rank in range(ranks):
        error = str(saved[f"different-weights/rank{rank}"])
        assert error == f"the weights before training differ between rank 0 and rank(s) {others}"


def test_every_rank_takes_the_allreduce_when_one_has_no_room_in_dev_shm(distributed_runs) -> None:  # type: ignore[no-untyped-def]
    ranks, saved = distributed_runs
    assert [bool(saved[f"no-room/rank{rank}"]) for rank in range(ranks)] == [True] * ranks


def test_batch_norm_statistics_are_averaged_over_the_ranks(distributed_runs) -> None:  # type: ignore[no-untyped-def]
    ranks, saved = distributed_runs
    single, error = batch_norm_run(64)
    assert error == ""
    for rank in range(ranks):
        assert str(saved[f"batch-norm-64/rank{rank}/error"]) == ""
        for index in range(len(single)):  # weights, running mean and variance, batches tracked
            np.testing.assert_array_equal(
                saved[f"batch-norm-64/rank{rank}/{index}"], saved[f"batch-norm-64/rank0/{index}"]
            )
    # each rank normalised its own rows: near the single process's statistics, not equal
    running_mean, running_var = saved["batch-norm-64/rank0/6"], saved["batch-norm-64/rank0/7"]
    np.testing.assert_allclose(running_mean, single[6], atol=0.05)
    np.testing.assert_allclose(running_var, single[7], rtol=0.1)
    # averaged: floating arrays by their mean, integer ones by their maximum
    np.testing.assert_array_equal(saved["average"], [(ranks - 1) / 2] * 3 + [ranks - 1])


def test_a_rank_with_one_row_for_batch_norm_stops_every_rank_alike(distributed_runs) -> None:  # type: ignore[no-untyped-def]
    ranks, saved = distributed_runs
    assert batch_norm_run(2)[1] == ""  # one process: every batch has 2 rows
    for rank in range(ranks):  # none left waiting in an Allreduce
        for key in ("2", "2-plain"):  # plain SGD: its weights in shared memory, given back
            error = str(saved[f"batch-norm-{key}/rank{rank}/error"])
            assert error.startswith("BatchNorm needs 2 rows or more of each batch on every rank")
            assert saved[f"batch-norm-{key}/rank{rank}/owndata"]


def test_a_row_shard_reads_only_its_own_rows() -> None:
    whole = np.arange(20.0).reshape(10, 2)
    part = RowShard(whole[4:7].copy(), 4, 10)
    assert len(part) == 10 and part.shape == (10, 2)
    np.testing.assert_array_equal(part[np.array([6, 4])], whole[[6, 4]])
    np.testing.assert_array_equal(part[5:7], whole[5:7])
    assert part[np.array([], dtype=np.int64)].shape == (0, 2)
    for outside in (np.array([3, 4]), np.array([7]), slice(0, 5), slice(4, 8)):
        with pytest.raises(IndexError, match="this rank holds rows 4 to 6 of 10"):
            part[outside]


# ----- handprop train under mpiexec -------------------------------------------------------


@pytest.fixture(scope="module")
def regression_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 3))
    y = 3 * x[:, 0] - 2 * x[:, 1] + 0.5 * x[:, 2] + 10
    path = tmp_path_factory.mktemp("data") / "reg.csv"
    np.savetxt(path, np.column_stack([x, y]), delimiter=",", header="a,b,c,price", comments="")
    return path


TRAIN = ["--optimizer", "sgd", "--hidden", "16", "--batch-size", "25", "--patience", "0"]


def single_process_model(
    data: Path, out: Path, epochs: int, more: tuple[str, ...] = ()
) -> list[np.ndarray]:
    args = ["train", "--data", data, *TRAIN, *more, "--epochs", epochs, "--out", out, "--quiet"]
    code = main([str(a) for a in args])
    assert code == 0
    return [p.data for p in load_model(out)[0].parameters()]


def assert_same_weights(path: Path, expected: list[np.ndarray]) -> None:
    got = [p.data for p in load_model(path)[0].parameters()]
    for a, b in zip(got, expected, strict=True):
        assert np.abs(a - b).max() <= 1e-12 * np.abs(b).max()


# momentum 0: plain SGD, whose weights live in shared memory during fit (RowSplitSGD)
@pytest.mark.parametrize("more", [(), ("--momentum", "0")])
def test_train_on_2_ranks_then_resume_on_3_is_the_single_process_run(
    regression_csv: Path, tmp_path: Path, more: tuple[str, ...]
) -> None:
    out, checkpoint, log = tmp_path / "m.safetensors", tmp_path / "c.safetensors", tmp_path / "log"
    args = ["-m", "handprop", "train", "--data", regression_csv, *TRAIN, *more, "--epochs", 3]
    done = launch(
        2, *args, "--out", out, "--checkpoint", checkpoint, "--checkpoint-every", 3, "--log", log
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("saved ") == 1  # rank 0 alone speaks and writes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors", "log", "m.safetensors"]
    assert len(log.read_text().splitlines()) == 3
    assert_same_weights(out, single_process_model(regression_csv, tmp_path / "one3", 3, more))

    resumed = tmp_path / "resumed.safetensors"
    done = launch(
        3, "-m", "handprop", "train", "--resume", checkpoint, "--epochs", 6, "--out", resumed,
        "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert_same_weights(resumed, single_process_model(regression_csv, tmp_path / "one6", 6, more))


def test_a_csv_on_3_ranks_is_held_in_disjoint_shards_and_trains_the_single_process_model(
    regression_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "m.safetensors"
    args = ["train", "--data", regression_csv, *TRAIN, "--epochs", 3, "--out", out, "--quiet"]
    folder = tmp_path / "shards"
    folder.mkdir()
    done = launch(3, "tests/distributed_cli.py", -1, 0, f"shards={folder}", *args)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["0", "1", "2"]
    shards = [(folder / str(rank)).read_text().split() for rank in range(3)]
    for part, column in (("train", 1), ("validation", 6)):
        assert {s[column - 1] for s in shards} == {part}
        spans = [tuple(map(int, s[column : column + 4])) for s in shards]
        total = spans[0][2]
        assert total == (180 if part == "train" else 20)  # 200 rows, 10% held out
        bounds = [0] + [stop for _, stop, *_ in spans]  # each starts where the last stopped
        assert [start for start, *_ in spans] == bounds[:-1] and bounds[-1] == total
        assert all(held == stop - start for start, stop, _, held in spans)  # those rows alone
    assert_same_weights(out, single_process_model(regression_csv, tmp_path / "one", 3))


def test_balanced_class_weights_on_2_ranks_train_the_single_process_model(tmp_path: Path) -> None:
    """The weights come from every training label; the loss divides by the whole batch's."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((150, 3))
    label = np.where(x[:, 0] > 0.8, "rare", np.where(x[:, 1] > 0, "b", "c"))
    data = tmp_path / "classes.csv"
    rows = [f"{a:.6f},{b:.6f},{c:.6f},{k}" for (a, b, c), k in zip(x, label, strict=True)]
    data.write_text("a,b,c,kind\n" + "\n".join(rows) + "\n")
    out = tmp_path / "m.safetensors"
    args = ["train", "--data", data, *TRAIN, "--epochs", 2, "--class-weight", "balanced"]
    done = launch(2, "-m", "handprop", *args, "--out", out, "--quiet")
    assert done.returncode == 0, done.stderr
    assert main([str(a) for a in [*args, "--out", tmp_path / "one.safetensors", "--quiet"]]) == 0
    assert_same_weights(
        out, [p.data for p in load_model(tmp_path / "one.safetensors")[0].parameters()]
    )


@pytest.mark.parametrize(
    ("rank", "how", "reason"),
    [
        (1, "raise", "injected failure at step 3"),
        (1, "kill", "killed by signal 9 (SIGKILL)"),  # nothing left in the rank to say it
        (0, "kill", "killed by signal 9 (SIGKILL)"),
    ],
)
def test_a_failing_rank_ends_the_job_naming_it_and_writes_nothing(
    regression_csv: Path, tmp_path: Path, rank: int, how: str, reason: str
) -> None:
    out = tmp_path / "m.safetensors"
    args = ["train", "--data", regression_csv, *TRAIN, "--epochs", 3, "--out", out, "--quiet"]
    done = launch(2, "tests/distributed_cli.py", rank, 3, how, *args, timeout=60)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.startswith("handprop:")]
    assert lines == [f"handprop: rank {rank} of 2: {reason}"], done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing at --out, no temporary file


def test_a_memory_mapped_npy_on_3_ranks_trains_the_single_process_model(
    regression_csv: Path, tmp_path: Path
) -> None:
    npy = tmp_path / "reg.npy"
    np.save(npy, np.loadtxt(regression_csv, delimiter=",", skiprows=1))
    out = tmp_path / "m.safetensors"
    args = ["-m", "handprop", "train", "--data", npy, *TRAIN, "--epochs", 3, "--out", out]
    done = launch(3, *args, "--quiet")
    assert done.returncode == 0, done.stderr
    assert_same_weights(out, single_process_model(npy, tmp_path / "one.safetensors", 3))


def test_a_bad_shard_names_its_rank(tmp_path: Path) -> None:
    data = np.random.default_rng(0).standard_normal((100, 4))
    data[80, 2] = np.inf  # in rank 1's half of the rows
    np.save(tmp_path / "bad.npy", data)
    out = tmp_path / "m.safetensors"
    done = launch(2, "-m", "handprop", "train", "--data", tmp_path / "bad.npy", "--out", out)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("handprop:")]
    assert len(lines) == 1
    assert lines[0].startswith("handprop: rank 1 of 2: ")
    assert "row index 80" in lines[0]
    assert not out.exists()


def test_images_on_3_ranks_are_held_in_shards_and_train_the_single_process_model(
    tmp_path: Path,
) -> None:
    # Was: every rank kept every image (correct weights, K times the memory).
    rng = np.random.default_rng(1)
    images = tmp_path / "images.npz"
    np.savez(images, x=rng.standard_normal((90, 2, 6, 6)), y=rng.integers(0, 3, 90))
    layers = "conv 4 3 pad 1, relu, maxpool 2, flatten, linear 3"
    args = ["train", "--data", images, "--layers", layers, "--optimizer", "sgd",
            "--batch-size", "16", "--patience", "0", "--epochs", 2, "--quiet"]  # fmt: skip
    folder = tmp_path / "shards"
    folder.mkdir()
    out = tmp_path / "m.safetensors"
    done = launch(3, "tests/distributed_cli.py", -1, 0, f"shards={folder}", *args, "--out", out)
    assert done.returncode == 0, done.stderr
    shards = [(folder / str(rank)).read_text().split() for rank in range(3)]
    held = [int(s[4]) for s in shards]
    assert sum(held) == int(shards[0][3]) == 81 and max(held) == 27  # 90 rows, 10% held out
    one = tmp_path / "one.safetensors"
    assert main([str(a) for a in [*args, "--out", one]]) == 0
    assert_same_weights(out, [p.data for p in load_model(one)[0].parameters()])
