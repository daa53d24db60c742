"""Sequence classification with a BERT encoder (fine-tuned via `init_from`, or from scratch) on
WordNet glosses -> lexicographer categories (45 classes): accuracy, macro-F1, per-class
metrics and the confusion matrix PNG, as for images."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from bigmodels import atomic
from bigmodels.data import cache, loader, text, tokenizer as tokenizer_lib, wordnet
from bigmodels.errors import UserError
from bigmodels.hf import checkpoint as hf
from bigmodels.models import bert
from bigmodels.models.transformer import TransformerConfig
from bigmodels.tasks.base import Batch, TaskData
from bigmodels.tasks.classification import (classification_sums, summarize_classification,
                                            write_confusion_report)
from bigmodels.tasks.text_base import TOKENIZER_FILE, TextTask


class TextClassificationTask(TextTask):
  """Gloss -> category; the tokenizer is the pre-training run's (or the default corpus's)."""

  display_metrics = ('loss', 'accuracy', 'macro_f1')
  class_names = wordnet.LEXNAMES
  hf_kinds = ('bert',)

  def check_config(self) -> None:
    super().check_config()
    c = self.config
    if c.model.num_classes < len(self.class_names):
      raise UserError(f'model.num_classes={c.model.num_classes} is fewer than the '
                      f'{len(self.class_names)} classes: use {len(self.class_names)}')
    if not 0.0 < c.data.heldout_percent < 100.0:
      raise UserError(f'data.heldout_percent={c.data.heldout_percent} must be in (0, 100)')

  def _load_tokenizer(self) -> tuple[Any, str]:
    """data.tokenizer, else the init_from checkpoint's or run's tokenizer, else the default
    corpus's."""
    c = self.config
    path = c.data.tokenizer
    if not path:
      hf_tok = self.hf_tokenizer()
      if hf_tok is not None:
        self.check_tokenizer_fits(hf_tok)
        return hf_tok, f'{hf_tok.folder} (Hugging Face {hf_tok.kind})'

    if not path and c.init_from and (Path(c.init_from) / TOKENIZER_FILE).is_file():
      path = str(Path(c.init_from) / TOKENIZER_FILE)
    if path:
      try:
        return tokenizer_lib.Tokenizer(Path(path).read_bytes()), path
      except (OSError, ValueError, RuntimeError) as e:
        raise UserError(f'cannot load the tokenizer {path} ({e}): set --config.data.tokenizer '
                        'to a tokenizer.model of a text run') from None
    corpus = ml_collections.ConfigDict(dict(
        corpus_dir=c.data.tokenizer_corpus_dir, tfds_name='', text_key='text',
        max_documents=0, heldout_percent=5.0))
    tok = text.corpus_tokenizer(corpus, c.model.vocab_size)
    return tok, f'the {c.model.vocab_size}-token tokenizer of the default corpus'

  def _rows(self, tok: Any) -> dict[str, dict[str, np.ndarray]]:
    """Encoded train/eval rows, cached per (tokenizer, seq_len, split)."""
    d = self.config.data
    digest = tok.fingerprint
    folder = cache.data_cache_dir() / 'wordnet'
    name = f'glosses-{digest}-{d.seq_len}-{d.heldout_percent:g}'
    path = folder / f'{name}.npz'
    if path.exists() and not d.wordnet_dir:
      with np.load(path, allow_pickle=False) as f:
        flat = {k: f[k] for k in f.files}
    else:
      examples = wordnet.split_examples(wordnet.read_glosses(d.wordnet_dir), d.heldout_percent)
      print(f'encoding {sum(map(len, examples.values()))} WordNet glosses (first use only)',
            flush=True)
      flat = {}
      for split, items in examples.items():
        rows = wordnet.encode_examples(items, tok.encode_batch, d.seq_len, tok.cls_id,
                                       tok.sep_id, tok.pad_id)
        flat.update({f'{split}/{k}': v for k, v in rows.items()})
      if not d.wordnet_dir:
        folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, **flat)
        atomic.write_bytes_atomic(path, buffer.getvalue())
    return {split: {k.split('/', 1)[1]: v for k, v in flat.items() if k.startswith(split)}
            for split in ('train', 'eval')}

  def prepare_data(self, process_index: int, process_count: int) -> TaskData:
    self.check_config()
    c = self.config
    tok, source = self._load_tokenizer()
    self.tokenizer = tok
    if tok.vocab_size != c.model.vocab_size and not hf.strip_prefix(c.init_from or ''):
      print(f'note: model.vocab_size={c.model.vocab_size} set to the tokenizer\'s '
            f'{tok.vocab_size} (recorded in config.json)', flush=True)
      c.model.vocab_size = tok.vocab_size
    rows = self._rows(tok)
    train = loader.train_dataset(
        rows['train'], c.batch_size, c.seed, None, process_index=process_index,
        process_count=process_count, num_threads=c.data.num_threads, prefetch=c.data.prefetch)
    eval_rows = dict(rows['eval'], weight=np.ones(len(rows['eval']['label']), np.float32))
    evals = loader.eval_batches(
        eval_rows, c.batch_size, c.seed + 1, None,
        pad_row={'tokens': tok.pad_id, 'segment_ids': 0, 'label': 0, 'weight': 0.0},
        max_batches=c.eval_steps, process_index=process_index, process_count=process_count)
    n_train, n_eval = len(rows['train']['label']), len(rows['eval']['label'])
    description = (f'{wordnet.wordnet_dir_label(c.data.wordnet_dir)}: {n_train} train / '
                   f'{n_eval} held-out glosses, {len(self.class_names)} lexicographer '
                   f'categories, rows of {c.data.seq_len} tokens; tokenizer: {source}')
    return TaskData(train=train, eval=evals, description=description)

  def build_model(self) -> nn.Module:
    self.check_config()
    m = self.config.model
    return bert.BertClassifier(TransformerConfig.from_model_config(m), m.num_classes)

  def synthetic_batch(self, batch_size: int, rng: np.random.Generator) -> Batch:
    rows = self.random_rows(batch_size, rng)
    return {'tokens': rows['tokens'], 'segment_ids': np.ones_like(rows['segment_ids']),
            'label': rng.integers(0, self.config.model.num_classes, batch_size).astype(np.int32)}

  def init_variables(self, model: nn.Module, rng: jax.Array, batch: Batch) -> dict:
    return model.init({'params': rng, 'dropout': rng}, batch['tokens'], batch['segment_ids'],
                      train=False)

  def loss_and_metrics(self, model, variables, batch, rng, train):
    logits = model.apply(variables, batch['tokens'], batch['segment_ids'], train=train,
                         rngs={'dropout': rng})
    labels = batch['label']
    weights = batch.get('weight', jnp.ones(labels.shape, jnp.float32))
    sums = classification_sums(logits, labels, weights, with_confusion=not train)
    return sums['loss_sum'] / jnp.maximum(sums['weight'], 1.0), sums, {}

  def summarize(self, sums):
    return summarize_classification(sums, self.class_names)

  def write_eval_report(self, sums, workdir: Path, step: int) -> None:
    write_confusion_report(sums, self.class_names, workdir, step, 'glosses')

  def train_flops_per_example(self, model: nn.Module) -> float:
    m, t = self.config.model, self.config.data.seq_len
    h, f = m.hidden_size, m.mlp_dim
    return 3.0 * t * m.num_layers * (2 * (4 * h * h + 2 * h * f) + 4 * t * h)
