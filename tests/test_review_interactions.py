"""Where the features merged together meet: the captured step, sample weights, the torch
backend, memory-mapped .npy data and ranks, in the combinations no single branch tested."""

import os
import signal
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import handprop as hp
from handprop.cli import main
from handprop.sample_weight import WeightedTargets
from handprop.training import fit
from handprop.training.capture import capture_step


def run(argv: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def small_model(seed: int = 0) -> hp.Sequential:
    rng = np.random.default_rng(seed)
    return hp.Sequential(hp.Linear(3, 4, rng=rng), hp.Tanh(), hp.Linear(4, 1, rng=rng))


@pytest.mark.parametrize(
    "options", [{"weight_decay": 0.01}, {"momentum": 0.9, "weight_decay": 0.01}]
)
def test_sgd_with_weight_decay_replays_its_tape(options: dict[str, float]) -> None:
    """The tape's check compared SGD's scratch arrays with its decayed ones, so SGD with
    weight decay never replayed: every step of fit trained eagerly."""
    model = small_model()
    sgd = hp.SGD(model.parameters(), lr=0.1, **options)
    step = capture_step(model, hp.MeanSquaredError(), sgd, (5, 3), (5, 1))
    assert step.guard()


def npy_classes(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 4))
    y = (x[:, 0] + 0.3 * x[:, 1] > 0.5).astype(np.float64)  # about one row in three
    path = tmp_path / "classes.npy"
    np.save(path, np.c_[x, y])
    return path


def test_balanced_class_weights_on_a_memory_mapped_npy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The weights were asked of the mapped labels as a whole (MappedRows), which failed with
    "object of type 'numpy.int64' has no len()"."""
    data = npy_classes(tmp_path)
    argv = ["train", "--data", data, "--target", 4, "--task", "classification", "--epochs", 2]
    code, _, err = run([*argv, "--class-weight", "balanced", "--out", tmp_path / "m"], capsys)
    assert code == 0, err


def test_a_memory_mapped_npy_trains_on_torch(
    torch: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """fit moved its data to torch by namespace(), which refused MappedRows: "handprop
    computes on numpy arrays or torch tensors, received a MappedRows"."""
    data = npy_classes(tmp_path)
    argv = ["train", "--data", data, "--target", 4, "--task", "classification", "--epochs", 2]
    code, _, err = run([*argv, "--backend", "torch", "--out", tmp_path / "m"], capsys)
    assert code == 0, err


def test_sample_weights_on_torch_are_not_silently_dropped(torch: ModuleType) -> None:
    """Moving the targets to torch kept their values and lost their weights: fit trained
    the unweighted model without a word. It says so now."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 3)), rng.standard_normal((20, 1))
    weighted = WeightedTargets(y, np.r_[np.ones(10), np.zeros(10)])
    model = small_model().to("torch")
    sgd = hp.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="sample weights"):
        fit(model, hp.MeanSquaredError(), sgd, (x, weighted), epochs=1, batch_size=8)


class TwoRanks:
    """Enough of a world of two ranks for fit to be handed one."""

    rank, size = 0, 2


def test_sample_weights_over_ranks_are_refused() -> None:
    """Over ranks each rank's mean loss was normalised by its own rows' weights and then
    scaled by its share of the rows, not of the weights: not the weighted loss's gradient
    (and the scores dropped the weights). fit refuses it in one line."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 3)), rng.standard_normal((20, 1))
    weighted = WeightedTargets(y, rng.uniform(0, 2, 20))
    model = small_model()
    sgd = hp.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="sample weights"):
        fit(model, hp.MeanSquaredError(), sgd, (x, weighted), epochs=1, comm=TwoRanks())  # type: ignore[arg-type]


def labels_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = [f"{a:.3f},{b:.3f},{'xyz'[i % 3]}" for i, (a, b) in enumerate(rng.normal(size=(90, 2)))]
    path = tmp_path / "labels.csv"
    path.write_text("a,b,c\n" + "\n".join(rows) + "\n")
    return path


def test_a_classifier_on_torch_prints_its_summary_and_test_scores(
    torch: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After training on torch, the summary's test scores and the one-class warning fed the
    model numpy rows: exit 2 ("Linear computes on torch tensors ... received a numpy array")
    after the model was saved. Only --quiet runs (the tests') got through."""
    argv = ["train", "--data", labels_csv(tmp_path), "--target", "c", "--epochs", 2]
    argv += ["--test-fraction", 0.2, "--backend", "torch", "--out", tmp_path / "m"]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert "test:" in out


def test_a_model_on_torch_over_ranks_is_refused_in_one_line(torch: ModuleType) -> None:
    """The gradient exchange summed torch's .size methods: "unsupported operand type(s) for
    +: 'int' and 'builtin_function_or_method'" on every rank of mpiexec ... --backend torch."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 3)), rng.standard_normal((20, 1))
    model = small_model().to("torch")
    sgd = hp.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="over ranks"):
        fit(model, hp.MeanSquaredError(), sgd, (x, y), epochs=1, comm=TwoRanks())  # type: ignore[arg-type]


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="no CUDA GPU")
def test_early_stopping_checkpoints_on_cuda_save_the_best_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The best epoch's weights (CUDA tensors) were assigned into a numpy model for
    CHECKPOINT.best: "can't convert cuda:0 device type tensor to numpy", exit 2 mid-run."""
    argv = ["train", "--data", labels_csv(tmp_path), "--target", "c", "--epochs", 3]
    argv += ["--patience", 2, "--checkpoint", tmp_path / "ck", "--checkpoint-every", 1]
    code, _, err = run([*argv, "--backend", "torch", "--device", "cuda", "--quiet"], capsys)
    assert code == 0, err
    assert (tmp_path / "ck.best").exists()


def test_a_memory_mapped_npy_holds_out_its_test_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--test-fraction was ignored for a .npy: the "test" rows were trained on, and no test
    score was printed, without a word. The rows held out are the in-memory path's."""
    data = npy_classes(tmp_path)
    argv = ["train", "--task", "classification", "--epochs", 2, "--test-fraction", 0.25]
    code, mapped, err = run([*argv, "--data", data, "--target", 4, "--out", tmp_path / "a"], capsys)
    assert code == 0, err
    np.savez(tmp_path / "classes.npz", x=np.load(data)[:, :4], y=np.load(data)[:, 4])
    code, loaded, err = run([*argv, "--data", tmp_path / "classes.npz"], capsys)
    assert code == 0, err
    assert "test:" in mapped
    assert mapped.splitlines()[-3:-1] == loaded.splitlines()[-3:-1]  # validation, test lines


class _Aborted(Exception):
    pass


class OneRankOfTwo:
    """A rank whose abort is hit by the second SIGINT a launcher's Ctrl-C brings a watched
    rank (one to its process group, one forwarded by the watching parent)."""

    rank, size = 1, 2

    def __init__(self) -> None:
        self.codes: list[int] = []

    def abort(self, code: int) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # the handler runs here, as in Communicator.abort's pause
        self.codes.append(code)
        raise _Aborted


def test_a_second_ctrl_c_does_not_cut_a_ranks_abort_short(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Under mpiexec, Ctrl-C reached a watched rank twice; the second KeyboardInterrupt
    escaped from on_every_rank's handler before MPI_Abort, the rank exited alone and the
    others waited in their Allreduce for ever (the job hung instead of exiting 130)."""
    from handprop.cli.errors import Interrupted
    from handprop.cli.ranks import on_every_rank

    def job() -> int:
        raise Interrupted("interrupted after 3 epochs")

    comm = OneRankOfTwo()
    before = signal.getsignal(signal.SIGINT)
    try:
        on_every_rank(comm, job)  # type: ignore[arg-type]
    except _Aborted:
        pass
    except KeyboardInterrupt:
        pytest.fail("the second Ctrl-C escaped before MPI_Abort")
    finally:
        signal.signal(signal.SIGINT, before)
    assert comm.codes == [130]
    assert "rank 1 of 2: interrupted after 3 epochs" in capsys.readouterr().err
