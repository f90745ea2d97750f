"""JAX: ``jax.jit`` of a value_and_grad step with the SGD update inside. Imported only here."""

from typing import Any

import numpy as np

from benchmarks.contender import Contender, Skipped
from benchmarks.problem import Array, Problem


def _import_jax() -> Any:
    try:
        import jax
    except ImportError as error:
        raise Skipped("not installed") from error
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_enable_x64", True)  # float64 stays float64; float32 stays float32
    return jax


def make_jax_jit(problem: Problem) -> Contender:
    jax = _import_jax()
    jnp = jax.numpy
    learning_rate = problem.lr  # a Python float: weakly typed, takes the weights' dtype

    def loss_fn(ws: list[Any], x: Any, y: Any) -> Any:
        h_relu = x
        for w in ws[:-1]:
            h_relu = jnp.maximum(h_relu @ w, 0)
        y_pred = h_relu @ ws[-1]
        return jnp.sum(jnp.square(y_pred - y))

    def sgd_step(ws: list[Any], x: Any, y: Any) -> tuple[list[Any], Any]:
        loss, grads = jax.value_and_grad(loss_fn)(ws, x, y)
        return [w - learning_rate * g for w, g in zip(ws, grads, strict=True)], loss

    jitted = jax.jit(sgd_step, donate_argnums=0)  # the weights are updated in place
    x, y = jnp.asarray(problem.x), jnp.asarray(problem.y)
    state = {"ws": [jnp.array(w) for w in problem.weights]}

    def step() -> float:
        state["ws"], loss = jitted(state["ws"], x, y)
        jax.block_until_ready((state["ws"], loss))
        return float(loss)

    def weights() -> list[Array]:
        return [np.array(w) for w in state["ws"]]

    return Contender(step, weights, False, "XLA's own CPU kernels; compile time in the first step")
