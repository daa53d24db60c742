"""Runs a sweep's runs on this machine, N at a time, with a progress line.

SIGTERM or Ctrl-C stops the sweep gracefully: every running training gets SIGTERM, saves a
checkpoint and is recorded as interrupted; running the sweep again resumes it.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from typing import Any

from bigmodels.sweeps.runs import Run, run_one
from bigmodels.train.reporting import format_duration

PROGRESS_EVERY_S = 30.0


class Progress:
  """Counts runs by state and prints 'done / running / failed / waiting, ETA' lines."""

  def __init__(self, total: int, parallel: int, log: Callable[[str], None] = print):
    self.total, self.parallel, self.log = total, parallel, log
    self.done = self.failed = self.interrupted = self.running = 0
    self.walls: list[float] = []
    self.last = 0.0

  def line(self) -> str:
    """The current counts and the estimated time left."""
    waiting = self.total - self.done - self.failed - self.interrupted - self.running
    text = (f'[sweep] {self.done}/{self.total} done · {self.running} running · '
            f'{self.failed} failed · {waiting} waiting')
    if self.interrupted:
      text += f' · {self.interrupted} interrupted'
    if self.walls and waiting + self.running:
      mean = sum(self.walls) / len(self.walls)
      text += f' · ETA {format_duration(mean * (waiting + self.running) / self.parallel)}'
    return text

  def show(self, force: bool = True) -> None:
    """Prints the line (when forced or at least PROGRESS_EVERY_S after the last one)."""
    if force or time.monotonic() - self.last >= PROGRESS_EVERY_S:
      self.log(self.line())
      self.last = time.monotonic()


def run_local(runs: Sequence[Run], parallel: int, log: Callable[[str], None] = print,
              stop: threading.Event | None = None, time_limit_s: float = 0.0
              ) -> dict[str, dict[str, Any]]:
  """Runs `runs` with at most `parallel` at once; returns each run's final status by name.
  A failing run is reported and the others go on. Setting `stop` (or SIGTERM / Ctrl-C)
  stops the running trainings gracefully and starts no more; `time_limit_s` > 0 stops each
  run (gracefully, checkpoint kept) after that long."""
  stop = stop or threading.Event()
  progress = Progress(len(runs), parallel, log)
  lock = threading.Lock()
  results: dict[str, dict[str, Any]] = {}

  def execute(run: Run) -> dict[str, Any]:
    if stop.is_set():
      return {'status': 'interrupted'}
    with lock:
      progress.running += 1
      log(f'[sweep] start {run.name}  (log: {run.workdir / "train.log"})')
    status = run_one(run, stop, time_limit_s=time_limit_s)
    with lock:
      progress.running -= 1
      state = status['status']
      if state == 'done':
        progress.done += 1
        # The run's whole training time over all its attempts, not this one's: a resumed run
        # that was nearly (or already) trained would make the ETA far too short.
        progress.walls.append(status.get('wall_s', 0.0))
        log(f'[sweep] done {run.name} in {format_duration(progress.walls[-1])}')
      elif state == 'failed':
        progress.failed += 1
        log(f'[sweep] FAILED {run.name} (exit {status.get("returncode")}): '
            f'{status.get("error", "")}')
      else:
        progress.interrupted += 1
        log(f'[sweep] stopped {run.name} (checkpoint kept; re-run the same command to resume)')
      progress.show()
    return status

  def request_stop(signum, frame):
    del frame
    if not stop.is_set():
      log(f'[sweep] {signal.Signals(signum).name}: stopping the running trainings '
          '(they save a checkpoint); re-run the same command to resume')
    stop.set()

  handlers = {s: signal.signal(s, request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
  try:
    with futures.ThreadPoolExecutor(max_workers=parallel) as pool:
      pending = {pool.submit(execute, run): run for run in runs}
      while pending:
        finished, _ = futures.wait(pending, timeout=1.0)
        for future in finished:
          results[pending.pop(future).name] = future.result()
        with lock:
          progress.show(force=False)
  finally:
    for sig, handler in handlers.items():
      signal.signal(sig, handler)
  return results
