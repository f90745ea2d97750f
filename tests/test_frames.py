"""pandas DataFrames as data sources: names, categories and numbers as a CSV file gives them."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from handprop.data import Columns, DataError, load_dataset, load_features

pandas = pytest.importorskip("pandas")


def frame(n: int = 12) -> "pandas.DataFrame":
    rng = np.random.default_rng(0)
    return pandas.DataFrame({
        "size": rng.uniform(1, 5, n),
        "grade": pandas.Categorical(rng.choice([1, 2, 3], n)),  # numbers, but a category
        "kind": ["a", "b", "c"] * (n // 3),
        "cheap": rng.integers(0, 2, n).astype(bool),
        "price": rng.standard_normal(n),
    })  # fmt: skip


def test_a_dataframe_loads_as_the_same_csv_file(tmp_path: Path) -> None:
    data = frame()
    path = tmp_path / "d.csv"
    data.assign(cheap=data["cheap"].astype(int)).to_csv(path, index=False)
    from_frame = load_dataset(data, task=None)
    from_csv = load_dataset(str(path), task=None, columns=Columns(categorical=("grade", "kind")))
    assert from_frame.feature_names == from_csv.feature_names == (
        "size", "grade=1", "grade=2", "grade=3", "kind=a", "kind=b", "kind=c", "cheap"
    )  # fmt: skip
    np.testing.assert_allclose(from_frame.x, from_csv.x, rtol=1e-12)
    assert from_frame.task == "regression"
    features = load_features(data.drop(columns="price"), encoding=from_frame.encoding)
    np.testing.assert_array_equal(features, from_frame.x)


def test_text_labels_in_a_dataframe_make_a_classifier() -> None:
    data = frame().assign(label=["yes", "no"] * 6)
    dataset = load_dataset(data, target="label", task=None)
    assert dataset.classes == ("no", "yes") and "text labels" in dataset.task_note


def test_missing_cells_in_a_dataframe_are_refused_or_imputed() -> None:
    data = frame()
    data.loc[3, "size"], data.loc[4, "kind"] = np.nan, None
    with pytest.raises(DataError, match="the DataFrame: 2 of 12 rows hold NaN"):
        load_dataset(data)
    filled = load_dataset(data, columns=Columns(impute="mean"))
    assert filled.x[3, 0] == pytest.approx(data["size"].mean())


def test_handprop_works_without_pandas(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{2 * i}\n" for i in range(20)))
    code = (
        "import sys; sys.modules['pandas'] = None\n"  # import pandas now fails
        "import numpy as np\n"
        "from handprop.data import load_dataset\n"
        "from handprop.sklearn import HandpropRegressor\n"
        f"data = load_dataset({str(path)!r})\n"
        "HandpropRegressor(max_epochs=2).fit(data.x, data.y[:, 0]).predict(data.x)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
