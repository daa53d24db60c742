"""`experiments.main` with test-only faults injected inside orbax, chosen by the environment.

  SOAK_PAUSE_SAVE=1 python -m tests.fault_main --config=... --workdir=...
  DISK_FULL_AT_STEP=6 python -m tests.fault_main --config=... --workdir=...

SOAK_PAUSE_SAVE=1: the first checkpoint save of the process stops after orbax has written its
files into the temporary folder and before it renames that folder into place (orbax's commit
callback); it prints SAVE_PAUSED_MARKER and waits, so a test can kill the process inside the
save deterministically. DISK_FULL_AT_STEP=N: saving checkpoint N raises ENOSPC, as a full disk
would. Without these variables this is experiments.main.
"""

from __future__ import annotations

import errno
import os
import threading
import time

SAVE_PAUSED_MARKER = 'soak: checkpoint save paused before its commit'


def _pause_first_save() -> None:
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


def _fill_disk_at(full_step: int) -> None:
  import orbax.checkpoint as ocp
  real_save = ocp.CheckpointManager.save

  def save(self, step, *args, **kwargs):
    if step == full_step:
      raise OSError(errno.ENOSPC, 'No space left on device')
    return real_save(self, step, *args, **kwargs)

  ocp.CheckpointManager.save = save


if __name__ == '__main__':
  if os.environ.get('SOAK_PAUSE_SAVE') == '1':
    _pause_first_save()
  if os.environ.get('DISK_FULL_AT_STEP'):
    _fill_disk_at(int(os.environ['DISK_FULL_AT_STEP']))
  from experiments import cli, main
  cli.run(main.main)
