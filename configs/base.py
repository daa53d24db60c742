"""Keys every experiment config shares (the public contract of DESIGN.md)."""

from __future__ import annotations

import ml_collections


def parse_arg(arg: str | None, defaults: dict[str, str]) -> dict[str, str]:
  """Parses a config argument such as 'size=mini,other=x' (or just 'mini' for the first key)."""
  values = dict(defaults)
  for part in filter(None, (arg or '').split(',')):
    key, sep, value = part.partition('=')
    if not sep:
      key, value = next(iter(defaults)), key
    if key not in defaults:
      raise ValueError(f'unknown config argument {key!r}; known: {", ".join(defaults)}')
    values[key] = value
  return values


def steps_for_epochs(epochs: float, examples: int, batch_size: int) -> int:
  """Training steps that cover `epochs` passes over `examples` at a global batch size."""
  return max(1, round(epochs * examples / batch_size))


def base_config() -> ml_collections.ConfigDict:
  """Top-level keys: seed, durations, batch size, intervals, optimizer and data-parallel mesh."""
  config = ml_collections.ConfigDict()
  config.task = ''
  config.seed = 0
  config.total_steps = 1000
  config.batch_size = 64  # Global, over all devices and processes.
  config.log_every = 50
  config.eval_every = 500
  config.eval_steps = 0  # Eval batches per evaluation; 0 = the whole eval split.
  config.checkpoint_every = 500
  config.keep_checkpoints = 3
  # Non-finite loss/gradient: 0 stops the run at once (keeping the last good checkpoint);
  # K > 0 skips up to K such steps, keeping the previous state.
  config.skip_nonfinite_steps = 0
  # Start over (moving unreadable checkpoints aside) when no checkpoint in the workdir reads.
  config.allow_fresh_start = False

  config.optimizer = ml_collections.ConfigDict(dict(
      name='adamw', learning_rate=1e-3, schedule='linear', warmup_steps=100,
      end_lr_fraction=0.0, b1=0.9, b2=0.999, eps=1e-6, weight_decay=0.01,
      grad_clip_norm=1.0))

  # Data parallel by default: the batch is split over every device. Parameters carry logical
  # axis names; these rules map them onto mesh axes (FSDP: set fsdp > 1; tensor parallel:
  # tensor > 1), with no model change.
  config.mesh = ml_collections.ConfigDict(dict(
      axes=('data', 'fsdp', 'tensor'),
      shape=(-1, 1, 1),
      rules=(('batch', ('data', 'fsdp')), ('vocab', 'tensor'), ('embed', 'fsdp'),
             ('mlp', 'tensor'), ('heads', 'tensor'), ('kv', None), ('length', None))))
  return config
