r"""BERT-style masked-LM pre-training on the Python documentation (offline default corpus).

Run (the main job; about 17 minutes on a 2-core CPU, measured 2026-11-24):

  python -m experiments.main --config=configs/mlm.py --workdir=runs/mlm

Sizes: configs/mlm.py:size=tiny|mini|small|medium|base|large (BERT L2/H128 ... L24/H1024).
Sweeps (python -m experiments.sweep): configs/mlm.py (mask rate x seed) and
configs/mlm.py:sweep=recipe (one setting at a time at the default's compute budget).
Held-out rows are scored with 15% of their tokens replaced by [MASK] whatever the training
recipe (data.eval_mask_rate), so recipes compare on the same task.
Other text: --config.data.corpus_dir=/path/to/txt-md-rst-folder, or (TensorFlow + internet)
--config.data.tfds_name=lm1b.
"""

from __future__ import annotations

import ml_collections

from bigmodels.sweeps import spec as sweeps
from configs import base


HELP = {
    **{k: v for k, v in base.TRANSFORMER_HELP.items() if k != 'model.tied_embedding'},
    **base.TEXT_DATA_HELP,
    'data.mask_rate': 'share of (non-special) tokens chosen for prediction',
    'data.mask_token_prob': 'of the chosen tokens, the share replaced by [MASK]',
    'data.random_token_prob': 'of the chosen tokens, the share replaced by a random token',
    'data.eval_mask_rate': 'held-out rows: share of tokens replaced by [MASK], any recipe',
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The masked-LM config; `arg` selects the model size, e.g. 'size=mini', and 'runlocal=1'
  a seconds-long smoke run. 'sweep=recipe' gives the recipe the recipe sweep varies (the
  default until 2026-11-24: 128-token rows, 2500 steps)."""
  args = base.parse_arg(arg, {'size': 'tiny', 'runlocal': '0', 'sweep': 'mask_rate'})
  config = base.base_config()
  config.task = 'mlm'
  # 64-token rows: at the same compute as 128-token rows for 2500 steps, they leave the MLM
  # plateau (the recipe sweep: 22.7% against 5.7% held-out accuracy). 4800 steps of them take
  # the wall time of those 2500 (measured step times 0.47-0.55x).
  config.total_steps = 4800
  config.batch_size = 64
  config.log_every = 50
  config.eval_every = 500
  config.checkpoint_every = 500

  config.optimizer.learning_rate = 4e-3
  config.optimizer.warmup_steps = 480
  config.optimizer.b2 = 0.98
  config.optimizer.weight_decay = 0.01

  config.model = ml_collections.ConfigDict(dict(
      size=args['size'], vocab_size=8192, max_len=512,
      # 0 = take the preset's value.
      num_layers=0, hidden_size=0, num_heads=0, mlp_dim=0,
      dropout_rate=0.0, pre_ln=True, remat='none', scan_layers=False,
      dtype='float32', param_dtype='float32', attention_impl='', layer_norm_eps=1e-6,
      gelu_approximate=True, type_vocab_size=0))

  config.data = base.text_data(seq_len=64, mask_rate=0.15, mask_token_prob=0.8,
                               random_token_prob=0.1, eval_mask_rate=0.15)
  if args['sweep'] == 'recipe':
    config.total_steps, config.optimizer.warmup_steps, config.data.seq_len = 2500, 250, 128
  if args['runlocal'] == '1':
    base.make_smoke_run(config)
  return config


def sweep(arg: str | None = None) -> list[dict]:
  """Runs of `python -m experiments.sweep --config=configs/mlm.py[:sweep=NAME]`.

  mask_rate (default): mask rate x seed -- does predicting more tokens per row beat BERT's 15%
  here, as Wettig et al. (2023) found at scale?
  recipe: the recipe of get_config('sweep=recipe') (the default until 2026-11-24: 128-token
  rows, 2500 steps) changed one setting at a time (mask rate, learning rate, warm-up,
  sequence length, width) at its compute budget: runs whose steps cost more or less
  than the default's take proportionally fewer or more steps (analytic FLOPs per step; the
  table reports the measured wall times), with warm-up kept at 10% of the steps.
  """
  args = base.parse_arg(arg, {'size': 'tiny', 'runlocal': '0', 'sweep': 'mask_rate'})
  if args['sweep'] == 'mask_rate':
    return sweeps.product(sweeps.axis('data.mask_rate', [0.15, 0.3, 0.4]),
                          sweeps.axis('seed', [0, 1, 2]))
  if args['sweep'] == 'recipe':
    def steps(n: int) -> dict:
      return {'total_steps': n, 'optimizer.warmup_steps': n // 10}
    # Analytic train FLOPs per row relative to the default (BERT-tiny, seq 128, 15%): 1.43x at
    # a 40% mask rate (52 instead of 20 vocabulary projections), 0.47x at seq 64, 3.27x at
    # hidden size 256 (L2, 4 heads, MLP 1024), 0.34x at hidden size 64 (2 heads, MLP 256).
    return [  # The most promising first; the default last (a resumed sweep keeps the order).
        {'data.mask_rate': 0.4, **steps(1750)},
        {'optimizer.learning_rate': 1e-3},
        {'data.seq_len': 64, **steps(5280)},
        {'optimizer.warmup_steps': 25},
        {'model.hidden_size': 256, 'model.num_heads': 4, 'model.mlp_dim': 1024, **steps(765)},
        {'optimizer.learning_rate': 2e-3},
        {'model.hidden_size': 64, 'model.num_heads': 2, 'model.mlp_dim': 256, **steps(7300)},
        {},
    ]
  raise ValueError(f"unknown sweep {args['sweep']!r}: use mask_rate or recipe")
