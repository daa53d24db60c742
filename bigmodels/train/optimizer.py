"""AdamW with warm-up and decay, global-norm clipping and no decay on norms and biases."""

from __future__ import annotations

from typing import Any

import jax
import optax

from bigmodels.errors import UserError


def learning_rate_schedule(opt_config: Any, total_steps: int) -> optax.Schedule:
  """Linear warm-up to the peak rate, then linear or cosine decay to `end_lr_fraction` of it."""
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


def decay_mask(params: Any) -> Any:
  """True for weight matrices and embeddings; False for biases and norm scales (ndim < 2)."""
  return jax.tree.map(lambda p: p.ndim >= 2, params)


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
