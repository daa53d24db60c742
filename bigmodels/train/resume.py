"""Making resumes safe: config compatibility, metric-log rewinding, graceful preemption."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

from bigmodels import atomic
from bigmodels.errors import UserError

# Keys that may change between a run and its resumption: they extend the run, change how it is
# watched or laid out on devices, or tune the optimizer without changing the state's structure
# (e.g. lowering the learning rate after a divergence). init_from only matters at the start.
RESUMABLE_CHANGES = ('total_steps', 'log_every', 'eval_every', 'eval_steps', 'checkpoint_every',
                     'keep_checkpoints', 'allow_fresh_start', 'skip_nonfinite_steps',
                     'init_from', 'init_fresh',
                     'data.num_threads', 'data.prefetch', 'mesh.',
                     'optimizer.learning_rate', 'optimizer.warmup_steps', 'optimizer.schedule',
                     'optimizer.end_lr_fraction', 'optimizer.weight_decay', 'optimizer.b1',
                     'optimizer.b2', 'optimizer.eps')

# Keys added after runs were saved without them, with the value that reproduces those runs: a
# saved run lacking one resumes if the current config keeps that value.
ADDED_KEYS = {'model.layer_norm_eps': 1e-6, 'model.gelu_approximate': True,
              'model.type_vocab_size': 0}


def flatten(tree: Any, prefix: str = '') -> dict[str, Any]:
  """{'a.b': value} for every leaf of a nested mapping (a dict, or a ConfigDict)."""
  if hasattr(tree, 'items'):
    out = {}
    for key, value in tree.items():
      out.update(flatten(value, f'{prefix}{key}.'))
    return out
  return {prefix[:-1]: tree}


def check_compatible(saved_config_path: Path, config: Any) -> None:
  """Raises UserError listing the keys that differ from the run being resumed.

  Only keys in RESUMABLE_CHANGES may differ. A missing or unreadable saved config skips the
  check (the checkpoint restore still verifies shapes).
  """
  try:
    saved = flatten(json.loads(saved_config_path.read_text(encoding='utf-8')))
  except (OSError, ValueError):
    return
  current = flatten(json.loads(config.to_json_best_effort()))
  differing = sorted(
      k for k in set(saved) | set(current)
      if saved.get(k, ADDED_KEYS.get(k)) != current.get(k)
      and not any(k == p or (p.endswith('.') and k.startswith(p)) for p in RESUMABLE_CHANGES))
  if differing:
    shown = ', '.join(f'{k} ({saved.get(k)!r} -> {current.get(k)!r})' for k in differing[:8])
    more = f' and {len(differing) - 8} more' if len(differing) > 8 else ''
    raise UserError(f'this workdir holds a run with a different config: {shown}{more}; use its '
                    'config (see config.json) to resume, or a new --workdir')


def rewind_metrics(path: Path, step: int) -> None:
  """Drops metric rows logged after `step` (written before a crash, about to be redone)."""
  if not path.exists():
    return
  lines = path.read_text(encoding='utf-8').splitlines()
  kept = []
  for line in lines:
    try:
      if json.loads(line)['step'] <= step:
        kept.append(line)
    except (ValueError, KeyError, TypeError):
      continue  # A torn last line from a killed run.
  if len(kept) != len(lines):
    atomic.write_text_atomic(path, ''.join(line + '\n' for line in kept))


class PreemptionGuard:
  """While active, the first SIGTERM or SIGINT is recorded for the loop to act on (finish the
  step, save, exit); a second one ends the process at once."""

  def __init__(self):
    self.signal: int | None = None
    self._previous: dict[int, Any] = {}

  def __enter__(self) -> 'PreemptionGuard':
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum: int, frame: Any) -> None:
    del frame
    if self.signal is not None:
      os._exit(128 + signum)
    self.signal = signum
    print(f'\n{signal.Signals(signum).name} received: finishing this step and saving a '
          'checkpoint (send it again to exit at once)', flush=True)

  @property
  def requested(self) -> bool:
    return self.signal is not None

  def __exit__(self, *exc: Any) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous.clear()
