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
                    skip_nonfinite: bool = False, grad_accum_steps: int = 1,
                    batch_sharding: jax.sharding.Sharding | None = None
                    ) -> Callable[[TrainState, dict], tuple[TrainState, Metrics]]:
  """`(state, batch) -> (state, metrics)`: one optimizer step; dropout keyed by (seed, step).

  Metrics hold the task's summed metrics under 'sums/...' and health statistics (gradient,
  parameter and update norms, the learning rate this update applied) under 'stats/...'. The
  loop stops (or skips) a step when any of GUARDED_STATS is not finite: that covers the new
  state, not only the loss and gradients, since a finite gradient can still give an infinite
  update (an overflowing learning rate, low-precision parameters). With skip_nonfinite, such a
  step keeps the previous parameters, optimizer and model state (the step counter still
  advances, so the data moves on; the optimizer's own count, and so the schedule, does not).

  With grad_accum_steps = k > 1 the batch is split into k micro-batches (rows i, i + k, ...,
  so each stays spread over the batch shards), run one after another; their gradients and
  losses are summed weighted by each micro-batch's loss weight (the task's `sums['weight']`,
  the denominator of its loss), which gives the gradient of the whole batch's loss.
  """
  base_key = jax.random.key(seed)

  def gradients(params, model_state, batch, rng):
    def loss_fn(params):
      with nn.logical_axis_rules(rules):
        loss, sums, new_model_state = task.loss_and_metrics(
            model, {'params': params, **model_state}, batch, rng, train=True)
      return loss, (sums, new_model_state)
    (loss, (sums, new_model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    return loss, sums, {**model_state, **new_model_state}, grads

  def accumulated_gradients(params, model_state, batch, rng):
    k = grad_accum_steps
    micro = jax.tree.map(lambda x: x.reshape(x.shape[0] // k, k, *x.shape[1:]).swapaxes(0, 1),
                         batch)

    def one(carry, inputs):
      index, micro_batch = inputs
      if batch_sharding is not None:
        micro_batch = jax.lax.with_sharding_constraint(micro_batch, batch_sharding)
      weighted_loss, sums_total, model_state, grads_total = carry
      loss, sums, model_state, grads = gradients(params, model_state, micro_batch,
                                                 jax.random.fold_in(rng, index))
      weight = sums['weight']
      grads_total = jax.tree.map(lambda t, g: t + g * weight, grads_total, grads)
      sums_total = jax.tree.map(jnp.add, sums_total, sums)
      return (weighted_loss + loss * weight, sums_total, model_state, grads_total), None

    sums_shape = jax.eval_shape(lambda: gradients(params, model_state, jax.tree.map(
        lambda x: x[0], micro), rng)[1])
    zeros = (jnp.zeros((), jnp.float32), jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                                                      sums_shape),
             model_state, jax.tree.map(jnp.zeros_like, params))
    (weighted_loss, sums, model_state, grads), _ = jax.lax.scan(
        one, zeros, (jnp.arange(k), micro))
    total = jnp.maximum(sums['weight'], 1.0)
    return weighted_loss / total, sums, model_state, jax.tree.map(lambda g: g / total, grads)

  def train_step(state: TrainState, batch: dict) -> tuple[TrainState, Metrics]:
    rng = jax.random.fold_in(base_key, state.step)
    compute = gradients if grad_accum_steps == 1 else accumulated_gradients
    loss, sums, new_model_state, grads = compute(state.params, state.model_state, batch, rng)
    with jax.named_scope('optimizer'):  # Names the ops in profiles (bigmodels.train.profiling).
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
      params = optax.apply_updates(state.params, updates)
    metrics = {f'sums/{k}': v for k, v in sums.items()}
    with jax.named_scope('stats'):
      metrics.update({
          'stats/grad_norm': optax.global_norm(grads),
          'stats/param_norm': optax.global_norm(params),
          'stats/update_norm': optax.global_norm(updates),
          'stats/learning_rate': applied_learning_rate(schedule, state.opt_state),
          'stats/train_loss': loss,
      })
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              model_state=new_model_state)
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
