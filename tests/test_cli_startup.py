"""What a command imports before it runs: `handprop warmup` starts without the parsers of the
other commands, and no command's parser loads an optional library or the training loop.

Counted in a fresh interpreter (sys.modules), never timed: the instruction counts are in
the report of benchmarks/instructions.py's callgrind runs.
"""

import subprocess
import sys

import pytest

from handprop.cli import COMMANDS, build_parser

#: Optional libraries and the library's heavier parts: a parser needs none of them.
HEAVY = ("torch", "pandas", "mpi4py", "matplotlib", "sklearn", "safetensors", "tqdm", "scipy")
LATE = ("handprop.training.loop", "handprop.data", "handprop.checkpoint", "handprop.distributed")


def imported_after(code: str, names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` a fresh interpreter has imported after running ``code``."""
    check = f"{code}\nimport sys\nprint(','.join(m for m in {names!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True
    )
    return [name for name in result.stdout.strip().split(",") if name]


def test_warmup_imports_no_other_command() -> None:
    others = tuple(f"handprop.cli.{name}" for name in COMMANDS if name != "warmup")
    code = "from handprop.cli import main\nmain(['warmup', '--steps', '0', '--quiet'])"
    names = others + HEAVY + LATE + ("json", "csv", "handprop.warmup")
    assert imported_after(code, names) == ["handprop.warmup"]


def test_the_whole_parser_imports_no_optional_library() -> None:
    code = "from handprop.cli import build_parser\nbuild_parser()"
    assert imported_after(code, HEAVY + LATE + ("handprop.training.capture",)) == []


@pytest.mark.parametrize("name", COMMANDS)
def test_a_command_parsed_alone_is_the_command_of_the_whole_parser(name: str) -> None:
    def command_help(commands: tuple[str, ...]) -> str:
        subparsers = build_parser(commands)._subparsers._group_actions[0]  # type: ignore[union-attr]
        return str(subparsers.choices[name].format_help())  # type: ignore[attr-defined]

    assert command_help((name,)) == command_help(COMMANDS)


def test_build_parser_refuses_a_name_that_is_no_command() -> None:
    with pytest.raises(ValueError, match=r"unknown command\(s\) \['errors'\]; valid: warmup, "):
        build_parser(["warmup", "errors"])
