"""Packing documents into fixed-length rows."""

import numpy as np
import pytest

from bigmodels.data import packing

CLS, SEP, PAD = 2, 3, 0


def test_packing_concatenates_without_padding_and_numbers_segments():
  docs = [list(range(10, 15)), list(range(20, 23)), list(range(30, 42))]
  rows = packing.pack_documents(docs, seq_len=8, cls_id=CLS, sep_id=SEP, pad_id=PAD)
  tokens, segments = rows['tokens'], rows['segment_ids']
  assert tokens.shape == segments.shape and tokens.shape[1] == 8
  assert (tokens[:, 0] == CLS).all()
  stream = tokens[:, 1:].reshape(-1)
  expected = docs[0] + [SEP] + docs[1] + [SEP] + docs[2] + [SEP]
  np.testing.assert_array_equal(stream[:len(expected)], expected)
  assert (stream[len(expected):] == PAD).all()
  assert len(stream) - len(expected) < 7  # only the last row is padded
  np.testing.assert_array_equal(tokens[0], [CLS, 10, 11, 12, 13, 14, SEP, 20])
  np.testing.assert_array_equal(segments[0], [1, 1, 1, 1, 1, 1, 1, 2])
  # Second row: the rest of doc 1 (segment 1), then doc 2 (segment 2).
  np.testing.assert_array_equal(tokens[1], [CLS, 21, 22, SEP, 30, 31, 32, 33])
  np.testing.assert_array_equal(segments[1], [1, 1, 1, 1, 2, 2, 2, 2])
  assert (segments[tokens == PAD] == 0).all()
  assert (segments[tokens != PAD] > 0).all()


def test_packing_rejects_empty_input():
  with pytest.raises(ValueError):
    packing.pack_documents([[], []], seq_len=8, cls_id=CLS, sep_id=SEP)
