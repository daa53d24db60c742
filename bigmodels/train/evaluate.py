"""Evaluate a run's newest checkpoint under a (possibly different) config: e.g. a model
pre-trained at 40% masking, scored on 15%-masked held-out text."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jax

from bigmodels import atomic
from bigmodels.errors import UserError
from bigmodels.tasks import get_task
from bigmodels.train import init_from, loop, reporting


def evaluate_checkpoint(config: Any, source: str | Path, workdir: str | Path | None = None,
                        log=print) -> dict[str, float]:
  """Loads every parameter of `source`'s newest checkpoint into the config's model (a
  missing or mismatched parameter is a UserError), runs the config's held-out evaluation and
  returns its metrics; with `workdir`, also writes WORKDIR/metrics.jsonl (one eval row at the
  checkpoint's step) and WORKDIR/config.json."""
  started = time.perf_counter()
  task = get_task(config)
  loop.check_config(config, task)
  state_dir = init_from.newest_checkpoint(source)
  data = loop.prepare_task_data(task)
  setup = loop.build(config, task)
  state = setup.init_state()
  with setup.mesh:
    params = init_from.initialize_from(state.params, source, (), log=lambda _: None)
    state = state.replace(params=params)
    metrics, _ = loop.evaluate(setup, state, data.eval)
  step = int(state_dir.parent.name)
  if workdir is not None and jax.process_index() == 0:
    workdir = Path(workdir)
    if workdir.exists() and not workdir.is_dir():
      raise UserError(f'--workdir {str(workdir)!r} is a file: choose a folder')
    workdir.mkdir(parents=True, exist_ok=True)
    reporting.write_json_atomic(workdir / 'config.json',
                                json.loads(config.to_json_best_effort()))
    row = {'step': step, 'split': 'eval', **{k: float(v) for k, v in metrics.items()}}
    atomic.write_text_atomic(workdir / 'metrics.jsonl', json.dumps(row) + '\n')
  shown = ' | '.join(f'{k} {v:.4f}' for k, v in metrics.items() if '/' not in k)
  log(f'eval of {source} @ step {step}: {shown} '
      f'({time.perf_counter() - started:.0f}s)')
  return metrics
