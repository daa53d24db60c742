"""The shared data cache, located by the environment (never by a config file).

Prepared datasets, tokenizers and packed rows are derived data shared by every run on a
machine, so they live in one cache folder: `$BIGMODELS_CACHE`, else `~/.cache/bigmodels`.
Config files cannot point it elsewhere: a run writes only into its workdir and this cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
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


@contextlib.contextmanager
def exclusive(name: str) -> Iterator[None]:
  """Holds an exclusive lock named `name` in the cache (an flock on locks/NAME.lock), so
  processes that prepare the same derived data at once (a parallel sweep on a fresh cache)
  build it once, one after the other, instead of racing on its files."""
  lock_dir = data_cache_dir() / 'locks'
  lock_dir.mkdir(exist_ok=True)
  safe = re.sub(r'[^A-Za-z0-9_.-]+', '_', name).strip('_')[-120:]
  with open(lock_dir / f'{safe}.lock', 'w') as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(handle, fcntl.LOCK_UN)
