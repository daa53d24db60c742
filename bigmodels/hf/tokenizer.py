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

  def encode_masked(self, text: str) -> list[int]:
    """Token ids of a text with [MASK] placeholders, each one mask id."""
    ids: list[int] = []
    for i, chunk in enumerate(text.split('[MASK]')):
      if i:
        ids.append(self.mask_id)
      if chunk.strip():
        ids.extend(self.encode(chunk.strip()))
    return ids

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


def from_sentencepiece(model_proto: bytes, with_cls_sep: bool) -> Any:
  """Our SentencePiece BPE model as a `tokenizers.Tokenizer` (for tokenizer.json): the same
  vocabulary and ids, merges recovered from the pieces (a piece made of two pieces merges at
  its own rank), SentencePiece's own normalisation table, '▁' word boundaries. `with_cls_sep`
  adds [CLS] ... [SEP] around each text, as BERT expects."""
  from sentencepiece import sentencepiece_model_pb2
  from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
  from tokenizers import pre_tokenizers, processors
  from bigmodels.data import tokenizer as ours
  proto = sentencepiece_model_pb2.ModelProto()
  proto.ParseFromString(model_proto)
  vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
  normal = {piece for piece, i in vocab.items() if i >= ours.NUM_SPECIAL}
  merges = sorted((vocab[piece], vocab[piece[:k]], vocab[piece[k:]], piece[:k], piece[k:])
                  for piece in normal for k in range(1, len(piece))
                  if piece[:k] in normal and piece[k:] in normal)
  tok = Tokenizer(models.BPE(vocab=vocab, merges=[(a, b) for *_, a, b in merges],
                             unk_token=ours.UNK, fuse_unk=True))
  spec = proto.normalizer_spec
  steps = [normalizers.Precompiled(spec.precompiled_charsmap)] if spec.precompiled_charsmap else []
  if spec.remove_extra_whitespaces:
    steps += [normalizers.Strip(), normalizers.Replace(Regex(' {2,}'), ' ')]
  tok.normalizer = normalizers.Sequence(steps)
  tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement='▁', prepend_scheme='always')
  tok.decoder = decoders.Metaspace(replacement='▁', prepend_scheme='always')
  tok.add_special_tokens([AddedToken(t, special=True) for t in ours.SPECIAL_TOKENS])
  if with_cls_sep:
    tok.post_processor = processors.TemplateProcessing(
        single=f'{ours.CLS} $A {ours.SEP}', pair=f'{ours.CLS} $A {ours.SEP} $B:1 {ours.SEP}:1',
        special_tokens=[(ours.CLS, ours.CLS_ID), (ours.SEP, ours.SEP_ID)])
  return tok


def write_sentencepiece_as_hf(model_proto: bytes, folder: Path, with_cls_sep: bool,
                              max_len: int) -> None:
  """tokenizer.json and tokenizer_config.json (a PreTrainedTokenizerFast with our special
  tokens) of our SentencePiece tokenizer, into `folder`."""
  from bigmodels import atomic
  from bigmodels.data import tokenizer as ours
  tok = from_sentencepiece(model_proto, with_cls_sep)
  atomic.write_text_atomic(folder / 'tokenizer.json', tok.to_str())
  config = dict(tokenizer_class='PreTrainedTokenizerFast', model_max_length=max_len,
                pad_token=ours.PAD, unk_token=ours.UNK, cls_token=ours.CLS,
                sep_token=ours.SEP, mask_token=ours.MASK)
  if not with_cls_sep:
    config.update(bos_token=ours.CLS, eos_token=ours.SEP)
  atomic.write_text_atomic(folder / 'tokenizer_config.json', json.dumps(config, indent=2) + '\n')
