"""Fashion-MNIST: our test accuracy beside the benchmark table's published rows
(configs/fashion_mnist.py holds the recipes and the published figures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bigmodels.sweeps.reproduce import Stage, StageRun
from configs import fashion_mnist
from bigmodels.train import plots
from experiments.reproductions import common

TITLE = 'fashion_mnist: test accuracy, ours vs published'


def stages(args: dict[str, str]) -> list[Stage]:
  """One stage (no subfolder: runs sit in WORKDIR/MODEL), a run per published row."""
  suffix = ',runlocal=1' if args.get('runlocal') == '1' else ''
  return [Stage('', tuple(
      StageRun(row['name'], f'configs/fashion_mnist.py:{row["arg"]}{suffix}',
               needs_gpu=row['needs_gpu']) for row in fashion_mnist.reproduce_rows()))]


def _ours(row: dict[str, Any], needs_gpu: bool) -> str:
  if row.get('final_accuracy') is None:
    return 'needs a GPU: not run here' if needs_gpu else 'not run'
  return f'{row["final_accuracy"]:.3f}' + common.state_note(row)


def report(workdir: Path, results: dict[str, dict[str, dict[str, Any]]], args: dict[str, str]
           ) -> tuple[list[str], Any]:
  """The table (model, published row and figure, ours, difference, epochs, wall time, device,
  command) and a bar chart of published vs ours."""
  rows = results['']
  table, bars = [], []
  for spec in fashion_mnist.reproduce_rows():
    row = rows[spec['name']]
    rundir = workdir / spec['name']
    config = common.read_config(rundir)
    ours = row.get('final_accuracy')
    epochs = (f'{row["step"] * config["batch_size"] / fashion_mnist.TRAIN_EXAMPLES:.1f}'
              if ours is not None and config else '')
    delta = f'{ours - spec["published_accuracy"]:+.3f}' if ours is not None else ''
    command = f'`{row["command"]}`' if row.get('command') else ''
    table.append([spec['name'], spec['published'], f'{spec["published_accuracy"]:.3f}',
                  _ours(row, spec['needs_gpu']), delta, epochs, common.wall([row]),
                  common.device_of(rundir), command])
    bars.append((spec['name'], spec['published_accuracy'], ours,
                 ours is not None and not common.finished(row)))
  lines = common.markdown_table(['Model', 'Published row', 'Published', 'Ours', 'Δ', 'Epochs',
                                 'Wall time', 'Device', 'Command'], table)

  def figure():
    import numpy as np
    x = np.arange(len(bars))
    low = max(0.0, min([b[2] for b in bars if b[2]] + [b[1] for b in bars]) - 0.05)
    fig, ax = plots.new_figure(figsize=(max(6, 1.3 * len(bars)), 4))
    ax.bar(x - 0.2, [b[1] for b in bars], 0.4, label='published')
    drawn = ax.bar(x + 0.2, [b[2] or 0.0 for b in bars], 0.4, label='ours')
    for bar, (_, _, ours, partial) in zip(drawn, bars):
      if partial:
        bar.set_hatch('//')
      # A run not trained has no bar: its label sits on the axis floor.
      ax.annotate('not run' if ours is None else f'{ours:.3f}',
                  (bar.get_x() + bar.get_width() / 2, max(bar.get_height(), low)),
                  ha='center', va='bottom', fontsize=8, rotation=90 if ours is None else 0)
    ax.set_ylim(low, 1.0)
    ax.set_xticks(x, [b[0] for b in bars])
    ax.set_ylabel('test accuracy')
    ax.set_title('fashion_mnist: ours vs published (hatched: partial run)')
    ax.legend(loc='upper left')
    return fig

  return lines, figure
