"""LSTM language model, the recurrent baseline: embeddings -> stacked LSTM layers -> logits.

Each layer scans a flax `OptimizedLSTMCell` over time (`nn.RNN`). Packed rows hold several
documents: the state is reset to zero where a new segment starts, so no document sees another.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from bigmodels.models.transformer import default_init, partitioned

Array = jax.Array


class ResettingLSTMCell(nn.RNNCellBase):
  """An OptimizedLSTMCell whose carry is zeroed before a step flagged as a segment start.

  Its input is [batch, features + 1]: the last channel is 1.0 where the carry must be reset
  (an array rather than a tuple, as `nn.RNN` scans one array).
  """

  features: int
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, carry, inputs):
    x, reset = inputs[:, :-1], inputs[:, -1:]
    keep = (1.0 - reset).astype(carry[0].dtype)
    carry = (carry[0] * keep, carry[1] * keep)
    return nn.OptimizedLSTMCell(self.features, dtype=self.dtype, param_dtype=self.param_dtype,
                                name='cell')(carry, x)

  def initialize_carry(self, rng, input_shape):
    shape = tuple(input_shape[:-1]) + (self.features,)
    return jnp.zeros(shape, self.param_dtype), jnp.zeros(shape, self.param_dtype)

  @property
  def num_feature_axes(self) -> int:
    return 1


class LSTMLM(nn.Module):
  """Next-token logits [batch, len, vocab] of packed rows (segment ids from 1, padding 0)."""

  vocab_size: int
  hidden_size: int
  num_layers: int
  dropout_rate: float = 0.0
  tied_embedding: bool = True
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, tokens: Array, segment_ids: Array | None = None, *,
               train: bool = False) -> Array:
    if segment_ids is None:
      segment_ids = jnp.ones_like(tokens)
    starts = jnp.concatenate([jnp.ones_like(segment_ids[:, :1], jnp.bool_),
                              segment_ids[:, 1:] != segment_ids[:, :-1]], axis=1)
    embed = nn.Embed(self.vocab_size, self.hidden_size, dtype=self.dtype,
                     param_dtype=self.param_dtype,
                     embedding_init=partitioned(default_init, 'vocab', 'embed'),
                     name='token_embed')
    x = embed(tokens)
    for i in range(self.num_layers):
      x = nn.Dropout(self.dropout_rate)(x, deterministic=not train)
      cell = ResettingLSTMCell(self.hidden_size, dtype=self.dtype,
                               param_dtype=self.param_dtype, name=f'lstm_{i}')
      flagged = jnp.concatenate([x, starts[..., None].astype(x.dtype)], axis=-1)
      x = nn.RNN(cell)(flagged)
    x = nn.Dropout(self.dropout_rate)(x, deterministic=not train)
    if self.tied_embedding:
      logits = embed.attend(x)
    else:
      logits = nn.Dense(self.vocab_size, dtype=self.dtype, param_dtype=self.param_dtype,
                        kernel_init=partitioned(default_init, 'embed', 'vocab'),
                        name='lm_head')(x)
    return logits.astype(jnp.float32)
