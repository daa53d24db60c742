"""Training state, built abstractly first and then initialised straight into its shardings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from bigmodels.tasks.base import Batch, Task
from bigmodels.train import mesh as mesh_lib


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training. RNG is derived from (seed, step), not stored."""

  step: jax.Array
  params: Any
  opt_state: optax.OptState
  model_state: Any  # Mutable collections other than params, e.g. batch_stats; {} if none.


def _boxed_init_fn(task: Task, model: nn.Module, tx: optax.GradientTransformation,
                   batch: Batch):
  def init(rng: jax.Array) -> TrainState:
    variables = dict(task.init_variables(model, rng, batch))
    params = variables.pop('params')
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      model_state=variables)
  return init


def create_state(task: Task, model: nn.Module, tx: optax.GradientTransformation, mesh: Mesh,
                 mesh_config: Any, seed: int, batch_size: int
                 ) -> tuple[Any, Any, Callable[[], TrainState]]:
  """Returns (abstract state, state shardings, init function).

  The state's shapes come from `jax.eval_shape` of init; the logical axis names on the
  parameters (and the optimizer moments that mirror them) map through the mesh rules to
  NamedShardings; the init function is jitted with those output shardings, so no device ever
  holds more than its shard. The abstract state (shapes, dtypes, shardings) is what a
  checkpoint is restored into.
  """
  example = task.synthetic_batch(batch_size, np.random.default_rng(0))
  init = _boxed_init_fn(task, model, tx, example)
  rng = jax.random.key(seed)
  rules = mesh_lib.logical_rules(mesh_config)
  with nn.logical_axis_rules(rules):
    boxed = jax.eval_shape(init, rng)
  shardings = mesh_lib.tree_shardings(mesh, mesh_config, boxed)
  abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                          nn.unbox(boxed), shardings)

  def initialize() -> TrainState:
    with mesh, nn.logical_axis_rules(rules):
      return jax.jit(lambda r: nn.unbox(init(r)), out_shardings=shardings)(rng)

  return abstract, shardings, initialize
