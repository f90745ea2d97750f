"""The command line: `handprop warmup` and `handprop gradcheck`, in process and as installed."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from handprop.cli import main
from tests.test_warmup_parity import tutorial_loop


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_warmup_prints_the_tutorials_losses(capsys: pytest.CaptureFixture[str]) -> None:
    expected, _, _ = tutorial_loop(seed=0, steps=5)

    code, out, err = run(["warmup", "--steps", "5"], capsys)

    assert code == 0 and err == ""
    lines = [line.split() for line in out.splitlines()]
    assert [int(t) for t, _ in lines] == [0, 1, 2, 3, 4]
    np.testing.assert_allclose([float(loss) for _, loss in lines], expected, rtol=1e-12)


def test_warmup_loss_text_round_trips_exactly(capsys: pytest.CaptureFixture[str]) -> None:
    expected, _, _ = tutorial_loop(seed=3, steps=2)
    _, out, _ = run(["warmup", "--steps", "2", "--seed", "3"], capsys)
    # repr(float) is the shortest text that reads back to the same double.
    assert out.splitlines()[1] == f"1 {expected[1]!r}"


def test_print_every_keeps_the_last_step(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(["warmup", "--steps", "25", "--print-every", "10"], capsys)
    assert [line.split()[0] for line in out.splitlines()] == ["0", "10", "20", "24"]


def test_quiet_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["warmup", "--steps", "3", "--quiet"], capsys) == (0, "", "")


def test_float32_runs(capsys: pytest.CaptureFixture[str]) -> None:
    expected, _, _ = tutorial_loop(seed=0, steps=3)
    code, out, _ = run(["warmup", "--steps", "3", "--dtype", "float32"], capsys)
    assert code == 0
    np.testing.assert_allclose(
        [float(line.split()[1]) for line in out.splitlines()], expected, rtol=1e-4
    )


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [
        (["warmup", "--lr", "nan"], "--lr"),
        (["warmup", "--lr", "inf"], "--lr"),
        (["warmup", "--lr", "fast"], "--lr"),
        (["warmup", "--steps", "-1"], "--steps"),
        (["warmup", "--print-every", "0"], "--print-every"),
        (["warmup", "--dtype", "float16"], "--dtype"),
        (["warmup", "--seed", "-2"], "--seed"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_arguments_exit_2_with_one_clear_line(
    argv: list[str], mentions: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(argv, capsys)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1
    assert mentions in err


def test_help_exits_0_and_explains(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["warmup", "--help"], capsys)
    assert code == 0
    assert "RandomState" in out and "--print-every" in out


def test_gradcheck_passes_and_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["gradcheck", "--max-entries", "20"], capsys)
    assert code == 0
    rows = out.splitlines()
    assert rows[0].split()[:2] == ["subject", "tensor"]
    assert any(row.startswith("warmup network") for row in rows)
    assert "FAIL" not in out
    assert rows[-1].startswith("all ") and rows[-1].endswith(" gradient checks passed")


def test_the_installed_console_script_runs_warmup() -> None:
    script = Path(sys.executable).parent / "handprop"
    assert script.exists(), f"{script} is missing: install the package (pip install -e .)"
    expected, _, _ = tutorial_loop(seed=0, steps=2)

    result = subprocess.run(
        [script, "warmup", "--steps", "2"], capture_output=True, text=True, check=False, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert [float(line.split()[1]) for line in result.stdout.splitlines()] == expected


def test_python_dash_m_reports_bad_input_without_a_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "handprop", "warmup", "--lr", "nan"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "handprop warmup: error: argument --lr: must be a finite number >= 0, received 'nan' "
        "(see handprop warmup --help)"
    ]


def test_warmup_log_has_one_json_line_per_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected, _, _ = tutorial_loop(seed=0, steps=4)
    log = tmp_path / "warmup.jsonl"

    assert run(["warmup", "--steps", "4", "--quiet", "--log", str(log)], capsys) == (0, "", "")

    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1, 2, 3]
    assert [r["loss"] for r in records] == expected


def test_warmup_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    plot = tmp_path / "loss.png"
    assert run(["warmup", "--steps", "50", "--quiet", "--plot", str(plot)], capsys)[0] == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.stat().st_size > 10_000


def test_warmup_plot_into_a_missing_folder_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    code, _, err = run(
        ["warmup", "--steps", "2", "--quiet", "--plot", str(tmp_path / "no" / "loss.png")], capsys
    )
    assert code == 2
    assert err.startswith("handprop: error: cannot write the plot")


def test_bench_help_explains_both_harnesses(capfd: pytest.CaptureFixture[str]) -> None:
    # The harness runs as a child process: capfd sees its output, capsys would not.
    assert main(["bench", "--help"]) == 0
    out = capfd.readouterr().out
    assert "usage: handprop bench [process] [OPTIONS]" in out
    assert "--only" in out  # the step harness's own options follow
    assert main(["bench", "process", "--help"]) == 0
    assert "--runs" in capfd.readouterr().out


def test_bench_passes_the_harness_exit_code_through_and_leaves_sys_path_alone(
    capfd: pytest.CaptureFixture[str],
) -> None:
    path = list(sys.path)
    assert main(["bench", "--no-such-option"]) == 2  # the harness's own usage error
    assert "--no-such-option" in capfd.readouterr().err
    assert sys.path == path
    assert "benchmarks.step" not in sys.modules


def test_bench_runs_the_harness_and_checks_the_first_update(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # A smoke run, in one child process, of the floor and handprop at the tutorial size: the
    # harness must finish, time both and find handprop's first update equal to the tutorial's.
    out_json = tmp_path / "bench.json"
    argv = ["bench", "--sizes", "tutorial", "--dtypes", "float64", "--only", "gemm,handprop",
            "--repeats", "1", "--repeat-seconds", "0.01", "--warmup-seconds", "0.01",
            "--settle-seconds", "0", "--patience", "0", "--in-process",
            "--json", str(out_json)]  # fmt: skip
    assert main(argv) == 0
    results = {r["key"]: r for r in json.loads(out_json.read_text())["results"]}
    assert set(results) == {"gemm", "handprop"}
    assert all(r["status"] == "ok" and r["median_ms"] > 0 for r in results.values())
    assert results["handprop"]["check"].startswith("ok"), results["handprop"]["check"]
    assert "| tutorial | float64 |" in capfd.readouterr().out


def test_bench_outside_a_checkout_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("handprop.cli.bench.checkout_with_benchmarks", lambda: None)
    assert main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "source checkout" in err
