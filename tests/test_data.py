"""The data layer: every loader and each of its errors, splitting, standardising, batching."""

import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handprop.data import (
    DATASET_TASKS,
    DataError,
    Dataset,
    Standardizer,
    load_dataset,
    train_validation_split,
)
from handprop.data.checks import first_fractional
from handprop.warmup import WarmupConfig, make_problem

SRC = Path(__file__).resolve().parents[1] / "src" / "handprop"


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


# ----- CSV --------------------------------------------------------------------------------


def test_csv_default_target_is_the_last_column(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "age, height,score\n1,2,3\n\n4,5.5,6\n")
    data = load_dataset(path)
    np.testing.assert_array_equal(data.x, [[1, 2], [4, 5.5]])
    np.testing.assert_array_equal(data.y, [[3], [6]])
    assert data.x.dtype == np.float64 and data.x.flags.c_contiguous
    assert data.y.dtype == np.float64
    assert data.feature_names == ("age", "height") and data.target_names == ("score",)
    assert data.classes is None and data.task == "regression" and data.source == path
    assert len(data) == 2


def test_csv_several_targets_by_name(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "a,b,c,d\n1,2,3,4\n5,6,7,8\n")
    data = load_dataset(path, target="d, b")
    assert data.feature_names == ("a", "c") and data.target_names == ("d", "b")
    np.testing.assert_array_equal(data.x, [[1, 3], [5, 7]])
    np.testing.assert_array_equal(data.y, [[4, 2], [8, 6]])


def test_csv_missing_target_lists_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "age,height,score\n1,2,3\n")
    with pytest.raises(DataError, match=r'no column "weight"; its columns are "age", "height"'):
        load_dataset(path, target="weight")


def test_csv_non_numeric_cell_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "age,score\n1,2\n3,4\nabc,5\n")
    expected = re.escape(f"{path} line 4, column \"age\": 'abc' is not a number")
    with pytest.raises(DataError, match=expected):
        load_dataset(path)


def test_csv_text_target_for_regression_suggests_classification(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "a,label\n1,cat\n")
    with pytest.raises(DataError, match=r"line 2, column \"label\": 'cat'.*classification"):
        load_dataset(path)


def test_csv_text_class_labels_become_sorted_classes(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "a,label\n1,dog\n2,cat\n3, dog\n4,bird\n")
    data = load_dataset(path, task="classification")
    assert data.classes == ("bird", "cat", "dog") and data.task == "classification"
    np.testing.assert_array_equal(data.y, [2, 1, 2, 0])
    assert data.y.dtype == np.int64 and data.y.shape == (4,)


def test_csv_numeric_class_labels_keep_their_values(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "a,label\n1,7\n2,3.0\n3,7\n")
    data = load_dataset(path, task="classification")
    assert data.classes == (3, 7)
    np.testing.assert_array_equal(data.y, [1, 0, 1])


def test_classification_refuses_fractional_labels(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "a,label\n1,0\n2,0.5\n")
    with pytest.raises(DataError, match=r'line 3, column "label".*whole numbers.*0\.5'):
        load_dataset(path, task="classification")


@pytest.mark.parametrize(
    ("labels", "dtype", "first"),
    [
        ([0.0, 1.0, 2.0], np.float64, None),
        ([0.0, 1.5, 2.5], np.float64, 1),
        ([1.0, np.nan, 2.0**60], np.float64, 2),  # beyond 2**53 floats skip whole numbers
        ([0.0, 2.0, 3.5], np.float32, 2),
        ([0.0, 2.5, 65504.0], np.float16, 1),  # float16 (a memory-mapped .npy's labels):
        ([0.0, 1.0, 65504.0], np.float16, None),  # comparing with 2**53 overflowed there
    ],
)
def test_first_fractional_label_in_every_float_dtype(
    labels: list[float], dtype: type, first: int | None
) -> None:
    assert first_fractional(np.array(labels, dtype=dtype)) == first


def test_classification_needs_one_target(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "a,b,c\n1,2,3\n")
    with pytest.raises(DataError, match=r"exactly one target column, received 2 \(b, c\)"):
        load_dataset(path, target="b,c", task="classification")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty; expected a header row"),
        ("\n\n", "is empty"),
        ("a,b\n", "has a header row but no data rows"),
        ("a,b\n1,2\n3\n", r"line 3 has 1 cells, but the header has 2 columns"),
        ("a,b\n1,2\n3,4,5\n", r"line 3 has 3 cells"),
        ("a,a\n1,2\n", 'column "a" twice'),
        ("a\n1\n", "every column is a target"),
    ],
)
def test_csv_malformed_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "data.csv", text)
    with pytest.raises(DataError, match=message):
        load_dataset(path)


def test_csv_nan_is_refused_with_count_and_first_place(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "a,b,y\n1,2,3\n4,nan,6\n7,8,\n9,inf,1\n")
    message = r"data.csv: 3 of 4 rows hold NaN, infinity or an empty cell, the first at line 3, "
    message += r'column "b"; fix them, fill them \(impute=.*\) or drop them \(drop_nonfinite=True\)'
    with pytest.raises(DataError, match=message):
        load_dataset(path)


def test_csv_nan_rows_are_dropped_on_request(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "a,b,y\n1,2,3\n4,nan,6\n7,8,\n9,10,11\n")
    data = load_dataset(path, drop_nonfinite=True)
    np.testing.assert_array_equal(data.x, [[1, 2], [9, 10]])
    np.testing.assert_array_equal(data.y, [[3], [11]])


def test_missing_class_labels_are_dropped_before_classes_are_counted(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "a,label\n1,cat\nnan,bird\n3,\n4,dog\n")
    with pytest.raises(DataError, match=r'2 of 4 rows .* line 3, column "a"'):
        load_dataset(path, task="classification")
    data = load_dataset(path, task="classification", drop_nonfinite=True)
    assert data.classes == ("cat", "dog")
    np.testing.assert_array_equal(data.y, [0, 1])


def test_dropping_every_row_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "a,y\nnan,1\n2,inf\n")
    with pytest.raises(DataError, match="all 2 rows hold NaN"):
        load_dataset(path, drop_nonfinite=True)


def test_csv_quoted_cells_and_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes('\ufeff"size, cm","y"\n"1.5",2\n'.encode())
    data = load_dataset(str(path))
    assert data.feature_names == ("size, cm",)
    np.testing.assert_array_equal(data.x, [[1.5]])


def test_csv_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\n\xff\xfe,1\n")
    with pytest.raises(DataError, match="is not UTF-8 text"):
        load_dataset(str(path))


# ----- files that cannot be read ------------------------------------------------------------


@pytest.mark.parametrize("name", ["absent.csv", "absent.npy", "absent.npz"])
def test_missing_file_names_path_and_reason(tmp_path: Path, name: str) -> None:
    path = str(tmp_path / name)
    with pytest.raises(DataError, match=f"cannot read {re.escape(path)}: No such file"):
        load_dataset(path)


def test_a_directory_is_not_a_data_file(tmp_path: Path) -> None:
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    with pytest.raises(DataError, match=r"cannot read .*folder\.csv: Is a directory"):
        load_dataset(str(folder))


def test_errors_write_nothing(tmp_path: Path) -> None:
    bad = {
        "a.csv": "x,y\n1,abc\n",
        "b.csv": "",
        "c.npy": "not numpy",
        "d.npz": "not a zip",
    }
    for name, text in bad.items():
        write(tmp_path / name, text)
    before = sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in tmp_path.iterdir())
    for name in [*bad, "absent.csv", "unknown"]:
        with pytest.raises(DataError):
            load_dataset(str(tmp_path / name))
    after = sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in tmp_path.iterdir())
    assert after == before


# ----- .npy and .npz ------------------------------------------------------------------------


def test_npy_targets_are_picked_by_column_index(tmp_path: Path) -> None:
    path = str(tmp_path / "data.npy")
    array = np.arange(12, dtype=np.int32).reshape(3, 4)
    np.save(path, array)
    data = load_dataset(path)
    np.testing.assert_array_equal(data.x, array[:, :3])
    np.testing.assert_array_equal(data.y, array[:, 3:])
    assert data.x.dtype == np.float64 and data.target_names == ("3",)
    data = load_dataset(path, target="0,2")
    np.testing.assert_array_equal(data.y, array[:, [0, 2]])
    assert data.feature_names == ("1", "3") and data.target_names == ("0", "2")
    np.testing.assert_array_equal(load_dataset(path, target="-2").y, array[:, [2]])


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("age", r"0-based column index.*'3' or '3,4'; received 'age'"),
        ("4", r"has no column 4: its 4 columns are 0 to 3"),
        ("1,1", "names a column twice"),
        ("0,1,2,3", "every column is a target"),
    ],
)
def test_npy_bad_targets(tmp_path: Path, target: str, message: str) -> None:
    path = str(tmp_path / "data.npy")
    np.save(path, np.zeros((3, 4)))
    with pytest.raises(DataError, match=message):
        load_dataset(path, target=target)


def test_npy_must_be_two_dimensional(tmp_path: Path) -> None:
    path = str(tmp_path / "data.npy")
    np.save(path, np.zeros(5))
    with pytest.raises(DataError, match=r"one 2-D array.*received shape \(5,\)"):
        load_dataset(path)


def test_npy_nan_names_the_row_index(tmp_path: Path) -> None:
    path = str(tmp_path / "data.npy")
    array = np.zeros((4, 3))
    array[2, 1] = np.nan
    np.save(path, array)
    with pytest.raises(DataError, match=r'1 of 4 rows .* row index 2, column "1"'):
        load_dataset(path)
    assert len(load_dataset(path, drop_nonfinite=True)) == 3


def test_npy_object_array_is_not_unpickled(tmp_path: Path) -> None:
    path = str(tmp_path / "objects.npy")
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"holds Python objects.*did not unpickle"):
        load_dataset(path)


def test_npz_object_array_is_not_unpickled(tmp_path: Path) -> None:
    path = str(tmp_path / "objects.npz")
    np.savez(path, x=np.array([[{"a": 1}]], dtype=object), y=np.zeros(1))
    with pytest.raises(DataError, match=r"holds Python objects.*did not unpickle"):
        load_dataset(path)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("garbage.npy", b"x,y\n1,2\n"),
        ("garbage.npz", b"x,y\n1,2\n"),
        ("header.npy", b"\x93NUMPY\x01\x00garbage"),
        ("broken.npz", b"PK\x03\x04 but not a zip archive"),
    ],
)
def test_files_that_are_not_numpy_files_are_refused(
    tmp_path: Path, name: str, content: bytes
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"is not a valid \.np[yz] file"):
        load_dataset(str(path))


def test_npz_members_that_are_not_arrays_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "raw.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x", "not an array")
        archive.writestr("y", "nor this")
    with pytest.raises(DataError, match=r"x and y must be arrays saved with np\.savez"):
        load_dataset(str(path))


def test_truncated_npy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.npy"
    np.save(path, np.zeros((10, 3)))
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(DataError, match=r"is not a valid \.npy file"):
        load_dataset(str(path))


def test_npz_holds_x_and_y(tmp_path: Path) -> None:
    path = str(tmp_path / "data.npz")
    x, y = np.arange(6.0).reshape(3, 2), np.array([2, 0, 2])
    np.savez(path, x=x, y=y)
    data = load_dataset(path, task="classification")
    np.testing.assert_array_equal(data.x, x)
    np.testing.assert_array_equal(data.y, [1, 0, 1])
    assert data.classes == (0, 2) and data.feature_names == ("x0", "x1")
    regression = load_dataset(path)
    assert regression.y.shape == (3, 1) and regression.target_names == ("y",)


def test_npz_with_text_labels(tmp_path: Path) -> None:
    path = str(tmp_path / "data.npz")
    np.savez(path, x=np.zeros((3, 2)), y=np.array(["b", "a", "b"]))
    assert load_dataset(path, task="classification").classes == ("a", "b")
    with pytest.raises(DataError, match="expected numbers; class labels need task"):
        load_dataset(path)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((2, 2))}, r"lacks the array\(s\) y: it holds \['x'\]"),
        ({"features": np.zeros(2), "y": np.zeros(2)}, r"lacks the array\(s\) x: it holds"),
        ({"x": np.zeros(3), "y": np.zeros(3)}, r"x must be 2-D.*received \(3,\)"),
        ({"x": np.zeros((3, 2)), "y": np.zeros(2)}, "x has 3 rows but y has 2"),
        ({"x": np.zeros((0, 2)), "y": np.zeros(0)}, "holds no samples"),
        ({"x": np.zeros((2, 2), dtype=complex), "y": np.zeros(2)}, "dtype complex128"),
    ],
)
def test_npz_malformed(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    path = str(tmp_path / "data.npz")
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load_dataset(path)


def test_npz_takes_no_target_option(tmp_path: Path) -> None:
    path = str(tmp_path / "data.npz")
    np.savez(path, x=np.zeros((2, 2)), y=np.zeros(2))
    with pytest.raises(DataError, match="targets are its array 'y'"):
        load_dataset(path, target="1")


def test_no_code_in_src_unpickles_or_evaluates() -> None:
    forbidden = re.compile(
        # eval( and exec( the builtins; not a method (def eval(self), model.eval(), ``eval()``)
        r"pickle\.loads?\b|import pickle|allow_pickle\s*=\s*True|(?<!def )(?<![\w.`])(eval|exec)\("
    )
    # explainer.py runs the tutorial's lines it writes itself, from fixed templates (numbers
    # enter as repr of a float): nothing a file holds is ever evaluated as code.
    offenders = [
        f"{path.relative_to(SRC)}:{number}: {line.strip()}"
        for path in sorted(SRC.rglob("*.py"))
        if path.relative_to(SRC).as_posix() != "explainer.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if forbidden.search(line)
    ]
    assert offenders == []
    readers = "".join(path.read_text(encoding="utf-8") for path in (SRC / "data").glob("*.py"))
    loads = re.findall(r"(?:np\.load|npy_format\.read_array)\(([^)]*)\)", readers)
    assert loads and all("allow_pickle=False" in arguments for arguments in loads)


# ----- names --------------------------------------------------------------------------------


def test_unknown_name_lists_the_valid_names() -> None:
    expected = r"unknown data set 'mnist': expected one of diabetes, digits, iris, warmup, "
    with pytest.raises(
        DataError, match=expected + r"or the path .* ending \.csv, \.tsv, \.npy or \.npz"
    ):
        load_dataset("mnist")


def test_existing_file_with_another_extension(tmp_path: Path) -> None:
    path = write(tmp_path / "data.txt", "a,b\n1,2\n")
    with pytest.raises(DataError, match=r"reads \.csv, \.tsv, \.npy and \.npz files"):
        load_dataset(path)


def test_unknown_task_and_fixed_targets_are_refused() -> None:
    with pytest.raises(DataError, match="task must be one of regression, classification"):
        load_dataset("warmup", task="clustering")
    with pytest.raises(DataError, match="has a fixed target"):
        load_dataset("warmup", target="y0")


def test_warmup_is_the_tutorials_data() -> None:
    data = load_dataset("warmup")
    rng = np.random.RandomState(0)
    np.testing.assert_array_equal(data.x, rng.randn(64, 1000))
    np.testing.assert_array_equal(data.y, rng.randn(64, 10))
    run = make_problem(WarmupConfig())
    np.testing.assert_array_equal(data.x, run.x)
    np.testing.assert_array_equal(data.y, run.y)


@pytest.mark.parametrize(
    ("name", "x_shape", "classes"),
    [("digits", (1797, 64), 10), ("iris", (150, 4), 3), ("diabetes", (442, 10), None)],
)
def test_bundled_scikit_learn_sets(name: str, x_shape: tuple[int, int], classes: int) -> None:
    datasets = pytest.importorskip("sklearn").datasets
    data = load_dataset(name, task=DATASET_TASKS[name])
    assert data.x.shape == x_shape and len(data.feature_names) == x_shape[1]
    expected_y = getattr(datasets, f"load_{name}")().target
    if classes is None:
        assert data.classes is None and data.y.shape == (x_shape[0], 1)
        np.testing.assert_array_equal(data.y[:, 0], expected_y)
    else:
        assert data.classes is not None and len(data.classes) == classes
        np.testing.assert_array_equal(data.y, expected_y)


def test_iris_classes_are_the_species() -> None:
    pytest.importorskip("sklearn")
    assert load_dataset("iris", task="classification").classes == (
        "setosa", "versicolor", "virginica",
    )  # fmt: skip


def test_missing_scikit_learn_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # makes the import fail
    with pytest.raises(DataError, match=r"pip install 'handprop\[datasets\]'"):
        load_dataset("digits", task="classification")


# ----- Dataset ------------------------------------------------------------------------------


def test_dataset_checks_its_arrays() -> None:
    with pytest.raises(DataError, match="C-contiguous float64"):
        Dataset(np.zeros((2, 2), dtype=np.float32), np.zeros((2, 1)), ("a", "b"), ("y",), None, "")
    with pytest.raises(DataError, match=r"int64 of shape \(2,\)"):
        Dataset(np.zeros((2, 2)), np.zeros((2, 1)), ("a", "b"), ("y",), (0, 1), "")
    with pytest.raises(DataError, match=r"class indices in \[0, 1\]"):
        Dataset(np.zeros((2, 2)), np.array([0, 2]), ("a", "b"), ("y",), (0, 1), "")
    assert issubclass(DataError, ValueError)


# ----- splitting ----------------------------------------------------------------------------


def numbered(n: int) -> Dataset:
    x = np.arange(n, dtype=np.float64)[:, None]
    return Dataset(x, x * 2, ("x",), ("y",), None, "numbered")


def test_split_sizes_cover_everything_once() -> None:
    train, validation = train_validation_split(numbered(10), 0.2, np.random.default_rng(0))
    assert validation is not None
    assert len(train) == 8 and len(validation) == 2
    rows = np.concatenate([train.x[:, 0], validation.x[:, 0]])
    np.testing.assert_array_equal(np.sort(rows), np.arange(10))
    np.testing.assert_array_equal(train.y, train.x * 2)
    assert train.x.flags.c_contiguous


def test_split_is_determined_by_the_generator() -> None:
    first = train_validation_split(numbered(50), 0.3, np.random.default_rng(7))
    again = train_validation_split(numbered(50), 0.3, np.random.default_rng(7))
    other = train_validation_split(numbered(50), 0.3, np.random.default_rng(8))
    np.testing.assert_array_equal(first[0].x, again[0].x)
    assert not np.array_equal(first[0].x, other[0].x)


def test_split_fraction_zero_keeps_everything_and_draws_nothing() -> None:
    data, rng = numbered(5), np.random.default_rng(0)
    assert train_validation_split(data, 0.0, rng) == (data, None)
    assert rng.integers(1000) == np.random.default_rng(0).integers(1000)


@pytest.mark.parametrize(
    ("fraction", "message"),
    [
        (1.0, r"must be in \[0, 1\), received 1.0"),
        (-0.1, r"must be in \[0, 1\)"),
        (float("nan"), r"must be in \[0, 1\)"),
        (0.01, "leaves 10 for training and 0 for validation"),
        (0.99, "leaves 0 for training and 10 for validation"),
    ],
)
def test_split_fraction_must_leave_both_sides(fraction: float, message: str) -> None:
    with pytest.raises(DataError, match=message):
        train_validation_split(numbered(10), fraction, np.random.default_rng(0))


# ----- Standardizer -------------------------------------------------------------------------


def test_standardizer_centres_and_scales_and_keeps_constant_columns() -> None:
    a = np.random.default_rng(0).normal(3.0, 5.0, size=(100, 3))
    a[:, 1] = 0.1  # constant: scale 1, not a division by (almost) zero
    scaler = Standardizer.fit(a)
    scaled = scaler.transform(a)
    np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(scaled.std(axis=0), [1, 0, 1], atol=1e-12)
    assert scaler.scale[1] == 1.0
    np.testing.assert_allclose(scaler.inverse_transform(scaled), a, rtol=1e-14, atol=1e-14)


def test_standardizer_json_round_trip_is_exact() -> None:
    a = np.random.default_rng(1).normal(size=(20, 4)) * [1e-3, 1, 1e5, 0]
    scaler = Standardizer.fit(a)
    data = json.loads(json.dumps(scaler.to_json()))
    assert all(type(v) is float for v in data["mean"] + data["scale"])
    again = Standardizer.from_json(data)
    np.testing.assert_array_equal(again.mean, scaler.mean)
    np.testing.assert_array_equal(again.scale, scaler.scale)
    np.testing.assert_array_equal(again.transform(a), scaler.transform(a))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"mean": [0.0]}, r'needs "scale", a list of numbers; received None'),
        (
            {"mean": ["1.5"], "scale": [1.0]},
            r"needs \"mean\", a list of numbers; received \['1.5'\]",
        ),
        ({"mean": [True], "scale": [1.0]}, "a list of numbers"),
        ({"mean": [[0.0]], "scale": [[1.0]]}, "a list of numbers"),
        ({"mean": [0.0, 1.0], "scale": [1.0]}, r"the same length >= 1, received 2 and 1"),
        ({"mean": [], "scale": []}, "the same length >= 1"),
        ({"mean": [0.0], "scale": [0.0]}, "positive"),
        ({"mean": [float("nan")], "scale": [1.0]}, "finite"),
    ],
)
def test_standardizer_from_json_checks_its_input(data: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=message):
        Standardizer.from_json(data)


def test_standardizer_checks_shapes() -> None:
    scaler = Standardizer.fit(np.ones((3, 2)))
    with pytest.raises(DataError, match=r"shape \(N, 2\), received \(3, 3\)"):
        scaler.transform(np.ones((3, 3)))
    with pytest.raises(DataError, match=r"finite 2-D array \(N, D\)"):
        Standardizer.fit(np.ones(3))
    with pytest.raises(DataError, match="finite"):
        Standardizer.fit(np.array([[np.nan]]))
