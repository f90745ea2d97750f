"""handprop convert: a CSV file streamed to a .npy file whose training matches the CSV's."""

import json
from pathlib import Path

import numpy as np
import pytest

import handprop.data.convert
from handprop.checkpoint import load_model
from handprop.cli import main


def run(argv: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def pets(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((240, 2))
    names = np.array(["cat", "dog", "owl"])[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5)]
    lines = ["w,h,kind"] + [
        f"{a:.6f}, {b:.6f},{label}" for (a, b), label in zip(x, names, strict=True)
    ]
    path = tmp_path / "pets.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_converted_file_trains_as_the_csv_did(
    pets: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handprop.data.convert, "CHUNK_CELLS", 50)  # many chunks
    npy = tmp_path / "pets.npy"
    code, out, _ = run(["convert", pets, npy, "--target", "kind"], capsys)
    assert code == 0
    assert "kind: 3 classes" in out
    sidecar = json.loads((tmp_path / "pets.npy.json").read_text())
    assert sidecar["names"] == ["w", "h", "kind"]
    assert sidecar["classes"] == {"kind": ["cat", "dog", "owl"]}
    data = np.load(npy)
    assert data.shape == (240, 3)
    assert set(data[:, 2]) == {0.0, 1.0, 2.0}

    args = ["--task", "classification", "--epochs", 3, "--quiet"]
    assert run(["train", "--data", pets, "--out", tmp_path / "a.st", *args], capsys)[0] == 0
    assert run(["train", "--data", npy, "--out", tmp_path / "b.st", *args], capsys)[0] == 0
    (csv_model, csv_info), (npy_model, npy_info) = (
        load_model(tmp_path / n) for n in ("a.st", "b.st")
    )
    assert npy_info["classes"] == csv_info["classes"] == ["cat", "dog", "owl"]
    assert npy_info["feature_names"] == csv_info["feature_names"] == ["w", "h"]
    for a, b in zip(npy_model.parameters(), csv_model.parameters(), strict=True):
        assert np.abs(a.data - b.data).max() <= 1e-12 * np.abs(b.data).max()


def test_an_empty_cell_is_nan_and_a_word_among_features_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "d.csv"
    source.write_text("a,b,y\n1,,3\n4,5,6\n", encoding="utf-8")
    assert run(["convert", source, tmp_path / "d.npy"], capsys)[0] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "d.npy"), [[1, np.nan, 3], [4, 5, 6]])
    source.write_text("a,b,y\n1,2,3\n4,five,6\n", encoding="utf-8")
    code, _, err = run(["convert", source, tmp_path / "e.npy"], capsys)
    assert code == 2
    assert err == "handprop: error: " + f"{source} line 3, column \"b\": 'five' is not a number\n"
    assert not (tmp_path / "e.npy").exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [("link.npy", "is the same file as input"), ("d.txt", "must end with .npy")],
)
def test_convert_never_writes_over_its_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, message: str
) -> None:
    source = tmp_path / "d.csv"
    source.write_text("a,y\n1,2\n", encoding="utf-8")
    (tmp_path / "link.npy").symlink_to(source)
    code, _, err = run(["convert", source, tmp_path / name], capsys)
    assert code == 2
    assert message in err
    assert source.read_text() == "a,y\n1,2\n"


def test_a_ragged_row_is_refused_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "d.csv"
    source.write_text("a,b,y\n1,2,3\n4,5\n", encoding="utf-8")
    code, _, err = run(["convert", source, tmp_path / "d.npy"], capsys)
    assert code == 2
    assert "line 3 has 2 cells, but the header has 3 columns" in err
    assert list(tmp_path.iterdir()) == [source]
