"""Orbax checkpoints of the train state and the data iterator position.

Orbax writes each step into a temporary folder and renames it when complete, so a run killed
mid-save never leaves a checkpoint that looks finished. Saves are asynchronous: training goes
on while the previous step's arrays are written.
"""

from __future__ import annotations

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

  def latest_step(self) -> int | None:
    """The newest complete checkpoint's step, or None."""
    return self._manager.latest_step()

  def save(self, step: int, state: Any, data_state: dict, force: bool = True) -> None:
    """Starts saving `step` (asynchronously); the previous save is finished first."""
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)), force=force)

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
    """Restores `step` into the shapes, dtypes and shardings of `abstract_state`."""
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
    except (ValueError, KeyError) as e:
      first = str(e).splitlines()[0] if str(e) else type(e).__name__
      raise UserError(f'checkpoint {self.directory}/{step} does not match this config '
                      f'({first[:300]}): use the config it was trained with or a new '
                      '--workdir') from None
    return restored.state, restored.data

  def wait(self) -> None:
    """Blocks until pending asynchronous saves are complete."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Finishes pending saves and releases resources."""
    self._manager.wait_until_finished()
    self._manager.close()

