"""T5 span corruption: statistics match the config, sentinels in order, nothing lost or leaked."""

import numpy as np
import pytest

from bigmodels.data import packing, spans

TOP = 999  # sentinel 0


def _rows(n_rows=64, seq_len=128, seed=0):
  rng = np.random.default_rng(seed)
  docs = [list(rng.integers(10, 900, rng.integers(20, 300))) for _ in range(n_rows)]
  rows = packing.pack_documents(docs, seq_len, 2, 3, 0)
  return rows['tokens'][:n_rows], rows['segment_ids'][:n_rows]


def _corrupt(tokens, segments, density=0.15, mean=3.0, seed=0):
  return spans.corrupt_rows(tokens, segments, np.random.default_rng(seed), noise_density=density,
                            mean_span_length=mean,
                            target_len=spans.target_length(tokens.shape[1], density, mean),
                            sentinel_start=TOP, max_sentinels=40, bos_id=2, eos_id=3)


def _documents(out, row):
  """Per segment: (input ids, target ids) of one row."""
  docs = {}
  for s in np.unique(out['input_segments'][row][out['input_segments'][row] > 0]):
    docs[s] = (out['inputs'][row][out['input_segments'][row] == s].tolist(),
               out['targets'][row][out['target_segments'][row] == s].tolist())
  return docs


@pytest.mark.parametrize('density,mean', [(0.15, 3.0), (0.3, 5.0)])
def test_noise_density_and_span_lengths_match_the_config(density, mean):
  tokens, segments = _rows()
  out = _corrupt(tokens, segments, density, mean)
  noise = kept = 0
  span_lengths = []
  for row in range(len(tokens)):
    for inputs, targets in _documents(out, row).values():
      is_sentinel = [t > 900 for t in inputs]
      kept += len(inputs) - sum(is_sentinel)
      # Target: sentinel, its span, sentinel, its span, ..., end token.
      body = targets[:-1]
      assert targets[-1] == 3
      starts = [i for i, t in enumerate(body) if t > 900] + [len(body)]
      span_lengths += [b - a - 1 for a, b in zip(starts, starts[1:])]
      noise += len(body) - (len(starts) - 1)
  assert abs(noise / (noise + kept) - density) < 0.01
  assert abs(np.mean(span_lengths) - mean) < 0.35
  assert min(span_lengths) >= 1


def test_sentinels_count_down_in_order_and_the_document_is_recoverable():
  tokens, segments = _rows(16)
  out = _corrupt(tokens, segments)
  for row in range(len(tokens)):
    for s, (inputs, targets) in _documents(out, row).items():
      in_sentinels = [t for t in inputs if t > 900]
      assert in_sentinels == [TOP - k for k in range(len(in_sentinels))]
      assert [t for t in targets if t > 900] == in_sentinels
      # Putting each span back in place of its sentinel gives the original document.
      spans_by_sentinel, current = {}, None
      for t in targets[:-1]:
        if t > 900:
          current = t
          spans_by_sentinel[t] = []
        else:
          spans_by_sentinel[current].append(t)
      restored = [x for t in inputs for x in (spans_by_sentinel[t] if t > 900 else [t])]
      assert restored == tokens[row][segments[row] == s].tolist()


def test_decoder_inputs_are_targets_shifted_within_each_document():
  tokens, segments = _rows(8)
  out = _corrupt(tokens, segments)
  for row in range(8):
    for s in np.unique(out['target_segments'][row][out['target_segments'][row] > 0]):
      where = out['target_segments'][row] == s
      targets, decoder_inputs = out['targets'][row][where], out['decoder_inputs'][row][where]
      assert decoder_inputs[0] == 2 and (decoder_inputs[1:] == targets[:-1]).all()
  np.testing.assert_array_equal(out['target_weights'], out['target_segments'] > 0)


def test_random_partition_covers_the_total_with_positive_parts():
  rng = np.random.default_rng(0)
  for total, parts in [(10, 1), (10, 10), (19, 6)]:
    lengths = spans.random_partition(total, parts, rng)
    assert len(lengths) == parts and lengths.sum() == total and lengths.min() >= 1
