r"""Run a config file's sweep(): python -m experiments.sweep --config=configs/NAME.py --workdir=DIR.

Each run trains in DIR/<its overrides> (e.g. DIR/mask_rate=0.4,seed=1) with
`experiments.main`; runs that finished are skipped, interrupted ones resume, a failing run is
reported and the others go on. At the end DIR/results.csv, DIR/results.md (mean ± std over
seeds) and PNG plots are written.

  python -m experiments.sweep --config=configs/mlm.py --workdir=runs/sweep_mlm --parallel=2
  python -m experiments.sweep --config=configs/mlm.py --workdir=runs/sweep_mlm --dry_run
  python -m experiments.sweep --config=configs/mlm.py --workdir=DIR --print_commands
  python -m experiments.sweep --config=configs/mlm.py --workdir=DIR --launcher=slurm \
      --partition=gpu --gpus_per_run=1 --time_minutes=120 [--detach]
  python -m experiments.sweep --workdir=DIR --collect      # table of a (detached) sweep

--config.KEY=VALUE flags apply to every run of the sweep.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from absl import flags

from experiments import cli

WORKDIR = flags.DEFINE_string('workdir', None, 'Sweep folder (default: runs/sweep_<config>).')
PARALLEL = flags.DEFINE_integer('parallel', 1, 'Local launcher: runs trained at once.')
DRY_RUN = flags.DEFINE_bool('dry_run', False, 'Print the runs (name and overrides) and exit.')
PRINT_COMMANDS = flags.DEFINE_bool('print_commands', False, 'Print one shell command per run '
                                   '(for any scheduler) and exit.')
LAUNCHER = flags.DEFINE_enum('launcher', 'local', ['local', 'slurm'], 'Where runs train.')
COLLECT = flags.DEFINE_bool('collect', False, 'Train nothing: report the runs of DIR\'s sweep '
                            '(e.g. after --detach) and write the table and plots.')
METRIC = flags.DEFINE_string('metric', None, 'Metric of the plots (default: the first one '
                             'besides loss, e.g. mlm_accuracy).')
DETACH = flags.DEFINE_bool('detach', False, 'Slurm: submit and exit; collect later.')
PARTITION = flags.DEFINE_string('partition', '', 'Slurm partition (default: the cluster\'s).')
TIME_MINUTES = flags.DEFINE_integer('time_minutes', 60, 'Slurm time limit per run.')
GPUS = flags.DEFINE_integer('gpus_per_run', 0, 'Slurm GPUs per node of each run.')
CPUS = flags.DEFINE_integer('cpus_per_task', 0, 'Slurm CPUs per task (0: the default).')
NODES = flags.DEFINE_integer('nodes', 1, 'Slurm nodes per run (> 1: multi-host training).')
TASKS = flags.DEFINE_integer('tasks_per_node', 1, 'Slurm tasks (JAX processes) per node.')
SBATCH = flags.DEFINE_multi_string('sbatch', [], 'Extra sbatch option KEY=VALUE for every '
                                   'run, e.g. --sbatch=qos=high --sbatch=account=lab.')

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_overrides() -> list[str]:
  return [a for a in sys.argv[1:] if a.startswith('--config.')]


def _collect(workdir: Path) -> int:
  from bigmodels.sweeps import slurm, state
  record, runs = state.load(workdir)
  statuses = (slurm.statuses(runs, record.get('jobs', {})) if record.get('jobs')
              else {r.name: _local_status(r) for r in runs})
  return _report(workdir, record, runs, statuses)


def _local_status(run) -> dict:
  from bigmodels.sweeps.runs import read_status
  return read_status(run.workdir)


def _report(workdir: Path, record: dict, runs: list, statuses: dict) -> int:
  from bigmodels.sweeps import aggregate
  results = aggregate.write_results(runs, workdir, title=f'Sweep of {record["config"]}',
                                    metric=METRIC.value or record.get('metric'))
  print(results['markdown'].read_text())
  print(f'wrote {results["csv"]}, {results["markdown"]}, '
        + ', '.join(str(p) for p in results['plots']))
  counts = {s: [n for n, v in statuses.items() if v['status'] == s]
            for s in ('done', 'failed', 'lost', 'interrupted', 'queued', 'running', 'pending')}
  print('[sweep] ' + ' · '.join(f'{len(v)} {k}' for k, v in counts.items() if v))
  failed = counts['failed'] + counts['lost']
  if counts['interrupted']:
    if failed:
      print(f'[sweep] failed runs: {failed}', file=sys.stderr)
    print('[sweep] re-run the same command to resume the interrupted runs', file=sys.stderr)
    return 75
  if failed:
    cli.fail(f'runs {failed} failed: see {workdir}/RUN/train.log; fix and re-run the sweep to '
             'retry them', code=1)
  return 0


def main() -> None:
  """Plans, runs (locally or on Slurm) and aggregates the config's sweep."""
  from bigmodels.errors import UserError
  from bigmodels.sweeps import local, slurm, spec, state
  from bigmodels.sweeps.runs import is_finished
  if COLLECT.value:
    if not WORKDIR.value:
      raise UserError('--collect needs --workdir=DIR of a sweep')
    sys.exit(_collect(Path(WORKDIR.value)))
  if cli.CONFIG.value is None:
    raise UserError('--config is required, e.g. --config=configs/mlm.py')
  config_spec = flags.FLAGS['config'].config_filename
  config_file, _, arg = config_spec.partition(':')
  workdir = Path(WORKDIR.value or os.path.join(
      'runs', 'sweep_' + os.path.splitext(os.path.basename(config_file))[0]))
  overrides = spec.load_sweep(config_file, arg or None)
  state.check_overrides(cli.CONFIG.value, overrides)
  if PARALLEL.value < 1:
    raise UserError(f'--parallel={PARALLEL.value} must be at least 1')
  options = slurm.SlurmOptions(
      partition=PARTITION.value, time_minutes=TIME_MINUTES.value, gpus_per_run=GPUS.value,
      cpus_per_task=CPUS.value, nodes=NODES.value, tasks_per_node=TASKS.value,
      extra=tuple(tuple(kv.split('=', 1)) for kv in SBATCH.value))
  if any('=' not in kv for kv in SBATCH.value):
    raise UserError('--sbatch takes KEY=VALUE, e.g. --sbatch=qos=high')
  multi = LAUNCHER.value == 'slurm' and options.processes > 1
  runs = state.build_runs(workdir, config_spec, _shared_overrides(), overrides, REPO_ROOT,
                          extra_flags=('--distributed',) if multi else ())
  if DRY_RUN.value or PRINT_COMMANDS.value:
    for run in runs:
      mark = 'done' if is_finished(run) else 'to run'
      print(run.shell_command() if PRINT_COMMANDS.value else
            f'{run.name:<40} {mark:<7} {run.overrides}')
    return
  state.check_same_sweep(workdir, config_spec)
  workdir.mkdir(parents=True, exist_ok=True)
  todo = [r for r in runs if not is_finished(r)]
  print(f'[sweep] {len(runs)} runs in {workdir}: {len(runs) - len(todo)} finished before, '
        f'{len(todo)} to train ({LAUNCHER.value} launcher)', flush=True)
  record = dict(config=config_spec, shared_overrides=_shared_overrides(),
                launcher=LAUNCHER.value, metric=METRIC.value, jobs={})
  if LAUNCHER.value == 'local':
    state.save(workdir, runs, **record)
    results = local.run_local(todo, PARALLEL.value)
    statuses = {r.name: results.get(r.name) or _local_status(r) for r in runs}
  else:
    jobs = slurm.submit(todo, workdir / 'slurm', options) if todo else {}
    record['jobs'] = jobs
    state.save(workdir, runs, **record)
    print(f'[sweep] submitted {len(jobs)} Slurm jobs: {", ".join(jobs.values()) or "none"}',
          flush=True)
    if DETACH.value:
      print(f'[sweep] detached; collect later with: python -m experiments.sweep '
            f'--workdir={workdir} --collect')
      return
    statuses = slurm.wait(runs, jobs)
  sys.exit(_report(workdir, record, runs, statuses))


if __name__ == '__main__':
  cli.run(main, needs_config=False)
