"""Autoregressive decoding for the causal LM and the encoder-decoder, jitted end to end.

Cached decoding runs the prompt once (filling each layer's key/value cache), then one position
per new token. `decode_without_cache` recomputes the whole sequence for every token: slower by
about the sequence length, kept as the reference the cache must match exactly. Prompts of
different lengths are left-padded into one batch; padding is masked out of attention and
positions count from each prompt's first real token.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Sampling:
  """temperature 0 = greedy; top_k 0 and top_p 1.0 = no truncation."""

  temperature: float = 1.0
  top_k: int = 0
  top_p: float = 1.0


def sample_logits(logits: jax.Array, rng: jax.Array, sampling: Sampling) -> jax.Array:
  """Next token ids [batch] from logits [batch, vocab]."""
  if sampling.temperature <= 0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  logits = logits / sampling.temperature
  if sampling.top_k > 0:
    kth = jax.lax.top_k(logits, min(sampling.top_k, logits.shape[-1]))[0][:, -1:]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  if sampling.top_p < 1.0:
    ordered = jnp.sort(logits, axis=-1)[:, ::-1]
    cumulative = jnp.cumsum(jax.nn.softmax(ordered, axis=-1), axis=-1)
    # The smallest set whose probability reaches top_p (always at least the top token).
    cutoff_index = jnp.sum(cumulative < sampling.top_p, axis=-1, keepdims=True)
    cutoff = jnp.take_along_axis(ordered, cutoff_index, axis=-1)
    logits = jnp.where(logits < cutoff, -jnp.inf, logits)
  return jax.random.categorical(rng, logits, axis=-1).astype(jnp.int32)


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
  """(tokens, valid) [batch, longest prompt]: prompts right-aligned, padding on the left."""
  if not prompts or min(len(p) for p in prompts) == 0:
    raise ValueError('every prompt needs at least one token')
  longest = max(len(p) for p in prompts)
  tokens = np.full((len(prompts), longest), pad_id, np.int32)
  valid = np.zeros((len(prompts), longest), bool)
  for i, prompt in enumerate(prompts):
    tokens[i, longest - len(prompt):] = prompt
    valid[i, longest - len(prompt):] = True
  return tokens, valid


def _mask(key_valid: jax.Array, first_query: int | jax.Array, num_queries: int) -> jax.Array:
  """[batch, 1, queries, slots]: causal over cache slots, padding hidden (a padding query sees
  itself, so no softmax row is empty)."""
  slots = jnp.arange(key_valid.shape[1])
  queries = first_query + jnp.arange(num_queries)
  causal = slots[None, :] <= queries[:, None]
  visible = key_valid[:, None, :] | (slots[None, None, :] == queries[None, :, None])
  return (causal[None] & visible)[:, None]


def _positions(key_valid: jax.Array) -> jax.Array:
  return jnp.maximum(jnp.cumsum(key_valid, axis=1) - 1, 0).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=('model', 'max_new_tokens', 'sampling'))
def decode_with_cache(model: nn.Module, params: Any, tokens: jax.Array, valid: jax.Array,
                      rng: jax.Array, max_new_tokens: int, sampling: Sampling) -> jax.Array:
  """New tokens [batch, max_new_tokens] of a DecoderLM built with `config.decode=True`."""
  batch, prompt_len = tokens.shape
  total = prompt_len + max_new_tokens
  key_valid = jnp.concatenate([valid, jnp.ones((batch, max_new_tokens), bool)], axis=1)
  positions = _positions(key_valid)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((batch, total), jnp.int32))
  cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes['cache'])
  logits, updated = model.apply({'params': params, 'cache': cache}, tokens,
                                positions=positions[:, :prompt_len],
                                mask=_mask(key_valid, 0, prompt_len), mutable=['cache'])
  rngs = jax.random.split(rng, max_new_tokens)
  first = sample_logits(logits[:, -1], rngs[0], sampling)

  def step(carry, i):
    cache, token = carry
    slot = prompt_len + i
    logits, updated = model.apply(
        {'params': params, 'cache': cache}, token[:, None],
        positions=jax.lax.dynamic_slice_in_dim(positions, slot, 1, axis=1),
        mask=_mask(key_valid, slot, 1), mutable=['cache'])
    nxt = sample_logits(logits[:, -1], rngs[i + 1], sampling)
    return (updated['cache'], nxt), nxt

  _, rest = jax.lax.scan(step, (updated['cache'], first), jnp.arange(max_new_tokens - 1))
  return jnp.concatenate([first[:, None], rest.T], axis=1)


@functools.partial(jax.jit, static_argnames=('model', 'max_new_tokens', 'sampling'))
def decode_without_cache(model: nn.Module, params: Any, tokens: jax.Array, valid: jax.Array,
                         rng: jax.Array, max_new_tokens: int, sampling: Sampling) -> jax.Array:
  """The same decode as `decode_with_cache`, re-running the full sequence for every token."""
  batch, prompt_len = tokens.shape
  total = prompt_len + max_new_tokens
  key_valid = jnp.concatenate([valid, jnp.ones((batch, max_new_tokens), bool)], axis=1)
  positions = _positions(key_valid)
  mask = _mask(key_valid, 0, total)
  buffer = jnp.concatenate([tokens, jnp.zeros((batch, max_new_tokens), jnp.int32)], axis=1)
  rngs = jax.random.split(rng, max_new_tokens)

  def step(buffer, i):
    logits = model.apply({'params': params}, buffer, positions=positions, mask=mask)
    last = jax.lax.dynamic_index_in_dim(logits, prompt_len - 1 + i, axis=1, keepdims=False)
    nxt = sample_logits(last, rngs[i], sampling)
    return jax.lax.dynamic_update_slice(buffer, nxt[:, None], (0, prompt_len + i)), nxt

  _, out = jax.lax.scan(step, buffer, jnp.arange(max_new_tokens))
  return out.T


@functools.partial(jax.jit, static_argnames=('model', 'max_new_tokens', 'sampling', 'use_cache'))
def seq2seq_decode(model: nn.Module, params: Any, inputs: jax.Array, input_segments: jax.Array,
                   rng: jax.Array, bos_id: int, max_new_tokens: int, sampling: Sampling,
                   use_cache: bool = True) -> jax.Array:
  """Target tokens [batch, max_new_tokens] of an EncoderDecoder (built with decode=True when
  `use_cache`): the encoder runs once, the decoder one position per token."""
  batch = inputs.shape[0]
  encoded = model.apply({'params': params}, inputs, input_segments, method='encode')
  rngs = jax.random.split(rng, max_new_tokens)
  ones = jnp.ones((batch, max_new_tokens), bool)
  positions = _positions(ones)
  buffer = jnp.concatenate([jnp.full((batch, 1), bos_id, jnp.int32),
                            jnp.zeros((batch, max_new_tokens - 1), jnp.int32)], axis=1)
  segments = jnp.ones((batch, max_new_tokens), jnp.int32)
  if use_cache:
    shapes = jax.eval_shape(model.init, jax.random.key(0), inputs, input_segments, buffer,
                            segments)
    cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes['cache'])
  else:
    cache = {}

  def step(carry, i):
    cache, buffer = carry
    if use_cache:
      logits, updated = model.apply(
          {'params': params, 'cache': cache},
          jax.lax.dynamic_slice_in_dim(buffer, i, 1, axis=1), encoded, input_segments,
          segments[:, :1], positions=jax.lax.dynamic_slice_in_dim(positions, i, 1, axis=1),
          mask=_mask(ones, i, 1), method='decode', mutable=['cache'])
      cache, last = updated['cache'], logits[:, -1]
    else:
      logits = model.apply({'params': params}, buffer, encoded, input_segments, segments,
                           method='decode')
      last = jax.lax.dynamic_index_in_dim(logits, i, axis=1, keepdims=False)
    nxt = sample_logits(last, rngs[i], sampling)
    buffer = jax.lax.dynamic_update_slice(buffer, nxt[:, None],
                                          (0, jnp.minimum(i + 1, max_new_tokens - 1)))
    return (cache, buffer), nxt

  _, out = jax.lax.scan(step, (cache, buffer), jnp.arange(max_new_tokens))
  return out.T


def cut_at(tokens: np.ndarray, stop_id: int) -> list[list[int]]:
  """Each row up to (without) its first `stop_id`."""
  out = []
  for row in np.asarray(tokens).tolist():
    out.append(row[:row.index(stop_id)] if stop_id in row else row)
  return out
