"""The contenders by the names ``--only`` takes, in the order they run.

The factories of optional peers import their library only when called. ``DEFAULT`` is
what runs without ``--only``: every contender but the opt-in ones (``OPT_IN``).
"""

from functools import partial

from benchmarks.contender import Contender, Factory
from benchmarks.gemm_floor import make_gemm_floor
from benchmarks.handprop_peer import make_handprop
from benchmarks.problem import Problem
from benchmarks.tutorial_loop import make_tutorial


def _jax(problem: Problem) -> Contender:
    from benchmarks.jax_peer import make_jax_jit

    return make_jax_jit(problem)


def _sklearn(problem: Problem) -> Contender:
    from benchmarks.sklearn_peer import make_sklearn_mlp

    return make_sklearn_mlp(problem)


def _torch(name: str) -> Factory:
    def factory(problem: Problem) -> Contender:
        from benchmarks import torch_peers

        make: Factory = getattr(torch_peers, name)
        return make(problem)

    return factory


CONTENDERS: dict[str, tuple[str, Factory]] = {
    "gemm": ("GEMMs alone (floor)", make_gemm_floor),
    "tutorial": ("tutorial loop (numpy)", make_tutorial),
    "tutorial-function": (
        "tutorial loop in a function",
        partial(make_tutorial, in_a_function=True),
    ),
    "handprop": ("handprop.train_step", make_handprop),
    "handprop-exact": ("handprop, exact=True", partial(make_handprop, exact=True)),
    "handprop-nofold": ("handprop, fold=False", partial(make_handprop, fold=False)),
    "torch": ("torch eager autograd", _torch("make_torch_autograd")),
    "torch-manual": ("torch eager manual", _torch("make_torch_manual")),
    "torch-compile": ("torch.compile autograd", _torch("make_torch_compile")),
    "jax": ("jax.jit value_and_grad", _jax),
    "sklearn": ("sklearn MLPRegressor", _sklearn),
}

OPT_IN = ("tutorial-function", "handprop-exact", "handprop-nofold")
DEFAULT = [key for key in CONTENDERS if key not in OPT_IN]
