"""A sweep's results: one row per run (final and best held-out metrics, wall time, status),
mean ± std over seeds, as CSV and Markdown, and PNG plots.

Everything is read back from the run folders (metrics.jsonl, sweep_status.json), so the
table can be rebuilt at any time (`experiments.sweep --collect`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bigmodels import atomic
from bigmodels.sweeps.runs import Run, read_status
from bigmodels.train import plots
from bigmodels.train.reporting import format_duration

SEED_KEY = 'seed'
NOT_REPORTED = {'step', 'split'}


def lower_is_better(metric: str) -> bool:
  """Loss, perplexity and error rates improve downwards; everything else upwards."""
  return any(word in metric for word in ('loss', 'perplexity', 'error'))


def _eval_rows(workdir: Path) -> list[dict[str, Any]]:
  try:
    lines = (workdir / 'metrics.jsonl').read_text().splitlines()
  except OSError:
    return []
  return [r for r in map(json.loads, filter(str.strip, lines)) if r.get('split') == 'eval']


def run_result(run: Run) -> dict[str, Any]:
  """One run's row: overrides, status, wall time, final step, final / best eval metrics and
  the command that trained it (as `python -m ...`)."""
  status = read_status(run.workdir)
  evals = _eval_rows(run.workdir)
  command = status.get('command')
  row: dict[str, Any] = {'run': run.name, **run.overrides, 'status': status['status'],
                         'wall_s': status.get('wall_s'), 'step': None,
                         'command': shlex.join(['python', *command[1:]]) if command else None}
  if status['status'] == 'failed':
    row['error'] = status.get('error', '')
  if not evals:
    return row
  final = evals[-1]
  row['step'] = final['step']
  for name, value in final.items():
    if name in NOT_REPORTED or '/' in name or not isinstance(value, (int, float)):
      continue
    values = [r[name] for r in evals if isinstance(r.get(name), (int, float))]
    row[f'final_{name}'] = value
    row[f'best_{name}'] = (min if lower_is_better(name) else max)(values)
  return row


def metric_names(rows: Sequence[dict[str, Any]]) -> list[str]:
  """Metrics that some run reports (loss first)."""
  names = {k[len('final_'):] for r in rows for k in r if k.startswith('final_')}
  return sorted(names, key=lambda k: (k != 'loss', k))


def group_over_seeds(rows: Sequence[dict[str, Any]], axes: Sequence[str]
                     ) -> list[dict[str, Any]]:
  """Runs that differ only in their seed, pooled: mean and std (ddof=1) of each final
  metric over the finished runs, and how many seeds there were."""
  keys = [a for a in axes if a != SEED_KEY]
  groups: dict[tuple, list[dict[str, Any]]] = {}
  for row in rows:
    groups.setdefault(tuple(repr(row.get(k)) for k in keys), []).append(row)
  out = []
  for members in groups.values():
    done = [r for r in members if r['status'] == 'done']
    group: dict[str, Any] = {k: members[0].get(k) for k in keys}
    group['seeds'] = len(done)
    group['of'] = len(members)
    for name in metric_names(done):
      values = [r[f'final_{name}'] for r in done if r.get(f'final_{name}') is not None]
      if values:
        group[f'{name}_mean'] = float(np.mean(values))
        group[f'{name}_std'] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    out.append(group)
  return out


def _fmt(value: Any) -> str:
  if value is None:
    return ''
  if isinstance(value, float):
    return f'{value:.4g}' if math.isfinite(value) else str(value)
  return str(value)


def _markdown_table(header: list[str], lines: list[list[str]]) -> list[str]:
  return (['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)] +
          ['| ' + ' | '.join(cells) + ' |' for cells in lines])


def write_tables(rows: list[dict[str, Any]], axes: Sequence[str], outdir: Path,
                 title: str) -> tuple[Path, Path]:
  """results.csv (one row per run, every number) and results.md (runs, then mean ± std over
  seeds when seed is an axis)."""
  metrics = metric_names(rows)
  columns = ['run', *axes, 'status', 'step', 'wall_s',
             *[f'{p}_{m}' for m in metrics for p in ('final', 'best')], 'error']
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, columns, extrasaction='ignore')
  writer.writeheader()
  for row in rows:
    writer.writerow({k: row.get(k, '') if row.get(k) is not None else '' for k in columns})
  csv_path = outdir / 'results.csv'
  atomic.write_text_atomic(csv_path, buffer.getvalue())

  lines = [f'# {title}', '', f'{len(rows)} runs; final = last held-out evaluation, best = '
           'best held-out evaluation of the run.', '']
  header = ['run', 'status', 'step', 'wall time', *[f'final {m}' for m in metrics],
            *[f'best {m}' for m in metrics]]
  cells = [[r['run'], r['status'] + (f': {r["error"].removeprefix("error: ")}'
                                     if r.get('error') else ''),
            _fmt(r['step']), format_duration(r['wall_s']) if r.get('wall_s') else '',
            *[_fmt(r.get(f'final_{m}')) for m in metrics],
            *[_fmt(r.get(f'best_{m}')) for m in metrics]] for r in rows]
  lines += _markdown_table(header, cells)
  if SEED_KEY in axes:
    groups = group_over_seeds(rows, axes)
    keys = [a for a in axes if a != SEED_KEY]
    lines += ['', '## Mean ± std over seeds (finished runs)', '']
    header = [*keys, 'seeds', *metrics]
    cells = [[_fmt(g[k]) for k in keys] + [f'{g["seeds"]}/{g["of"]}'] +
             [f'{g[f"{m}_mean"]:.4g} ± {g[f"{m}_std"]:.2g}' if f'{m}_mean' in g else ''
              for m in metrics] for g in groups]
    lines += _markdown_table(header, cells)
  md_path = outdir / 'results.md'
  atomic.write_text_atomic(md_path, '\n'.join(lines) + '\n')
  return csv_path, md_path


def _numeric(values: Sequence[Any]) -> bool:
  return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def plot_metric_vs_axes(rows: list[dict[str, Any]], axes: Sequence[str], metric: str,
                        output: Path) -> Path | None:
  """One panel per swept axis (seed aside): the final metric's mean over seeds against the
  axis value, with std error bars, one line per combination of the other axes."""
  swept = [a for a in axes if a != SEED_KEY]
  if not swept:
    return None
  groups = [g for g in group_over_seeds(rows, axes) if f'{metric}_mean' in g]
  if not groups:
    return None
  fig, axs = plots.new_figure(1, len(swept), figsize=(5.5 * len(swept), 3.8), squeeze=False)
  for ax, key in zip(axs[0], swept):
    others = [a for a in swept if a != key]
    lines: dict[tuple, list[dict[str, Any]]] = {}
    for g in groups:
      lines.setdefault(tuple((o, g[o]) for o in others), []).append(g)
    for other_values, members in lines.items():
      xs = [m[key] for m in members]
      order = sorted(range(len(xs)), key=lambda i: xs[i] if _numeric(xs) else str(xs[i]))
      x = [xs[i] if _numeric(xs) else str(xs[i]) for i in order]
      ax.errorbar(x, [members[i][f'{metric}_mean'] for i in order],
                  yerr=[members[i][f'{metric}_std'] for i in order], marker='o', capsize=3,
                  label=', '.join(f'{o.rsplit(".", 1)[-1]}={v}' for o, v in other_values)
                  or None)
    ax.set_xlabel(key)
    ax.set_ylabel(f'final {metric}')
    ax.grid(alpha=0.3)
    if others:
      ax.legend(fontsize=8)
  fig.suptitle(f'final held-out {metric} (mean ± std over seeds)')
  fig.tight_layout()
  return plots.save_figure(fig, output)


def write_results(runs: Sequence[Run], outdir: Path, title: str,
                  metric: str | None = None) -> dict[str, Any]:
  """Writes results.csv, results.md, the metric-vs-axis PNG and the overlaid curves PNG;
  returns {'rows', 'csv', 'markdown', 'plots'}."""
  axes = list(dict.fromkeys(k for run in runs for k in run.overrides))
  rows = [run_result(run) for run in runs]
  csv_path, md_path = write_tables(rows, axes, outdir, title)
  metrics = metric_names(rows)
  chosen = metric if metric in metrics else next((m for m in metrics if m != 'loss'), 'loss')
  made = []
  if metrics:
    made.append(plot_metric_vs_axes(rows, axes, chosen, outdir / f'sweep_{chosen}.png'))
    with_metrics = {r.name: r.workdir / 'metrics.jsonl' for r in runs
                    if (r.workdir / 'metrics.jsonl').exists()}
    curves = ['loss'] + ([chosen] if chosen != 'loss' else [])
    made.append(plots.plot_runs(with_metrics, curves, outdir / 'curves.png'))
  return {'rows': rows, 'csv': csv_path, 'markdown': md_path,
          'plots': [p for p in made if p is not None]}
