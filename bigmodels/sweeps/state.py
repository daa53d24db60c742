"""A sweep folder: its runs' commands and the record (sweep.json) that `--collect` reads.

  DIR/sweep.json        config, shared overrides, launcher, runs and their Slurm job ids
  DIR/RUN/              one run folder per override set (checkpoints, metrics, train.log)
  DIR/results.{csv,md}  the table; DIR/*.png the plots
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bigmodels import atomic
from bigmodels.errors import UserError
from bigmodels.sweeps import spec
from bigmodels.sweeps.runs import Run, command

RECORD = 'sweep.json'


def check_overrides(config: Any, runs: Sequence[spec.Overrides]) -> None:
  """UserError (one line) for a swept key the config lacks or a value of the wrong type."""
  for overrides in runs:
    trial = copy.deepcopy(config)
    for key, value in overrides.items():
      parent, _, leaf = key.rpartition('.')
      node = trial
      try:
        for part in filter(None, parent.split('.')):
          node = node[part]
        if leaf not in node:
          raise KeyError(key)
        with node.unlocked():
          node[leaf] = value
      except (KeyError, AttributeError, TypeError) as e:
        kind = 'has no key' if isinstance(e, (KeyError, AttributeError)) else 'cannot take'
        raise UserError(f'sweep(): the config {kind} {key}={value!r} ({type(e).__name__}: '
                        f'{str(e).splitlines()[0] if str(e) else key}); fix the sweep or the '
                        'config') from e


def build_runs(workdir: Path, config_spec: str, shared: Sequence[str],
               runs: Sequence[spec.Overrides], repo_root: Path,
               extra_flags: Sequence[str] = ()) -> list[Run]:
  """One Run per override set: `python -m experiments.main` on the config (absolute path, so
  the command runs from anywhere), in DIR/NAME, shared overrides first."""
  config_file, sep, arg = config_spec.partition(':')
  config = str(Path(config_file).resolve()) + (sep + arg if sep else '')
  out = []
  for name, overrides in zip(spec.run_names(list(runs)), runs):
    rundir = (workdir / name).resolve()
    out.append(Run(name, dict(overrides), rundir,
                   command('experiments.main', config, rundir, shared, overrides, extra_flags),
                   repo_root.resolve()))
  return out


def save(workdir: Path, runs: Sequence[Run], **fields: Any) -> None:
  """Writes DIR/sweep.json (runs, commands and `fields`: config, launcher, jobs...)."""
  record = {**fields, 'runs': [{'name': r.name, 'overrides': r.overrides,
                                'command': list(r.command), 'cwd': str(r.cwd)} for r in runs]}
  atomic.write_text_atomic(workdir / RECORD, json.dumps(record, indent=1) + '\n')


def load(workdir: Path) -> tuple[dict[str, Any], list[Run]]:
  """(record, runs) of a sweep folder; UserError when DIR holds no sweep."""
  path = workdir / RECORD
  if not path.exists():
    raise UserError(f'{path} does not exist: --collect needs the --workdir of a sweep that '
                    'was started')
  record = json.loads(path.read_text())
  runs = [Run(r['name'], r['overrides'], (workdir / r['name']).resolve(), tuple(r['command']),
              Path(r['cwd'])) for r in record['runs']]
  return record, runs


def check_same_sweep(workdir: Path, config_spec: str) -> None:
  """UserError when DIR already holds a sweep of another config file."""
  path = workdir / RECORD
  if not path.exists():
    return
  before = json.loads(path.read_text()).get('config', '')
  if Path(before.partition(':')[0]).resolve() != Path(config_spec.partition(':')[0]).resolve():
    raise UserError(f'{workdir} holds a sweep of {before}: choose another --workdir')
