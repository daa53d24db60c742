"""Fault injection: preemption signals, damaged checkpoints, config changes, divergence."""

import json
import os
import shutil
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from bigmodels.errors import UserError
from bigmodels.train import loop
from tests.conftest import ROOT, cli_overrides, tiny_overrides
from tests.test_train import _final_params, _rows


def _steps(workdir):
  return sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit())


def test_sigterm_saves_a_checkpoint_and_the_rerun_matches(corpus_dir, tmp_path):
  overrides = tiny_overrides(corpus_dir)
  overrides.update({'total_steps': 30, 'log_every': 1, 'eval_every': 100,
                    'checkpoint_every': 100})
  straight, preempted = tmp_path / 'straight', tmp_path / 'preempted'
  cmd = [sys.executable, '-m', 'experiments.main', '--config=configs/mlm.py',
         *cli_overrides(overrides)]
  subprocess.run(cmd + [f'--workdir={straight}'], cwd=ROOT, check=True, capture_output=True)
  proc = subprocess.Popen(cmd + [f'--workdir={preempted}'], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  for line in proc.stdout:
    if line.startswith('step  3/30'):
      proc.send_signal(signal.SIGTERM)
      break
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 75, err
  assert 'stopped by SIGTERM after step' in err and 're-run the same command' in err
  stopped_at = _steps(preempted)
  assert len(stopped_at) == 1 and 3 <= stopped_at[0] < 30
  subprocess.run(cmd + [f'--workdir={preempted}'], cwd=ROOT, check=True, capture_output=True)
  for a, b in zip(jax.tree.leaves(_final_params(straight, 30)),
                  jax.tree.leaves(_final_params(preempted, 30))):
    np.testing.assert_array_equal(a, b)
  # The metric log holds each step once, as if the run had never stopped.
  assert [r['step'] for r in _rows(preempted) if r['split'] == 'train'] == list(range(1, 31))


def _corrupt(step_dir):
  for root, _, files in os.walk(step_dir / 'state'):
    for name in files:
      with open(os.path.join(root, name), 'wb') as f:
        f.write(b'garbage')


def test_unreadable_newest_checkpoint_falls_back_to_the_previous(tiny_config, tmp_path, capsys):
  workdir = tmp_path / 'run'
  loop.train_and_evaluate(tiny_config, workdir)
  assert _steps(workdir) == [3, 6]
  _corrupt(workdir / 'checkpoints' / '6')
  tiny_config.total_steps = 8
  loop.train_and_evaluate(tiny_config, workdir)
  out = capsys.readouterr().out
  assert 'is unreadable' in out and 'resuming from older checkpoint at step 3' in out
  assert _steps(workdir)[-1] == 8
  assert list(tmp_path.glob('run/checkpoints.unreadable-*/6'))  # kept aside, not deleted


def test_no_readable_checkpoint_refuses_unless_allowed(tiny_config, tmp_path, capsys):
  workdir = tmp_path / 'run'
  tiny_config.total_steps = 3
  loop.train_and_evaluate(tiny_config, workdir)
  _corrupt(workdir / 'checkpoints' / '3')
  with pytest.raises(UserError, match='no readable checkpoint.*allow_fresh_start'):
    loop.train_and_evaluate(tiny_config, workdir)
  assert (workdir / 'checkpoints' / '3').exists()  # nothing overwritten
  tiny_config.allow_fresh_start = True
  loop.train_and_evaluate(tiny_config, workdir)
  assert 'moved the unreadable checkpoints' in capsys.readouterr().out
  assert list(tmp_path.glob('run/checkpoints.unreadable-*/3'))
  assert _steps(workdir) == [3]


def test_resuming_with_different_model_lists_the_keys(tiny_config, tmp_path):
  workdir = tmp_path / 'run'
  tiny_config.total_steps = 3
  loop.train_and_evaluate(tiny_config, workdir)
  tiny_config.model.hidden_size, tiny_config.data.seq_len = 48, 16
  with pytest.raises(UserError, match=r'data\.seq_len \(32 -> 16\), model\.hidden_size'):
    loop.train_and_evaluate(tiny_config, workdir)
  tiny_config.model.hidden_size, tiny_config.data.seq_len = 32, 32
  tiny_config.total_steps, tiny_config.log_every = 4, 1  # allowed: extends the run
  loop.train_and_evaluate(tiny_config, workdir)
  assert _steps(workdir)[-1] == 4


def test_divergence_stops_with_the_step_and_keeps_the_good_checkpoint(tiny_config, tmp_path):
  workdir = tmp_path / 'run'
  tiny_config.total_steps, tiny_config.checkpoint_every = 3, 1
  tiny_config.optimizer.warmup_steps = 0
  loop.train_and_evaluate(tiny_config, workdir)
  tiny_config.total_steps, tiny_config.log_every = 8, 1
  tiny_config.optimizer.learning_rate = float('inf')
  with pytest.raises(loop.TrainingDiverged, match=r'(loss|grad_norm) became nan at step 5'):
    loop.train_and_evaluate(tiny_config, workdir)
  assert _steps(workdir)[-1] <= 4  # step 4 (finite loss, inf update) at most, never 5+


def test_nonfinite_steps_can_be_skipped_up_to_a_limit(tiny_config, tmp_path, capsys):
  tiny_config.optimizer.learning_rate = float('inf')
  tiny_config.skip_nonfinite_steps = 2
  tiny_config.log_every = 1
  with pytest.raises(loop.TrainingDiverged):
    loop.train_and_evaluate(tiny_config, tmp_path / 'run')
  assert capsys.readouterr().out.count('the step was skipped') == 2


def test_skipped_steps_count_across_a_resume(tiny_config, tmp_path, capsys):
  tiny_config.optimizer.learning_rate = float('inf')  # step 1 finite, every later step NaN
  tiny_config.skip_nonfinite_steps = 2
  tiny_config.log_every = 1
  workdir = tmp_path / 'run'
  loop.train_and_evaluate(tiny_config, workdir, stop_at=2)  # skips step 2, saves
  assert capsys.readouterr().out.count('the step was skipped') == 1
  with pytest.raises(loop.TrainingDiverged, match='at step 4'):
    loop.train_and_evaluate(tiny_config, workdir)  # one skip left: step 3; step 4 stops
  assert capsys.readouterr().out.count('the step was skipped') == 1


def test_interval_of_zero_is_a_user_error(tiny_config, tmp_path):
  tiny_config.log_every = 0
  with pytest.raises(UserError, match='log_every=0 must be a positive'):
    loop.train_and_evaluate(tiny_config, tmp_path / 'run')


def test_sigkill_at_random_instants_loses_nothing(tmp_path):
  from tests import fault_soak
  fault_soak.soak(kills=3, seed=1, base=tmp_path, total_steps=200, max_delay=8.0,
                  log=lambda _: None)


@pytest.mark.parametrize('overrides, message', [
    ({'mesh.shape': (2, 1, 1)}, r'mesh.shape \(2, 1, 1\) does not fit 1 devices'),
    ({'data.seq_len': 128}, 'data.seq_len=128 exceeds model.max_len=64'),
    ({'data.mask_rate': 1.5}, r'data.mask_rate=1.5 must be in \(0, 1\)'),
    ({'data.mask_rate': 0.0}, r'data.mask_rate=0.0 must be in \(0, 1\)'),
    ({'optimizer.name': 'sgdd'}, "unknown optimizer.name='sgdd'"),
])
def test_impossible_values_are_user_errors(tiny_config, tmp_path, overrides, message):
  from tests.conftest import apply_overrides
  apply_overrides(tiny_config, overrides)
  with pytest.raises(UserError, match=message):
    loop.train_and_evaluate(tiny_config, tmp_path / 'run')
  assert not (tmp_path / 'run' / 'checkpoints').exists()


def test_empty_corpus_and_unwritable_workdir(tiny_config, tmp_path, monkeypatch):
  empty = tmp_path / 'empty'
  empty.mkdir()
  (empty / 'blank.txt').write_text('\n\n', encoding='utf-8')
  (empty / 'image.png').write_bytes(b'not text')
  tiny_config.data.corpus_dir = str(empty)
  monkeypatch.setenv('BIGMODELS_CACHE', str(tmp_path / 'cache'))
  with pytest.raises(UserError, match='no readable prose'):
    loop.train_and_evaluate(tiny_config, tmp_path / 'run')
  (empty / 'blank.txt').unlink()
  with pytest.raises(UserError, match='holds no .txt, .md or .rst files'):
    loop.train_and_evaluate(tiny_config, tmp_path / 'run')
  blocker = tmp_path / 'a-file'  # a workdir below a file cannot be created, even by root
  blocker.write_text('x')
  with pytest.raises(UserError, match='is not writable'):
    loop.train_and_evaluate(tiny_config, blocker / 'run')


def test_disk_full_during_a_save_keeps_earlier_checkpoints(tiny_config, tmp_path, monkeypatch):
  import errno
  import orbax.checkpoint as ocp
  workdir = tmp_path / 'run'
  real_save = ocp.CheckpointManager.save

  def save(self, step, *args, **kwargs):
    if step == 6:
      raise OSError(errno.ENOSPC, 'No space left on device')
    return real_save(self, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, 'save', save)
  with pytest.raises(UserError, match=r'disk full while saving checkpoint 6 .* \[3\] are intact'):
    loop.train_and_evaluate(tiny_config, workdir)
  monkeypatch.setattr(ocp.CheckpointManager, 'save', real_save)
  loop.train_and_evaluate(tiny_config, workdir)  # space freed: resumes from step 3
  assert _steps(workdir) == [3, 6]
