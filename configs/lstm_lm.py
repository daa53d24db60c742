r"""LSTM language model, the recurrent baseline of configs/causal_lm.py: the same data, packing,
metrics and training tokens, and (at each size) about the same parameter count.

  python -m experiments.main --config=configs/lstm_lm.py --workdir=runs/lstm_lm

Sizes: configs/lstm_lm.py:size=tiny|mini (layers x width chosen to match the Transformer's
parameters at that size); `runlocal=1` gives a seconds-long smoke run.
"""

from __future__ import annotations

import ml_collections

from configs import base, causal_lm

# size -> (LSTM layers, hidden size): parameter counts within a few percent of the causal LM of
# the same size with the default 8192-token vocabulary and tied embeddings.
SIZES = {'tiny': (2, 144), 'mini': (2, 324)}

HELP = {
    'model.arch': 'lstm (or transformer: then the causal_lm config applies)',
    'model.vocab_size': 'tokenizer and embedding size',
    'model.num_layers': 'stacked LSTM layers',
    'model.hidden_size': 'embedding and LSTM width',
    'model.dropout_rate': 'dropout between layers',
    'model.tied_embedding': 'output layer shares the token embedding table',
    'model.dtype': 'compute dtype of activations: float32 or bfloat16',
    'model.param_dtype': 'dtype the parameters are stored and updated in',
    **base.TEXT_DATA_HELP,
}


def get_config(arg: str | None = None):
  """The LSTM-LM config; `arg` e.g. 'size=tiny' or 'runlocal=1'."""
  args = base.parse_arg(arg, {'size': 'tiny', 'runlocal': '0'})
  if args['size'] not in SIZES:
    raise ValueError(f'unknown size {args["size"]!r}; known: {", ".join(SIZES)}')
  config = causal_lm.get_config(f'size={args["size"]},runlocal=0')
  layers, hidden = SIZES[args['size']]
  config.model = ml_collections.ConfigDict(dict(
      arch='lstm', vocab_size=8192, num_layers=layers, hidden_size=hidden, dropout_rate=0.0,
      tied_embedding=True, dtype='float32', param_dtype='float32'))
  if args['runlocal'] == '1':
    base.make_smoke_run(config)
  return config
