"""Table and figure helpers shared by the reproductions."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bigmodels.train.reporting import format_duration


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
  """A Markdown table as lines."""
  return (['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)] +
          ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows])


def mean_std(values: Sequence[float], scale: float = 1.0, digits: int = 1) -> str:
  """'84.2 ± 0.3 (n=3)' of the values times `scale`; '' when there are none."""
  values = [v * scale for v in values if v is not None]
  if not values:
    return ''
  if len(values) == 1:
    return f'{values[0]:.{digits}f} (n=1)'
  return (f'{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f} '
          f'(n={len(values)})')


def finished(row: dict[str, Any]) -> bool:
  """Whether a run row (bigmodels.sweeps.aggregate.run_result) trained to its end."""
  return row.get('status') == 'done'


def state_note(row: dict[str, Any]) -> str:
  """'' for a finished run, else its state (partial at step N, failed, not run)."""
  if finished(row):
    return ''
  if row.get('step'):
    return f' (partial: step {row["step"]})'
  status = row.get('status', 'pending')
  return ' (not run)' if status == 'pending' else f' ({status})'


def wall(rows: Sequence[dict[str, Any]]) -> str:
  """Total wall time of the runs."""
  total = sum(r.get('wall_s') or 0.0 for r in rows)
  return format_duration(total) if total else ''


def device_of(rundir: Path) -> str:
  """'1 x cpu' from a run's train.log ('devices: ...' line), '' if unknown."""
  try:
    lines = (rundir / 'train.log').read_text(errors='replace').splitlines()
  except OSError:
    return ''
  found = [l.split(':', 1)[1].split(' in ')[0].strip() for l in lines
           if l.startswith('devices: ')]
  return found[-1] if found else ''


def read_config(rundir: Path) -> dict[str, Any]:
  """The run's config.json ({} if absent)."""
  try:
    return json.loads((rundir / 'config.json').read_text())
  except (OSError, ValueError):
    return {}
