"""AdamW with warm-up and decay, global-norm clipping, and weight decay on weights only."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from bigmodels.errors import UserError

# Weight decay goes to parameters whose role is a weight: dense/convolution kernels and
# embedding tables (flax names them 'kernel' and 'embedding'; learned position tables are
# named '*_embed'). Biases, norm scales and offsets are never decayed, whatever their rank
# (attention's query/key/value biases are [heads, head_dim] matrices).
DECAYED_NAMES = ('kernel', 'embedding')
DECAYED_SUFFIXES = ('_embed',)


def learning_rate_schedule(opt_config: Any, total_steps: int) -> optax.Schedule:
  """Linear warm-up to the peak rate, then linear or cosine decay to `end_lr_fraction` of it.

  Warm-up takes `warmup_steps` updates from peak / warmup_steps up to the peak (reached at
  update warmup_steps - 1); the decay spans the remaining total_steps - warmup_steps updates.
  """
  peak = opt_config.learning_rate
  warmup = min(opt_config.warmup_steps, total_steps)
  decay_steps = max(total_steps - warmup, 1)
  end = peak * opt_config.end_lr_fraction
  if opt_config.schedule == 'linear':
    decay = optax.linear_schedule(peak, end, decay_steps)
  elif opt_config.schedule == 'cosine':
    decay = optax.cosine_decay_schedule(peak, decay_steps, alpha=opt_config.end_lr_fraction)
  elif opt_config.schedule == 'constant':
    decay = optax.constant_schedule(peak)
  else:
    raise UserError(f'unknown optimizer.schedule={opt_config.schedule!r}: use linear, cosine '
                    'or constant')
  warm = optax.linear_schedule(peak / max(warmup, 1), peak, max(warmup - 1, 1))
  return optax.join_schedules([warm, decay], [warmup])


def _is_decayed(path: tuple[Any, ...]) -> bool:
  name = str(getattr(path[-1], 'key', path[-1]))
  return name in DECAYED_NAMES or name.endswith(DECAYED_SUFFIXES)


def decay_mask(params: Any) -> Any:
  """True for kernels and embedding tables, False for biases and norm parameters."""
  return jax.tree_util.tree_map_with_path(lambda path, _: _is_decayed(path), params)


def applied_learning_rate(schedule: optax.Schedule, opt_state: Any) -> jax.Array:
  """The learning rate the next update applies: the schedule at the optimizer's own update
  count, which stops advancing while non-finite steps are skipped (unlike the state's step)."""
  counts = [s.count for s in jax.tree.leaves(
      opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByScheduleState))
            if isinstance(s, optax.ScaleByScheduleState)]
  if not counts:
    raise ValueError('the optimizer state holds no learning-rate schedule count')
  return jnp.asarray(schedule(counts[0]), jnp.float32)


def make_optimizer(opt_config: Any,
                   total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """The optimizer named by optimizer.name ('adamw' or 'adam') and its schedule."""
  schedule = learning_rate_schedule(opt_config, total_steps)
  if opt_config.name == 'adamw':
    inner = optax.adamw(schedule, b1=opt_config.b1, b2=opt_config.b2, eps=opt_config.eps,
                        weight_decay=opt_config.weight_decay, mask=decay_mask)
  elif opt_config.name == 'adam':
    inner = optax.adam(schedule, b1=opt_config.b1, b2=opt_config.b2, eps=opt_config.eps)
  else:
    raise UserError(f'unknown optimizer.name={opt_config.name!r}: use adamw or adam')
  parts = []
  if opt_config.grad_clip_norm > 0:
    parts.append(optax.clip_by_global_norm(opt_config.grad_clip_norm))
  parts.append(inner)
  return optax.chain(*parts), schedule
