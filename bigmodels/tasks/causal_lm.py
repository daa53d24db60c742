"""Causal language modelling: next-token prediction on packed documents, by a GPT-style
Transformer decoder (`model.arch='transformer'`) or an LSTM (`model.arch='lstm'`)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from bigmodels.errors import UserError
from bigmodels.models import gpt, lstm
from bigmodels.models.transformer import TransformerConfig
from bigmodels.tasks.base import Batch, TaskData
from bigmodels.tasks.text_base import TextTask, token_loss_sums, token_summary

ARCHS = ('transformer', 'lstm')


def next_token_targets(tokens: jax.Array, segment_ids: jax.Array
                       ) -> tuple[jax.Array, jax.Array]:
  """(labels, weights) [batch, len - 1]: position t predicts token t + 1 only when both lie in
  the same document (never across a packed boundary, never padding)."""
  same = (segment_ids[:, 1:] == segment_ids[:, :-1]) & (segment_ids[:, 1:] > 0)
  return tokens[:, 1:], same.astype(jnp.float32)


class CausalLMTask(TextTask):
  """Next-token loss, token accuracy and perplexity on held-out documents."""

  display_metrics = ('loss', 'accuracy', 'perplexity')
  bos_per_document = True
  hf_kinds = ('gpt2',)

  def check_config(self) -> None:
    super().check_config()
    if self.config.model.arch not in ARCHS:
      raise UserError(f'unknown model.arch={self.config.model.arch!r}: choose one of '
                      f'{", ".join(ARCHS)}')

  def prepare_data(self, process_index: int, process_count: int) -> TaskData:
    self.check_config()
    data = self.prepare_rows()
    pad_row = {'tokens': self.ids.pad_id, 'segment_ids': 0}
    return self.text_task_data(data, process_index, process_count, None, None, pad_row)

  def transformer_config(self, **overrides) -> TransformerConfig:
    """The decoder's TransformerConfig (overrides e.g. decode=True for generation)."""
    return TransformerConfig.from_model_config(self.config.model, **overrides)

  def build_model(self, decode: bool = False) -> nn.Module:
    self.check_config()
    m = self.config.model
    if m.arch == 'lstm':
      return lstm.LSTMLM(vocab_size=m.vocab_size, hidden_size=m.hidden_size,
                         num_layers=m.num_layers, dropout_rate=m.dropout_rate,
                         tied_embedding=m.tied_embedding, dtype=jnp.dtype(m.dtype),
                         param_dtype=jnp.dtype(m.param_dtype))
    return gpt.DecoderLM(self.transformer_config(decode=decode))

  def synthetic_batch(self, batch_size: int, rng: np.random.Generator) -> Batch:
    return self.random_rows(batch_size, rng)

  def init_variables(self, model: nn.Module, rng: jax.Array, batch: Batch) -> dict:
    return model.init({'params': rng, 'dropout': rng}, batch['tokens'], batch['segment_ids'],
                      train=False)

  def loss_and_metrics(self, model, variables, batch, rng, train):
    tokens, segments = batch['tokens'], batch['segment_ids']
    logits = model.apply(variables, tokens, segments, train=train, rngs={'dropout': rng})
    labels, weights = next_token_targets(tokens, segments)
    # Scored at every position, the last one with weight 0: slicing the [batch, len, vocab]
    # logits instead would copy them (and pad their gradient) on the CPU backend.
    labels = jnp.pad(labels, ((0, 0), (0, 1)))
    weights = jnp.pad(weights, ((0, 0), (0, 1)))
    sums = token_loss_sums(logits, labels, weights)
    return sums['loss_sum'] / jnp.maximum(sums['weight'], 1.0), sums, {}

  def summarize(self, sums):
    return token_summary(sums)

  def train_flops_per_example(self, model: nn.Module) -> float:
    """3 x forward matmul FLOPs per row: every layer and the vocabulary projection at every
    position (attention counted over the full length)."""
    m, t = self.config.model, self.config.data.seq_len
    h, v = m.hidden_size, m.vocab_size
    if m.arch == 'lstm':
      per_token = m.num_layers * 2 * (8 * h * h)
    else:
      per_token = m.num_layers * (2 * (4 * h * h + 2 * h * m.mlp_dim) + 4 * t * h)
    return 3.0 * t * (per_token + 2 * h * v)
