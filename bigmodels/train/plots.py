"""PNG figures of a run: training curves from metrics.jsonl, and confusion matrices.

Files are rendered in memory and renamed into place, so a killed run never leaves a
half-written image.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bigmodels import atomic

NOT_PLOTTED = {'step', 'split', 'perplexity', 'grad_norm', 'param_norm', 'update_norm',
               'learning_rate', 'steps_per_s', 'tokens_per_s', 'examples_per_s'}


def new_figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6.0, 4.0),
               squeeze: bool = True):
  """(figure, axes) drawn without pyplot: no GUI backend is chosen, so plotting from a
  Jupyter kernel leaves its inline figures alone, and no global figure state is kept."""
  from matplotlib.figure import Figure  # Imported lazily: only process 0 draws.
  fig = Figure(figsize=figsize)
  return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def save_figure(fig, output: Path) -> Path:
  """Renders `fig` as a PNG in memory, closes it and moves the file into place atomically."""
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=100)
  atomic.write_bytes_atomic(output, buffer.getvalue())
  return output


def plot_curves(metrics_path: Path, output: Path) -> Path:
  """One panel per scalar metric (loss first) with a line per split; returns the PNG path.

  Per-class metrics (names holding '/') and throughput/health statistics are left out.
  """
  rows = _read_rows(metrics_path)
  names = sorted({k for r in rows for k in r if '/' not in k} - NOT_PLOTTED,
                 key=lambda k: (k != 'loss', k))
  fig, axes = new_figure(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
  for ax, name in zip(axes[0], names):
    for split in ('train', 'eval', 'test'):
      points = [(r['step'], r[name]) for r in rows
                if r['split'] == split and r.get(name) is not None]
      if points:
        ax.plot(*zip(*points), marker='o' if split != 'train' else None, label=split)
    ax.set_xlabel('step')
    ax.set_title(name)
    ax.grid(alpha=0.3)
    ax.legend()
  fig.tight_layout()
  return save_figure(fig, output)


def _read_rows(metrics_path: Path) -> list[dict]:
  rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
  if not rows:
    raise ValueError(f'{metrics_path} holds no rows')
  return rows


def plot_runs(runs: dict[str, Path], metrics: Sequence[str], output: Path,
              log_scale: Sequence[str] = ('perplexity',)) -> Path:
  """Several runs overlaid, one panel per metric: held-out evaluations as lines with markers,
  training as thin dashed lines in the same colour; `runs` maps a legend label to a
  metrics.jsonl path."""
  table = {label: _read_rows(path) for label, path in runs.items()}
  fig, axes = new_figure(1, len(metrics), figsize=(5.5 * len(metrics), 3.8), squeeze=False)
  for ax, name in zip(axes[0], metrics):
    for i, (label, rows) in enumerate(table.items()):
      colour = f'C{i}'
      for split, style in (('train', dict(ls='--', lw=0.8, alpha=0.6)),
                           ('eval', dict(marker='o', ms=3))):
        points = [(r['step'], r[name]) for r in rows
                  if r['split'] == split and r.get(name) is not None]
        if points:
          ax.plot(*zip(*points), color=colour, **style,
                  label=label if split == 'eval' else None)
    ax.set_xlabel('step')
    ax.set_title(name)
    if name in log_scale:
      ax.set_yscale('log')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.tight_layout()
  return save_figure(fig, output)


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], output: Path,
                   title: str = '') -> Path:
  """A confusion matrix (rows: true class, columns: predicted) with counts in the cells."""
  matrix = np.asarray(matrix)
  n = len(class_names)
  size = max(5.0, 0.6 * n + 2)
  fig, ax = new_figure(figsize=(size + 1, size))
  image = ax.imshow(matrix, cmap='Blues')
  fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
  ax.set_xticks(range(n), class_names, rotation=45, ha='right')
  ax.set_yticks(range(n), class_names)
  ax.set_xlabel('predicted')
  ax.set_ylabel('true')
  if title:
    ax.set_title(title)
  if n <= 20:
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(n):
      for j in range(n):
        ax.text(j, i, f'{matrix[i, j]:.0f}', ha='center', va='center', fontsize=8,
                color='white' if matrix[i, j] > threshold else 'black')
  fig.tight_layout()
  return save_figure(fig, output)
