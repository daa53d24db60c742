"""End-to-end training: outputs, resume equality, sharding equivalence."""

import json

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from bigmodels.train import loop
from tests.conftest import run_module, tiny_overrides


def _rows(workdir):
  return [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]


def _final_params(workdir, step):
  restored = ocp.StandardCheckpointer().restore(workdir / 'checkpoints' / str(step) / 'state')
  return restored['params']


def test_end_to_end_tiny_run_writes_every_output(tiny_config, tmp_path, capsys):
  workdir = tmp_path / 'run'
  final = loop.train_and_evaluate(tiny_config, workdir)
  out = capsys.readouterr().out
  assert 'step 2/6 | loss' in out and 'tok/s' in out and 'ETA' in out
  rows = _rows(workdir)
  train = [r for r in rows if r['split'] == 'train']
  evals = [r for r in rows if r['split'] == 'eval']
  assert [r['step'] for r in train] == [2, 4, 6]
  assert [r['step'] for r in evals] == [3, 6]
  for r in train:
    assert {'loss', 'mlm_accuracy', 'perplexity', 'grad_norm', 'learning_rate',
            'tokens_per_s'} <= set(r)
  for r in evals:
    assert {'loss', 'mlm_accuracy', 'perplexity'} <= set(r)
    assert np.isfinite(r['loss']) and 0.0 <= r['mlm_accuracy'] <= 1.0
    assert r['perplexity'] == pytest.approx(np.exp(r['loss']), rel=1e-4)
  assert final['loss'] == pytest.approx(evals[-1]['loss'])
  assert train[-1]['loss'] < np.log(200)  # learned something beyond uniform guessing
  assert json.loads((workdir / 'config.json').read_text())['model']['hidden_size'] == 32
  assert sorted(p.name for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit()) == [
      '3', '6']
  assert list(workdir.glob('events.out.tfevents.*'))


def test_resume_is_bit_identical_to_an_uninterrupted_run(tiny_config, tmp_path):
  straight, resumed = tmp_path / 'straight', tmp_path / 'resumed'
  tiny_config.checkpoint_every = 100  # only the stop and the end save
  loop.train_and_evaluate(tiny_config, straight)
  loop.train_and_evaluate(tiny_config, resumed, stop_at=3)
  assert [p.name for p in (resumed / 'checkpoints').iterdir() if p.name.isdigit()] == ['3']
  loop.train_and_evaluate(tiny_config, resumed)
  a, b = _final_params(straight, 6), _final_params(resumed, 6)
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(leaves_a) == len(leaves_b) > 10
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(x, y)
  train = lambda d: [(r['step'], r['loss']) for r in _rows(d) if r['split'] == 'train']
  assert train(straight)[-1] == train(resumed)[-1]  # the step 5-6 window


def test_rerunning_a_finished_run_trains_nothing(tiny_config, tmp_path, capsys):
  workdir = tmp_path / 'run'
  tiny_config.total_steps = 2
  loop.train_and_evaluate(tiny_config, workdir)
  before = (workdir / 'metrics.jsonl').read_text()
  loop.train_and_evaluate(tiny_config, workdir)
  assert 'already trained to step 2/2' in capsys.readouterr().out
  assert (workdir / 'metrics.jsonl').read_text() == before


def test_eight_devices_match_one_device(corpus_dir, tmp_path):
  overrides = tiny_overrides(corpus_dir)
  overrides.update({'log_every': 1, 'total_steps': 4, 'eval_every': 100,
                    'checkpoint_every': 100})
  losses = {}
  for name, devices, shape in [('one', 1, [-1, 1, 1]), ('dp8', 8, [-1, 1, 1]),
                               ('fsdp_tp', 8, [1, 4, 2]), ('dp_fsdp', 8, [2, 4, 1])]:
    cfg = dict(overrides, **{'mesh.shape': shape})
    result = run_module('tests.run_tiny', [str(tmp_path / name), json.dumps(cfg)], env={
        'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}',
        'JAX_PLATFORMS': 'cpu'})
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out['devices'] == devices
    losses[name] = out['losses']
  assert len(losses['one']) == 4
  np.testing.assert_allclose(losses['dp8'], losses['one'], rtol=0, atol=1e-5)
  # FSDP and tensor parallel through the logical-axis rules: same numbers, no model change.
  np.testing.assert_allclose(losses['fsdp_tp'], losses['one'], rtol=0, atol=1e-5)
  np.testing.assert_allclose(losses['dp_fsdp'], losses['one'], rtol=0, atol=1e-5)
