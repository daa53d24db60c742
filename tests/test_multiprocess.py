"""Two JAX processes on one machine (gloo collectives): a run, and a preemption signal that
reaches only one of them."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.helpers import (ROOT, apply_overrides, cli_overrides, device_env, hand_eval_metrics,
                           rows, tiny_overrides, vision_overrides, write_idx_dataset)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _launch(workdir, overrides, port, config='configs/fashion_mnist.py:model=cnn_bn',
            processes=2):
  """`processes` JAX processes of one run (one CPU device each); one process runs without
  --distributed."""
  env = dict(os.environ, JAX_PLATFORMS='cpu', **device_env(2, xla_optimizations=True))
  env['XLA_FLAGS'] = '--xla_force_host_platform_device_count=1'  # one device per process
  distributed = ['--distributed', f'--coordinator_address=127.0.0.1:{port}',
                 f'--num_processes={processes}']
  return [subprocess.Popen(
      [sys.executable, '-m', 'experiments.main', f'--config={config}', f'--workdir={workdir}',
       *((distributed + [f'--process_id={i}']) if processes > 1 else []),
       *cli_overrides(overrides)],
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(processes)]


def test_two_processes_train_on_the_one_process_batches_and_resume_on_one(corpus_dir,
                                                                           tmp_path):
  """At the same global batch, 2 processes see the examples and masks of 1 process (same
  losses), and their checkpoint resumes in 1 process as if nothing had changed."""
  overrides = dict(tiny_overrides(corpus_dir), **{
      'total_steps': 4, 'log_every': 1, 'eval_every': 2, 'checkpoint_every': 2,
      'optimizer.schedule': 'constant', 'optimizer.warmup_steps': 0})
  config = 'configs/mlm.py'

  def run(workdir, processes, steps):
    # Two processes: a hybrid mesh, the data axis over the 2 processes (DCN), 1 device each.
    mesh = {'mesh.dcn_shape': (2, 1, 1)} if processes == 2 else {}
    procs = _launch(workdir, dict(overrides, total_steps=steps, **mesh), _free_port(), config,
                    processes)
    outputs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0] * processes, outputs

  run(tmp_path / 'one', 1, 4)
  run(tmp_path / 'two', 2, 2)  # a constant learning rate: stopping at 2 changes nothing
  run(tmp_path / 'two', 1, 4)  # ...resumed by a single process
  one, two = rows(tmp_path / 'one'), rows(tmp_path / 'two')
  assert [(r['step'], r['split']) for r in two] == [(r['step'], r['split']) for r in one]
  for a, b in zip(two, one):
    assert a['loss'] == pytest.approx(b['loss'], rel=1e-5, abs=1e-5), (a, b)
    if a['split'] == 'eval':
      assert a['mlm_accuracy'] == pytest.approx(b['mlm_accuracy'], abs=1e-6)


def test_two_processes_train_and_stop_together_on_one_signal(tmp_path):
  workdir = tmp_path / 'run'
  # 37 test images: not a multiple of the 2 processes nor of their batches of 8.
  image_dir = write_idx_dataset(tmp_path / 'idx', n_train=128, n_test=37)
  overrides = vision_overrides(image_dir)
  overrides.update({'total_steps': 5000, 'log_every': 5, 'eval_every': 5000,
                    'checkpoint_every': 5000})
  procs = _launch(workdir, overrides, _free_port())
  deadline = time.time() + 240
  while not rows(workdir, 'train') and time.time() < deadline:
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
  evals = rows(workdir, 'eval')
  assert evals[-1]['step'] == saved[0] + 10
  # Every test image counted once over both processes; the metrics match a hand computation.
  confusion = json.loads((workdir / 'confusion.json').read_text())['matrix']
  assert sum(map(sum, confusion)) == 37
  from configs import fashion_mnist
  config = apply_overrides(fashion_mnist.get_config('model=cnn_bn'), overrides)
  loss, accuracy, _ = hand_eval_metrics(config, workdir, saved[0] + 10, image_dir)
  assert evals[-1]['accuracy'] == pytest.approx(accuracy, abs=1e-6)
  assert evals[-1]['loss'] == pytest.approx(loss, rel=1e-5)
