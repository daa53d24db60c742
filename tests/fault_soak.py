"""Kill a tiny training run with SIGKILL in every phase; check that nothing is lost.

  python -m tests.fault_soak [--kills 20] [--seed 0] [--keep DIR]

Trains a tiny masked-LM config once straight through, then again from an empty data cache
while killing it with SIGKILL `--kills` times, re-running the same command after each kill.
Kill i aims at a phase, waits for the run's console to show that phase and kills it there:
data preparation (the first attempt, from an empty cache), compilation (right after the
'model:' line, before any step), training steps (a random 0-1 s after a step line), and an
asynchronous checkpoint save. The
save kill is deterministic: that attempt runs `tests.fault_main` with SOAK_PAUSE_SAVE=1, which
holds the save after orbax has written its temporary folder and before the rename that
completes it; the process is killed there, and the soak checks the half-written folder was
left behind. Each kill records the phase the console showed when it landed. At the end the
final parameters must be bit-identical to the uninterrupted run's and metrics.jsonl must hold
each logged step once. Exit code 0 means it passed; the last line sums up the kills by phase.
"""

from __future__ import annotations

import argparse
import collections
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHASES = ('data', 'compile', 'step', 'save')
DATA_MARKERS = ('preparing ', 'training the BPE tokenizer', 'packing ')


def _command(module: str, workdir: Path, corpus: Path, total_steps: int) -> list[str]:
  from tests.helpers import cli_overrides, tiny_overrides
  overrides = tiny_overrides(corpus)
  overrides.update({'total_steps': total_steps, 'log_every': 2,
                    'eval_every': max(total_steps // 4, 1), 'checkpoint_every': 4})
  return [sys.executable, '-m', module, '--config=configs/mlm.py', f'--workdir={workdir}',
          *cli_overrides(overrides)]


def _phase_of(line: str, phase: str) -> str:
  """The phase a run is in after printing `line` (it was in `phase` before)."""
  from tests.fault_main import SAVE_PAUSED_MARKER
  if line.startswith(DATA_MARKERS):
    return 'data'
  if line.startswith('model: '):
    return 'compile'
  if line.startswith('step '):
    return 'step'
  if line.startswith(SAVE_PAUSED_MARKER):
    return 'save'
  return phase


class _Attempt:
  """One run of the command whose console lines are read by a thread, tracking its phase."""

  def __init__(self, cmd: list[str], env: dict[str, str]):
    self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
    self.phase = 'startup'
    self.lines: queue.Queue[str | None] = queue.Queue()
    self.output: list[str] = []
    threading.Thread(target=self._read, daemon=True).start()

  def _read(self) -> None:
    for line in self.proc.stdout:
      self.output.append(line)
      self.phase = _phase_of(line, self.phase)
      self.lines.put(line)
    self.lines.put(None)

  def wait_for(self, phase: str, timeout: float) -> bool:
    """Blocks until the run's console shows `phase` (True) or it ends or times out."""
    deadline = time.monotonic() + timeout
    while self.phase != phase:
      try:
        if self.lines.get(timeout=max(deadline - time.monotonic(), 0.01)) is None:
          return False
      except queue.Empty:
        return False
    return True

  def kill(self) -> str | None:
    """SIGKILLs the run; returns the phase it was in, or None if it had already ended."""
    phase = self.phase
    if self.proc.poll() is not None:
      return None
    self.proc.send_signal(signal.SIGKILL)
    self.proc.wait()
    return phase


def _plan(kills: int, rng: random.Random) -> list[str]:
  """Kill 1 in data preparation, then compile / step / save in a shuffled cycle."""
  cycle = ['compile', 'step', 'save']
  plan = ['data']
  while len(plan) < kills:
    rng.shuffle(cycle)
    plan.extend(cycle)
  return plan[:kills]


def soak(kills: int, seed: int, base: Path, total_steps: int = 3000,
         log=print) -> dict[str, int]:
  """Runs the soak in `base`; raises AssertionError if a kill did not land or anything was
  lost or differs. Returns how many kills landed in each phase."""
  sys.path.insert(0, str(ROOT))
  from tests.helpers import checkpoint_steps, rows, saved_state, write_corpus
  corpus = write_corpus(base / 'corpus')
  started = time.perf_counter()
  subprocess.run(_command('experiments.main', base / 'straight', corpus, total_steps),
                 cwd=ROOT, check=True, capture_output=True,
                 env=dict(os.environ, BIGMODELS_CACHE=str(base / 'cache-straight')))
  log(f'uninterrupted run: {time.perf_counter() - started:.1f}s')

  rng = random.Random(seed)
  workdir = base / 'killed'
  cmd = _command('tests.fault_main', workdir, corpus, total_steps)
  # Its own XLA compilation cache: a kill can land while an entry is being written, and the
  # half-written file (a warning and a recompile when read) must not reach the tests' shared one.
  env = dict(os.environ, BIGMODELS_CACHE=str(base / 'cache-killed'),
             JAX_COMPILATION_CACHE_DIR=str(base / 'xla-cache-killed'))
  landed: list[str] = []
  for target in _plan(kills, rng):
    attempt = _Attempt(cmd, dict(env, SOAK_PAUSE_SAVE='1' if target == 'save' else '0'))
    reached = attempt.wait_for(target, timeout=300)
    if target == 'step' and reached:
      time.sleep(rng.uniform(0.0, 1.0))  # somewhere in the steps (or a save they start)
    phase = attempt.kill()
    assert reached and phase is not None, (
        f'kill {len(landed) + 1} aimed at {target!r} did not land (the run showed '
        f'{attempt.phase!r}, exit {attempt.proc.returncode}):\n' + ''.join(attempt.output[-20:]))
    if phase == 'save':
      partial = [p.name for p in (workdir / 'checkpoints').iterdir() if 'tmp' in p.name]
      assert partial, 'the save kill left no half-written checkpoint folder'
      half_written = int(partial[0].split('.')[0])
      assert half_written not in checkpoint_steps(workdir)  # never taken for a checkpoint
    landed.append(phase)
    saved = checkpoint_steps(workdir)
    log(f'kill {len(landed)}/{kills} aimed at {target}: landed in {phase}; newest checkpoint '
        f'{saved[-1] if saved else None}')
  newest = checkpoint_steps(workdir)
  result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  expected = f'resuming from checkpoint at step {newest[-1]}' if newest else 'from scratch'
  assert expected in result.stdout, result.stdout[-2000:]

  for a, b in zip(jax.tree.leaves(saved_state(base / 'straight', total_steps)['params']),
                  jax.tree.leaves(saved_state(workdir, total_steps)['params']), strict=True):
    np.testing.assert_array_equal(a, b)
  steps = [r['step'] for r in rows(workdir, 'train')]
  assert steps == list(range(2, total_steps + 1, 2)), steps
  counts = dict(collections.Counter(landed))
  log(f'{len(landed)} kills landed ({", ".join(f"{counts.get(p, 0)} in {p}" for p in PHASES)}); '
      'final parameters are bit-identical to the uninterrupted run; metrics.jsonl is whole')
  return counts


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--kills', type=int, default=20)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--total_steps', type=int, default=3000)
  parser.add_argument('--keep', type=Path, default=None, help='work folder to keep')
  args = parser.parse_args()
  if args.keep:
    args.keep.mkdir(parents=True, exist_ok=True)
    soak(args.kills, args.seed, args.keep, args.total_steps)
  else:
    with tempfile.TemporaryDirectory() as tmp:
      soak(args.kills, args.seed, Path(tmp), args.total_steps)


if __name__ == '__main__':
  main()
