"""T5-style encoder-decoder: a bidirectional encoder, a causal decoder that cross-attends to it,
one token table shared by both sides (and, tied, by the output layer). Learned absolute
positions restarting in every packed segment stand in for T5's relative position buckets."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from bigmodels.models.transformer import (HIDDEN_AXES, Array, TransformerConfig,
                                          TransformerStack,
                                          causal_segment_mask, cross_segment_mask,
                                          default_init, partitioned, segment_attention_mask,
                                          segment_positions)


class EncoderDecoder(nn.Module):
  """`encode` the (corrupted) input, `decode` the target given the encoding; `__call__` does
  both. Segment ids (from 1; padding 0) keep packed examples apart on both sides and across."""

  config: TransformerConfig

  def setup(self):
    cfg = self.config
    self.token_embed = nn.Embed(cfg.vocab_size, cfg.hidden_size, dtype=cfg.dtype,
                                param_dtype=cfg.param_dtype,
                                embedding_init=partitioned(default_init, 'vocab', 'embed'))
    self.position_embed = self.param('position_embed', partitioned(default_init, None, 'embed'),
                                     (cfg.max_len, cfg.hidden_size), cfg.param_dtype)
    self.encoder = TransformerStack(cfg, cfg.num_layers)
    self.decoder = TransformerStack(cfg, cfg.num_decoder_layers or cfg.num_layers,
                                    cross_attention=True, causal=True)
    if not cfg.tied_embedding:
      self.lm_head = nn.Dense(cfg.vocab_size, use_bias=False, dtype=cfg.dtype,
                              param_dtype=cfg.param_dtype,
                              kernel_init=partitioned(default_init, 'embed', 'vocab'))
    self.dropout = nn.Dropout(cfg.dropout_rate)

  def _embed(self, tokens: jnp.ndarray, positions: jnp.ndarray, train: bool) -> jnp.ndarray:
    if positions.shape[-1] > self.config.max_len:
      raise ValueError(f'sequence length {positions.shape[-1]} exceeds model.max_len='
                       f'{self.config.max_len}')
    x = self.token_embed(tokens) + jnp.take(self.position_embed, positions, axis=0).astype(
        self.config.dtype)
    x = nn.with_logical_constraint(x, HIDDEN_AXES)
    return self.dropout(x, deterministic=not train)

  def encode(self, inputs: Array, input_segments: Array, *, train: bool = False) -> Array:
    """Encoder output [batch, in_len, hidden]."""
    x = self._embed(inputs, segment_positions(input_segments), train)
    return self.encoder(x, segment_attention_mask(input_segments), not train)

  def decode(self, decoder_inputs: Array, encoded: Array, input_segments: Array,
             target_segments: Array | None = None, *, positions: Array | None = None,
             mask: Array | None = None, train: bool = False) -> Array:
    """float32 logits [batch, target_len, vocab]. Cached decoding passes `positions` and a
    `mask` over the cache; `target_segments` then give the cross-attention segments."""
    if target_segments is None:
      target_segments = jnp.ones_like(decoder_inputs)
    if positions is None:
      positions = segment_positions(target_segments)
    if mask is None:
      mask = causal_segment_mask(target_segments)
    x = self._embed(decoder_inputs, positions, train)
    x = self.decoder(x, mask, not train, encoded,
                     cross_segment_mask(target_segments, input_segments))
    logits = self.token_embed.attend(x) if self.config.tied_embedding else self.lm_head(x)
    return logits.astype(jnp.float32)

  def __call__(self, inputs: Array, input_segments: Array, decoder_inputs: Array,
               target_segments: Array, *, train: bool = False) -> Array:
    """Logits of the targets [batch, target_len, vocab] (teacher forcing)."""
    encoded = self.encode(inputs, input_segments, train=train)
    return self.decode(decoder_inputs, encoded, input_segments, target_segments, train=train)
