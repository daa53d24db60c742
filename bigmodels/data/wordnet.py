"""WordNet glosses labelled with their lexicographer file: a 45-class English text task that
installs offline (`apt-get install wordnet-base`, WordNet 3.0, Princeton's WordNet licence).

Each synset line of /usr/share/wordnet/data.{noun,verb,adj,adv} carries its lexicographer file
number (the category, e.g. 05 = noun.animal, 38 = verb.motion) and, after ' | ', its gloss: a
definition and often example sentences. The task is to read the gloss and name the category.
117,659 synsets; the held-out split is fixed by a hash of each synset's part of speech and
offset (stable across machines, Python versions and file order).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from bigmodels.errors import UserError

DEFAULT_DIR = '/usr/share/wordnet'
POS_FILES = ('noun', 'verb', 'adj', 'adv')

# The lexicographer files of WordNet 3.0 by number (lexnames(5WN)).
LEXNAMES = (
    'adj.all', 'adj.pert', 'adv.all', 'noun.Tops', 'noun.act', 'noun.animal', 'noun.artifact',
    'noun.attribute', 'noun.body', 'noun.cognition', 'noun.communication', 'noun.event',
    'noun.feeling', 'noun.food', 'noun.group', 'noun.location', 'noun.motive', 'noun.object',
    'noun.person', 'noun.phenomenon', 'noun.plant', 'noun.possession', 'noun.process',
    'noun.quantity', 'noun.relation', 'noun.shape', 'noun.state', 'noun.substance',
    'noun.time', 'verb.body', 'verb.change', 'verb.cognition', 'verb.communication',
    'verb.competition', 'verb.consumption', 'verb.contact', 'verb.creation', 'verb.emotion',
    'verb.motion', 'verb.perception', 'verb.possession', 'verb.social', 'verb.stative',
    'verb.weather', 'adj.ppl')


def read_glosses(wordnet_dir: str = '') -> list[tuple[str, str, int]]:
  """(synset key 'pos:offset', gloss, lexicographer file number) of every synset."""
  folder = Path(wordnet_dir or DEFAULT_DIR)
  missing = [f'data.{p}' for p in POS_FILES if not (folder / f'data.{p}').is_file()]
  if missing:
    raise UserError(f'WordNet data files {", ".join(missing)} are missing in {folder}: run '
                    '`apt-get install -y wordnet-base`, or set --config.data.wordnet_dir')
  examples = []
  for pos in POS_FILES:
    with open(folder / f'data.{pos}', encoding='utf-8', errors='replace') as f:
      for line in f:
        if line.startswith('  ') or ' | ' not in line:
          continue  # The licence header.
        fields, gloss = line.split(' | ', 1)
        offset, lex_file = fields.split(' ', 2)[:2]
        examples.append((f'{pos}:{offset}', gloss.strip(), int(lex_file)))
  return examples


def is_heldout(key: str, heldout_percent: float) -> bool:
  """Whether a synset belongs to the held-out split (a hash of its key)."""
  bucket = int.from_bytes(hashlib.sha1(key.encode()).digest()[:4], 'big') % 10000
  return bucket < heldout_percent * 100


def encode_examples(examples: list[tuple[str, str, int]], encode_batch, seq_len: int,
                    cls_id: int, sep_id: int, pad_id: int) -> dict[str, np.ndarray]:
  """`[CLS] gloss [SEP]` rows (truncated, padded) with segment ids (1 text, 0 padding) and
  int32 labels."""
  ids = encode_batch([gloss for _, gloss, _ in examples])
  tokens = np.full((len(examples), seq_len), pad_id, np.int32)
  for i, row in enumerate(ids):
    row = [cls_id] + list(row[:seq_len - 2]) + [sep_id]
    tokens[i, :len(row)] = row
  return {'tokens': tokens, 'segment_ids': (tokens != pad_id).astype(np.int32),
          'label': np.array([label for _, _, label in examples], np.int32)}


def split_examples(examples: list[tuple[str, str, int]], heldout_percent: float
                   ) -> dict[str, list[tuple[str, str, int]]]:
  """{'train': ..., 'eval': ...} by the key hash, each in file order."""
  out = {'train': [], 'eval': []}
  for example in examples:
    out['eval' if is_heldout(example[0], heldout_percent) else 'train'].append(example)
  return out


def wordnet_dir_label(wordnet_dir: str) -> str:
  """A short description of where the data comes from."""
  return f'WordNet glosses in {os.path.abspath(wordnet_dir or DEFAULT_DIR)}'
