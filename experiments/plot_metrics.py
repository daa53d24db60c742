"""Plot training curves: python -m experiments.plot_metrics --workdir=DIR.

Reads DIR/metrics.jsonl and writes DIR/curves.png: loss and each task metric (e.g.
mlm_accuracy, accuracy), train vs eval, against the step. Training runs also write it at
every evaluation. With several runs, their curves share one figure:

  python -m experiments.plot_metrics --workdir=runs/causal_lm --workdir=runs/lstm_lm \
      --metric=loss --metric=perplexity --output=lm_curves.png
"""

from __future__ import annotations

from pathlib import Path

from absl import app, flags

from bigmodels.train.plots import plot_curves, plot_runs

WORKDIR = flags.DEFINE_multi_string('workdir', None, 'Run folder holding metrics.jsonl; '
                                     'repeat it to overlay several runs.')
METRIC = flags.DEFINE_multi_string('metric', ['loss'], 'Metrics to compare across runs.')
OUTPUT = flags.DEFINE_string('output', None, 'PNG path (default: DIR/curves.png; needed '
                             'with several runs).')


def main(argv: list[str]) -> None:
  del argv
  workdirs = [Path(w) for w in WORKDIR.value or ['.']]
  for workdir in workdirs:
    if not (workdir / 'metrics.jsonl').exists():
      raise SystemExit(f'error: {workdir / "metrics.jsonl"} does not exist: pass the '
                       '--workdir of a run')
  if len(workdirs) == 1:
    output = Path(OUTPUT.value) if OUTPUT.value else workdirs[0] / 'curves.png'
    print(plot_curves(workdirs[0] / 'metrics.jsonl', output))
    return
  if not OUTPUT.value:
    raise SystemExit('error: several --workdir values need --output=FILE.png')
  runs = {w.name: w / 'metrics.jsonl' for w in workdirs}
  print(plot_runs(runs, METRIC.value, Path(OUTPUT.value)))


if __name__ == '__main__':
  app.run(main)
