"""BERT-style encoder with a masked-language-model head whose output embedding is tied."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from bigmodels.models.transformer import (Array, Dtype, Encoder, default_init, layer_norm,
                                          partitioned, segment_attention_mask)

# The standard BERT sizes (Turc et al., 2019): layers, hidden size, attention heads.
PRESETS: dict[str, dict[str, int]] = {
    'tiny': dict(num_layers=2, hidden_size=128, num_heads=2),
    'mini': dict(num_layers=4, hidden_size=256, num_heads=4),
    'small': dict(num_layers=4, hidden_size=512, num_heads=8),
    'medium': dict(num_layers=8, hidden_size=512, num_heads=8),
    'base': dict(num_layers=12, hidden_size=768, num_heads=12),
}


class BertMLM(nn.Module):
  """Token + position embeddings -> Transformer encoder -> MLM head at masked positions.

  The head gathers the hidden states at `masked_positions` [batch, num_predictions] before the
  vocabulary projection, so the costly [*, vocab] logits are computed only where a loss is taken.
  """

  vocab_size: int
  hidden_size: int
  num_layers: int
  num_heads: int
  mlp_dim: int
  max_len: int = 512
  dropout_rate: float = 0.0
  pre_ln: bool = True
  remat: bool = False
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  attention_impl: str | None = None

  @nn.compact
  def __call__(self, input_ids: Array, segment_ids: Array, masked_positions: Array, *,
               train: bool = False) -> Array:
    """Returns float32 logits [batch, num_predictions, vocab_size]."""
    length = input_ids.shape[1]
    if length > self.max_len:
      raise ValueError(f'sequence length {length} exceeds model.max_len={self.max_len}')
    embed = nn.Embed(self.vocab_size, self.hidden_size, dtype=self.dtype,
                     param_dtype=self.param_dtype,
                     embedding_init=partitioned(default_init, 'vocab', 'embed'),
                     name='token_embed')
    positions = self.param('position_embed', partitioned(default_init, None, 'embed'),
                           (self.max_len, self.hidden_size), self.param_dtype)
    x = embed(input_ids) + positions[None, :length].astype(self.dtype)
    x = layer_norm('embed_norm', self.dtype, self.param_dtype)(x)
    x = nn.Dropout(self.dropout_rate)(x, deterministic=not train)
    x = nn.with_logical_constraint(x, ('batch', 'length', 'embed'))

    x = Encoder(self.num_layers, self.num_heads, self.mlp_dim, self.dropout_rate, self.pre_ln,
                self.remat, self.dtype, self.param_dtype, self.attention_impl,
                name='encoder')(x, segment_attention_mask(segment_ids), not train)

    h = jnp.take_along_axis(x, masked_positions[..., None], axis=1)
    h = nn.Dense(self.hidden_size, dtype=self.dtype, param_dtype=self.param_dtype,
                 kernel_init=partitioned(default_init, 'embed', 'mlp'),
                 bias_init=partitioned(nn.initializers.zeros, 'mlp'), name='mlm_dense')(h)
    h = layer_norm('mlm_norm', self.dtype, self.param_dtype)(nn.gelu(h))
    logits = embed.attend(h)
    bias = self.param('mlm_bias', partitioned(nn.initializers.zeros, 'vocab'),
                      (self.vocab_size,), self.param_dtype)
    return logits.astype(jnp.float32) + bias.astype(jnp.float32)

