"""The public API: names, parameter naming, optimizers holding no copies, lean import."""

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import handprop as hp


def test_sequential_names_parameters_like_torch() -> None:
    rng = np.random.default_rng(0)
    model = hp.Sequential(
        hp.Linear(3, 4, rng=rng),
        hp.ReLU(),
        hp.Sequential(hp.Linear(4, 2, bias=False, rng=rng), hp.Tanh()),
    )
    names = [name for name, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.0.weight"]
    assert [p.shape for p in model.parameters()] == [(3, 4), (4,), (4, 2)]
    assert [type(m).__name__ for m in model.modules()] == [
        "Sequential", "Linear", "ReLU", "Sequential", "Linear", "Tanh",
    ]  # fmt: skip


class ScaledLinear(hp.Linear):
    """A Linear with one more parameter, named by overriding named_parameters only."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features, rng=np.random.default_rng(0))
        self.scale = hp.Parameter(np.ones(1))

    def named_parameters(self) -> list[tuple[str, hp.Parameter]]:
        return [*super().named_parameters(), ("scale", self.scale)]


class FrozenFirst(hp.Sequential):
    """A Sequential that leaves its first layer out of its parameters."""

    def named_parameters(self) -> list[tuple[str, hp.Parameter]]:
        return [(n, p) for n, p in super().named_parameters() if not n.startswith("0.")]


class OnlyParameters(hp.Module):
    """Overrides parameters() alone: named_parameters, which checkpoints save, has none."""

    def __init__(self) -> None:
        self.w = hp.Parameter(np.ones((2, 2)))

    def parameters(self) -> list[hp.Parameter]:
        return [self.w]


def test_parameters_are_named_parameters_for_subclasses_and_custom_layers() -> None:
    # The optimizer trains parameters(), a checkpoint saves named_parameters(): the fast
    # parameters() of Linear and Sequential dropped ScaledLinear's scale (never trained),
    # trained FrozenFirst's first layer, and trained OnlyParameters' w without saving it.
    rng = np.random.default_rng(1)
    models = [
        ScaledLinear(2, 3),
        hp.Sequential(ScaledLinear(2, 3), hp.ReLU()),
        FrozenFirst(hp.Linear(2, 3, rng=rng), hp.ReLU(), hp.Linear(3, 1, rng=rng)),
        hp.Sequential(hp.Linear(2, 2, rng=rng), OnlyParameters()),
        hp.Sequential(
            hp.Sequential(FrozenFirst(hp.Linear(2, 2, rng=rng)), hp.Linear(2, 2, rng=rng))
        ),
    ]
    for model in models:
        named = [parameter for _, parameter in model.named_parameters()]
        assert [id(p) for p in model.parameters()] == [id(p) for p in named], model


def test_initialisers_draw_from_the_generator_they_are_given() -> None:
    # standard_normal with RandomState(0) is the tutorial's np.random.seed(0); np.random.randn.
    layer = hp.Linear(5, 3, bias=False, init=hp.init.standard_normal, rng=np.random.RandomState(0))
    np.testing.assert_array_equal(layer.weight.data, np.random.RandomState(0).randn(5, 3))

    he = hp.Linear(2000, 50, init=hp.init.he_normal, rng=np.random.default_rng(1)).weight.data
    assert he.std() == pytest.approx(np.sqrt(2 / 2000), rel=0.02)
    glorot = hp.Linear(300, 100, init=hp.init.glorot_uniform, rng=np.random.default_rng(2))
    limit = np.sqrt(6 / 400)
    assert glorot.weight.data.max() <= limit and glorot.weight.data.min() >= -limit
    assert glorot.weight.data.max() > 0.99 * limit


def test_float32_initialisation_rounds_the_float64_draw() -> None:
    w64 = hp.Linear(4, 3, rng=np.random.default_rng(5)).weight.data
    w32 = hp.Linear(4, 3, rng=np.random.default_rng(5), dtype="float32").weight.data
    assert w32.dtype == np.float32
    np.testing.assert_array_equal(w32, w64.astype(np.float32))


def test_optimizers_update_whatever_array_the_parameter_holds_now() -> None:
    # The model owns the arrays: an optimizer keeps Parameters, never copies of their data.
    layer = hp.Linear(2, 2, bias=False, rng=np.random.default_rng(0))
    for optimizer in (
        hp.SGD(layer.parameters(), lr=0.5, momentum=0.9),
        hp.Adam(layer.parameters()),
    ):
        replacement = np.ones((2, 2))
        layer.weight.data = replacement
        layer.weight.grad[...] = 1.0
        optimizer.step()
        assert layer.weight.data is replacement
        assert np.all(replacement < 1.0)


def test_sgd_momentum_by_hand() -> None:
    p = hp.Parameter(np.array([1.0]))
    sgd = hp.SGD([p], lr=0.5, momentum=0.5)
    p.grad[...] = 2.0
    sgd.step()  # v = 2;            w = 1 - 0.5*2 = 0
    sgd.step()  # v = 0.5*2 + 2 = 3; w = 0 - 0.5*3 = -1.5
    assert p.data[0] == -1.5


def test_train_step_returns_the_loss_before_the_update() -> None:
    model = hp.Linear(1, 1, bias=False, init=hp.init.zeros)
    x, y = np.array([[1.0]]), np.array([[2.0]])
    sgd = hp.SGD(model.parameters(), lr=0.25)
    assert hp.train_step(model, hp.SumSquaredError(), sgd, x, y) == 4.0  # (0 - 2)**2
    assert model.weight.data[0, 0] == 1.0  # 0 - 0.25 * 2 * (0 - 2) * 1
    assert hp.train_step(model, hp.SumSquaredError(), sgd, x, y) == 1.0


def test_softmax_cross_entropy_with_huge_scores_neither_overflows_nor_warns() -> None:
    # Shifted by the max: [0, -2000, -1000]; log(1 + e**-2000 + e**-1000) == 0 in float64,
    # so loss = 2000 and softmax = [1, 0, 0]; grad = softmax - one_hot(1) = [1, -1, 0].
    loss_fn = hp.SoftmaxCrossEntropy()
    assert loss_fn.forward(np.array([[1000.0, -1000.0, 0.0]]), np.array([1])) == 2000.0
    np.testing.assert_array_equal(loss_fn.backward(), [[1.0, -1.0, 0.0]])


def test_import_handprop_stays_lean() -> None:
    code = (
        "import sys, handprop, handprop.cli; "
        "heavy = ('torch', 'sklearn', 'matplotlib', 'tqdm', 'scipy', 'jax', 'safetensors'); "
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_warmup_path_imports_only_what_a_step_needs() -> None:
    # Start-up time counts against `handprop warmup` (issue 5): gradcheck, the data and
    # file commands load on first use, not on `import handprop`.
    late = ["handprop.gradcheck", "handprop.data", "handprop.checkpoint",
            "handprop.cli.training", "handprop.cli.saved",
            "handprop.cli.config", "handprop.cli.metadata", "handprop.sklearn"]  # fmt: skip
    code = f"import sys, handprop, handprop.cli; print([m for m in {late} if m in sys.modules])"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_lazy_names_resolve_and_unknown_names_raise() -> None:
    from handprop.gradcheck import check_gradients

    assert hp.check_gradients is check_gradients
    assert all(getattr(hp, name) is not None for name in hp.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        hp.nonexistent  # noqa: B018


def test_import_handprop_binds_the_gradcheck_submodule_on_first_use() -> None:
    # In a fresh interpreter: here `from handprop.gradcheck import ...` (above, and in other
    # tests) has already bound the submodule to the package, which hides a missing lazy name.
    code = (
        "import sys, handprop; assert 'handprop.gradcheck' not in sys.modules; "
        "print(handprop.gradcheck.check_gradients is handprop.check_gradients)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "True"


# ----- what a PyTorch user reaches for ---------------------------------------------------------


def test_calling_the_model_returns_arrays_the_caller_owns() -> None:
    model = hp.mlp(3, [5], 2, rng=0)
    a, b = np.ones((4, 3)), -np.ones((4, 3))
    results = [model(a), model(b)]
    assert not np.shares_memory(results[0], results[1])
    np.testing.assert_array_equal(results[0], model.forward(a))  # the same numbers, kept
    assert not np.array_equal(results[0], results[1])
    many = np.random.default_rng(0).standard_normal((9000, 3))  # more rows than one batch
    np.testing.assert_array_equal(model.predict(many, batch_size=4096), model.forward(many))


def test_save_and_load_in_one_call_each(tmp_path: Path) -> None:
    model = hp.mlp(3, [5, 4], 2, activation="tanh", rng=0)
    model.save(tmp_path / "model.safetensors")
    loaded = hp.load(tmp_path / "model.safetensors")
    x = np.random.default_rng(1).standard_normal((6, 3))
    np.testing.assert_array_equal(loaded(x), model(x))
    assert [type(layer) for layer in loaded] == [type(layer) for layer in model]


def test_state_dict_is_pytorchs_names_and_layout_both_ways(torch: ModuleType) -> None:
    model = hp.mlp(3, [5], 2, rng=0)
    state = model.state_dict()
    assert {k: v.shape for k, v in state.items()} == {
        "0.weight": (5, 3), "0.bias": (5,), "2.weight": (2, 5), "2.bias": (2,),
    }  # fmt: skip
    state["0.weight"][...] = 7.0  # a copy: the model is untouched
    assert not (model[0].weight.data == 7.0).any()  # type: ignore[attr-defined]
    twin = torch.nn.Sequential(
        torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2)
    ).double()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((4, 3))
    np.testing.assert_allclose(twin(torch.from_numpy(x)).detach().numpy(), model(x), rtol=1e-14)
    other = hp.mlp(3, [5], 2, rng=9)
    other.load_state_dict({k: v.detach().numpy() for k, v in twin.state_dict().items()})
    np.testing.assert_array_equal(other(x), model(x))
    with pytest.raises(ValueError, match=r"missing \['2.bias'\]"):
        other.load_state_dict({k: v for k, v in model.state_dict().items() if k != "2.bias"})
    wrong = {**model.state_dict(), "0.weight": np.zeros((3, 5))}
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(3, 5\), expected \(5, 3\)"):
        other.load_state_dict(wrong)


def test_to_converts_the_whole_model_and_training_goes_on() -> None:
    model = hp.mlp(3, [5], 2, rng=0).to(np.float32)
    assert {p.dtype for p in model.parameters()} == {np.dtype(np.float32)}
    x = np.ones((4, 3), dtype=np.float32)
    y = np.zeros((4, 2), dtype=np.float32)
    optimizer = hp.Adam(model.parameters())
    assert hp.train_step(model, hp.MeanSquaredError(), optimizer, x, y) > 0
    assert model(x).dtype == np.float32
    with pytest.raises(TypeError, match="dtype must be float64 or float32"):
        model.to(np.int64)


def test_rng_takes_an_int_seed_as_numpy_does() -> None:
    seeded = hp.Linear(3, 4, rng=7)
    drawn = hp.Linear(3, 4, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(seeded.weight.data, drawn.weight.data)
    np.testing.assert_array_equal(hp.mlp(3, [4], 1, rng=7)[0].weight.data, seeded.weight.data)  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="rng must be a numpy Generator"):
        hp.Linear(3, 4, rng="seven")  # type: ignore[arg-type]
