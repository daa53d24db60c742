"""Keys every experiment config shares (the public contract in the README), with their meanings."""

from __future__ import annotations

import ml_collections


# One line per shared key; each config file adds its own in HELP. `--print_config` shows them.
BASE_HELP = {
    'task': 'task family: mlm or classification (set by the config file)',
    'seed': 'random seed of initialisation, data order, masking, augmentation and dropout',
    'total_steps': 'optimizer steps of the whole run (raising it on resume extends the run)',
    'batch_size': 'global batch size, over all devices and processes',
    'log_every': 'steps between progress lines and train rows in metrics.jsonl',
    'eval_every': 'steps between evaluations (there is always one at the end)',
    'eval_steps': 'eval batches per evaluation; 0 = the whole eval split',
    'checkpoint_every': 'steps between checkpoints (there is always one at the end)',
    'keep_checkpoints': 'how many of the newest checkpoints to keep',
    'skip_nonfinite_steps': 'non-finite loss/gradient/update: 0 stops the run; K > 0 skips up '
                            'to K such steps, keeping the previous state',
    'allow_fresh_start': 'when no checkpoint in the workdir is readable: move them aside and '
                         'start over instead of stopping',
    'optimizer.name': 'adamw (decoupled weight decay on kernels and embeddings) or adam',
    'optimizer.learning_rate': 'peak learning rate, reached after the warm-up',
    'optimizer.schedule': 'decay after the warm-up: linear, cosine or constant',
    'optimizer.warmup_steps': 'steps of linear warm-up from learning_rate / warmup_steps',
    'optimizer.end_lr_fraction': 'final learning rate as a fraction of the peak',
    'optimizer.b1': 'Adam first-moment decay',
    'optimizer.b2': 'Adam second-moment decay',
    'optimizer.eps': 'Adam epsilon',
    'optimizer.weight_decay': 'AdamW decoupled weight decay (kernels and embeddings only)',
    'optimizer.grad_clip_norm': 'clip gradients to this global norm; 0 = no clipping',
    'mesh.axes': 'names of the device mesh axes',
    'mesh.shape': 'devices along each mesh axis; one -1 takes the remaining devices',
    'mesh.rules': 'logical axis name -> mesh axis (or axes, or None = replicated)',
}


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
