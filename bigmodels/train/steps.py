"""The pure, jitted train and eval steps shared by every task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from bigmodels.tasks.base import Task
from bigmodels.train.optimizer import applied_learning_rate
from bigmodels.train.state import TrainState

Metrics = dict[str, jax.Array]

# Step statistics that must be finite for a step to be accepted, in the order a stop message
# names the first offender: the loss, the gradient, the update, the new parameters.
GUARDED_STATS = ('stats/train_loss', 'stats/grad_norm', 'stats/update_norm',
                 'stats/param_norm')


def make_train_step(task: Task, model: nn.Module, tx: optax.GradientTransformation,
                    schedule: optax.Schedule, seed: int, rules: Any,
                    skip_nonfinite: bool = False
                    ) -> Callable[[TrainState, dict], tuple[TrainState, Metrics]]:
  """`(state, batch) -> (state, metrics)`: one optimizer step; dropout keyed by (seed, step).

  Metrics hold the task's summed metrics under 'sums/...' and health statistics (gradient,
  parameter and update norms, the learning rate this update applied) under 'stats/...'. The
  loop stops (or skips) a step when any of GUARDED_STATS is not finite: that covers the new
  state, not only the loss and gradients, since a finite gradient can still give an infinite
  update (an overflowing learning rate, low-precision parameters). With skip_nonfinite, such a
  step keeps the previous parameters, optimizer and model state (the step counter still
  advances, so the data moves on; the optimizer's own count, and so the schedule, does not).
  """
  base_key = jax.random.key(seed)

  def train_step(state: TrainState, batch: dict) -> tuple[TrainState, Metrics]:
    rng = jax.random.fold_in(base_key, state.step)

    def loss_fn(params):
      with nn.logical_axis_rules(rules):
        loss, sums, new_model_state = task.loss_and_metrics(
            model, {'params': params, **state.model_state}, batch, rng, train=True)
      return loss, (sums, new_model_state)

    (loss, (sums, new_model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {f'sums/{k}': v for k, v in sums.items()}
    metrics.update({
        'stats/grad_norm': optax.global_norm(grads),
        'stats/param_norm': optax.global_norm(params),
        'stats/update_norm': optax.global_norm(updates),
        'stats/learning_rate': applied_learning_rate(schedule, state.opt_state),
        'stats/train_loss': loss,
    })
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              model_state={**state.model_state, **new_model_state})
    if skip_nonfinite:
      finite = jnp.all(jnp.stack([jnp.isfinite(metrics[k]) for k in GUARDED_STATS]))
      kept = state.replace(step=state.step + 1)
      new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, kept)
    return new_state, metrics

  return train_step


def make_eval_step(task: Task, model: nn.Module, rules: Any) -> Callable[[TrainState, dict],
                                                                         Metrics]:
  """`(state, batch) -> metric sums` in inference mode (no dropout, frozen statistics)."""

  def eval_step(state: TrainState, batch: dict) -> Metrics:
    with nn.logical_axis_rules(rules):
      _, sums, _ = task.loss_and_metrics(model, {'params': state.params, **state.model_state},
                                         batch, jax.random.key(0), train=False)
    return sums

  return eval_step
