"""One sweep run: its folder, its training command, and the status file that says how it ended.

`run_one` is what executes a run, locally or inside a Slurm job: it runs the training command
(which resumes from the run folder's checkpoints), appends its output to RUN/train.log and
writes RUN/sweep_status.json. A run counts as finished only when that file says 'done' for
the same command, so a changed command trains (or resumes) again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bigmodels import atomic
from bigmodels.sweeps.spec import format_value

STATUS_FILE = 'sweep_status.json'
LOG_FILE = 'train.log'
INTERRUPTED_EXIT = 75  # experiments.main: stopped by SIGTERM/SIGINT after saving.


@dataclasses.dataclass(frozen=True)
class Run:
  """A run of a sweep: name (its folder), config overrides, full training command and the
  folder the command runs in."""
  name: str
  overrides: dict[str, Any]
  workdir: Path
  command: tuple[str, ...]
  cwd: Path = Path('.')

  def shell_command(self) -> str:
    """The command as one line for any shell or scheduler."""
    return shlex.join(self.command)


def command(module: str, config: str, workdir: Path, shared: Sequence[str],
            overrides: dict[str, Any], extra_flags: Sequence[str] = ()) -> tuple[str, ...]:
  """`python -m MODULE --config=CONFIG --workdir=DIR`, the shared --config.KEY=VALUE flags,
  then the run's own overrides (which win) and any extra flags."""
  return (sys.executable, '-m', module, f'--config={config}', f'--workdir={workdir}', *shared,
          *[f'--config.{k}={format_value(v)}' for k, v in overrides.items()], *extra_flags)


def read_status(workdir: Path) -> dict[str, Any]:
  """The run's status file, or {'status': 'pending'} when it has none."""
  path = Path(workdir) / STATUS_FILE
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    return {'status': 'pending'}


def is_finished(run: Run) -> bool:
  """Whether the run ended successfully with exactly this command."""
  status = read_status(run.workdir)
  return status.get('status') == 'done' and status.get('command') == list(run.command)


def _write_status(run: Run, **fields: Any) -> dict[str, Any]:
  previous = read_status(run.workdir)
  status = {'command': list(run.command), 'wall_s': previous.get('wall_s', 0.0), **fields}
  atomic.write_text_atomic(run.workdir / STATUS_FILE, json.dumps(status, indent=1) + '\n')
  return status


def _last_error_line(log_path: Path) -> str:
  try:
    lines = [l.strip() for l in log_path.read_text(errors='replace').splitlines() if l.strip()]
  except OSError:
    return ''
  errors = [l for l in lines if l.startswith('error:')]
  return (errors or lines or [''])[-1][:300]


def run_one(run: Run, stop: Any = None, new_session: bool = True,
            time_limit_s: float = 0.0) -> dict[str, Any]:
  """Runs (or resumes) the run to its end and records the outcome; returns the status.

  `stop` (a threading.Event) asks it to stop: the training process gets SIGTERM, saves a
  checkpoint and the run is recorded as 'interrupted'. Locally the training runs in its own
  session, so a terminal's Ctrl-C reaches the sweep, which forwards it; under Slurm
  (new_session=False) the scheduler's signals reach the training directly. In a multi-task
  Slurm job every task trains, and task 0 alone writes the status. `time_limit_s` > 0 stops
  the training the same way after that long.
  """
  run.workdir.mkdir(parents=True, exist_ok=True)
  writes_status = os.environ.get('SLURM_PROCID', '0') == '0'
  if writes_status:
    _write_status(run, status='running', started=time.time(), host=os.uname().nodename)
  log_path = run.workdir / LOG_FILE
  started = time.perf_counter()
  with open(log_path, 'a') as log:
    log.write(f'\n$ {run.shell_command()}\n')
    log.flush()
    process = subprocess.Popen(run.command, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, cwd=run.cwd,
                               start_new_session=new_session)
    signalled = False
    while process.poll() is None:
      over_time = time_limit_s > 0 and time.perf_counter() - started > time_limit_s
      if (over_time or (stop is not None and stop.is_set())) and not signalled:
        process.send_signal(signal.SIGTERM)
        signalled = True
      time.sleep(0.2)
  code = process.returncode
  elapsed = time.perf_counter() - started
  if code == 0:
    state = 'done'
  elif code == INTERRUPTED_EXIT or signalled:
    state = 'interrupted'
  else:
    state = 'failed'
  status = {'status': state, 'returncode': code}
  if state == 'failed':
    status['error'] = _last_error_line(log_path)
  if not writes_status:
    return status
  previous = read_status(run.workdir)
  return _write_status(run, **status, wall_s=previous.get('wall_s', 0.0) + elapsed,
                       finished=time.time())
