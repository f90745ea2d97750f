"""The Python examples in the README run and say what the README says they do."""

import contextlib
import io
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_ZH = ROOT / "README.zh-CN.md"


def python_blocks(page: Path = README) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.DOTALL)


def command_blocks(readme: Path) -> list[tuple[str, str]]:
    """The (language, text) of every ```sh, ```console and ```python block, in order."""
    text = readme.read_text(encoding="utf-8")
    return re.findall(r"^```(sh|console|python)\n(.*?)^```$", text, re.DOTALL | re.MULTILINE)


def run_block(source: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, str(README), "exec"), {})
    return out.getvalue()


def test_the_library_example_trains_and_passes_its_gradient_check() -> None:
    (block,) = [block for block in python_blocks() if "check_gradients" in block]
    lines = run_block(block).splitlines()
    assert lines[-1] == "True"
    assert float(lines[0].rsplit(" ", 1)[1]) < 0.1  # from log(3) ~ 1.1 at the start


def test_the_handprop_side_of_the_table_prints_the_tutorials_losses() -> None:
    blocks = python_blocks()
    (tutorial,) = [block for block in blocks if "np.random.seed(0)" in block]
    (handprop_side,) = [block for block in blocks if "RandomState(0)" in block]
    ours = [line.split() for line in run_block(handprop_side).splitlines()]
    theirs = [line.split() for line in run_block(tutorial).splitlines()]
    assert [t for t, _ in ours] == [t for t, _ in theirs] == [str(t) for t in range(500)]
    # train_step folds the SGD update into the gradient product (one rounding instead of
    # two), as the README says: the same losses to about ten significant digits.
    np.testing.assert_allclose(
        [float(loss) for _, loss in ours], [float(loss) for _, loss in theirs], rtol=1e-9
    )


def test_the_scikit_learn_example_builds_a_working_pipeline() -> None:
    (block,) = [block for block in python_blocks() if "handprop.sklearn" in block]
    namespace: dict[str, object] = {}
    exec(compile(block, str(README), "exec"), namespace)
    x = np.random.default_rng(0).standard_normal((40, 3))
    labels = (x[:, 0] > 0).astype(int)
    classifier = namespace["classifier"]
    classifier.set_params(handpropclassifier__max_epochs=30)  # type: ignore[attr-defined]
    assert classifier.fit(x, labels).score(x, labels) > 0.9  # type: ignore[attr-defined]


def test_the_chinese_readme_has_the_english_commands_and_code_in_the_same_order() -> None:
    english, chinese = command_blocks(README), command_blocks(README_ZH)
    assert len(english) >= 6  # the two commands, the table's two sides, library, CLI, sklearn
    assert chinese == english, "README.zh-CN.md's code blocks must be README.md's, in order"


def test_the_cnn_example_learns_the_digits() -> None:
    page = README.parent / "docs" / "cnn.md"
    (block,) = [block for block in python_blocks(page) if "build_layers" in block]
    assert "epochs=30" in block
    accuracy = float(run_block(block.replace("epochs=30", "epochs=3")).splitlines()[-1])
    assert accuracy > 0.8  # 3 epochs instead of the page's 30, to stay fast


def test_the_categorical_csv_example_prints_what_the_readme_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from handprop.cli import main

    (block,) = [text for kind, text in command_blocks(README) if "pets-train.csv" in text]
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    commands = re.split(r"^\$ ", block, flags=re.MULTILINE)[1:]
    assert len(commands) == 4
    for command in commands:
        line, *expected = command.rstrip("\n").split("\n")
        argv = shlex.split(line)
        if argv[0] == "head":
            assert Path(argv[2]).read_text().splitlines()[:3] == expected
            continue
        assert main(argv[1:]) == 0
        out, err = capsys.readouterr()
        assert err.splitlines() + out.splitlines() == expected, line
