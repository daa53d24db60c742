"""Kill a tiny training run with SIGKILL at random instants; check nothing is lost.

  python -m tests.fault_soak [--kills 20] [--seed 0] [--keep DIR]

Trains a tiny masked-LM config once straight through, then again from an empty data cache while
killing it with SIGKILL at `--kills` random instants (during data preparation, tokenizer
training, compilation, training steps and asynchronous checkpoint saves alike), re-running the
same command after each kill. It then checks that the final parameters are bit-identical to the
uninterrupted run's and that metrics.jsonl holds each step once. Exit code 0 means it passed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

ROOT = Path(__file__).resolve().parents[1]


def _command(workdir: Path, corpus: Path, total_steps: int) -> list[str]:
  sys.path.insert(0, str(ROOT))
  from tests.conftest import cli_overrides, tiny_overrides
  overrides = tiny_overrides(corpus)
  overrides.update({'total_steps': total_steps, 'log_every': 2,
                    'eval_every': max(total_steps // 4, 1), 'checkpoint_every': 4})
  return [sys.executable, '-m', 'experiments.main', '--config=configs/mlm.py',
          f'--workdir={workdir}', *cli_overrides(overrides)]


def _env(cache: Path) -> dict[str, str]:
  """The environment of a run with its own data cache."""
  return dict(os.environ, BIGMODELS_CACHE=str(cache))


def _final_params(workdir: Path, step: int):
  return ocp.StandardCheckpointer().restore(
      workdir / 'checkpoints' / str(step) / 'state')['params']


def soak(kills: int, seed: int, base: Path, total_steps: int = 5000, max_delay: float = 15.0,
         log=print) -> None:
  """Runs the soak in `base`; raises AssertionError if anything was lost or differs.

  Each attempt is killed after a random 0.3..max_delay seconds: early kills land in start-up,
  data preparation and compilation, later ones in training steps and checkpoint saves.
  """
  sys.path.insert(0, str(ROOT))
  from tests.conftest import write_corpus
  corpus = write_corpus(base / 'corpus')
  straight_cmd = _command(base / 'straight', corpus, total_steps)
  started = time.perf_counter()
  subprocess.run(straight_cmd, cwd=ROOT, check=True, capture_output=True,
                 env=_env(base / 'cache-straight'))
  log(f'uninterrupted run: {time.perf_counter() - started:.1f}s')

  rng = random.Random(seed)
  cmd = _command(base / 'killed', corpus, total_steps)
  env = _env(base / 'cache-killed')
  done = 0
  while done < kills:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=env)
    delay = rng.uniform(0.3, max_delay)
    try:
      _, err = proc.communicate(timeout=delay)
      assert proc.returncode == 0, err.decode()[-3000:]
      log(f'the run finished before the kill at {delay:.1f}s, after {done} kills')
      break
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.communicate()
      done += 1
      saved = sorted(int(p.name) for p in (base / 'killed' / 'checkpoints').glob('*')
                     if p.name.isdigit()) if (base / 'killed' / 'checkpoints').exists() else []
      log(f'kill {done}/{kills}: SIGKILL after {delay:.1f}s; newest checkpoint: '
          f'{saved[-1] if saved else None}')
  result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
  assert result.returncode == 0, result.stderr[-3000:]

  for a, b in zip(jax.tree.leaves(_final_params(base / 'straight', total_steps)),
                  jax.tree.leaves(_final_params(base / 'killed', total_steps)), strict=True):
    np.testing.assert_array_equal(a, b)
  rows = [json.loads(l) for l in (base / 'killed' / 'metrics.jsonl').read_text().splitlines()]
  steps = [r['step'] for r in rows if r['split'] == 'train']
  assert steps == list(range(2, total_steps + 1, 2)), steps
  log('final parameters are bit-identical to the uninterrupted run; metrics.jsonl is whole')


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--kills', type=int, default=20)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--total_steps', type=int, default=5000)
  parser.add_argument('--max_delay', type=float, default=15.0, help='seconds')
  parser.add_argument('--keep', type=Path, default=None, help='work folder to keep')
  args = parser.parse_args()
  if args.keep:
    args.keep.mkdir(parents=True, exist_ok=True)
    soak(args.kills, args.seed, args.keep, args.total_steps, args.max_delay)
  else:
    with tempfile.TemporaryDirectory() as tmp:
      soak(args.kills, args.seed, Path(tmp), args.total_steps, args.max_delay)


if __name__ == '__main__':
  main()
