"""`handprop warmup` against the tutorial's own loop, step by step."""

import numpy as np
import pytest

from benchmarks.tutorial_loop import TUTORIAL_BODY, TutorialLoop
from handprop.warmup import WarmupConfig, run_warmup


def tutorial_loop(seed: int, steps: int = 500) -> tuple[list[float], np.ndarray, np.ndarray]:
    """The "Warm-up: numpy" tutorial's loop (benchmarks/tutorial_warmup.py, verbatim) after
    its draws with np.random.seed(seed)."""
    saved = np.random.get_state()
    try:
        np.random.seed(seed)
        N, D_in, H, D_out = 64, 1000, 100, 10
        x = np.random.randn(N, D_in)
        y = np.random.randn(N, D_out)
        w1 = np.random.randn(D_in, H)
        w2 = np.random.randn(H, D_out)
    finally:
        np.random.set_state(saved)
    loop = TutorialLoop(x, y, [w1, w2], learning_rate=1e-6)
    losses = [loop.step() for _t in range(steps)]
    return losses, w1, w2


def test_the_loop_is_the_tutorials_own_lines() -> None:
    # The one copy of the tutorial in this repository is the script; check the body read
    # from it is the tutorial's loop, line for line (the print left out).
    body = [line.strip() for line in TUTORIAL_BODY.splitlines() if line.strip()]
    assert body[:3] == [
        "# Forward pass: compute predicted y",
        "h = x.dot(w1)",
        "h_relu = np.maximum(h, 0)",
    ]
    assert "grad_h[h < 0] = 0" in body and body[-1] == "w2 -= learning_rate * grad_w2"
    assert not any(line.startswith("print(") for line in body)


@pytest.mark.parametrize("seed", [0, 1])
def test_every_step_matches_the_tutorial(seed: int) -> None:
    expected_losses, w1, w2 = tutorial_loop(seed)

    run = run_warmup(WarmupConfig(seed=seed))

    assert len(run.losses) == 500
    np.testing.assert_allclose(run.losses, expected_losses, rtol=1e-12, atol=0)
    np.testing.assert_allclose(run.model[0].parameters()[0].data, w1, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(run.model[2].parameters()[0].data, w2, rtol=1e-12, atol=1e-300)


def test_the_loss_falls_by_many_decades() -> None:
    losses = run_warmup(WarmupConfig(steps=500)).losses
    assert losses[0] > 1e7
    assert losses[-1] < losses[0] * 1e-10


def test_float32_follows_the_float64_run() -> None:
    run64 = run_warmup(WarmupConfig(steps=30))
    run32 = run_warmup(WarmupConfig(steps=30, dtype="float32"))

    assert run32.x.dtype == np.float32
    assert all(p.data.dtype == np.float32 for p in run32.model.parameters())
    assert all(p.grad.dtype == np.float32 for p in run32.model.parameters())
    # Same weights rounded to float32; the losses agree to float32 precision.
    np.testing.assert_allclose(run32.losses, run64.losses, rtol=1e-3)
