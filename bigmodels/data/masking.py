"""Dynamic BERT masking: choose positions, then apply the 80/10/10 rule."""

from __future__ import annotations

import math

import numpy as np


def num_predictions(seq_len: int, mask_rate: float) -> int:
  """The fixed number of prediction slots per row (BERT's max_predictions_per_seq)."""
  return max(1, int(math.ceil(seq_len * mask_rate)))


def mask_tokens(tokens: np.ndarray, rng: np.random.Generator, *, mask_rate: float,
                max_predictions: int, mask_id: int, vocab_size: int, num_special: int,
                mask_prob: float = 0.8, random_prob: float = 0.1) -> dict[str, np.ndarray]:
  """Masks a batch of rows [batch, len] for masked-language modelling.

  In each row, round(mask_rate * maskable) positions (at most `max_predictions`, at least one)
  are chosen uniformly among tokens with id >= num_special, so special tokens ([CLS], [SEP],
  [PAD] ...) are never chosen. Of the chosen tokens `mask_prob` become [MASK], `random_prob` a
  uniformly random non-special token, and the rest stay unchanged.

  Returns input_ids [B, L]; masked_positions, masked_ids (int32) and masked_weights (float32,
  1 for real predictions, 0 for unused slots), each [B, max_predictions].
  """
  batch, length = tokens.shape
  maskable = tokens >= num_special
  n_maskable = maskable.sum(axis=1)
  n_chosen = np.minimum(max_predictions,
                        np.maximum(1, np.rint(n_maskable * mask_rate))).astype(np.int32)
  n_chosen = np.minimum(n_chosen, n_maskable)
  keys = np.where(maskable, rng.random((batch, length)), np.inf)
  order = np.argsort(keys, axis=1, kind='stable')[:, :max_predictions]
  slots = np.arange(max_predictions)[None, :]
  weights = (slots < n_chosen[:, None]).astype(np.float32)
  # Chosen positions in sequence order fill the first n_chosen slots (weight 1); unused slots
  # point at position 0 with weight 0.
  positions = np.where(weights > 0, order, length)
  positions = np.sort(positions, axis=1)
  positions = np.where(positions == length, 0, positions).astype(np.int32)
  labels = np.take_along_axis(tokens, positions, axis=1).astype(np.int32)

  action = rng.random((batch, max_predictions))
  random_tokens = rng.integers(num_special, vocab_size, size=(batch, max_predictions))
  replacement = np.where(action < mask_prob, mask_id,
                         np.where(action < mask_prob + random_prob, random_tokens, labels))
  inputs = tokens.astype(np.int32).copy()
  rows = np.repeat(np.arange(batch), max_predictions).reshape(batch, max_predictions)
  chosen = weights > 0
  inputs[rows[chosen], positions[chosen]] = replacement[chosen]
  return {'input_ids': inputs, 'masked_positions': positions, 'masked_ids': labels,
          'masked_weights': weights}
