"""Plot a run's training curves: python -m experiments.plot_metrics --workdir=DIR.

Reads DIR/metrics.jsonl and writes DIR/curves.png: loss and each task metric (e.g.
mlm_accuracy), train vs eval, against the step.
"""

from __future__ import annotations

import json
from pathlib import Path

from absl import app, flags

WORKDIR = flags.DEFINE_string('workdir', None, 'Run folder holding metrics.jsonl.')
OUTPUT = flags.DEFINE_string('output', None, 'PNG path (default: DIR/curves.png).')

_NOT_PLOTTED = {'step', 'split', 'perplexity', 'grad_norm', 'param_norm', 'update_norm',
                'learning_rate', 'steps_per_s', 'tokens_per_s', 'examples_per_s'}


def plot_curves(metrics_path: Path, output: Path) -> Path:
  """Draws one panel per metric with a line per split; returns the PNG path."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
  if not rows:
    raise ValueError(f'{metrics_path} holds no rows')
  names = sorted({k for r in rows for k in r} - _NOT_PLOTTED, key=lambda k: (k != 'loss', k))
  fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
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
  fig.savefig(output, dpi=100)
  plt.close(fig)
  return output


def main(argv: list[str]) -> None:
  del argv
  workdir = Path(WORKDIR.value or '.')
  metrics = workdir / 'metrics.jsonl'
  if not metrics.exists():
    raise SystemExit(f'error: {metrics} does not exist: pass the --workdir of a run')
  print(plot_curves(metrics, Path(OUTPUT.value) if OUTPUT.value else workdir / 'curves.png'))


if __name__ == '__main__':
  app.run(main)
