"""Dynamic BERT masking statistics."""

import numpy as np
import pytest

from bigmodels.data import masking

NUM_SPECIAL, MASK_ID, VOCAB = 5, 4, 1000


def _rows(batch=256, length=128, seed=0):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(NUM_SPECIAL, VOCAB, (batch, length)).astype(np.int32)
  tokens[:, 0] = 2  # [CLS]
  tokens[:, 60] = 3  # [SEP] between two documents
  tokens[-8:, 100:] = 0  # some padded rows
  return tokens


def _mask(tokens, seed=1, rate=0.15):
  return masking.mask_tokens(tokens, np.random.default_rng(seed), mask_rate=rate,
                             max_predictions=masking.num_predictions(tokens.shape[1], rate),
                             mask_id=MASK_ID, vocab_size=VOCAB, num_special=NUM_SPECIAL)


def test_mask_rate_and_never_special_tokens():
  tokens = _rows()
  out = _mask(tokens)
  chosen = out['masked_weights'] > 0
  maskable = (tokens >= NUM_SPECIAL).sum(axis=1)
  np.testing.assert_allclose(chosen.sum(axis=1), np.rint(maskable * 0.15), atol=1)
  rows = np.nonzero(chosen)[0]
  positions = out['masked_positions'][chosen]
  assert (tokens[rows, positions] >= NUM_SPECIAL).all()
  assert (out['masked_ids'][chosen] == tokens[rows, positions]).all()
  # Unchosen positions keep their token; special tokens are untouched everywhere.
  changed = out['input_ids'] != tokens
  assert not changed[tokens < NUM_SPECIAL].any()
  chosen_map = np.zeros(tokens.shape, bool)
  chosen_map[rows, positions] = True
  assert not changed[~chosen_map].any() and changed.any()


def test_80_10_10_rule():
  tokens = _rows(batch=1024)
  out = _mask(tokens)
  chosen = out['masked_weights'] > 0
  rows = np.nonzero(chosen)[0]
  new = out['input_ids'][rows, out['masked_positions'][chosen]]
  old = out['masked_ids'][chosen]
  n = chosen.sum()
  frac_mask = (new == MASK_ID).mean()
  frac_same = (new == old).mean()
  frac_random = 1 - frac_mask - frac_same
  assert n > 15000
  assert frac_mask == pytest.approx(0.8, abs=0.015)
  assert frac_same == pytest.approx(0.1, abs=0.015)  # includes ~0.1% random == original
  assert frac_random == pytest.approx(0.1, abs=0.015)
  assert (new[(new != MASK_ID)] >= NUM_SPECIAL).all()


def test_positions_sorted_and_unique_and_deterministic():
  tokens = _rows(batch=32)
  a, b, c = _mask(tokens, seed=7), _mask(tokens, seed=7), _mask(tokens, seed=8)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert not np.array_equal(a['masked_positions'], c['masked_positions'])
  for pos, w in zip(a['masked_positions'], a['masked_weights']):
    used = pos[w > 0]
    assert (np.diff(used) > 0).all()


def test_row_of_padding_gets_no_predictions():
  tokens = np.zeros((2, 16), np.int32)
  tokens[1, 1:] = 50
  out = _mask(tokens, rate=0.2)
  assert out['masked_weights'][0].sum() == 0
  assert out['masked_weights'][1].sum() == 3  # rint(15 * 0.2)
