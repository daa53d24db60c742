r"""Reproduce a paper's results: python -m experiments.reproduce NAME[:scale=paper].

NAME is one of experiments/reproductions/ (fashion_mnist, mask_rate, bert_masking). Each
trains its stages of runs in WORKDIR/STAGE/RUN on the sweep machinery: re-running skips
finished runs and resumes interrupted ones; a failing run is reported while the others go on.
Then it writes WORKDIR/results.md (our figures beside the paper's) and WORKDIR/results.png.
Default WORKDIR: runs/reproduce_NAME, or the folder a reproduction names (bert_masking:
runs/reproduce_masking; such reproductions write results_NAME.md and .png); a suffix _paper for
:scale=paper. A finished run counts only for the same command, and training refuses a run
folder holding another config, so a run folder never mixes two recipes (mask_rate and
bert_masking name runs alike but pre-train differently: keep their workdirs apart).

  python -m experiments.reproduce fashion_mnist                      # the CPU rows
  python -m experiments.reproduce fashion_mnist --gpu_rows --rows=resnet18,wrn
  python -m experiments.reproduce mask_rate --parallel=2             # reduced scale (CPU)
  python -m experiments.reproduce mask_rate:scale=paper              # the authors' recipe
  python -m experiments.reproduce bert_masking --report_only         # table from the runs

Runs marked as needing a GPU are skipped unless --gpu_rows is given; --time_limit_minutes
stops each run gracefully (checkpoint saved) and reports it as partial.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from absl import flags

from experiments import cli

WORKDIR = flags.DEFINE_string('workdir', None, 'Folder of the runs and the results '
                              '(default: runs/reproduce_NAME[_paper]; see above).')
ROWS = flags.DEFINE_list('rows', None, 'Runs to train, by name (default: all; GPU runs only '
                         'with --gpu_rows). Names are matched up to their ",seed=" suffix.')
GPU_ROWS = flags.DEFINE_bool('gpu_rows', False, 'Also train the runs that need a GPU.')
RUNLOCAL = flags.DEFINE_bool('runlocal', False, 'Smoke test: tiny models, a few steps.')
OVERRIDES = flags.DEFINE_multi_string('set', [], 'KEY=VALUE config override for every run, '
                                      'or STAGE:KEY=VALUE for one stage\'s runs, e.g. '
                                      '--set=finetune:optimizer.learning_rate=3e-4.')
PARALLEL = flags.DEFINE_integer('parallel', 1, 'Runs trained at once.')
TIME_LIMIT = flags.DEFINE_float('time_limit_minutes', 0.0, 'Stop each run after this long '
                                '(0 = no limit); it is reported as partial.')
REPORT_ONLY = flags.DEFINE_bool('report_only', False, 'Train nothing; write the table from '
                                'the runs already in the workdir.')

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared(stage) -> list[str]:
  out = []
  for item in OVERRIDES.value:
    head, sep, rest = item.partition(':')
    if sep and '=' not in head:  # STAGE:KEY=VALUE
      if head == stage.name:
        out.append(f'--config.{rest}')
    else:
      out.append(f'--config.{item}')
  return out


def main() -> None:
  """Trains the reproduction's runs and writes its side-by-side table and figure."""
  from bigmodels import atomic
  from bigmodels.errors import UserError
  from bigmodels.sweeps import reproduce
  from bigmodels.train import plots
  from experiments import reproductions
  name, _, arg = EXPERIMENT[0].partition(':')
  if name not in reproductions.NAMES:
    raise UserError(f'no reproduction {name!r}: choose one of {", ".join(reproductions.NAMES)}')
  module = importlib.import_module(f'experiments.reproductions.{name}')
  options = dict(part.split('=', 1) for part in arg.split(',') if '=' in part)
  unknown = set(options) - {'scale'}
  if unknown:
    raise UserError(f'unknown argument {sorted(unknown)[0]!r} in {EXPERIMENT[0]!r}: use '
                    f'{name}:scale=reduced|paper')
  if RUNLOCAL.value:
    options['runlocal'] = '1'
  # A reproduction may name its default workdir (module.WORKDIR); it then names its outputs
  # after itself. Each scale (and the --runlocal smoke run) has its own folder.
  named_dir = getattr(module, 'WORKDIR', None)
  default = (named_dir or f'reproduce_{name}') + ''.join(
      f'_{tag}' for tag in (options.get('scale', 'reduced'), 'runlocal' if RUNLOCAL.value else '')
      if tag not in ('', 'reduced'))
  workdir = Path(WORKDIR.value or os.path.join('runs', default)).resolve()
  outputs = f'results_{name}' if named_dir else 'results'
  try:
    stages = module.stages(options) if name == 'fashion_mnist' else module.stages(options,
                                                                                  workdir)
  except ValueError as e:
    raise UserError(str(e)) from None
  known = [r.name.split(',seed=')[0] for s in stages for r in s.runs]
  unknown_rows = sorted(set(ROWS.value or []) - set(known))
  if unknown_rows:
    raise UserError(f'unknown rows {unknown_rows}: choose from {", ".join(dict.fromkeys(known))}')
  if PARALLEL.value < 1:
    raise UserError(f'--parallel={PARALLEL.value} must be at least 1')

  def include(run) -> bool:
    if ROWS.value and run.name.split(',seed=')[0] not in ROWS.value:
      return False
    if run.needs_gpu and not GPU_ROWS.value:
      print(f'== {run.name}: needs a GPU; skipped (add --gpu_rows to train it)')
      return False
    return True

  workdir.mkdir(parents=True, exist_ok=True)
  statuses = {}
  if not REPORT_ONLY.value:
    statuses = reproduce.run_stages(stages, workdir, REPO_ROOT, _shared, PARALLEL.value,
                                    include, TIME_LIMIT.value * 60)
  results = {s.name: reproduce.stage_results(s, workdir, REPO_ROOT) for s in stages}
  lines, figure = module.report(workdir, results, options)
  scale = options.get('scale', 'reduced')
  notes = [f'Scale: {scale}' + (' (--runlocal smoke run: tiny models and a few steps; the '
                                'figures mean nothing)' if RUNLOCAL.value else '') + '.']
  text = '\n'.join([f'# {module.TITLE}', '', *lines, '', *notes]) + '\n'
  atomic.write_text_atomic(workdir / f'{outputs}.md', text)
  plots.save_figure(figure(), workdir / f'{outputs}.png')
  print(text)
  failed = [f'{stage}/{run}' for stage, runs in statuses.items() for run, status in runs.items()
            if status.get('status') == 'failed']
  if failed:
    cli.fail(f'runs {failed} failed: see their train.log in {workdir}; fix and re-run to '
             'resume them', code=1)
  if any(status.get('status') == 'interrupted' and not TIME_LIMIT.value
         for runs in statuses.values() for status in runs.values()):
    sys.exit(75)


EXPERIMENT: list[str] = []  # NAME[:ARG], taken off the command line before absl parses it.


if __name__ == '__main__':
  positional = [a for a in sys.argv[1:] if not a.startswith('-')]
  if len(positional) != 1:
    cli.fail('give one reproduction name, e.g. `python -m experiments.reproduce fashion_mnist`')
  EXPERIMENT.append(positional[0])
  sys.argv = [sys.argv[0]] + [a for a in sys.argv[1:] if a.startswith('-')]
  cli.run(main, needs_config=False)
