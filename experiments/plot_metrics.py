"""Plot a run's training curves: python -m experiments.plot_metrics --workdir=DIR.

Reads DIR/metrics.jsonl and writes DIR/curves.png: loss and each task metric (e.g.
mlm_accuracy, accuracy), train vs eval, against the step. Training runs also write it at
every evaluation.
"""

from __future__ import annotations

from pathlib import Path

from absl import app, flags

from bigmodels.train.plots import plot_curves

WORKDIR = flags.DEFINE_string('workdir', None, 'Run folder holding metrics.jsonl.')
OUTPUT = flags.DEFINE_string('output', None, 'PNG path (default: DIR/curves.png).')


def main(argv: list[str]) -> None:
  del argv
  workdir = Path(WORKDIR.value or '.')
  metrics = workdir / 'metrics.jsonl'
  if not metrics.exists():
    raise SystemExit(f'error: {metrics} does not exist: pass the --workdir of a run')
  print(plot_curves(metrics, Path(OUTPUT.value) if OUTPUT.value else workdir / 'curves.png'))


if __name__ == '__main__':
  app.run(main)
