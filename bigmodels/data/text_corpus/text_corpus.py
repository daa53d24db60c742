"""`text_corpus`: a TFDS builder that cleans a local folder of documents into prose.

Each .txt/.md/.rst/.rst.txt file is one document. Documents are split deterministically into
'train' and 'heldout' by a hash of their path relative to the corpus root, so a document never
appears in both. Features are `tfds.features.Tensor` strings written as array_record, which needs
no TensorFlow to write or to read (`builder.as_data_source()`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import os
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from bigmodels.data import prose
from bigmodels.errors import UserError

SUFFIXES = ('.txt', '.md', '.rst')
# Bump when the cleaning changes, so prepared data from older code is not reused.
CLEANER_VERSION = 4


@dataclasses.dataclass
class CorpusConfig(tfds.core.BuilderConfig):
  """Which folder to read and how many percent of its documents to hold out."""

  corpus_dir: str = ''
  heldout_percent: float = 5.0


def list_documents(corpus_dir: str) -> list[Path]:
  """All document files under corpus_dir, sorted; raises UserError if there are none."""
  root = Path(corpus_dir)
  if not root.is_dir():
    raise UserError(f'corpus folder {corpus_dir!r} does not exist: set --config.data.corpus_dir '
                    'to a folder of .txt/.md/.rst files')
  files = sorted(p for p in root.rglob('*') if p.is_file() and p.name.endswith(SUFFIXES))
  if not files:
    raise UserError(f'corpus folder {corpus_dir!r} holds no .txt, .md or .rst files: add some or '
                    'point --config.data.corpus_dir elsewhere')
  return files


def corpus_config(corpus_dir: str, heldout_percent: float) -> CorpusConfig:
  """A builder config whose name changes whenever the folder's files or the cleaning change."""
  files = list_documents(corpus_dir)
  digest = hashlib.sha256(f'{CLEANER_VERSION}|{heldout_percent}'.encode())
  for path in files:
    stat = path.stat()
    digest.update(f'{path.relative_to(corpus_dir)}|{stat.st_size}|{stat.st_mtime_ns}'.encode())
  slug = ''.join(c if c.isalnum() else '_' for c in Path(corpus_dir).resolve().name)[-24:]
  return CorpusConfig(name=f'{slug or "root"}_{digest.hexdigest()[:12]}',
                      description=f'documents under {corpus_dir}',
                      corpus_dir=str(Path(corpus_dir).resolve()),
                      heldout_percent=heldout_percent)


def is_heldout(relative_path: str, heldout_percent: float) -> bool:
  """Deterministic document-level split: the same path always lands in the same split."""
  bucket = int(hashlib.sha256(relative_path.encode()).hexdigest()[:8], 16) % 10000
  return bucket < heldout_percent * 100


class TextCorpus(tfds.core.GeneratorBasedBuilder):
  """Cleaned prose documents from a local folder, one example per document."""

  VERSION = tfds.core.Version('1.0.0')
  BUILDER_CONFIGS = []  # Made per folder by corpus_config(); see __init__.

  def __init__(self, *, config: CorpusConfig, **kwargs):
    super().__init__(config=config, **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            'path': tfds.features.Tensor(shape=(), dtype=np.str_),
            'text': tfds.features.Tensor(shape=(), dtype=np.str_),
        }),
        description='Local documents cleaned into prose (titles, paragraphs, list items).')

  def _split_generators(self, dl_manager):
    del dl_manager
    root = self.builder_config.corpus_dir
    files = list_documents(root)
    processes = min(len(files), os.cpu_count() or 1, 8)
    with multiprocessing.get_context('spawn').Pool(processes) as pool:
      docs = pool.map(prose.clean_file, [(str(f), root) for f in files], chunksize=8)
    docs = [(rel, text) for rel, text in docs if text.strip()]
    if not docs:
      raise UserError(f'corpus folder {root!r} holds no readable prose after cleaning: '
                      'check its files are non-empty text')
    pct = self.builder_config.heldout_percent
    heldout = [d for d in docs if is_heldout(d[0], pct)]
    train = [d for d in docs if not is_heldout(d[0], pct)]
    if not heldout or not train:
      # Tiny corpora: keep at least one document on each side, chosen deterministically.
      ordered = sorted(docs, key=lambda d: hashlib.sha256(d[0].encode()).hexdigest())
      heldout, train = ordered[:1], ordered[1:]
      if not train:
        raise UserError(f'corpus folder {root!r} needs at least 2 non-empty documents '
                        '(one is held out for evaluation)')
    return {'train': self._generate_examples(train),
            'heldout': self._generate_examples(heldout)}

  def _generate_examples(self, docs):
    for rel, text in docs:
      yield rel, {'path': rel, 'text': text}
