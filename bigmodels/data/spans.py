"""T5 span corruption (Raffel et al. 2020, section 3.1.4): noise spans of the input are replaced
by sentinel tokens and the target lists each sentinel followed by the tokens it replaced.

Each packed document (segment) of a row is corrupted as an example of its own: its noise
tokens are `round(length * noise_density)`, split into `round(noise / mean_span_length)` spans
of random lengths (at least one token each) that alternate with random-length runs of kept
tokens, as in T5's `random_spans_noise_mask`; its sentinels count from 0 and its target ends
with the end-of-text token. Packed targets carry the segment ids of their inputs, so the model
never sees one document from another.
"""

from __future__ import annotations

import math

import numpy as np


def random_partition(total: int, parts: int, rng: np.random.Generator) -> np.ndarray:
  """`parts` positive integers summing to `total`, uniformly over the compositions."""
  if parts <= 1:
    return np.array([total], np.int64)
  cuts = np.sort(rng.choice(np.arange(1, total), size=parts - 1, replace=False))
  return np.diff(np.concatenate([[0], cuts, [total]]))


def noise_span_lengths(length: int, noise_density: float, mean_span_length: float
                       ) -> tuple[int, int]:
  """(noise tokens, noise spans) of a sequence of `length` tokens."""
  if length < 2:
    return 0, 0
  noise = min(max(int(round(length * noise_density)), 1), length - 1)
  spans = max(1, int(round(noise / mean_span_length)))
  return noise, min(spans, noise, length - noise)


def random_spans_noise_mask(length: int, noise_density: float, mean_span_length: float,
                            rng: np.random.Generator) -> np.ndarray:
  """Boolean [length], True on noise: kept and noise runs alternate, kept first."""
  noise, spans = noise_span_lengths(length, noise_density, mean_span_length)
  if not spans:
    return np.zeros(length, bool)
  noise_runs = random_partition(noise, spans, rng)
  kept_runs = random_partition(length - noise, spans, rng)
  mask = np.zeros(length, bool)
  start = 0
  for kept, noisy in zip(kept_runs, noise_runs):
    start += kept
    mask[start:start + noisy] = True
    start += noisy
  return mask


def target_length(seq_len: int, noise_density: float, mean_span_length: float) -> int:
  """A target row length that holds the corrupted spans of a full row, with room for the
  extra sentinels and end tokens of a few packed documents."""
  noise = seq_len * noise_density
  return int(math.ceil(noise + noise / mean_span_length)) + 8


def corrupt_rows(tokens: np.ndarray, segment_ids: np.ndarray, rng: np.random.Generator, *,
                 noise_density: float, mean_span_length: float, target_len: int,
                 sentinel_start: int, max_sentinels: int, bos_id: int, eos_id: int,
                 pad_id: int = 0) -> dict[str, np.ndarray]:
  """Span-corrupts packed rows [batch, len] (documents numbered from 1 by segment_ids).

  Sentinel k of a document is id `sentinel_start - k` (T5 counts down from the top of the
  vocabulary). A document whose target does not fit in the rest of the row's `target_len` is
  left out of that row (its input becomes padding). Returns int32 arrays:
  inputs, input_segments [batch, len]; decoder_inputs (targets shifted right behind `bos_id`
  per document), targets, target_segments [batch, target_len]; and float32 target_weights.
  """
  batch, length = tokens.shape
  out = {'inputs': np.full((batch, length), pad_id, np.int32),
         'input_segments': np.zeros((batch, length), np.int32),
         'decoder_inputs': np.full((batch, target_len), pad_id, np.int32),
         'targets': np.full((batch, target_len), pad_id, np.int32),
         'target_segments': np.zeros((batch, target_len), np.int32)}
  for row in range(batch):
    in_pos = tgt_pos = 0
    segments = segment_ids[row]
    for segment in np.unique(segments[segments > 0]):
      piece = tokens[row, segments == segment]
      noise = random_spans_noise_mask(len(piece), noise_density, mean_span_length, rng)
      starts = noise & ~np.concatenate([[False], noise[:-1]])
      span_index = np.cumsum(starts) - 1  # Sentinel number of each noise token.
      if span_index.max(initial=-1) >= max_sentinels:
        raise ValueError(f'{span_index.max() + 1} noise spans exceed the {max_sentinels} '
                         'sentinels: raise data.num_sentinels')
      sentinel = sentinel_start - span_index
      keep = ~noise | starts
      inputs = np.where(starts, sentinel, piece)[keep]
      target = np.concatenate([np.where(starts, sentinel, 0)[:, None],
                               piece[:, None]], axis=1)
      # Per noise token: its sentinel first when it starts a span, then the token itself.
      target = [t for i in np.flatnonzero(noise) for t in
                ((target[i, 0], target[i, 1]) if starts[i] else (target[i, 1],))]
      target = np.array(target + [eos_id], np.int32)
      if tgt_pos + len(target) > target_len:
        continue
      out['inputs'][row, in_pos:in_pos + len(inputs)] = inputs
      out['input_segments'][row, in_pos:in_pos + len(inputs)] = segment
      out['targets'][row, tgt_pos:tgt_pos + len(target)] = target
      out['decoder_inputs'][row, tgt_pos:tgt_pos + len(target)] = np.concatenate(
          [[bos_id], target[:-1]])
      out['target_segments'][row, tgt_pos:tgt_pos + len(target)] = segment
      in_pos += len(inputs)
      tgt_pos += len(target)
  out['target_weights'] = (out['target_segments'] > 0).astype(np.float32)
  return out
