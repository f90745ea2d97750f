"""handprop train, evaluate and predict on tables as users have them (issue 14)."""

import json
from pathlib import Path

import numpy as np
import pytest

from handprop.checkpoint import load_model
from handprop.cli import main


def run(argv: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def iris_like(tmp_path: Path) -> Path:
    """Integer class labels 0, 1, 2 that a regression would silently fit."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((150, 2))
    y = (x[:, 0] > -0.4).astype(int) + (x[:, 0] > 0.4)
    lines = ["a,b,species"] + [f"{a:.5f},{b:.5f},{c}" for (a, b), c in zip(x, y, strict=True)]
    path = tmp_path / "iris.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """Semicolons, a decimal comma, a category, an ID and a missing cell."""
    rng = np.random.default_rng(1)
    colors = ["red", "green", "blue"]
    lines = ["id;color;size;price"]
    for i in range(120):
        color, size = colors[i % 3], rng.uniform(1, 5)
        price = 10 * (color == "red") + 3 * size + rng.normal(0, 0.1)
        size_text = "" if i == 7 else f"{size:.3f}".replace(".", ",")
        lines.append(f"u{i};{color};{size_text};{price:.3f}".replace(".", ","))
    path = tmp_path / "shop.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_integer_labels_train_a_classifier_and_say_so(
    iris_like: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Was: a regression, without a word.
    model = tmp_path / "m.safetensors"
    code, _, err = run(["train", "--data", iris_like, "--out", model, "--epochs", 5], capsys)
    assert code == 0
    assert 'task: classification (the target "species" holds 3 distinct whole numbers); ' in err
    assert "--task regression overrides" in err
    _, info = load_model(model)
    assert info["task"] == "classification" and info["classes"] == [0, 1, 2]
    assert info["config"]["loss"] == "cross-entropy"


def test_messages_name_flags_not_python(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Was: 'class labels need task="classification"'.
    path = tmp_path / "pets.csv"
    path.write_text("a,kind\n1,cat\n2,dog\n3,cat\n")
    code, _, err = run(["train", "--data", path, "--task", "regression"], capsys)
    assert code == 2
    assert "--task classification" in err and "task=" not in err


def test_categorical_csv_end_to_end(
    shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Was: "every column is a target" (semicolons), then "'red' is not a number".
    model, preds = tmp_path / "m.safetensors", tmp_path / "p.csv"
    train = ["train", "--data", shop, "--out", model, "--decimal", ",", "--drop", "id",
             "--impute", "median", "--epochs", 40, "--quiet"]  # fmt: skip
    assert run(train, capsys) == (0, "", "")
    _, info = load_model(model)
    assert info["feature_names"] == ["color=blue", "color=green", "color=red", "size"]
    assert info["encoding"]["columns"][0]["categories"] == ["blue", "green", "red"]
    code, out, err = run(["evaluate", model, "--data", shop, "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["r2"] > 0.9
    new = tmp_path / "new.csv"
    new.write_text("size;color\n2,5;red\n2,5;blue\n;green\n")
    assert run(["predict", model, "--data", new, "--output", preds], capsys)[0] == 0
    price = [float(line) for line in preds.read_text().splitlines()[1:]]
    assert len(price) == 3 and abs(price[0] - price[1] - 10) < 1.5
    new.write_text("size;color\n2,5;purple\n")
    code, _, err = run(["predict", model, "--data", new, "--output", preds], capsys)
    assert code == 2 and "'purple' is a category the model never saw" in err


def test_an_id_column_says_which_flag_drops_it(
    shop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["train", "--data", shop, "--decimal", ","], capsys)
    assert code == 2 and '--drop "id"' in err and '--categorical "id"' in err


def test_evaluate_and_predict_accept_drop_nonfinite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Was: they recommended --drop-nonfinite, then refused it as unrecognized.
    data, model = tmp_path / "d.csv", tmp_path / "m.safetensors"
    data.write_text("a,y\n" + "".join(f"{i},{2 * i}\n" for i in range(30)))
    assert run(["train", "--data", data, "--out", model, "--epochs", 2, "--quiet"], capsys)[0] == 0
    holes = tmp_path / "holes.csv"
    holes.write_text("a,y\n1,2\n,4\n3,6\n")
    code, _, err = run(["evaluate", model, "--data", holes], capsys)
    assert code == 2 and "--drop-nonfinite" in err
    code, out, err = run(["evaluate", model, "--data", holes, "--drop-nonfinite", "--json"], capsys)
    assert code == 0 and json.loads(out)["n"] == 2
    assert err == (
        "evaluate: dropped 1 of 3 rows holding a missing cell the model does not impute "
        "(data rows 2, counted from 1); the scores are the others'\n"
    )


def test_predict_drop_nonfinite_says_so_and_keeps_rows_aligned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Was: the dropped rows vanished from the output without a word, so that row i of
    # the predictions was no longer row i of the data.
    data, model, npy = tmp_path / "d.csv", tmp_path / "m.safetensors", tmp_path / "p.npy"
    data.write_text("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(30)))
    assert run(["train", "--data", data, "--out", model, "--epochs", 2, "--quiet"], capsys)[0] == 0
    holes = tmp_path / "holes.csv"
    holes.write_text("a,y\n1,0\n,1\n3,0\n,1\n")
    code, out, err = run(["predict", model, "--data", holes, "--drop-nonfinite", "--output", "-"],
                         capsys)  # fmt: skip
    assert code == 0 and out.splitlines()[0] == "label"
    assert [line != '""' for line in out.splitlines()[1:]] == [True, False, True, False]
    assert err.count("\n") == 1 and "dropped 2 of 4 rows" in err and "data rows 2, 4" in err
    argv = ["predict", model, "--data", holes, "--drop-nonfinite", "--output", npy, "--proba"]
    assert run(argv, capsys)[0] == 0
    proba = np.load(npy)
    assert (
        proba.shape == (4, 2) and np.isnan(proba[[1, 3]]).all() and np.isfinite(proba[[0, 2]]).all()
    )
    code, _, err = run(argv[:-1], capsys)  # labels in a .npy: no empty value for the gaps
    assert code == 2 and "write --output predictions.csv" in err


def test_predict_writes_to_standard_output(
    iris_like: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m.safetensors"
    run(["train", "--data", iris_like, "--out", model, "--epochs", 2, "--quiet"], capsys)
    code, out, err = run(["predict", model, "--data", iris_like, "--output", "-"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "label" and len(lines) == 151 and set(lines[1:]) <= {"0", "1", "2"}
    assert not (tmp_path / "-").exists()


def test_validation_fraction_zero_needs_no_patience_flag(
    iris_like: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Was: "--patience watches the validation set: give ... or --patience 0".
    argv = ["train", "--data", iris_like, "--validation-fraction", 0, "--epochs", 2]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert "epoch 2/2: completed" in out


def test_four_rows_say_how_to_train_without_validation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "tiny.csv"
    data.write_text("a,y\n1,1.5\n2,2.5\n3,3.5\n4,4.5\n")
    code, _, err = run(["train", "--data", data, "--epochs", 1], capsys)
    assert code == 2 and "--validation-fraction 0" in err
    assert run(["train", "--data", data, "--epochs", 1, "--validation-fraction", 0,
                "--quiet"], capsys)[0] == 0  # fmt: skip


def rare_csv(tmp_path: Path, findable: bool) -> Path:
    """95/5 classes; the rare class lies where a one-feature threshold finds it, or anywhere."""
    rng = np.random.default_rng(3)
    n = 400
    x = rng.standard_normal((n, 2))
    y = np.where((x[:, 0] if findable else rng.standard_normal(n)) > 1.64, "rare", "common")
    lines = ["a,b,kind"] + [f"{a:.5f},{b:.5f},{c}" for (a, b), c in zip(x, y, strict=True)]
    path = tmp_path / "rare.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def rare(tmp_path: Path) -> Path:
    return rare_csv(tmp_path, findable=True)


def test_one_class_for_everything_is_shown_and_warned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Was: accuracy 0.95 and nothing else.
    model, rare = tmp_path / "m.safetensors", rare_csv(tmp_path, findable=False)
    argv = ["train", "--data", rare, "--out", model, "--epochs", 20, "--lr", 0.05, "--hidden",
            "none", "--patience", 0]  # fmt: skip
    code, _, err = run(argv, capsys)
    assert code == 0
    assert "predicts class 'common' for every validation row" in err
    assert "--class-weight balanced" in err
    code, out, _ = run(["evaluate", model, "--data", rare, "--json"], capsys)
    scores = json.loads(out)
    assert scores["balanced_accuracy"] == 0.5
    common, rare_scores = scores["per_class"]
    assert common["class"] == "common" and common["recall"] == 1.0
    assert rare_scores == {"class": "rare", "precision": 0.0, "recall": 0.0, "f1": 0.0,
                           "support": scores["confusion_matrix"][1][0]}  # fmt: skip
    assert scores["confusion_matrix"][0][1] == scores["confusion_matrix"][1][1] == 0
    code, out, _ = run(["evaluate", model, "--data", rare], capsys)
    assert "balanced_accuracy: 0.5\n" in out and "confusion matrix" in out


def test_the_one_class_warning_does_not_suggest_what_is_in_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Was: "try --class-weight balanced" to a run that used it. A constant feature: the
    # model can only predict one class, weighted or not.
    data = tmp_path / "constant.csv"
    rows = "".join(f"1.0,{'rare' if i % 20 == 0 else 'common'}\n" for i in range(200))
    data.write_text("a,kind\n" + rows)
    for weighted, remedy in ((False, "--class-weight balanced"), (True, "more --epochs")):
        weights = ["--class-weight", "balanced"] * weighted
        argv = ["train", "--data", data, "--out", tmp_path / f"m{weighted}.safetensors",
                "--epochs", 5, "--hidden", "none", *weights]  # fmt: skip
        code, _, err = run(argv, capsys)
        assert code == 0 and "for every validation row" in err
        assert remedy in err
        assert ("--class-weight balanced" in err) is not weighted


def test_balanced_class_weights_find_the_rare_class(
    rare: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scores = {}
    for weighting in ([], ["--class-weight", "balanced"]):
        model = tmp_path / "m.safetensors"
        argv = ["train", "--data", rare, "--out", model, "--epochs", 20, "--hidden", "none",
                "--lr", 0.05, "--quiet", *weighting]  # fmt: skip
        assert run(argv, capsys)[0] == 0
        out = run(["evaluate", model, "--data", rare, "--json"], capsys)[1]
        scores[bool(weighting)] = json.loads(out)["per_class"][1]["recall"]
    _, info = load_model(model)
    assert info["config"]["class_weight"] == "balanced"
    assert scores[True] == 1.0 and scores[False] < 0.8  # measured: 1.0 and 0.6


def test_monitor_is_explicit_in_help_summary_and_plot(
    iris_like: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import handprop.cli.plot

    marks = []
    monkeypatch.setattr(handprop.cli.plot, "check_plot", lambda option, path: None)
    monkeypatch.setattr(handprop.cli.plot, "plot_losses",
                        lambda *args, **kwargs: marks.append(kwargs["marked"]))  # fmt: skip
    assert main(["train", "--help"]) == 0
    assert "default: val-metric" in " ".join(capsys.readouterr().out.split())
    summaries = {}
    for monitor in ("val-metric", "val-loss"):
        argv = ["train", "--data", iris_like, "--epochs", 40, "--patience", 5, "--monitor",
                monitor, "--plot", tmp_path / "p.png", "--lr", 0.05]  # fmt: skip
        code, out, _ = run(argv, capsys)
        assert code == 0
        summaries[monitor] = out.splitlines()[0]
    assert "by validation accuracy kept" in summaries["val-metric"]
    assert "by validation loss kept" in summaries["val-loss"]
    kept = [int(summary.split("best epoch ")[1].split()[0]) for summary in summaries.values()]
    assert [mark[0] for mark in marks] == kept
    assert marks[1][1] == f"kept: epoch {kept[1]} (validation loss)"


def test_test_fraction_reports_a_held_out_score(
    iris_like: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import handprop.cli.training

    sizes = []
    fit = handprop.cli.training.fit

    def counting_fit(*args: object, **kwargs: object) -> object:
        sizes.append((len(args[3][0]), len(kwargs["validation"][0])))  # type: ignore[index, arg-type]
        return fit(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(handprop.cli.training, "fit", counting_fit)
    code, out, _ = run(["train", "--data", iris_like, "--epochs", 3, "--test-fraction", 0.2],
                       capsys)  # fmt: skip
    assert code == 0
    assert out.splitlines()[3].startswith("test:       loss ")
    assert out.splitlines()[3].endswith("(30 rows)")
    assert sizes == [(108, 12)]  # 150 - 30 held out, then 10% of 120 for validation


def test_categories_and_imputed_values_come_from_the_training_rows_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Was: fitted on the whole file before the split, so a category or a value that only
    # the validation or test rows hold leaked into the model.
    from handprop.data.transform import hold_out

    n, seed = 40, 0
    rest, test = hold_out(n, 0.2, np.random.default_rng([seed, 3]))  # as train draws them
    kept, held = hold_out(len(rest), 0.25, np.random.default_rng([seed, 0]))
    assert test is not None and held is not None
    training, validation = rest[kept], rest[held]
    size = np.arange(n, dtype=float)
    size[validation] += 1000.0  # values the training rows never hold
    color = np.array(["red", "blue"] * (n // 2), dtype=object)
    color[test[0]], color[validation[0]] = "violet", "indigo"  # held-out categories
    cells = [f"{s:g}" for s in size]
    cells[int(training[0])] = ""  # a missing cell to impute
    rows = zip(cells, color, strict=True)
    lines = ["size,color,y"] + [f"{c},{k},{i % 3}" for i, (c, k) in enumerate(rows)]
    data, model = tmp_path / "d.csv", tmp_path / "m.safetensors"
    data.write_text("\n".join(lines) + "\n")
    train = ["train", "--data", data, "--out", model, "--impute", "mean", "--seed", seed,
             "--test-fraction", 0.2, "--validation-fraction", 0.25, "--epochs", 2]  # fmt: skip
    code, _, err = run(train, capsys)
    assert code == 0, err
    _, info = load_model(model)
    size_code, color_code = info["encoding"]["columns"]
    assert color_code["categories"] == ["blue", "red"]
    expected = np.mean([size[i] for i in training if i != training[0]])
    assert size_code["fill"] == pytest.approx(expected)


@pytest.mark.parametrize("where", ["feature", "target"])
def test_decimal_commas_without_the_flag_say_which_flag_reads_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    # Was: a feature "holds text ... (an ID or free text?); drop it", and a target of
    # decimal commas trained a classifier with a class per value.
    path = tmp_path / "semi.csv"
    rows = [(f"{1 + i / 7:.2f}", f"{i % 4}") for i in range(30)]
    if where == "target":
        rows = [(b, a) for a, b in rows]
    path.write_text("x;y\n" + "".join(f"{a};{b}\n".replace(".", ",") for a, b in rows))
    code, _, err = run(["train", "--data", path, "--epochs", 1], capsys)
    assert code == 2 and "decimal comma" in err and err.rstrip().endswith("--decimal ,")
    assert (
        run(["train", "--data", path, "--epochs", 1, "--decimal", ",", "--quiet"], capsys)[0] == 0
    )


def test_a_missing_target_is_not_sent_to_impute(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Was: "fill them (--impute ...)", and --impute then failed with the same words.
    path = tmp_path / "d.csv"
    path.write_text("a,y\n1,2\n2,\n3,6\n4,8\n5,10\n6,12\n")
    code, _, err = run(["train", "--data", path, "--impute", "mean"], capsys)
    assert code == 2 and '"y" (a target, which nothing fills)' in err and "--impute" not in err
    assert "--drop-nonfinite" in err
