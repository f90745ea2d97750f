"""`handprop explain` and `hp.explain`: shapes and FLOPs of the tutorial's step, worked by hand."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import handprop as hp
from handprop.cli import main
from handprop.explainer import format_flops

# N, D_in, H, D_out = 64, 1000, 100, 10. A matrix product (m,k)·(k,n) costs 2*m*k*n FLOP;
# element-wise lines one FLOP per operation per element (the loss: subtract, square, add).
TUTORIAL = [
    ("h = x.dot(w1)", "(64,1000)·(1000,100) -> (64,100)", 2 * 64 * 1000 * 100),  # 12.8 M
    ("h_relu = np.maximum(h, 0)", "(64,100) -> (64,100)", 64 * 100),
    ("y_pred = h_relu.dot(w2)", "(64,100)·(100,10) -> (64,10)", 2 * 64 * 100 * 10),  # 128 k
    ("loss = np.square(y_pred - y).sum()", "(64,10), (64,10) -> ()", 3 * 64 * 10),
    ("grad_y_pred = 2.0 * (y_pred - y)", "(64,10), (64,10) -> (64,10)", 2 * 64 * 10),
    ("grad_w2 = h_relu.T.dot(grad_y_pred)", "(100,64)·(64,10) -> (100,10)", 2 * 100 * 64 * 10),
    ("grad_h_relu = grad_y_pred.dot(w2.T)", "(64,10)·(10,100) -> (64,100)", 2 * 64 * 10 * 100),
    ("grad_h = grad_h_relu.copy()", "(64,100) -> (64,100)", 0),
    ("grad_h[h < 0] = 0", "(64,100) -> (64,100)", 64 * 100),
    ("grad_w1 = x.T.dot(grad_h)", "(1000,64)·(64,100) -> (1000,100)", 2 * 1000 * 64 * 100),
    ("w1 -= learning_rate * grad_w1", "(1000,100) -> (1000,100)", 2 * 1000 * 100),
    ("w2 -= learning_rate * grad_w2", "(100,10) -> (100,10)", 2 * 100 * 10),
]


def test_the_tutorial_step_line_by_line() -> None:
    explanation = hp.explain(measure=False)

    assert [(line.code, line.shapes(), line.flops) for line in explanation.lines] == TUTORIAL
    assert explanation.flops == sum(flops for *_, flops in TUTORIAL)
    assert explanation.matmul_flops == 4 * 12_800_000 // 2 + 3 * 128_000


def test_the_text_shows_the_issues_example_line() -> None:
    text = hp.explain(measure=False).format()
    row = next(r for r in text.splitlines() if r.startswith("grad_h_relu = grad_y_pred.dot(w2.T)"))
    assert row.split()[-5:] == ["(64,10)·(10,100)", "->", "(64,100)", "128", "kFLOP"]
    assert "h = x.dot(w1)" in text and "12.8 MFLOP" in text


def test_batch_size_changes_every_n() -> None:
    lines = hp.explain(batch_size=8, measure=False).lines
    assert lines[0].shapes() == "(8,1000)·(1000,100) -> (8,100)"
    assert lines[0].flops == 2 * 8 * 1000 * 100


def test_measured_shares_add_up_and_the_gemm_rate_is_positive() -> None:
    explanation = hp.explain(seconds=0.2)
    assert all(line.seconds > 0 for line in explanation.lines)
    assert sum(explanation.share(line) for line in explanation.lines) == pytest.approx(1.0)
    assert explanation.gemm_flops_per_second is not None
    assert explanation.gemm_flops_per_second > 1e6


def test_a_model_with_biases_and_tanh_and_its_own_x() -> None:
    rng = np.random.default_rng(0)
    model = hp.Sequential(hp.Linear(3, 5, rng=rng), hp.Tanh(), hp.Linear(5, 2, rng=rng))
    before = model[0].parameters()[0].data.copy()
    lines = hp.explain(model, rng.standard_normal((7, 3)), measure=False).lines
    codes = {line.code: (line.shapes(), line.flops) for line in lines}
    assert codes["h = x.dot(w1) + b1"] == ("(7,3)·(3,5) -> (7,5)", 2 * 7 * 3 * 5 + 7 * 5)
    assert codes["grad_h = grad_h_tanh * (1 - h_tanh ** 2)"] == ("(7,5) -> (7,5)", 3 * 7 * 5)
    assert codes["grad_b2 = grad_y_pred.sum(axis=0)"] == ("(7,2) -> (2,)", 7 * 2)
    np.testing.assert_array_equal(model[0].parameters()[0].data, before)  # weights copied


def test_format_flops() -> None:
    assert [format_flops(v) for v in (12_800_000, 128_000, 640, 0)] == [
        "12.8 MFLOP", "128 kFLOP", "640 FLOP", "0 FLOP",
    ]  # fmt: skip


def test_bad_python_input_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        hp.explain(batch_size=0)
    with pytest.raises(ValueError, match=r"shape \(N, 1000\)"):
        hp.explain(x=np.zeros((4, 999)), measure=False)


def test_cli_text_json_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--seconds", "0.2", "--batch-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "grad_w1 = x.T.dot(grad_h)" in out and "GFLOP/s" in out

    png = tmp_path / "step.png"
    assert main(["explain", "--seconds", "0", "--json", "--plot", str(png)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(d["code"], d["flops"]) for d in data["lines"]] == [(c, f) for c, _, f in TUTORIAL]
    assert data["lines"][0]["operands"] == [[64, 1000], [1000, 100]]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_explains_a_model_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from handprop.checkpoint import save_model

    rng = np.random.default_rng(0)
    path = tmp_path / "model.safetensors"
    save_model(path, hp.Sequential(hp.Linear(4, 6, rng=rng), hp.ReLU(), hp.Linear(6, 3, rng=rng)))
    assert main(["explain", "--model", str(path), "--batch-size", "5", "--seconds", "0"]) == 0
    assert "(5,4)·(4,6) -> (5,6)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv", [["explain", "--model", "missing.safetensors"], ["explain", "--batch-size", "0"]]
)
def test_cli_bad_input_exits_2_with_one_line(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(tmp_path / a) if a.endswith(".safetensors") else a for a in argv]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1


def test_hp_explain_is_the_function_even_after_importing_the_module() -> None:
    code = "import handprop.explainer, handprop; print(callable(handprop.explain))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "True", result.stderr
