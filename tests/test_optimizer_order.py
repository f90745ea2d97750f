"""Resuming puts each parameter's optimizer state back on that parameter: with the model at
hand, ``restore_optimizer`` checks the parameters' names against the checkpoint's order, so
two parameters of one shape given in another order cannot swap their state silently."""

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

import handprop as hp
from handprop.checkpoint import (
    ModelFileError,
    build_optimizer,
    load_checkpoint,
    restore_optimizer,
    save_checkpoint,
)
from handprop.cli import main


def two_square_layers(tmp_path: Path) -> Path:
    """A checkpoint of Linear(3, 3) -> ReLU -> Linear(3, 3): '0.weight' and '2.weight', (3, 3)."""
    model = hp.Sequential(
        hp.Linear(3, 3, bias=False, rng=0), hp.ReLU(), hp.Linear(3, 3, bias=False, rng=1)
    )
    adam = hp.Adam(model.parameters(), lr=0.01)
    x, y = np.random.default_rng(2).standard_normal((2, 4, 3))
    hp.train_step(model, hp.MeanSquaredError(), adam, x, y)
    save_checkpoint(tmp_path / "c.safetensors", model, adam)
    return tmp_path / "c.safetensors"


def test_parameters_in_another_order_are_refused(tmp_path: Path) -> None:
    model, _, state = load_checkpoint(two_square_layers(tmp_path))
    swapped = model.parameters()[::-1]
    message = r"state 0 belongs to parameter '0.weight', this optimizer's parameter 0 is '2.weight'"
    with pytest.raises(ModelFileError, match=message):
        build_optimizer(swapped, state, model=model)
    with pytest.raises(ModelFileError, match=message):
        restore_optimizer(hp.Adam(swapped, lr=0.01), state, model=model)


def test_parameters_in_the_checkpoints_order_get_their_own_state(tmp_path: Path) -> None:
    model, _, state = load_checkpoint(two_square_layers(tmp_path))
    adam = build_optimizer(model.parameters(), state, model=model)
    assert isinstance(adam, hp.Adam)
    for index, m in enumerate(adam.slots()["m"]):
        np.testing.assert_array_equal(m, state.tensors[f"optimizer.{index}.m"].T)


def test_a_parameter_of_another_model_is_refused(tmp_path: Path) -> None:
    model, _, state = load_checkpoint(two_square_layers(tmp_path))
    other, _, _ = load_checkpoint(tmp_path / "c.safetensors")
    with pytest.raises(ValueError, match="restore_optimizer: the optimizer's parameter 0 is not"):
        build_optimizer(other.parameters(), state, model=model)


def test_resume_refuses_a_checkpoint_whose_state_names_other_parameters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = np.random.default_rng(0).standard_normal((40, 3)).tolist()
    data = tmp_path / "reg.csv"
    lines = ["a,b,price"] + [f"{a!r},{b!r},{a - 2 * b + c!r}" for a, b, c in rows]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    checkpoint = tmp_path / "c.st"
    train = ["train", "--data", data, "--epochs", 1, "--hidden", 4, "--quiet"]
    assert (
        main([str(a) for a in [*train, "--checkpoint", checkpoint, "--checkpoint-every", 1]]) == 0
    )
    with safe_open(str(checkpoint), "np") as file:
        info = json.loads(file.metadata()["handprop"])
    names = info["optimizer"]["parameters"]  # 0.weight, 0.bias, 2.weight, 2.bias
    info["optimizer"]["parameters"] = [names[2], names[1], names[0], names[3]]
    save_file(load_file(str(checkpoint)), str(checkpoint), metadata={"handprop": json.dumps(info)})
    capsys.readouterr()

    code = main(["train", "--resume", str(checkpoint), "--epochs", "2", "--quiet"])

    _, err = capsys.readouterr()
    assert code == 2
    assert (
        "state 0 belongs to parameter '2.weight', this optimizer's parameter 0 is '0.weight'" in err
    )
