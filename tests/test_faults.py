"""Fault injection: preemption signals, damaged checkpoints, config changes, divergence,
SIGKILL in every phase, a full disk."""

import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from bigmodels.errors import UserError
from bigmodels.train import loop
from tests.helpers import (ROOT, apply_overrides, checkpoint_steps, cli_overrides, rows,
                           saved_state, tiny_overrides)


def _command(corpus_dir, workdir, **extra):
  overrides = tiny_overrides(corpus_dir)
  overrides.update({'total_steps': 300, 'log_every': 1, 'eval_every': 1000,
                    'checkpoint_every': 1000}, **extra)
  return [sys.executable, '-m', 'experiments.main', '--config=configs/mlm.py',
          f'--workdir={workdir}', *cli_overrides(overrides)]


def _signal_at_step_3(cmd, signals):
  """Starts `cmd`, sends `signals` once step 3 is printed (each after the previous one was
  acknowledged); returns (exit code, stdout, stderr)."""
  proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  out = []
  for line in proc.stdout:
    out.append(line)
    if line.startswith('step ') and line.split()[1].startswith('3/'):
      proc.send_signal(signals[0])
      break
  for sig in signals[1:]:
    for line in proc.stdout:
      out.append(line)
      if 'received: finishing this step' in line:
        proc.send_signal(sig)
        break
  rest, err = proc.communicate(timeout=120)
  return proc.returncode, ''.join(out) + rest, err


def test_sigterm_saves_a_checkpoint_and_the_rerun_matches(corpus_dir, tmp_path):
  straight, preempted = tmp_path / 'straight', tmp_path / 'preempted'
  subprocess.run(_command(corpus_dir, straight, total_steps=30), cwd=ROOT, check=True,
                 capture_output=True)
  code, _, err = _signal_at_step_3(_command(corpus_dir, preempted, total_steps=30),
                                   [signal.SIGTERM])
  assert code == 75, err
  assert 'stopped by SIGTERM after step' in err and 're-run the same command' in err
  stopped_at = checkpoint_steps(preempted)
  assert len(stopped_at) == 1 and 3 <= stopped_at[0] < 30
  rerun = subprocess.run(_command(corpus_dir, preempted, total_steps=30), cwd=ROOT, check=True,
                         capture_output=True, text=True)
  assert f'resuming from checkpoint at step {stopped_at[0]}' in rerun.stdout
  for a, b in zip(jax.tree.leaves(saved_state(straight, 30)['params']),
                  jax.tree.leaves(saved_state(preempted, 30)['params'])):
    np.testing.assert_array_equal(a, b)
  # The metric log holds each step once, as if the run had never stopped.
  assert [r['step'] for r in rows(preempted, 'train')] == list(range(1, 31))


def test_sigint_stops_gracefully_and_a_second_signal_exits_at_once(corpus_dir, tmp_path):
  code, out, err = _signal_at_step_3(_command(corpus_dir, tmp_path / 'int'), [signal.SIGINT])
  assert code == 75, err
  assert 'SIGINT received' in out and 'stopped by SIGINT after step' in err
  assert len(checkpoint_steps(tmp_path / 'int')) == 1
  code, out, err = _signal_at_step_3(_command(corpus_dir, tmp_path / 'twice'),
                                     [signal.SIGTERM, signal.SIGTERM])
  assert code == 128 + signal.SIGTERM, (code, err)
  assert 'stopped by' not in err  # it did not wait for the step and the save


def _corrupt(step_dir):
  for root, _, files in os.walk(step_dir / 'state'):
    for name in files:
      with open(os.path.join(root, name), 'wb') as f:
        f.write(b'garbage')


def test_unreadable_newest_checkpoint_falls_back_to_the_previous(tiny_config, tmp_path, capsys):
  workdir = tmp_path / 'run'
  loop.train_and_evaluate(tiny_config, workdir)
  assert checkpoint_steps(workdir) == [3, 6]
  _corrupt(workdir / 'checkpoints' / '6')
  tiny_config.total_steps = 8
  loop.train_and_evaluate(tiny_config, workdir)
  out = capsys.readouterr().out
  assert 'checkpoints/6 is unreadable' in out
  assert 'resuming from older checkpoint at step 3' in out
  assert checkpoint_steps(workdir)[-1] == 8
  assert list(tmp_path.glob('run/checkpoints.unreadable-*/6'))  # kept aside, not deleted


def test_no_readable_checkpoint_refuses_unless_allowed(tiny_config, tmp_path, capsys):
  workdir = tmp_path / 'run'
  tiny_config.total_steps = 3
  loop.train_and_evaluate(tiny_config, workdir)
  _corrupt(workdir / 'checkpoints' / '3')
  with pytest.raises(UserError, match='no readable checkpoint.*allow_fresh_start'):
    loop.train_and_evaluate(tiny_config, workdir)
  files = [p for p in (workdir / 'checkpoints' / '3' / 'state').rglob('*') if p.is_file()]
  assert files and all(p.read_bytes() == b'garbage' for p in files)  # nothing overwritten
  tiny_config.allow_fresh_start = True
  loop.train_and_evaluate(tiny_config, workdir)
  assert 'moved the unreadable checkpoints' in capsys.readouterr().out
  assert list(tmp_path.glob('run/checkpoints.unreadable-*/3'))
  assert checkpoint_steps(workdir) == [3]


def test_resuming_with_different_model_lists_the_keys(tiny_config, tmp_path):
  workdir = tmp_path / 'run'
  tiny_config.total_steps = 3
  loop.train_and_evaluate(tiny_config, workdir)
  tiny_config.model.hidden_size, tiny_config.data.seq_len = 48, 16
  with pytest.raises(UserError, match=r'data\.seq_len \(32 -> 16\), model\.hidden_size'):
    loop.train_and_evaluate(tiny_config, workdir)
  tiny_config.model.hidden_size, tiny_config.data.seq_len = 32, 32
  # Allowed: extending the run, other intervals, a lower learning rate.
  tiny_config.total_steps, tiny_config.log_every, tiny_config.eval_every = 4, 1, 2
  tiny_config.checkpoint_every, tiny_config.optimizer.learning_rate = 2, 1e-3
  loop.train_and_evaluate(tiny_config, workdir)
  assert checkpoint_steps(workdir) == [3, 4]


def test_an_infinite_update_stops_the_run_before_it_is_saved(tiny_config, tmp_path):
  workdir = tmp_path / 'run'
  tiny_config.total_steps, tiny_config.checkpoint_every = 3, 1
  tiny_config.optimizer.warmup_steps = 0
  loop.train_and_evaluate(tiny_config, workdir)
  tiny_config.total_steps, tiny_config.log_every, tiny_config.eval_every = 8, 8, 4
  tiny_config.optimizer.learning_rate = float('inf')
  # Step 4's loss and gradient are finite (computed from step 3's good parameters); its
  # update is not. The run must stop there, naming the update, and save nothing after 3.
  with pytest.raises(loop.TrainingDiverged,
                     match=r'parameter update norm \(update_norm\) became (nan|inf) at step 4'):
    loop.train_and_evaluate(tiny_config, workdir)
  assert checkpoint_steps(workdir) == [1, 2, 3]
  params = saved_state(workdir, 3)['params']
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))
  assert [r['step'] for r in rows(workdir, 'eval')] == [3]  # no eval of the diverged state


def test_nonfinite_steps_can_be_skipped_up_to_a_limit(tiny_config, tmp_path, capsys):
  tiny_config.optimizer.learning_rate = float('inf')
  tiny_config.skip_nonfinite_steps = 2
  tiny_config.log_every = 1
  with pytest.raises(loop.TrainingDiverged, match='at step 3'):
    loop.train_and_evaluate(tiny_config, tmp_path / 'run')
  assert capsys.readouterr().out.count('the step was skipped') == 2


def test_skipped_steps_count_across_a_resume(tiny_config, tmp_path, capsys):
  tiny_config.optimizer.learning_rate = float('inf')  # every update is infinite
  tiny_config.skip_nonfinite_steps = 3
  tiny_config.log_every = 1
  workdir = tmp_path / 'run'
  loop.train_and_evaluate(tiny_config, workdir, stop_at=2)  # skips steps 1 and 2, saves
  assert capsys.readouterr().out.count('the step was skipped') == 2
  with pytest.raises(loop.TrainingDiverged, match='at step 4'):
    loop.train_and_evaluate(tiny_config, workdir)  # one skip left: step 3; step 4 stops
  assert capsys.readouterr().out.count('the step was skipped') == 1


def test_sigkill_in_every_phase_loses_nothing(tmp_path):
  from tests import fault_soak
  counts = fault_soak.soak(kills=4, seed=1, base=tmp_path, total_steps=120,
                           log=lambda _: None)
  assert counts == {'data': 1, 'compile': 1, 'step': 1, 'save': 1}


@pytest.mark.parametrize('overrides, message', [
    ({'mesh.shape': (2, 1, 1)}, r'mesh.shape \(2, 1, 1\) does not fit 1 devices'),
    ({'mesh.dcn_shape': (2, 1, 1)}, r'mesh.dcn_shape \(2, 1, 1\) must have one entry'),
    ({'data.seq_len': 128}, 'data.seq_len=128 exceeds model.max_len=64'),
    ({'data.mask_rate': 1.5}, r'data.mask_rate=1.5 must be in \(0, 1\)'),
    ({'data.mask_rate': 0.0}, r'data.mask_rate=0.0 must be in \(0, 1\)'),
    ({'data.mask_token_prob': 0.8, 'data.random_token_prob': 0.3},
     'data.mask_token_prob=0.8 and data.random_token_prob=0.3 must be shares'),
    ({'optimizer.name': 'sgdd'}, "unknown optimizer.name='sgdd'"),
    ({'log_every': 0}, 'log_every=0 must be a positive'),
    ({'batch_size': -3}, 'batch_size=-3 must be a positive'),
    ({'model.remat': 'some'}, "unknown model.remat='some': use none, dots, full"),
    ({'data.eval_mask_rate': 0.0}, r'data.eval_mask_rate=0.0 must be in \(0, 1\)'),
])
def test_impossible_values_are_user_errors_that_write_nothing(tiny_config, tmp_path,
                                                              overrides, message):
  apply_overrides(tiny_config, overrides)
  with pytest.raises(UserError, match=message):
    loop.train_and_evaluate(tiny_config, tmp_path / 'run')
  assert not (tmp_path / 'run').exists()


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
  assert not (tmp_path / 'run').exists()
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
  assert checkpoint_steps(workdir) == [3, 6]
