r"""GPT-style causal language model on the Python documentation (offline default corpus).

Run (about 15 minutes on a 2-core CPU), then sample from it:

  python -m experiments.main --config=configs/causal_lm.py --workdir=runs/causal_lm
  python -m experiments.predict --workdir=runs/causal_lm --prompt="The list type" --seed=0

Sizes: configs/causal_lm.py:size=tiny|mini|small|medium|base|large (L2/H128 ... L24/H1024);
`runlocal=1` gives a seconds-long smoke run. Untied output layer:
--config.model.tied_embedding=False.
"""

from __future__ import annotations

from configs import base

HELP = {
    **base.TRANSFORMER_HELP,
    **base.TEXT_DATA_HELP,
    'model.arch': 'transformer (GPT-style decoder) or lstm',
}


def get_config(arg: str | None = None):
  """The causal-LM config; `arg` e.g. 'size=mini' or 'size=tiny,runlocal=1'."""
  args = base.parse_arg(arg, {'size': 'tiny', 'runlocal': '0'})
  config = base.base_config()
  config.task = 'causal_lm'
  config.total_steps = 2000
  config.batch_size = 32
  config.log_every = 50
  config.eval_every = 500
  config.eval_steps = 50
  config.checkpoint_every = 500

  config.optimizer.learning_rate = 2e-3
  config.optimizer.warmup_steps = 200
  config.optimizer.b2 = 0.98
  config.optimizer.weight_decay = 0.01

  config.model = base.transformer_model(args['size'], arch='transformer')
  config.data = base.text_data()
  if args['runlocal'] == '1':
    base.make_smoke_run(config)
  return config
