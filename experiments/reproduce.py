"""Reproduce a published results table: python -m experiments.reproduce fashion_mnist.

Trains each row that `configs/NAME.py:reproduce_rows()` lists (one `experiments.main` run per
row, in WORKDIR/ROW, so re-running resumes unfinished rows and skips finished ones), then writes
WORKDIR/results.md (our test accuracy beside the published figure, wall time, command) and
WORKDIR/results.png (a bar chart).

  python -m experiments.reproduce fashion_mnist --workdir=runs/reproduce         # CPU rows
  python -m experiments.reproduce fashion_mnist --gpu_rows --rows=resnet18,wrn   # on a GPU
  python -m experiments.reproduce fashion_mnist --report_only                    # table only

Rows marked as needing a GPU are skipped unless --gpu_rows is given; --time_limit_minutes
stops a row gracefully (SIGTERM: checkpoint saved) and reports it as partial.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from absl import app, flags

from bigmodels import atomic
from bigmodels.train import reporting

WORKDIR = flags.DEFINE_string('workdir', None, 'Folder for the rows\' runs and the results '
                              '(default: runs/reproduce_NAME).')
ROWS = flags.DEFINE_list('rows', None, 'Rows to train (default: every row; GPU rows only with '
                         '--gpu_rows).')
GPU_ROWS = flags.DEFINE_bool('gpu_rows', False, 'Also train the rows that need a GPU.')
RUNLOCAL = flags.DEFINE_bool('runlocal', False, 'Smoke test: tiny models, a few steps.')
OVERRIDES = flags.DEFINE_multi_string('set', [], 'KEY=VALUE config override for every row, '
                                      'e.g. --set=optimizer.learning_rate=1e-3.')
TIME_LIMIT = flags.DEFINE_float('time_limit_minutes', 0.0, 'Stop each row after this long '
                                '(0 = no limit); it is reported as partial.')
REPORT_ONLY = flags.DEFINE_bool('report_only', False, 'Train nothing; write the table from '
                                'the runs already in the workdir.')


def _config_arg(row: dict) -> str:
  return row['arg'] + (',runlocal=1' if RUNLOCAL.value else '')


def _command(experiment: str, row: dict, rowdir: Path) -> list[str]:
  return ['python', '-m', 'experiments.main',
          f'--config=configs/{experiment}.py:{_config_arg(row)}', f'--workdir={rowdir}',
          *[f'--config.{o}' for o in OVERRIDES.value]]


def _stream(pipe, prefix: str, seen: dict) -> None:
  for line in pipe:
    if line.startswith('devices: '):
      seen['device'] = line.split(':', 1)[1].split(' in ')[0].strip()  # e.g. '1 x cpu'
    print(f'{prefix}{line}', end='', flush=True)


def train_row(experiment: str, row: dict, rowdir: Path) -> int:
  """Runs (or resumes) one row's training; returns its exit code. Wall time of runs that
  trained is accumulated in ROWDIR/reproduce.json."""
  command = _command(experiment, row, rowdir)
  print(f'== {row["name"]}: {" ".join(command)}', flush=True)
  metrics = rowdir / 'metrics.jsonl'
  rows_before = len(metrics.read_text().splitlines()) if metrics.exists() else 0
  started = time.perf_counter()
  process = subprocess.Popen([sys.executable, *command[1:]], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, bufsize=1)
  seen: dict[str, str] = {}
  reader = threading.Thread(target=_stream, args=(process.stdout, f'[{row["name"]}] ', seen))
  reader.start()
  try:
    process.wait(timeout=TIME_LIMIT.value * 60 or None)
  except subprocess.TimeoutExpired:
    print(f'== {row["name"]}: time limit reached, stopping it (checkpoint kept)', flush=True)
    process.send_signal(signal.SIGTERM)
    process.wait()
  except KeyboardInterrupt:
    process.send_signal(signal.SIGTERM)
    process.wait()
    raise
  reader.join()
  elapsed = time.perf_counter() - started
  rows_after = len(metrics.read_text().splitlines()) if metrics.exists() else 0
  record_path = rowdir / 'reproduce.json'
  record = json.loads(record_path.read_text()) if record_path.exists() else {'wall_s': 0.0}
  if rows_after > rows_before:  # It trained (a finished row re-run adds nothing).
    record['wall_s'] += elapsed
    record['device'] = seen.get('device', record.get('device', '?'))
    record['command'] = ' '.join(command)
    reporting.write_json_atomic(record_path, record)
  return process.returncode


def row_result(module: Any, row: dict, rowdir: Path) -> dict:
  """What a row's workdir says: final or partial test accuracy, epochs, wall time."""
  result = dict(row, status='not run', accuracy=None, epochs=None, total_epochs=None,
                wall_s=None, device=None, command=None)
  metrics, config_path = rowdir / 'metrics.jsonl', rowdir / 'config.json'
  if not metrics.exists() or not config_path.exists():
    return result
  config = json.loads(config_path.read_text())
  evals = [r for r in map(json.loads, metrics.read_text().splitlines())
           if r.get('split') == 'eval']
  if not evals:
    return result
  last = evals[-1]
  examples = getattr(module, 'TRAIN_EXAMPLES', None)
  if examples:
    result['epochs'] = last['step'] * config['batch_size'] / examples
    result['total_epochs'] = config['total_steps'] * config['batch_size'] / examples
  result.update(accuracy=last['accuracy'], step=last['step'],
                total_steps=config['total_steps'],
                status='done' if last['step'] >= config['total_steps'] else 'partial')
  record_path = rowdir / 'reproduce.json'
  if record_path.exists():
    result.update(json.loads(record_path.read_text()))
  return result


def _ours(r: dict) -> str:
  if r['status'] == 'not run':
    return 'needs a GPU: not run here' if r['needs_gpu'] else 'not run'
  text = f'{r["accuracy"]:.3f}'
  if r['status'] == 'partial':
    done = f'epoch {r["epochs"]:.1f} of {r["total_epochs"]:.0f}' if r['epochs'] else \
        f'step {r["step"]} of {r["total_steps"]}'
    text += f' (partial: {done})'
  return text


def write_report(experiment: str, results: list[dict], workdir: Path) -> Path:
  """results.md (Markdown table) and results.png (bar chart) in the workdir."""
  lines = [f'# {experiment}: test accuracy, ours vs published', '',
           '| Model | Published row | Published | Ours | Δ | Epochs | Wall time | Device | '
           'Command |', '|---|---|---|---|---|---|---|---|---|']
  for r in results:
    delta = (f'{r["accuracy"] - r["published_accuracy"]:+.3f}'
             if r['accuracy'] is not None else '')
    epochs = f'{r["epochs"]:.1f}' if r['epochs'] is not None else ''
    wall = reporting.format_duration(r['wall_s']) if r['wall_s'] else ''
    command = f'`{r["command"]}`' if r['command'] else ''
    lines.append(f'| {r["name"]} | {r["published"]} | {r["published_accuracy"]:.3f} | '
                 f'{_ours(r)} | {delta} | {epochs} | {wall} | {r["device"] or ""} | '
                 f'{command} |')
  if RUNLOCAL.value:
    lines += ['', '(--runlocal smoke run: tiny models and a few steps; the figures mean '
              'nothing.)']
  markdown = workdir / 'results.md'
  atomic.write_text_atomic(markdown, '\n'.join(lines) + '\n')
  _bar_chart(experiment, results, workdir / 'results.png')
  return markdown


def _bar_chart(experiment: str, results: list[dict], output: Path) -> None:
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  import numpy as np
  names = [r['name'] for r in results]
  x = np.arange(len(names))
  fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(names)), 4))
  ax.bar(x - 0.2, [r['published_accuracy'] for r in results], 0.4, label='published')
  ours = [r['accuracy'] if r['accuracy'] is not None else 0.0 for r in results]
  bars = ax.bar(x + 0.2, ours, 0.4, label='ours')
  for bar, r in zip(bars, results):
    if r['status'] == 'partial':
      bar.set_hatch('//')
    label = 'not run' if r['accuracy'] is None else f'{r["accuracy"]:.3f}'
    ax.annotate(label, (bar.get_x() + bar.get_width() / 2, max(bar.get_height(), 0.8)),
                ha='center', va='bottom', fontsize=8)
  low = min([a for a in ours if a > 0] + [r['published_accuracy'] for r in results]) - 0.05
  ax.set_ylim(max(0.0, low), 1.0)
  ax.set_xticks(x, names)
  ax.set_ylabel('test accuracy')
  ax.set_title(f'{experiment}: ours vs published (hatched: partial run)')
  ax.legend(loc='lower right')
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=100)
  plt.close(fig)
  atomic.write_bytes_atomic(output, buffer.getvalue())


def main(argv: list[str]) -> None:
  if len(argv) != 2:
    raise app.UsageError('give one experiment name, e.g. `python -m experiments.reproduce '
                         'fashion_mnist`')
  experiment = argv[1]
  try:
    module = importlib.import_module(f'configs.{experiment}')
  except ModuleNotFoundError:
    sys.exit(f'error: no configs/{experiment}.py: name a config file in configs/')
  if not hasattr(module, 'reproduce_rows'):
    sys.exit(f'error: configs/{experiment}.py defines no reproduce_rows(): nothing to reproduce')
  rows = module.reproduce_rows()
  known = [r['name'] for r in rows]
  unknown = sorted(set(ROWS.value or []) - set(known))
  if unknown:
    sys.exit(f'error: unknown rows {unknown}: choose from {", ".join(known)}')
  workdir = Path(WORKDIR.value or os.path.join('runs', f'reproduce_{experiment}'))
  workdir.mkdir(parents=True, exist_ok=True)
  failed = []
  if not REPORT_ONLY.value:
    for row in rows:
      if ROWS.value and row['name'] not in ROWS.value:
        continue
      if row['needs_gpu'] and not GPU_ROWS.value:
        print(f'== {row["name"]}: needs a GPU; skipped (add --gpu_rows to train it)')
        continue
      code = train_row(experiment, row, workdir / row['name'])
      if code not in (0, 75):  # 75: stopped by the time limit with a checkpoint.
        failed.append(row['name'])
  results = [row_result(module, row, workdir / row['name']) for row in rows]
  print(write_report(experiment, results, workdir).read_text())
  if failed:
    sys.exit(f'error: rows {failed} failed; see their output above, fix, and re-run to '
             'resume them')


if __name__ == '__main__':
  app.run(main)
