"""The shared data cache, located by the environment (never by a config file).

Prepared datasets, tokenizers and packed rows are derived data shared by every run on a
machine, so they live in one cache folder: `$BIGMODELS_CACHE`, else `~/.cache/bigmodels`.
Config files cannot point it elsewhere: a run writes only into its workdir and this cache.
"""

from __future__ import annotations

import os
from pathlib import Path

from bigmodels.errors import UserError

ENV_VAR = 'BIGMODELS_CACHE'


def data_cache_dir() -> Path:
  """The cache folder, created if needed; UserError if it cannot be."""
  path = Path(os.environ.get(ENV_VAR) or Path.home() / '.cache' / 'bigmodels')
  try:
    path.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise UserError(f'cannot create the data cache {str(path)!r} ({e.strerror}): set '
                    f'${ENV_VAR} to a writable folder') from None
  return path
