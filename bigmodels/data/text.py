"""Text data for language-model tasks: documents -> tokenizer -> packed rows, all cached.

Sources, chosen by the data config:
- `data.tfds_name` set: a TFDS catalog dataset (needs TensorFlow and internet to prepare);
- otherwise `data.corpus_dir`, any local folder of .txt/.md/.rst files, prepared through the
  `text_corpus` TFDS builder; left empty it is the Python documentation that Debian's
  `python3-doc` package installs.

Everything derived is cached in the data cache (bigmodels.data.cache: `$BIGMODELS_CACHE`, else
`~/.cache/bigmodels`) beside the prepared TFDS data: the tokenizer
(`tokenizer-bpe-V.model`) and the packed token rows (`packed-V-L-SPLIT.npz`). Each file is
written under a temporary name and renamed, so an interrupted preparation is never mistaken for a
finished one.
"""

from __future__ import annotations

import dataclasses
import glob
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from bigmodels import atomic
from bigmodels.data import catalog, packing, tokenizer as tokenizer_lib
from bigmodels.data.cache import data_cache_dir, exclusive
from bigmodels.errors import UserError

PYTHON_DOCS_GLOB = '/usr/share/doc/python3*/html/_sources'


@dataclasses.dataclass
class TextData:
  """Packed train/eval rows ({'tokens', 'segment_ids'}, int32 [rows, seq_len]) and the tokenizer."""

  train: dict[str, np.ndarray]
  eval: dict[str, np.ndarray]
  tokenizer: tokenizer_lib.Tokenizer
  prepared_dir: Path
  description: str


def python_docs_dir() -> str:
  """The reStructuredText sources of the Python documentation from Debian's python3-doc."""
  found = sorted(p for p in glob.glob(PYTHON_DOCS_GLOB) if os.path.isdir(p))
  if not found:
    raise UserError('the default corpus (Python docs) is missing: run `apt-get install -y '
                    'python3-doc`, or set --config.data.corpus_dir to a folder of text files')
  return found[-1]


def _local_documents(data_config: Any, cache_dir: str) -> tuple[dict[str, Any], Path, str]:
  from bigmodels.data.text_corpus import TextCorpus, corpus_config
  corpus_dir = data_config.corpus_dir or python_docs_dir()
  catalog.quiet_tfds()
  builder = catalog.prepare_local_builder(
      lambda: TextCorpus(config=corpus_config(corpus_dir, data_config.heldout_percent),
                         data_dir=os.path.join(cache_dir, 'tfds'), file_format='array_record'),
      f'the text corpus {corpus_dir}')
  sources = builder.as_data_source()
  return ({'train': sources['train'], 'eval': sources['heldout']}, Path(builder.data_dir),
          f'local corpus {corpus_dir}')


def _catalog_documents(data_config: Any, cache_dir: str) -> tuple[dict[str, Any], Path, str]:
  builder = catalog.prepare_catalog_builder(data_config, cache_dir, 'a local corpus')
  splits = builder.as_data_source()
  return ({'train': splits[data_config.tfds_train_split],
           'eval': splits[data_config.tfds_eval_split]}, Path(builder.data_dir),
          f'TFDS {data_config.tfds_name}')


def _texts(source: Any, key: str, limit: int) -> list[str]:
  n = len(source) if limit <= 0 else min(limit, len(source))
  texts = []
  for i in range(n):
    value = source[i][key]
    texts.append(value.decode('utf-8') if isinstance(value, bytes) else str(value))
  return texts


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  atomic.write_bytes_atomic(path, buffer.getvalue())


def _load_or_pack(path: Path, texts: list[str], tok: tokenizer_lib.Tokenizer,
                  seq_len: int, bos_per_document: bool) -> dict[str, np.ndarray]:
  if path.exists():
    with np.load(path, allow_pickle=False) as f:
      return {k: f[k] for k in f.files}
  rows = packing.pack_documents(tok.encode_batch(texts), seq_len, tok.cls_id, tok.sep_id,
                                tok.pad_id, bos_per_document=bos_per_document)
  _atomic_savez(path, rows)
  return rows


def _corpus(data_config: Any) -> tuple[dict[str, Any], Path, str]:
  cache_dir = str(data_cache_dir())
  if data_config.tfds_name:
    return _catalog_documents(data_config, cache_dir)
  return _local_documents(data_config, cache_dir)


def _variant(data_config: Any, vocab_size: int) -> str:
  # Everything that changes the derived files is in their names, so none is reused wrongly.
  key, limit = data_config.text_key, data_config.max_documents
  return f'{vocab_size}' + (f'-docs{limit}' if limit > 0 else '') + (
      f'-{key}' if key != 'text' else '')


def _tokenizer(data_config: Any, vocab_size: int, sources: dict[str, Any], prepared_dir: Path
               ) -> tuple[tokenizer_lib.Tokenizer, list[str] | None]:
  """The cached tokenizer, else one trained on the train documents (also returned)."""
  train_texts = None
  tok_path = prepared_dir / f'tokenizer-bpe-{_variant(data_config, vocab_size)}.model'
  if not tok_path.exists():
    train_texts = _texts(sources['train'], data_config.text_key, data_config.max_documents)
    print(f'training the BPE tokenizer ({vocab_size} tokens) on {len(train_texts)} documents '
          '(first use only)', flush=True)
  return tokenizer_lib.load_or_train(tok_path, train_texts or [], vocab_size), train_texts


def corpus_tokenizer(data_config: Any, vocab_size: int) -> tokenizer_lib.Tokenizer:
  """The tokenizer `prepare_text_data` uses for this corpus and size (trained on first use)."""
  sources, prepared_dir, _ = _corpus(data_config)
  with exclusive(f'text-{prepared_dir}'):
    return _tokenizer(data_config, vocab_size, sources, prepared_dir)[0]


def prepare_text_data(data_config: Any, vocab_size: int,
                      bos_per_document: bool = False, tokenizer: Any = None) -> TextData:
  """Prepares (or loads from cache) the tokenizer and packed rows for both splits.

  `bos_per_document` packs rows for causal language models (see packing.pack_documents).
  A given `tokenizer` (e.g. a Hugging Face checkpoint's) replaces the corpus's own.
  """
  sources, prepared_dir, description = _corpus(data_config)
  with exclusive(f'text-{prepared_dir}'):  # Concurrent runs build the files once.
    return _prepare_rows(data_config, vocab_size, bos_per_document, sources, prepared_dir,
                         description, tokenizer)


def _prepare_rows(data_config: Any, vocab_size: int, bos_per_document: bool,
                  sources: dict[str, Any], prepared_dir: Path, description: str,
                  tokenizer: Any) -> TextData:
  key, limit = data_config.text_key, data_config.max_documents
  variant = _variant(data_config, vocab_size)
  if tokenizer is None:
    tok, train_texts = _tokenizer(data_config, vocab_size, sources, prepared_dir)
  else:
    tok, train_texts = tokenizer, None
    variant = f'hf-{tokenizer.fingerprint}' + variant[len(str(vocab_size)):]
  seq_len = data_config.seq_len
  rows = {}
  for split in ('train', 'eval'):
    layout = 'bos-' if bos_per_document else ''
    path = prepared_dir / f'packed-{layout}{variant}-{seq_len}-{split}.npz'
    texts = []
    if not path.exists():
      texts = train_texts if split == 'train' and train_texts is not None else _texts(
          sources[split], key, limit)
      print(f'packing {len(texts)} {split} documents into rows of {seq_len} tokens (first '
            'use only)', flush=True)
    rows[split] = _load_or_pack(path, texts, tok, seq_len, bos_per_document)
  return TextData(rows['train'], rows['eval'], tok, prepared_dir, description)
