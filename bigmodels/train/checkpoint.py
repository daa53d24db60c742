"""Orbax checkpoints of the train state and the data iterator position.

Orbax writes each step into a temporary folder and renames it when complete, so a run killed
mid-save never leaves a checkpoint that looks finished. Saves are asynchronous: training goes
on while the previous step's arrays are written. Restoring tries the newest checkpoint first
and falls back to older ones if it is unreadable.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

from bigmodels.errors import UserError


class Checkpointer:
  """Saves and restores {'state': TrainState, 'data': iterator state} under DIR/checkpoints."""

  def __init__(self, directory: str | Path, max_to_keep: int = 3, async_save: bool = True):
    self.directory = Path(directory).absolute()
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=async_save,
                                           cleanup_tmp_directories=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_names=('state', 'data'))

  @staticmethod
  def has_checkpoints(directory: str | Path) -> bool:
    """Whether `directory` holds any step folder (without creating it)."""
    directory = Path(directory)
    return directory.is_dir() and any(p.name.isdigit() for p in directory.iterdir())

  def steps(self) -> list[int]:
    """Steps of all complete checkpoints, oldest first."""
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: Any, data_state: dict, force: bool = True) -> None:
    """Starts saving `step` (asynchronously); the previous save is finished first."""
    with self._disk_errors(step):
      self._manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)), force=force)

  @contextlib.contextmanager
  def _disk_errors(self, step: int | None):
    """Turns a full disk or quota during a save into a UserError that says what is safe."""
    try:
      yield
    except Exception as e:  # Async save errors surface wrapped in various types.
      full = any(isinstance(x, OSError) and x.errno in (errno.ENOSPC, errno.EDQUOT)
                 for x in (e, e.__cause__, e.__context__))
      if not full and 'No space left on device' not in str(e):
        raise
      what = f'checkpoint {step}' if step is not None else 'a checkpoint'
      kept = self.steps()
      raise UserError(f'disk full while saving {what} in {self.directory}: free space and '
                      're-run the same command; the complete checkpoints '
                      f'{kept or "(none)"} are intact') from None

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
    """Restores `step` into the shapes, dtypes and shardings of `abstract_state`."""
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
    return restored.state, restored.data

  def restore_newest_readable(self, abstract_state: Any, warn=logging.warning
                              ) -> tuple[int, Any, dict] | None:
    """Restores the newest checkpoint that reads cleanly, warning about each one skipped.

    Returns (step, state, data_state), or None if there are no checkpoints. Raises UserError if
    checkpoints exist but none is readable.
    """
    steps = self.steps()
    unreadable = []
    for step in reversed(steps):
      try:
        state, data_state = self.restore(step, abstract_state)
      except Exception as e:  # Orbax/tensorstore raise many types for damaged files.
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        warn(f'checkpoint {self.directory / str(step)} is unreadable ({reason}); '
             'trying the previous one')
        unreadable.append(step)
        continue
      if unreadable:
        moved = self._move_steps_aside(unreadable)
        warn(f'resuming from older checkpoint at step {step}: the unreadable newer ones were '
             f'moved to {moved}')
      return step, state, data_state
    if steps:
      raise UserError(f'no readable checkpoint in {self.directory} (steps {steps}): re-run with '
                      '--config.allow_fresh_start=True to move them aside and start over, or '
                      'use a new --workdir')
    return None

  def _aside_path(self) -> Path:
    return self.directory.with_name(f'{self.directory.name}.unreadable-{int(time.time())}')

  def _move_steps_aside(self, steps: list[int]) -> Path:
    target = self._aside_path()
    target.mkdir(parents=True, exist_ok=True)
    for step in steps:
      shutil.move(str(self.directory / str(step)), target / str(step))
    self._manager.reload()
    return target

  def move_aside(self) -> Path:
    """Renames the checkpoint folder to checkpoints.unreadable-TIME; returns the new path."""
    target = self._aside_path()
    self._manager.close()
    shutil.move(str(self.directory), target)
    return target

  def wait(self) -> None:
    """Blocks until pending asynchronous saves are complete."""
    with self._disk_errors(None):
      self._manager.wait_until_finished()

  def close(self) -> None:
    """Finishes pending saves and releases resources."""
    try:
      self.wait()
    finally:
      self._manager.close()
