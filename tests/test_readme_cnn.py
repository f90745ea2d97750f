"""The README's CNN command runs as shown (one epoch instead of thirty, to stay fast)."""

import shlex
from pathlib import Path

import pytest

from tests.test_readme import README, command_blocks


def test_the_readme_cnn_command_prints_what_the_readme_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("sklearn")
    from handprop.cli import main

    (block,) = [text for _, text in command_blocks(README)
                if text.startswith("$ handprop train") and "--layers" in text]  # fmt: skip
    line, *shown = block.rstrip("\n").split("\n")
    argv = shlex.split(line.removeprefix("$ "))
    assert argv[:2] == ["handprop", "train"] and argv[argv.index("--epochs") + 1] == "30"
    argv[argv.index("--epochs") + 1] = "1"
    monkeypatch.chdir(tmp_path)
    assert main(argv[1:]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [row.split()[0] for row in printed] == [row.split()[0] for row in shown]
    assert printed[-2].endswith("(449 rows)") and shown[-2].endswith("(449 rows)")
    assert printed[-1] == shown[-1] == "saved cnn.safetensors"
    assert float(shown[-2].split("accuracy ")[1].split()[0]) > 0.9751  # the MLP's mean
