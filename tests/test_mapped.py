"""Training on a .npy file through a memory map: the CSV run's model, the file never read whole."""

from pathlib import Path

import numpy as np
import pytest

import handprop.data.arrays
from handprop.checkpoint import load_model
from handprop.cli import main
from handprop.cli.config import TrainConfig
from handprop.cli.prepared import prepare
from handprop.data import DataError
from handprop.data.mapped import MappedRows, open_table
from handprop.data.sidecar import Columns, sidecar_path


def table(tmp_path: Path, labels: bool = False) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 3))
    if labels:
        y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5)
    else:
        y = 3 * x[:, 0] - 2 * x[:, 1] + 0.5 * x[:, 2] + 10
    data = np.column_stack([x, y])
    np.save(tmp_path / "t.npy", data)
    np.savetxt(tmp_path / "t.csv", data, delimiter=",", header="a,b,c,y", comments="")
    return tmp_path / "t.csv", tmp_path / "t.npy"


def weights(path: Path) -> list[np.ndarray]:
    return [p.data for p in load_model(path)[0].parameters()]


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_a_npy_file_trains_the_csv_files_model_without_being_read_whole(
    tmp_path: Path, task: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv, npy = table(tmp_path, labels=task == "classification")
    args = ["--task", task, "--epochs", "4", "--batch-size", "25", "--quiet"]
    assert main(["train", "--data", str(csv), "--out", str(tmp_path / "csv.st"), *args]) == 0

    def refused(path: str) -> None:
        raise AssertionError(f"{path} was read whole")

    monkeypatch.setattr(handprop.data.arrays, "read_npy", refused)
    assert main(["train", "--data", str(npy), "--out", str(tmp_path / "npy.st"), *args]) == 0
    for a, b in zip(weights(tmp_path / "npy.st"), weights(tmp_path / "csv.st"), strict=True):
        assert np.abs(a - b).max() <= 1e-12 * np.abs(b).max()


def test_rows_are_gathered_standardised_in_the_dtype(tmp_path: Path) -> None:
    _, npy = table(tmp_path)
    mapped = open_table(str(npy), target=None, task="regression", drop_nonfinite=False)
    data = np.load(npy)
    rows = np.array([5, 1, 7])
    raw = MappedRows(mapped, np.arange(200), mapped.features, None, "float32")
    np.testing.assert_array_equal(raw[rows], data[rows, :3].astype(np.float32))
    moments = raw.moments(None)
    np.testing.assert_allclose(moments.mean, data[:, :3].mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(moments.std, data[:, :3].std(axis=0), rtol=1e-13)


def test_a_nonfinite_row_is_refused_as_in_memory_or_dropped(tmp_path: Path) -> None:
    data = np.random.default_rng(0).standard_normal((50, 3))
    data[17, 1] = np.nan
    np.save(tmp_path / "nan.npy", data)
    path = str(tmp_path / "nan.npy")
    with pytest.raises(DataError, match=r"1 of 50 rows hold NaN.*row index 17, column \"1\""):
        open_table(path, target=None, task="regression", drop_nonfinite=False)
    kept = open_table(path, target=None, task="regression", drop_nonfinite=True)
    assert len(kept) == 49
    assert kept.rows is not None and 17 not in kept.rows


def test_a_sidecar_names_the_columns_and_the_classes(tmp_path: Path) -> None:
    data = np.array([[0.5, 1.0], [1.5, 0.0], [2.5, 1.0]])
    np.save(tmp_path / "pets.npy", data)
    sidecar = Columns(("weight", "kind"), ("kind",), {"kind": ("cat", "dog")})
    sidecar_path(tmp_path / "pets.npy").write_bytes(sidecar.to_json())
    mapped = open_table(
        str(tmp_path / "pets.npy"), target=None, task="classification", drop_nonfinite=False
    )
    assert (mapped.feature_names, mapped.target_names) == (("weight",), ("kind",))
    assert mapped.classes == ("cat", "dog")
    with pytest.raises(DataError, match="holds class labels"):
        open_table(str(tmp_path / "pets.npy"), target=None, task="regression", drop_nonfinite=False)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[1, 2]", '"format"'),
        (b'{"format": "handprop.columns/1", "names": ["a"], "targets": ["a"]}', "2 distinct"),
        (b'{"format": "handprop.columns/1", "names": ["a", "b"], "targets": ["c"]}', "targets"),
        (b"not json", "not JSON"),
    ],
)
def test_a_malformed_sidecar_is_one_data_error(
    tmp_path: Path, content: bytes, message: str
) -> None:
    np.save(tmp_path / "d.npy", np.zeros((3, 2)))
    sidecar_path(tmp_path / "d.npy").write_bytes(content)
    with pytest.raises(DataError, match=message):
        open_table(str(tmp_path / "d.npy"), target=None, task="regression", drop_nonfinite=False)


def test_values_whose_squares_overflow_are_refused_not_standardised_to_zeros(
    tmp_path: Path,
) -> None:
    data = np.random.default_rng(0).standard_normal((20, 2)) * 1e200
    np.save(tmp_path / "huge.npy", data)
    with pytest.raises(DataError, match="too large to standardise"):
        prepare(TrainConfig(data=str(tmp_path / "huge.npy")), None)
