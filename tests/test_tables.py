"""Tables as users have them: delimiters, decimal commas, categories, chosen columns,
missing cells, and the task inferred from the target (issue 14)."""

import json
from pathlib import Path

import numpy as np
import pytest

from handprop.data import Columns, CsvFormat, DataError, Encoding, load_dataset, load_features


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


COLORS = "size;color;price\n" + "".join(
    f"{i};{['red', 'green', 'blue'][i % 3]};{i * 2}\n" for i in range(12)
)


def test_semicolon_delimiter_is_found_in_the_header(tmp_path: Path) -> None:
    # Was: "every column is a target" (the whole line read as one column).
    path = write(tmp_path / "data.csv", "a;b;y\n1;2;3\n4;5;6\n")
    data = load_dataset(path)
    assert data.feature_names == ("a", "b")
    np.testing.assert_array_equal(data.x, [[1, 2], [4, 5]])


def test_tsv_files_are_read_with_tabs(tmp_path: Path) -> None:
    path = write(tmp_path / "data.tsv", "a\tb\ty\n1\t2\t3\n")
    assert load_dataset(path).x.tolist() == [[1.0, 2.0]]


def test_decimal_comma_can_be_declared(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "a;y\n1,5;2,25\n3;4\n")
    data = load_dataset(path, form=CsvFormat(decimal=","))
    np.testing.assert_array_equal(data.x, [[1.5], [3.0]])
    np.testing.assert_array_equal(data.y, [[2.25], [4.0]])


def test_a_one_column_reading_names_the_delimiter(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "a|b|y\n1|2|3\n")
    with pytest.raises(DataError, match=r'comma as the delimiter; .* delimiter=";"'):
        load_dataset(path)


def test_text_columns_with_few_values_are_one_hot_encoded(tmp_path: Path) -> None:
    # Was: "'red' is not a number".
    data = load_dataset(write(tmp_path / "data.csv", COLORS))
    assert data.feature_names == ("size", "color=blue", "color=green", "color=red")
    np.testing.assert_array_equal(data.x[:3], [[0, 0, 0, 1], [1, 0, 1, 0], [2, 1, 0, 0]])
    assert data.encoding is not None and data.encoding.categorical == ("color",)


def test_numeric_columns_can_be_declared_categorical(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "zip,y\n75001,1\n10115,2\n75001,3\n")
    data = load_dataset(path, columns=Columns(categorical=("zip",)))
    assert data.feature_names == ("zip=10115", "zip=75001")
    np.testing.assert_array_equal(data.x, [[0, 1], [1, 0], [0, 1]])


def test_an_id_column_is_refused_with_what_to_do(tmp_path: Path) -> None:
    text = "id,a,y\n" + "".join(f"u{i},{i},{i}\n" for i in range(60))
    path = write(tmp_path / "data.csv", text)
    with pytest.raises(
        DataError, match=r'"id" holds text with 60 different values .* drop=\["id"\]'
    ):
        load_dataset(path)
    data = load_dataset(path, columns=Columns(drop=("id",)))
    assert data.feature_names == ("a",)
    assert load_dataset(path, columns=Columns(features=("a",))).feature_names == ("a",)


def test_a_typo_in_a_numeric_column_is_still_not_a_number(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "a,y\n1,1\n2,2\nx3,3\n")
    with pytest.raises(DataError, match=r"line 4, column \"a\": 'x3' is not a number"):
        load_dataset(path)


def test_prediction_applies_the_training_encoding(tmp_path: Path) -> None:
    data = load_dataset(write(tmp_path / "train.csv", COLORS))
    new = write(tmp_path / "new.csv", "color;size\ngreen;5\nred;7\n")
    x = load_features(new, encoding=data.encoding)
    np.testing.assert_array_equal(x, [[5, 0, 1, 0], [7, 0, 0, 1]])
    unseen = write(tmp_path / "unseen.csv", "color;size\npurple;5\n")
    with pytest.raises(DataError, match=r"line 2, column \"color\": 'purple' is a category the "
                       r'model never saw; it knows "blue", "green", "red"'):  # fmt: skip
        load_features(unseen, encoding=data.encoding)


def test_encoding_json_round_trip_and_checks(tmp_path: Path) -> None:
    data = load_dataset(write(tmp_path / "train.csv", COLORS), columns=Columns(impute="mean"))
    encoding = data.encoding
    assert isinstance(encoding, Encoding)
    assert Encoding.from_json(json.loads(json.dumps(encoding.to_json()))) == encoding
    with pytest.raises(DataError, match="categories must be distinct strings"):
        Encoding.from_json({"columns": [{"name": "a", "categories": ["x", "x"]}]})
    with pytest.raises(DataError, match="does not fit"):
        Encoding.from_json({"columns": [{"name": "a", "categories": ["x"], "fill": "y"}]})


@pytest.mark.parametrize(
    ("impute", "fill"), [("mean", 3.0), ("median", 2.0), ("most-frequent", 1.0)]
)
def test_missing_cells_are_imputed(tmp_path: Path, impute: str, fill: float) -> None:
    path = write(tmp_path / "data.csv", "a,c,y\n1,u,1\n2,u,2\n,,3\n6,v,4\n")
    data = load_dataset(path, columns=Columns(impute=impute, categorical=("c",)))
    assert data.x[2].tolist() == [fill, 1.0, 0.0]  # the category: its most frequent, "u"
    new = write(tmp_path / "new.csv", "a,c\nNA,\n")
    assert load_features(new, encoding=data.encoding).tolist() == [[fill, 1.0, 0.0]]


def test_prediction_can_drop_rows_with_missing_cells(tmp_path: Path) -> None:
    data = load_dataset(write(tmp_path / "train.csv", "a,y\n1,2\n3,4\n"))
    new = write(tmp_path / "new.csv", "a\n1\n\n5\nnan\n")
    with pytest.raises(DataError, match="drop_nonfinite=True"):
        load_features(new, data.feature_names)
    assert load_features(new, data.feature_names, drop_nonfinite=True).tolist() == [[1.0], [5.0]]


@pytest.mark.parametrize(
    ("text", "task", "why"),
    [
        ("a,y\n" + "".join(f"{i},{i % 3}\n" for i in range(30)), "classification", "3 distinct"),
        ("a,y\n1,cat\n2,dog\n", "classification", "text labels"),
        ("a,y\n1,0.5\n2,1.5\n", "regression", "not a few classes"),
        ("a,y\n" + "".join(f"{i},{i}\n" for i in range(30)), "regression", "not a few classes"),
    ],
)
def test_the_task_is_inferred_from_the_target(
    tmp_path: Path, text: str, task: str, why: str
) -> None:
    data = load_dataset(write(tmp_path / "data.csv", text), task=None)
    assert data.task == task and why in data.task_note


MIXED = "a,b,c,label\n" + "".join(
    f"{i * 0.37!r},{['x', 'y'][i % 2]},{'NA' if i % 7 == 0 else i},{i % 3}\n" for i in range(40)
)


@pytest.mark.parametrize("task", ["regression", "classification", None])
def test_pandas_reads_plain_files_as_the_csv_module_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task: str | None
) -> None:
    import handprop.data.csv_file as csv_file
    from handprop.data.csv_pandas import read_plain_csv

    path = write(tmp_path / "data.csv", MIXED)
    assert read_plain_csv(path, ",", ".") is not None  # this file takes the fast path
    columns = Columns(impute="median")
    fast = load_dataset(path, task=task, columns=columns)
    monkeypatch.setattr(csv_file, "read_plain_csv", lambda *args: None)
    slow = load_dataset(path, task=task, columns=columns)
    np.testing.assert_array_equal(fast.x, slow.x)
    np.testing.assert_array_equal(fast.y, slow.y)
    assert (fast.feature_names, fast.classes) == (slow.feature_names, slow.classes)


def test_numeric_csv_reads_without_pandas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    real = importlib.import_module

    def no_pandas(name: str, *args: object) -> object:
        if name == "pandas":
            raise ImportError(name)
        return real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib, "import_module", no_pandas)
    path = write(tmp_path / "data.csv", "a,b,y\n1,2,3\n4,5,6\n")
    np.testing.assert_array_equal(load_dataset(path).x, [[1, 2], [4, 5]])


@pytest.mark.parametrize(
    "text",
    ['a,y\n"1",2\n', "a,y\r\n1,2\r\n", "a,y\n1,2\n\n3,4\n", "a,y\n1\n3,4,5\n", "a,y\n1,2,\n",
     "a,b,y\n1,2,3\n\n4,5,6,7,8\n", "a,y\n1,2\n\n", "a,y\n\n1,2\n"],
)  # fmt: skip
def test_files_that_could_go_wrong_are_left_to_the_csv_module(tmp_path: Path, text: str) -> None:
    from handprop.data.csv_pandas import read_plain_csv

    assert read_plain_csv(write(tmp_path / "data.csv", text), ",", ".") is None


def test_the_impute_flag_offers_the_librarys_strategies() -> None:
    from handprop.cli import build_parser
    from handprop.data.encoding import IMPUTE

    train = build_parser()._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    (impute,) = [a for a in train._actions if a.dest == "impute"]
    assert tuple(impute.choices) == IMPUTE
