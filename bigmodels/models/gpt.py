"""GPT-style decoder-only language model: embeddings -> causal Transformer stack -> logits."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from bigmodels.models.transformer import (Array, TransformerConfig, TransformerStack,
                                          causal_segment_mask, embed_tokens, output_logits,
                                          segment_positions)


class DecoderLM(nn.Module):
  """Next-token logits for packed rows, or for cached decoding.

  Training and evaluation pass `segment_ids` (documents from 1, padding 0): attention is causal
  within each document and positions restart at each document. Decoding passes explicit
  `positions` and `mask` instead (the mask then spans the cache when `config.decode`).
  """

  config: TransformerConfig

  @nn.compact
  def __call__(self, tokens: Array, segment_ids: Array | None = None, *,
               positions: Array | None = None, mask: Array | None = None,
               train: bool = False) -> Array:
    """Returns float32 logits [batch, len, vocab_size]."""
    cfg = self.config
    if segment_ids is None:
      segment_ids = jnp.ones_like(tokens)
    if positions is None:
      positions = segment_positions(segment_ids)
    if mask is None:
      mask = causal_segment_mask(segment_ids)
    x, embed = embed_tokens(self, cfg, tokens, positions)
    x = nn.Dropout(cfg.dropout_rate)(x, deterministic=not train)
    x = TransformerStack(cfg, cfg.num_layers, causal=True, name='decoder')(x, mask, not train)
    return output_logits(self, cfg, x, embed)
