"""BERT-style encoders: the masked-LM model (tied output embedding) and a sequence classifier.

Both share parameter names for the embeddings and the encoder (`token_embed`, `position_embed`,
`embed_norm`, `encoder/...`), so a classifier can start from a masked-LM checkpoint
(`init_from`) and only its `pooler` and `classifier` heads are new.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from bigmodels.models.transformer import (Array, SIZES, TransformerConfig, TransformerStack,
                                          default_init, embed_tokens, layer_norm, partitioned,
                                          segment_attention_mask)

PRESETS = SIZES  # The BERT sizes of Turc et al. (2019).


def _encode(module: nn.Module, cfg: TransformerConfig, input_ids: Array, segment_ids: Array,
            train: bool, token_type_ids: Array | None) -> tuple[Array, nn.Embed]:
  """Embeddings (absolute positions, as BERT; token types when the config has them, type 0
  unless given) -> LayerNorm -> dropout -> encoder stack. `segment_ids` are the packed
  documents (padding 0), which decide who attends to whom."""
  positions = jnp.broadcast_to(jnp.arange(input_ids.shape[1]), input_ids.shape)
  x, embed = embed_tokens(module, cfg, input_ids, positions)
  if cfg.type_vocab_size:
    table = module.param('type_embed', partitioned(default_init, None, 'embed'),
                         (cfg.type_vocab_size, cfg.hidden_size), cfg.param_dtype)
    types = jnp.zeros_like(input_ids) if token_type_ids is None else token_type_ids
    x = x + jnp.take(table, types, axis=0).astype(cfg.dtype)
  x = layer_norm('embed_norm', cfg)(x)
  x = nn.Dropout(cfg.dropout_rate)(x, deterministic=not train)
  x = TransformerStack(cfg, cfg.num_layers, name='encoder')(
      x, segment_attention_mask(segment_ids), not train)
  return x, embed


class BertMLM(nn.Module):
  """Token + position embeddings -> Transformer encoder -> MLM head at masked positions.

  The head gathers the hidden states at `masked_positions` [batch, num_predictions] before the
  vocabulary projection, so the costly [*, vocab] logits are computed only where a loss is taken.
  """

  config: TransformerConfig

  @nn.compact
  def __call__(self, input_ids: Array, segment_ids: Array, masked_positions: Array, *,
               train: bool = False, token_type_ids: Array | None = None) -> Array:
    """Returns float32 logits [batch, num_predictions, vocab_size]."""
    cfg = self.config
    x, embed = _encode(self, cfg, input_ids, segment_ids, train, token_type_ids)
    h = jnp.take_along_axis(x, masked_positions[..., None], axis=1)
    h = nn.Dense(cfg.hidden_size, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                 kernel_init=partitioned(default_init, 'embed', 'mlp'),
                 bias_init=partitioned(nn.initializers.zeros, 'mlp'), name='mlm_dense')(h)
    h = layer_norm('mlm_norm', cfg)(nn.gelu(h, approximate=cfg.gelu_approximate))
    logits = embed.attend(h)
    bias = self.param('mlm_bias', partitioned(nn.initializers.zeros, 'vocab'),
                      (cfg.vocab_size,), cfg.param_dtype)
    return logits.astype(jnp.float32) + bias.astype(jnp.float32)


class BertClassifier(nn.Module):
  """The BERT encoder with a sequence-classification head on the first ([CLS]) token:
  pooler (Dense + tanh) -> dropout -> `classifier` Dense. Padding has segment id 0."""

  config: TransformerConfig
  num_classes: int

  @nn.compact
  def __call__(self, input_ids: Array, segment_ids: Array, *, train: bool = False,
               token_type_ids: Array | None = None) -> Array:
    """Returns float32 class logits [batch, num_classes]."""
    cfg = self.config
    x, _ = _encode(self, cfg, input_ids, segment_ids, train, token_type_ids)
    pooled = nn.tanh(nn.Dense(cfg.hidden_size, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                              kernel_init=partitioned(default_init, 'embed', 'mlp'),
                              bias_init=partitioned(nn.initializers.zeros, 'mlp'),
                              name='pooler')(x[:, 0]))
    pooled = nn.Dropout(cfg.dropout_rate)(pooled, deterministic=not train)
    logits = nn.Dense(self.num_classes, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                      kernel_init=partitioned(default_init, 'mlp', None),
                      bias_init=partitioned(nn.initializers.zeros, None),
                      name='classifier')(pooled)
    return logits.astype(jnp.float32)
