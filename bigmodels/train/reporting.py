"""Run outputs: DIR/metrics.jsonl, TensorBoard event files and console progress lines."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from bigmodels import atomic


def format_duration(seconds: float) -> str:
  """'1h02m', '3m05s' or '12s'."""
  seconds = int(max(seconds, 0))
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  if hours:
    return f'{hours}h{minutes:02d}m'
  if minutes:
    return f'{minutes}m{secs:02d}s'
  return f'{secs}s'


def _finite(value: float) -> float | None:
  return value if math.isfinite(value) else None


class MetricWriter:
  """Appends metric rows to metrics.jsonl and TensorBoard; only process 0 writes files."""

  def __init__(self, workdir: str | Path, enabled: bool = True, stream: TextIO | None = None):
    self.enabled = enabled
    self.stream = stream
    self.workdir = Path(workdir)
    self._jsonl = None
    self._tb = None
    self._purge_step: int | None = None

  def resume_after(self, step: int) -> None:
    """Called on resume: TensorBoard hides events a killed run logged after `step`."""
    self._purge_step = step + 1

  def _open(self) -> None:
    # Opened at the first row, after a resume has rewound metrics.jsonl.
    self._jsonl = open(self.workdir / 'metrics.jsonl', 'a', encoding='utf-8')
    from tensorboardX import SummaryWriter  # Lazy: only process 0 needs it.
    self._tb = SummaryWriter(logdir=str(self.workdir), flush_secs=30,
                             purge_step=self._purge_step)

  def write(self, step: int, split: str, metrics: dict[str, float]) -> None:
    """One row: {"step", "split", **metrics}; non-finite values are written as null."""
    if not self.enabled:
      return
    if self._jsonl is None:
      self._open()
    row = {'step': int(step), 'split': split}
    row.update({k: _finite(float(v)) for k, v in metrics.items()})
    self._jsonl.write(json.dumps(row) + '\n')
    self._jsonl.flush()
    for key, value in metrics.items():
      self._tb.add_scalar(f'{split}/{key}', float(value), int(step))

  def print(self, line: str) -> None:
    """A console line (process 0 only)."""
    if self.enabled:
      print(line, file=self.stream or sys.stdout, flush=True)

  def flush(self) -> None:
    """Forces buffered TensorBoard events to disk (metrics.jsonl is flushed per row)."""
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    """Flushes and closes the files."""
    if self._jsonl:
      self._jsonl.close()
      self._tb.close()
      self._jsonl = self._tb = None


class Throughput:
  """Steps/s since the last report, and the ETA for the remaining steps at that rate (0 and
  '?' until a timed interval has passed)."""

  def __init__(self, start_step: int, total_steps: int):
    self.total_steps = total_steps
    self._last_step, self._last_time = start_step, time.perf_counter()
    self.rate = 0.0

  def restart(self, step: int) -> None:
    """Starts timing afresh at `step` (e.g. once compilation is over)."""
    self._last_step, self._last_time = step, time.perf_counter()

  def update(self, step: int) -> float:
    """Records reaching `step`; returns steps/s over the interval since the last call."""
    now = time.perf_counter()
    if step > self._last_step:
      self.rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_step, self._last_time = step, now
    return self.rate

  def exclude(self, seconds: float) -> None:
    """Leaves `seconds` spent on something else (e.g. an evaluation) out of the next rate."""
    self._last_time += seconds

  def eta(self, step: int) -> str:
    """Remaining time at the current rate."""
    if self.rate <= 0:
      return '?'
    return format_duration((self.total_steps - step) / self.rate)


def write_json_atomic(path: str | Path, obj: Any) -> None:
  """Writes JSON to a temporary file and renames it over `path`."""
  atomic.write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + '\n')
