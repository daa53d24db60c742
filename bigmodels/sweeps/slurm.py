"""Runs a sweep's runs as Slurm jobs through submitit (one job-array task per run).

Each task calls `runs.run_one`, so a run on the cluster writes the same train.log and
sweep_status.json as a local one, and `experiments.sweep --collect` reads them back. Job ids
go into the sweep's sweep.json, so a detached sweep can be collected later. With several
tasks per run (nodes x tasks_per_node > 1) every task trains one process of a multi-host run:
the command carries --distributed and jax.distributed.initialize() reads the Slurm
environment (SLURM_PROCID, SLURM_NTASKS, SLURM_STEP_NODELIST).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bigmodels.errors import UserError
from bigmodels.sweeps.local import Progress
from bigmodels.sweeps.runs import Run, read_status, run_one

POLL_S = 2.0


@dataclasses.dataclass(frozen=True)
class SlurmOptions:
  """Resources of every run's job."""
  partition: str = ''
  time_minutes: int = 60
  gpus_per_run: int = 0
  cpus_per_task: int = 0
  nodes: int = 1
  tasks_per_node: int = 1
  extra: tuple[tuple[str, str], ...] = ()  # sbatch options without '--', e.g. ('qos', 'high')

  @property
  def processes(self) -> int:
    """Processes per run (> 1: a multi-host training run)."""
    return self.nodes * self.tasks_per_node


def _task(run: Run) -> dict[str, Any]:
  """What one Slurm task executes (pickled by submitit)."""
  return run_one(run, stop=None, new_session=False)


def submit(runs: Sequence[Run], log_dir: Path, options: SlurmOptions) -> dict[str, str]:
  """Submits one job-array task per run; returns {run name: Slurm job id}."""
  if shutil.which('sbatch') is None:
    raise UserError('--launcher=slurm needs Slurm\'s sbatch on PATH: run on a cluster login '
                    'node (or use the local launcher)')
  import submitit  # Optional at import time: only the Slurm launcher needs it.
  executor = submitit.SlurmExecutor(folder=log_dir / '%j')
  parameters: dict[str, Any] = dict(
      time=options.time_minutes, nodes=options.nodes, ntasks_per_node=options.tasks_per_node,
      job_name='bigmodels-sweep', additional_parameters=dict(options.extra),
      array_parallelism=max(len(runs), 1))
  if options.partition:
    parameters['partition'] = options.partition
  if options.gpus_per_run:
    parameters['gpus_per_node'] = options.gpus_per_run
  if options.cpus_per_task:
    parameters['cpus_per_task'] = options.cpus_per_task
  executor.update_parameters(**parameters)
  try:
    with executor.batch():
      jobs = [executor.submit(_task, run) for run in runs]
  except Exception as e:  # submitit wraps sbatch's refusal (bad partition, time limit...).
    lines = [l for l in str(e).splitlines() if l.strip()]
    raise UserError(f'sbatch refused the sweep: {lines[-1] if lines else e}') from e
  return {run.name: job.job_id for run, job in zip(runs, jobs)}


def queued_job_ids() -> set[str]:
  """Job ids Slurm still lists (pending, running or completing), array tasks expanded."""
  try:
    out = subprocess.run(['squeue', '-h', '-r', '-o', '%i'], capture_output=True, text=True,
                         check=True, timeout=60).stdout
  except (OSError, subprocess.SubprocessError) as e:
    raise UserError(f'cannot ask Slurm for the jobs (squeue failed: {e}); retry with '
                    '--collect') from e
  return {line.strip() for line in out.splitlines() if line.strip()}


def statuses(runs: Sequence[Run], jobs: dict[str, str], queued: set[str] | None = None
             ) -> dict[str, dict[str, Any]]:
  """Each run's status from its folder; a run whose job left the queue without recording an
  end is 'lost' (killed by the scheduler before it could write; see its Slurm log).
  `queued` is the queue as `queued_job_ids()` gives it (asked here when not given)."""
  if queued is None:
    queued = queued_job_ids() if jobs else set()
  out = {}
  for run in runs:
    status = read_status(run.workdir)
    if status['status'] in ('pending', 'running') and run.name in jobs:
      if jobs[run.name] in queued:
        status = {**status, 'status': 'queued' if status['status'] == 'pending' else 'running'}
      else:
        status = {**status, 'status': 'lost', 'error': f'job {jobs[run.name]} ended without '
                  'a result: see its log under slurm/'}
    out[run.name] = status
  return out


def wait(runs: Sequence[Run], jobs: dict[str, str], log: Callable[[str], None] = print
         ) -> dict[str, dict[str, Any]]:
  """Polls until every job has left the queue, printing progress; returns the statuses."""
  progress = Progress(len(runs), max(len(runs), 1), log)
  reported: set[str] = set()
  while True:
    queued = queued_job_ids()
    current = statuses(runs, jobs, queued)
    counts = {s: sum(v['status'] == s for v in current.values())
              for s in ('done', 'failed', 'interrupted', 'running', 'lost')}
    progress.done, progress.failed, progress.running = (
        counts['done'], counts['failed'] + counts['lost'], counts['running'])
    progress.interrupted = counts['interrupted']
    for name, status in current.items():
      if status['status'] in ('done', 'failed', 'interrupted', 'lost') and name not in reported:
        reported.add(name)
        extra = f': {status["error"]}' if status.get('error') else ''
        log(f'[sweep] {status["status"]} {name} (job {jobs.get(name)}){extra}')
        if status['status'] == 'done' and status.get('wall_s'):
          progress.walls.append(status['wall_s'])
        progress.show()
    if not any(jobs[r.name] in queued for r in runs if r.name in jobs):
      return current
    progress.show(force=False)
    time.sleep(POLL_S)
