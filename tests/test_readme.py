"""The Python examples in the README run and say what the README says they do."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def run_block(source: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, str(README), "exec"), {})
    return out.getvalue()


def test_the_library_example_trains_and_passes_its_gradient_check() -> None:
    lines = run_block(python_blocks()[0]).splitlines()
    assert lines[-1] == "True"
    assert float(lines[0].rsplit(" ", 1)[1]) < 0.1  # from log(3) ~ 1.1 at the start


def test_the_handprop_side_of_the_table_prints_what_the_tutorial_prints() -> None:
    blocks = python_blocks()
    tutorial, handprop_side = blocks[1], blocks[2]
    assert "np.random.seed(0)" in tutorial
    # Both print "t loss"; numpy's float64 and Python's float print the same shortest repr.
    assert run_block(handprop_side) == run_block(tutorial)
