r"""BERT-style masked-LM pre-training on the Python documentation (offline default corpus).

Run (the main job; about 14 minutes on a 2-core CPU, data preparation included):

  python -m experiments.main --config=configs/mlm.py --workdir=runs/mlm

Sizes: configs/mlm.py:size=tiny|mini|small|medium|base|large (BERT L2/H128 ... L24/H1024).
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
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The masked-LM config; `arg` selects the model size, e.g. 'size=mini', and 'runlocal=1'
  a seconds-long smoke run."""
  args = base.parse_arg(arg, {'size': 'tiny', 'runlocal': '0'})
  config = base.base_config()
  config.task = 'mlm'
  config.total_steps = 2500
  config.batch_size = 64
  config.log_every = 50
  config.eval_every = 500
  config.checkpoint_every = 500

  config.optimizer.learning_rate = 4e-3
  config.optimizer.warmup_steps = 250
  config.optimizer.b2 = 0.98
  config.optimizer.weight_decay = 0.01

  config.model = ml_collections.ConfigDict(dict(
      size=args['size'], vocab_size=8192, max_len=512,
      # 0 = take the preset's value.
      num_layers=0, hidden_size=0, num_heads=0, mlp_dim=0,
      dropout_rate=0.0, pre_ln=True, remat=False,
      dtype='float32', param_dtype='float32', attention_impl=''))

  config.data = base.text_data(mask_rate=0.15, mask_token_prob=0.8, random_token_prob=0.1)
  if args['runlocal'] == '1':
    base.make_smoke_run(config)
  return config


def sweep(arg: str | None = None) -> list[dict]:
  """Mask rate x seed (python -m experiments.sweep --config=configs/mlm.py): does predicting
  more tokens per row beat BERT's 15% here, as Wettig et al. (2023) found at scale?"""
  del arg
  return sweeps.product(sweeps.axis('data.mask_rate', [0.15, 0.3, 0.4]),
                        sweeps.axis('seed', [0, 1, 2]))
