r"""Text classification: a BERT encoder reads a WordNet gloss and names its lexicographer
category (45 classes: noun.animal, verb.motion, adj.all ...), offline from Debian's
wordnet-base. Fine-tune the default MLM run, or train the same model from scratch:

  python -m experiments.main --config=configs/classify_text.py --workdir=runs/classify_ft \
      --config.init_from=runs/mlm
  python -m experiments.main --config=configs/classify_text.py --workdir=runs/classify_scratch

init_from loads the encoder (and embeddings) and initialises the `pooler` and `classifier`
heads fresh (init_fresh); the MLM head of the checkpoint is ignored. Reports accuracy,
macro-F1, per-class metrics and confusion.png. Sizes as configs/mlm.py (they must match the
init_from run's); `runlocal=1` gives a seconds-long smoke run.
"""

from __future__ import annotations

import ml_collections

from configs import base

HELP = {
    **base.TRANSFORMER_HELP,
    'model.num_classes': 'classifier outputs (45 lexicographer categories)',
    'data.wordnet_dir': "folder with WordNet's data.noun/verb/adj/adv; '' = wordnet-base's",
    'data.heldout_percent': 'share of synsets held out for evaluation (by a hash of each key)',
    'data.seq_len': 'tokens per gloss ([CLS] gloss [SEP], truncated and padded)',
    'data.tokenizer': "a tokenizer.model file; '' = the init_from run's, else the default "
                      "corpus's tokenizer of model.vocab_size",
    'data.tokenizer_corpus_dir': "corpus of that default tokenizer ('' = the Python docs)",
    'data.num_threads': 'input pipeline worker threads',
    'data.prefetch': 'batches prepared ahead of the device',
}


def get_config(arg: str | None = None):
  """The gloss-classification config; `arg` e.g. 'size=tiny' or 'runlocal=1'."""
  args = base.parse_arg(arg, {'size': 'tiny', 'runlocal': '0'})
  config = base.base_config()
  config.task = 'text_classification'
  config.total_steps = 600
  config.batch_size = 64
  config.log_every = 50
  config.eval_every = 300
  config.checkpoint_every = 300
  config.init_fresh = ('pooler/*', 'classifier/*')

  config.optimizer.learning_rate = 1e-3
  config.optimizer.warmup_steps = 100
  config.optimizer.weight_decay = 0.01

  config.model = base.transformer_model(args['size'], num_classes=45, dropout_rate=0.1)
  config.data = ml_collections.ConfigDict(dict(
      wordnet_dir='', heldout_percent=5.0, seq_len=64, tokenizer='', tokenizer_corpus_dir='',
      num_threads=2, prefetch=4))
  if args['runlocal'] == '1':
    base.make_smoke_run(config)
  return config
