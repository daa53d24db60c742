"""Pack tokenized documents into fixed-length rows with no padding between documents."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pack_documents(documents: Sequence[Sequence[int]], seq_len: int, cls_id: int, sep_id: int,
                   pad_id: int = 0, bos_per_document: bool = False) -> dict[str, np.ndarray]:
  """Concatenates documents into rows `[CLS] doc_a [SEP] doc_b [SEP] ...` of length seq_len.

  With `bos_per_document` (causal language models) every document starts with its own [CLS]
  instead, `[CLS] doc_a [SEP] [CLS] doc_b [SEP] ...`, and the stream is cut every seq_len
  tokens: [CLS] is the beginning-of-text token a prompt starts with, [SEP] the end of text.

  The token stream (each document followed by [SEP]) is cut every `seq_len - 1` tokens and each
  row starts with [CLS], so only the final row holds padding. A document longer than a row
  continues in the next one. `segment_ids` number the documents within a row from 1 ([CLS]
  belongs to the first), and 0 marks padding; the model's attention mask uses them so that packed
  documents never attend to each other.

  Returns {'tokens': int32 [rows, seq_len], 'segment_ids': int32 [rows, seq_len]}.
  """
  if seq_len < 3:
    raise ValueError(f'seq_len must be at least 3, got {seq_len}')
  pieces = []
  for doc in documents:
    if len(doc):
      if bos_per_document:
        pieces.append(np.array([cls_id], dtype=np.int32))
      pieces.append(np.asarray(doc, dtype=np.int32))
      pieces.append(np.array([sep_id], dtype=np.int32))
  if not pieces:
    raise ValueError('no non-empty documents to pack')
  stream = np.concatenate(pieces)
  # Document index of every stream position: it increases right after each [SEP].
  doc_index = np.concatenate([[0], np.cumsum(stream[:-1] == sep_id)]).astype(np.int32)
  body = seq_len if bos_per_document else seq_len - 1
  rows = -(-len(stream) // body)
  pad = rows * body - len(stream)
  stream = np.concatenate([stream, np.full(pad, pad_id, np.int32)]).reshape(rows, body)
  doc_index = np.concatenate([doc_index, np.full(pad, -1, np.int32)]).reshape(rows, body)

  # Renumber documents per row from 1; padding is 0.
  first = doc_index[:, :1]
  segments = np.where(doc_index >= 0, doc_index - first + 1, 0).astype(np.int32)
  if bos_per_document:
    return {'tokens': stream, 'segment_ids': segments}
  # The row's leading [CLS] joins its first document.
  tokens = np.concatenate([np.full((rows, 1), cls_id, np.int32), stream], axis=1)
  segments = np.concatenate([np.ones((rows, 1), np.int32), segments], axis=1).astype(np.int32)
  return {'tokens': tokens, 'segment_ids': segments}
