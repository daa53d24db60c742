"""WordPiece tokenizer trained from the corpus with Hugging Face `tokenizers`, cached as JSON."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import tokenizers
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

PAD, UNK, CLS, SEP, MASK = '[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)  # ids 0..4, in this order.


def train_wordpiece(texts: Iterable[str], vocab_size: int) -> tokenizers.Tokenizer:
  """Trains an uncased BERT-style WordPiece tokenizer; the same texts give the same vocab."""
  tok = tokenizers.Tokenizer(models.WordPiece(unk_token=UNK))
  tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True,
                                              clean_text=True, handle_chinese_chars=True)
  tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
  tok.decoder = decoders.WordPiece()
  trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                      min_frequency=2, show_progress=False)
  tok.train_from_iterator(texts, trainer=trainer)
  return tok


def load_or_train(path: str | os.PathLike, texts: Iterable[str],
                  vocab_size: int) -> tokenizers.Tokenizer:
  """Loads the tokenizer cached at `path`, or trains one and writes it there atomically.

  The JSON file is the whole tokenizer (no pickles, no code); a half-written file never exists
  under the final name because it is written to a temporary name and renamed.
  """
  path = Path(path)
  if path.exists():
    return tokenizers.Tokenizer.from_file(str(path))
  tok = train_wordpiece(texts, vocab_size)
  tmp = path.with_name(f'.{path.name}.tmp{os.getpid()}')
  tok.save(str(tmp))
  os.replace(tmp, path)
  return tok


def special_ids(tok: tokenizers.Tokenizer) -> dict[str, int]:
  """Ids of the special tokens, checked against the fixed layout the pipeline relies on."""
  ids = {name: tok.token_to_id(name) for name in SPECIAL_TOKENS}
  expected = {name: i for i, name in enumerate(SPECIAL_TOKENS)}
  if ids != expected:
    raise ValueError(f'tokenizer special token ids {ids} differ from {expected}')
  return ids
