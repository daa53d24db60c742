"""Two JAX processes on one machine (gloo collectives): a run, and a preemption signal that
reaches only one of them."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

from tests.conftest import ROOT, cli_overrides, vision_overrides


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _launch(workdir, overrides, port):
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS='--xla_force_host_platform_device_count=1')
  return [subprocess.Popen(
      [sys.executable, '-m', 'experiments.main', '--config=configs/fashion_mnist.py:model=cnn_bn',
       f'--workdir={workdir}', '--distributed', f'--coordinator_address=127.0.0.1:{port}',
       '--num_processes=2', f'--process_id={i}', *cli_overrides(overrides)],
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)]


def _rows(workdir):
  path = workdir / 'metrics.jsonl'
  return [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []


def test_two_processes_train_and_stop_together_on_one_signal(image_dir, tmp_path):
  workdir = tmp_path / 'run'
  overrides = vision_overrides(image_dir)
  overrides.update({'total_steps': 5000, 'log_every': 5, 'eval_every': 5000,
                    'checkpoint_every': 5000})
  procs = _launch(workdir, overrides, _free_port())
  deadline = time.time() + 240
  while not [r for r in _rows(workdir) if r['split'] == 'train'] and time.time() < deadline:
    assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
    time.sleep(0.5)
  procs[1].send_signal(signal.SIGTERM)  # only the second process is told
  outputs = [p.communicate(timeout=240) for p in procs]
  assert [p.returncode for p in procs] == [75, 75], outputs
  assert 'stopped by a signal to another process' in outputs[0][1]
  assert 'stopped by SIGTERM' in outputs[1][1]
  saved = sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit())
  assert len(saved) == 1 and saved[0] % 5 == 0 and 0 < saved[0] < 5000

  # Both re-run the same command: they resume from that step and finish.
  overrides['total_steps'] = saved[0] + 10
  procs = _launch(workdir, overrides, _free_port())
  outputs = [p.communicate(timeout=240) for p in procs]
  assert [p.returncode for p in procs] == [0, 0], outputs
  assert f'resuming from checkpoint at step {saved[0]}' in outputs[0][0]
  assert 'resuming' not in outputs[1][0] and 'eval @' not in outputs[1][0]  # process 0 prints
  evals = [r for r in _rows(workdir) if r['split'] == 'eval']
  assert evals[-1]['step'] == saved[0] + 10 and 0.0 <= evals[-1]['accuracy'] <= 1.0
