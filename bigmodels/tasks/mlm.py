"""Masked language modelling (BERT): packed text rows, dynamic masking, loss at masked slots."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from bigmodels.data import masking
from bigmodels.errors import UserError
from bigmodels.models import bert
from bigmodels.models.transformer import TransformerConfig
from bigmodels.tasks.base import Batch, TaskData
from bigmodels.tasks.text_base import TextTask, token_loss_sums



class MaskedLMTask(TextTask):
  """BERT-style pre-training on `data.*` text with `model.*` encoder settings."""

  hf_kinds = ('bert',)

  display_metrics = ('loss', 'mlm_accuracy')

  def check_config(self) -> None:
    super().check_config()
    c = self.config
    for key in ('mask_rate', 'eval_mask_rate'):
      if not 0.0 < c.data[key] < 1.0:
        raise UserError(f'data.{key}={c.data[key]} must be in (0, 1), e.g. 0.15')
    mask, rnd = c.data.mask_token_prob, c.data.random_token_prob
    if not (0.0 <= mask <= 1.0 and 0.0 <= rnd <= 1.0 and mask + rnd <= 1.0 + 1e-9):
      raise UserError(f'data.mask_token_prob={mask} and data.random_token_prob={rnd} must be '
                      'shares in [0, 1] that sum to at most 1 (the rest stay unchanged), e.g. '
                      '0.8 and 0.1')

  @property
  def max_predictions(self) -> int:
    return masking.num_predictions(self.config.data.seq_len, self.config.data.mask_rate)

  def mask(self, batch: Batch, rng: np.random.Generator) -> Batch:
    """Applies the training corruption (dynamic masking) to a batch of packed rows."""
    d = self.config.data
    return self._corrupt(batch, rng, d.mask_rate, d.mask_token_prob, d.random_token_prob)

  def mask_for_eval(self, batch: Batch, rng: np.random.Generator) -> Batch:
    """The held-out corruption, the same whatever the training recipe: `data.eval_mask_rate`
    of the tokens, all replaced by [MASK] (no unchanged tokens to copy, no random ones)."""
    return self._corrupt(batch, rng, self.config.data.eval_mask_rate, 1.0, 0.0)

  def _corrupt(self, batch: Batch, rng: np.random.Generator, rate: float, mask_prob: float,
               random_prob: float) -> Batch:
    masked = masking.mask_tokens(
        batch['tokens'], rng, mask_rate=rate,
        max_predictions=masking.num_predictions(self.config.data.seq_len, rate),
        mask_id=self.ids.mask_id, vocab_size=self.config.model.vocab_size,
        num_special=self.ids.num_special,
        mask_prob=mask_prob, random_prob=random_prob)
    masked['segment_ids'] = batch['segment_ids']
    return masked

  def prepare_data(self, process_index: int, process_count: int) -> TaskData:
    self.check_config()
    data = self.prepare_rows()
    pad_row = {'tokens': self.ids.pad_id, 'segment_ids': 0}
    return self.text_task_data(data, process_index, process_count, self.mask,
                               self.mask_for_eval, pad_row)

  def build_model(self) -> nn.Module:
    self.check_config()
    return bert.BertMLM(TransformerConfig.from_model_config(self.config.model))

  def synthetic_batch(self, batch_size: int, rng: np.random.Generator) -> Batch:
    return self.mask(self.random_rows(batch_size, rng), rng)

  def init_variables(self, model: nn.Module, rng: jax.Array, batch: Batch) -> dict:
    return model.init({'params': rng, 'dropout': rng}, batch['input_ids'],
                      batch['segment_ids'], batch['masked_positions'], train=False)

  def loss_and_metrics(self, model, variables, batch, rng, train):
    logits = model.apply(variables, batch['input_ids'], batch['segment_ids'],
                         batch['masked_positions'], train=train, rngs={'dropout': rng})
    sums = token_loss_sums(logits, batch['masked_ids'], batch['masked_weights'])
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
    m = self.config.model
    h, f, v, layers = m.hidden_size, m.mlp_dim, m.vocab_size, m.num_layers
    per_token = layers * (2 * (4 * h * h + 2 * h * f) + 4 * t * h)
    head = 2 * h * h + 2 * h * v
    return 3.0 * (t * per_token + k * head)

  def tokens_per_example(self) -> int:
    return self.config.data.seq_len

