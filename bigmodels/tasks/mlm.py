"""Masked language modelling (BERT): packed text rows, dynamic masking, loss at masked slots."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from bigmodels.data import loader, masking, text, tokenizer as tokenizer_lib
from bigmodels.errors import UserError
from bigmodels.models import bert
from bigmodels.tasks.base import Batch, Task, TaskData

NUM_SPECIAL, MASK_ID, PAD_ID = (tokenizer_lib.NUM_SPECIAL, tokenizer_lib.MASK_ID,
                                tokenizer_lib.PAD_ID)


def mlm_loss_sums(logits: jax.Array, labels: jax.Array,
                  weights: jax.Array) -> dict[str, jax.Array]:
  """Summed cross-entropy, correct predictions and weight over the prediction slots."""
  xent = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
  return {'loss_sum': jnp.sum(xent * weights), 'correct': jnp.sum(correct * weights),
          'weight': jnp.sum(weights)}


class MaskedLMTask(Task):
  """BERT-style pre-training on `data.*` text with `model.*` encoder settings."""

  display_metrics = ('loss', 'mlm_accuracy')

  def __init__(self, config):
    super().__init__(config)
    self._resolve_model_size()

  def _resolve_model_size(self) -> None:
    """Writes the size preset's dimensions into the config's zero (= from the preset) keys, so
    the config (and config.json) holds the values the model is built with."""
    m = self.config.model
    if m.size not in bert.PRESETS:
      return  # check_config reports it.
    for key, value in bert.PRESETS[m.size].items():
      if not m[key]:
        m[key] = value
    if not m.mlp_dim:
      m.mlp_dim = 4 * m.hidden_size

  def check_config(self) -> None:
    c = self.config
    if not 0.0 < c.data.mask_rate < 1.0:
      raise UserError(f'data.mask_rate={c.data.mask_rate} must be in (0, 1), e.g. 0.15')
    if c.data.seq_len > c.model.max_len:
      raise UserError(f'data.seq_len={c.data.seq_len} exceeds model.max_len={c.model.max_len}: '
                      'lower data.seq_len or raise model.max_len')
    if c.data.seq_len < 8:
      raise UserError(f'data.seq_len={c.data.seq_len} is too short: use at least 8')
    if c.model.vocab_size <= NUM_SPECIAL + 1:
      raise UserError(f'model.vocab_size={c.model.vocab_size} is too small: use at least 100')
    if c.model.size not in bert.PRESETS:
      raise UserError(f'unknown model.size={c.model.size!r}: choose one of '
                      f'{", ".join(bert.PRESETS)}')

  @property
  def max_predictions(self) -> int:
    return masking.num_predictions(self.config.data.seq_len, self.config.data.mask_rate)

  def mask(self, batch: Batch, rng: np.random.Generator) -> Batch:
    """Applies dynamic masking to a batch of packed rows."""
    d = self.config.data
    masked = masking.mask_tokens(
        batch['tokens'], rng, mask_rate=d.mask_rate, max_predictions=self.max_predictions,
        mask_id=MASK_ID, vocab_size=self.config.model.vocab_size, num_special=NUM_SPECIAL,
        mask_prob=d.mask_token_prob, random_prob=d.random_token_prob)
    masked['segment_ids'] = batch['segment_ids']
    return masked

  def prepare_data(self, process_index: int, process_count: int) -> TaskData:
    self.check_config()
    c = self.config
    data = text.prepare_text_data(c.data, c.model.vocab_size)
    if data.tokenizer.vocab_size < c.model.vocab_size:
      print(f'note: the corpus filled only {data.tokenizer.vocab_size} of the requested '
            f'model.vocab_size={c.model.vocab_size} tokens; the model is built with '
            f'{data.tokenizer.vocab_size} (recorded in config.json)', flush=True)
      c.model.vocab_size = data.tokenizer.vocab_size
    per_process = c.batch_size // process_count
    train = loader.train_dataset(
        data.train, per_process, c.seed, self.mask, process_index=process_index,
        process_count=process_count, num_threads=c.data.num_threads, prefetch=c.data.prefetch)
    pad_row = {'tokens': PAD_ID, 'segment_ids': 0}
    evals = loader.eval_batches(data.eval, per_process, c.seed + 1, self.mask, pad_row=pad_row,
                                max_batches=c.eval_steps, process_index=process_index,
                                process_count=process_count)
    n_train, n_eval = len(data.train['tokens']), len(data.eval['tokens'])
    description = (f'{data.description}: {n_train} train rows, {n_eval} held-out rows of '
                   f'{c.data.seq_len} tokens ({n_train * c.data.seq_len / 1e6:.2f}M train '
                   f'tokens), vocab {data.tokenizer.vocab_size}, cache {data.prepared_dir}')
    return TaskData(train=train, eval=evals, description=description)

  def build_model(self) -> nn.Module:
    self.check_config()
    m = self.config.model
    return bert.BertMLM(
        vocab_size=m.vocab_size, hidden_size=m.hidden_size, num_layers=m.num_layers,
        num_heads=m.num_heads, mlp_dim=m.mlp_dim, max_len=m.max_len,
        dropout_rate=m.dropout_rate, pre_ln=m.pre_ln, remat=m.remat, dtype=jnp.dtype(m.dtype),
        param_dtype=jnp.dtype(m.param_dtype), attention_impl=m.attention_impl or None)

  def synthetic_batch(self, batch_size: int, rng: np.random.Generator) -> Batch:
    seq_len = self.config.data.seq_len
    tokens = rng.integers(NUM_SPECIAL, self.config.model.vocab_size, (batch_size, seq_len))
    tokens[:, 0] = tokenizer_lib.CLS_ID
    rows = {'tokens': tokens.astype(np.int32),
            'segment_ids': np.ones((batch_size, seq_len), np.int32)}
    return self.mask(rows, rng)

  def init_variables(self, model: nn.Module, rng: jax.Array, batch: Batch) -> dict:
    return model.init({'params': rng, 'dropout': rng}, batch['input_ids'],
                      batch['segment_ids'], batch['masked_positions'], train=False)

  def loss_and_metrics(self, model, variables, batch, rng, train):
    logits = model.apply(variables, batch['input_ids'], batch['segment_ids'],
                         batch['masked_positions'], train=train, rngs={'dropout': rng})
    sums = mlm_loss_sums(logits, batch['masked_ids'], batch['masked_weights'])
    loss = sums['loss_sum'] / jnp.maximum(sums['weight'], 1.0)
    return loss, sums, {}

  def summarize(self, sums):
    weight = max(float(sums['weight']), 1.0)
    loss = float(sums['loss_sum']) / weight
    return {'loss': loss, 'mlm_accuracy': float(sums['correct']) / weight,
            'perplexity': math.exp(min(loss, 50.0))}

  def train_flops_per_example(self, model: nn.Module) -> float:
    """3 x forward matmul FLOPs: encoder layers and attention at every position, the MLM head
    (dense + tied vocabulary projection) only at the prediction slots."""
    t, k = self.config.data.seq_len, self.max_predictions
    h, f, v, layers = model.hidden_size, model.mlp_dim, model.vocab_size, model.num_layers
    per_token = layers * (2 * (4 * h * h + 2 * h * f) + 4 * t * h)
    head = 2 * h * h + 2 * h * v
    return 3.0 * (t * per_token + k * head)

  def tokens_per_example(self) -> int:
    return self.config.data.seq_len

