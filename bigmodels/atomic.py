"""Atomic file writes: a reader (or a re-run after a crash) sees the old file or the new one,
never a half-written one."""

from __future__ import annotations

import os
from pathlib import Path


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
  """Writes `data` to a temporary file beside `path`, then renames it over `path`."""
  path = Path(path)
  tmp = path.with_name(f'.{path.name}.tmp{os.getpid()}')
  try:
    with open(tmp, 'wb') as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    if tmp.exists():
      tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
  """UTF-8 text version of write_bytes_atomic."""
  write_bytes_atomic(path, text.encode('utf-8'))
