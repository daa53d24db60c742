r"""T5-style encoder-decoder pre-trained with span corruption on the Python documentation.

  python -m experiments.main --config=configs/t5_span.py --workdir=runs/t5_span
  python -m experiments.predict --workdir=runs/t5_span --prompt="the [MASK] function returns"

Noise spans (data.noise_density of the tokens, mean length data.mean_span_length) become
sentinel ids at the top of the vocabulary (model.vocab_size = tokenizer size + num_sentinels).
Sizes: configs/t5_span.py:size=tiny|mini|small|medium|base|large (layers on each side);
`runlocal=1` gives a seconds-long smoke run.
"""

from __future__ import annotations

from configs import base

HELP = {
    **base.TRANSFORMER_HELP,
    **base.TEXT_DATA_HELP,
    'model.vocab_size': 'tokenizer size + data.num_sentinels (sentinels take the top ids)',
    'model.num_decoder_layers': 'decoder layers (0 = model.num_layers)',
    'data.noise_density': 'share of each document replaced by noise spans',
    'data.mean_span_length': 'mean length of a noise span, in tokens',
    'data.num_sentinels': 'sentinel ids reserved at the top of the vocabulary',
    'data.target_len': 'decoder length (0 = enough for a full row at this noise density)',
}


def get_config(arg: str | None = None):
  """The span-corruption config; `arg` e.g. 'size=mini' or 'size=tiny,runlocal=1'."""
  args = base.parse_arg(arg, {'size': 'tiny', 'runlocal': '0'})
  config = base.base_config()
  config.task = 'span_corruption'
  config.total_steps = 1000
  config.batch_size = 32
  config.log_every = 50
  config.eval_every = 500
  config.eval_steps = 50
  config.checkpoint_every = 500

  config.optimizer.learning_rate = 2e-3
  config.optimizer.warmup_steps = 200
  config.optimizer.b2 = 0.98
  config.optimizer.weight_decay = 0.01

  num_sentinels = 32
  config.model = base.transformer_model(args['size'], vocab_size=8192 + num_sentinels,
                                        num_decoder_layers=0)
  config.data = base.text_data(noise_density=0.15, mean_span_length=3.0,
                               num_sentinels=num_sentinels, target_len=0)
  if args['runlocal'] == '1':
    base.make_smoke_run(config)
    config.model.vocab_size = 512 + num_sentinels
  return config
