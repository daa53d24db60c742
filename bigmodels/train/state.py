"""Training state, built abstractly first and then initialised straight into its shardings."""

from __future__ import annotations

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
                 mesh_config: Any, seed: int, batch_size: int,
                 initialize: bool = True) -> tuple[TrainState | None, Any, Any]:
  """Returns (state or None, abstract state, state shardings).

  The state's shapes come from `jax.eval_shape` of init; the logical axis names on the
  parameters (and the optimizer moments that mirror them) map through the mesh rules to
  NamedShardings; init is then jitted with those output shardings, so no device ever holds
  more than its shard. With initialize=False only the abstract state and shardings are built
  (for restoring a checkpoint).
  """
  example = task.synthetic_batch(batch_size, np.random.default_rng(0))
  init = _boxed_init_fn(task, model, tx, example)
  rng = jax.random.key(seed)
  with nn.logical_axis_rules(mesh_lib.logical_rules(mesh_config)):
    boxed = jax.eval_shape(init, rng)
  shardings = mesh_lib.tree_shardings(mesh, mesh_config, boxed)
  abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                          nn.unbox(boxed), shardings)
  if not initialize:
    return None, abstract, shardings
  with mesh, nn.logical_axis_rules(mesh_lib.logical_rules(mesh_config)):
    state = jax.jit(lambda r: nn.unbox(init(r)), out_shardings=shardings)(rng)
  return state, abstract, shardings
