"""Declaring a sweep: axes, their products and zips, and one name per run.

A config file declares a sweep beside `get_config()`:

  def sweep(arg=None):
    return sweeps.product(sweeps.axis('data.mask_rate', [0.15, 0.4]),
                          sweeps.axis('seed', [0, 1]))

Each run is a dict of config overrides ({'data.mask_rate': 0.4, 'seed': 1}); its folder is
named after them ('mask_rate=0.4,seed=1').
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
from collections.abc import Sequence
from typing import Any

from bigmodels.errors import UserError

Overrides = dict[str, Any]


def axis(key: str, values: Sequence[Any]) -> list[Overrides]:
  """One swept config key: a run per value."""
  if not values:
    raise ValueError(f'axis {key!r} has no values')
  return [{key: v} for v in values]


def product(*axes: list[Overrides]) -> list[Overrides]:
  """Every combination of the axes (the last one varies fastest)."""
  return [dict(item for part in combo for item in part.items())
          for combo in itertools.product(*axes)]


def zip_axes(*axes: list[Overrides]) -> list[Overrides]:
  """Axes of equal length taken together: run i takes value i of every axis."""
  lengths = {len(a) for a in axes}
  if len(lengths) > 1:
    raise ValueError(f'zip_axes needs axes of one length, got {sorted(lengths)}')
  return [dict(item for part in parts for item in part.items()) for parts in zip(*axes)]


def format_value(value: Any) -> str:
  """A value as --config.KEY=VALUE and ml_collections parse it back (tuples as (a, b))."""
  if isinstance(value, float):
    return repr(value)
  if isinstance(value, (list, tuple)):
    return '(' + ', '.join(format_value(v) for v in value) + (',)' if len(value) == 1 else ')')
  return str(value)


def _short_keys(runs: list[Overrides]) -> dict[str, str]:
  keys = list(dict.fromkeys(k for run in runs for k in run))
  last = [k.rsplit('.', 1)[-1] for k in keys]
  return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def run_names(runs: list[Overrides]) -> list[str]:
  """Folder names: 'key=value' pairs joined by ',' (last key part unless it is ambiguous)."""
  short = _short_keys(runs)
  names = []
  for run in runs:
    parts = [f'{short[k]}={_name_value(v)}' for k, v in run.items()]
    names.append(','.join(parts) or 'default')
  return names


def _name_value(value: Any) -> str:
  text = f'{value:g}' if isinstance(value, float) else format_value(value)
  return text.replace('/', '-').replace(' ', '').replace("'", '')


def load_sweep(config_file: str, arg: str | None) -> list[Overrides]:
  """The config file's `sweep(arg)` runs; UserError when it has none, returns none, or two
  runs would share a folder."""
  spec = importlib.util.spec_from_file_location('_sweep_config', config_file)
  if spec is None or spec.loader is None:
    raise UserError(f'cannot read {config_file}: pass a config file path')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  fn = getattr(module, 'sweep', None)
  if fn is None:
    raise UserError(f'{config_file} defines no sweep(): add one beside get_config() '
                    '(see bigmodels/sweeps/spec.py)')
  runs = fn(arg) if inspect.signature(fn).parameters else fn()
  if not runs or not all(isinstance(r, dict) for r in runs):
    raise UserError(f'{config_file}: sweep() must return a non-empty list of override dicts')
  names = run_names(runs)
  twice = sorted({n for n in names if names.count(n) > 1})
  if twice:
    raise UserError(f'{config_file}: sweep() lists the same run more than once: {twice[0]}')
  return runs
