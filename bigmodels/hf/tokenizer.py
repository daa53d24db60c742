"""The tokenizer of a Hugging Face checkpoint folder, through the `tokenizers` library, with the
interface of bigmodels.data.tokenizer.Tokenizer (encode, encode_batch, decode, special ids).

BERT: `tokenizer.json`, else `vocab.txt` (WordPiece; lower-cased unless tokenizer_config.json
says do_lower_case=false). GPT-2: `tokenizer.json`, else `vocab.json` + `merges.txt` (byte-level
BPE); its one special token <|endoftext|> marks document starts and padding.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from bigmodels.errors import UserError

# Files a run keeps (in WORKDIR/hf_tokenizer/) and an export writes, when present.
FILES = ('tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt',
         'vocab.json', 'merges.txt')
RUN_FOLDER = 'hf_tokenizer'


def _load(folder: Path, kind: str) -> Any:
  from tokenizers import Tokenizer as Backend
  from tokenizers.implementations import BertWordPieceTokenizer, ByteLevelBPETokenizer
  if (folder / 'tokenizer.json').is_file():
    return Backend.from_file(str(folder / 'tokenizer.json'))
  if kind == 'bert' and (folder / 'vocab.txt').is_file():
    options = {}
    if (folder / 'tokenizer_config.json').is_file():
      options = json.loads((folder / 'tokenizer_config.json').read_text(encoding='utf-8'))
    return BertWordPieceTokenizer(str(folder / 'vocab.txt'),
                                  lowercase=options.get('do_lower_case', True))._tokenizer
  if kind == 'gpt2' and (folder / 'vocab.json').is_file() and (folder / 'merges.txt').is_file():
    return ByteLevelBPETokenizer(str(folder / 'vocab.json'),
                                 str(folder / 'merges.txt'))._tokenizer
  wanted = 'vocab.txt' if kind == 'bert' else 'vocab.json and merges.txt'
  raise UserError(f'{folder} has no tokenizer (tokenizer.json or {wanted}): copy the '
                  "checkpoint's tokenizer files into it, or set --config.data.tokenizer")


def has_tokenizer(folder: Path) -> bool:
  """Whether a folder holds Hugging Face tokenizer files."""
  return any((Path(folder) / name).is_file() for name in ('tokenizer.json', 'vocab.txt',
                                                          'vocab.json'))


class HFTokenizer:
  """A checkpoint's tokenizer. Ids as the checkpoint has them: `cls_id`/`sep_id`/`pad_id`/
  `mask_id` ([CLS] [SEP] [PAD] [MASK] for BERT; <|endoftext|> for all of GPT-2's). `kind`
  ('bert' or 'gpt2') is inferred from the vocabulary when not given."""

  def __init__(self, folder: str | Path, kind: str | None = None):
    self.folder = Path(folder)
    if kind is None:
      kind = 'bert' if (self.folder / 'vocab.txt').is_file() else 'gpt2'
      if (self.folder / 'tokenizer.json').is_file():
        vocab = json.loads((self.folder / 'tokenizer.json').read_text(encoding='utf-8'))
        kind = 'bert' if '[CLS]' in vocab.get('model', {}).get('vocab', {}) else 'gpt2'
    self.kind = kind
    self._tok = _load(self.folder, kind)
    ids = {}
    names = (('[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]') if kind == 'bert' else
             ('<|endoftext|>',) * 5)
    for role, name in zip(('pad', 'unk', 'cls', 'sep', 'mask'), names):
      token_id = self._tok.token_to_id(name)
      if token_id is None:
        raise UserError(f'the tokenizer in {self.folder} has no {name} token: use the '
                        "checkpoint's own tokenizer files")
      ids[role] = token_id
    self.pad_id, self.unk_id, self.cls_id = ids['pad'], ids['unk'], ids['cls']
    self.sep_id, self.mask_id = ids['sep'], ids['mask']
    # Random replacement tokens (masked LM) are drawn above the special ids.
    self.num_special = max(ids.values()) + 1 if kind == 'bert' else 0
    self.fingerprint = hashlib.sha1(self._tok.to_str().encode()).hexdigest()[:12]

  @property
  def vocab_size(self) -> int:
    return self._tok.get_vocab_size()

  def encode(self, text: str) -> list[int]:
    """Token ids of one text (no special tokens added)."""
    return self._tok.encode(text, add_special_tokens=False).ids

  def encode_batch(self, texts: list[str]) -> list[list[int]]:
    """Token ids of many texts, encoded in parallel."""
    return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

  def decode(self, ids: list[int]) -> str:
    """Text of token ids."""
    return self._tok.decode(ids)

  def id_to_piece(self, token_id: int) -> str:
    """The token string of one id."""
    return self._tok.id_to_token(token_id)

  def save(self, folder: Path) -> None:
    """Copies the tokenizer files into `folder` (for predict, fine-tuning and export)."""
    from bigmodels import atomic
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES:
      if (self.folder / name).is_file() and self.folder.resolve() != folder.resolve():
        atomic.write_bytes_atomic(folder / name, (self.folder / name).read_bytes())
