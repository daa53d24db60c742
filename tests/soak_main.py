"""`experiments.main` with a test-only pause inside asynchronous checkpoint saves.

  SOAK_PAUSE_SAVE=1 python -m tests.soak_main --config=... --workdir=...

With SOAK_PAUSE_SAVE=1, the first checkpoint save of the process stops after orbax has
written its files into the temporary folder and before it renames that folder into place
(orbax's commit callback); it prints SAVE_PAUSED_MARKER and waits, so a test can kill the
process inside the save deterministically. Without the variable this is experiments.main.
"""

from __future__ import annotations

import os
import threading
import time

SAVE_PAUSED_MARKER = 'soak: checkpoint save paused before its commit'


def _install_pause() -> None:
  from orbax.checkpoint._src.checkpointers import async_checkpointer
  real_commit = async_checkpointer._on_commit_callback
  paused = threading.Event()

  def paused_commit(*args, **kwargs):
    if not paused.is_set():
      paused.set()
      print(SAVE_PAUSED_MARKER, flush=True)
      time.sleep(600)
    return real_commit(*args, **kwargs)

  async_checkpointer._on_commit_callback = paused_commit


if __name__ == '__main__':
  if os.environ.get('SOAK_PAUSE_SAVE') == '1':
    _install_pause()
  from experiments import cli, main
  cli.run(main.main)
