"""Subword tokenizer trained from the corpus with SentencePiece (BPE), cached as its model file.

SentencePiece training is deterministic: the same texts and vocab size give byte-identical
model files. (Hugging Face `tokenizers`' WordPiece trainer was measured to differ run to run on
this corpus, by 26 of 8192 tokens, because its frequency ties are broken by hash order.) The model
file is a protobuf: loading it never runs code.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm

from bigmodels import atomic

PAD, UNK, CLS, SEP, MASK = '[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)  # ids 0..4, in this order.
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(len(SPECIAL_TOKENS))
NUM_SPECIAL = len(SPECIAL_TOKENS)


class Tokenizer:
  """Uncased subword tokenizer; ids 0-4 are [PAD] [UNK] [CLS] [SEP] [MASK].

  The special ids are also attributes (as bigmodels.hf.tokenizer.HFTokenizer has them, with a
  checkpoint's own ids), so the tasks work with either tokenizer.
  """

  pad_id, unk_id, cls_id, sep_id, mask_id = PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID
  num_special = NUM_SPECIAL  # Random replacement tokens are drawn from ids >= this.

  def __init__(self, model_proto: bytes):
    self.model_proto = model_proto
    self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
    pieces = [self._sp.id_to_piece(i) for i in range(len(SPECIAL_TOKENS))]
    if tuple(pieces) != SPECIAL_TOKENS:
      raise ValueError(f'tokenizer special tokens {pieces} differ from {SPECIAL_TOKENS}')

  @property
  def vocab_size(self) -> int:
    return self._sp.get_piece_size()

  @property
  def fingerprint(self) -> str:
    """Short hash of the model file (names cached encodings)."""
    import hashlib
    return hashlib.sha1(self.model_proto).hexdigest()[:12]

  def encode(self, text: str) -> list[int]:
    """Token ids of one text (no special tokens added)."""
    return self._sp.encode(text)

  def encode_masked(self, text: str) -> list[int]:
    """Token ids of a text with [MASK] placeholders, each one id (MASK_ID) standing for one
    whole token: the text around each [MASK] is encoded separately, so no stray word-start
    piece lands in front of it."""
    ids: list[int] = []
    for i, chunk in enumerate(text.split(MASK)):
      if i:
        ids.append(MASK_ID)
      if chunk.strip():
        ids.extend(self._sp.encode(chunk.strip()))
    return ids

  def encode_batch(self, texts: list[str]) -> list[list[int]]:
    """Token ids of many texts, encoded in parallel."""
    return self._sp.encode(texts, num_threads=os.cpu_count() or 1)

  def decode(self, ids: list[int]) -> str:
    """Text of token ids."""
    return self._sp.decode(ids)

  def id_to_piece(self, token_id: int) -> str:
    """The subword string of one id."""
    return self._sp.id_to_piece(token_id)


def _paragraphs(texts: Iterable[str]) -> Iterable[str]:
  for text in texts:
    for line in text.split('\n'):
      if line.strip():
        yield line


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
  """Trains a lowercasing BPE tokenizer of at most vocab_size pieces (fewer if the corpus is
  too small to fill it)."""
  model = _BytesWriter()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(_paragraphs(texts)), model_writer=model, vocab_size=vocab_size,
      model_type='bpe', pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, pad_piece=PAD, unk_piece=UNK,
      user_defined_symbols=[CLS, SEP, MASK], normalization_rule_name='nmt_nfkc_cf',
      character_coverage=0.9995, max_sentence_length=1 << 20, hard_vocab_limit=False,
      num_threads=1, minloglevel=2)
  return Tokenizer(model.getvalue())


class _BytesWriter:
  def __init__(self):
    self._chunks: list[bytes] = []

  def write(self, data: bytes) -> None:
    self._chunks.append(data)

  def getvalue(self) -> bytes:
    return b''.join(self._chunks)


def load_or_train(path: str | os.PathLike, texts: Iterable[str], vocab_size: int) -> Tokenizer:
  """Loads the tokenizer cached at `path`, or trains one and writes it there atomically.

  The file is written under a temporary name and renamed, so a half-written tokenizer never
  exists under the final name.
  """
  path = Path(path)
  if path.exists():
    return Tokenizer(path.read_bytes())
  tok = train_tokenizer(texts, vocab_size)
  atomic.write_bytes_atomic(path, tok.model_proto)
  return tok
