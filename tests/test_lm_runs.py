"""The language-model configs through the one loop: each trains end to end in a tiny variant,
resumes bit-identically, and gives the same run on 8 devices as on 1; init_from fine-tuning;
text classification; predict from the command line."""

import json

import numpy as np
import pytest

from bigmodels.errors import UserError
from tests.helpers import (apply_overrides, device_env, run_module, text_family_overrides,
                           write_wordnet)
from tests.run_tiny import train_and_report

FAMILY = ('causal_lm', 'lstm_lm', 't5_span', 'classify_text')


@pytest.fixture(scope='module')
def wordnet_dir(tmp_path_factory):
  return write_wordnet(tmp_path_factory.mktemp('wordnet'))


def _overrides(name, corpus_dir, wordnet_dir):
  if name != 'classify_text':
    return text_family_overrides(corpus_dir, name)
  overrides = text_family_overrides(corpus_dir, 'causal_lm')
  del overrides['data.corpus_dir']
  overrides.update({'data.wordnet_dir': str(wordnet_dir), 'data.seq_len': 16,
                    'data.tokenizer_corpus_dir': str(corpus_dir), 'data.heldout_percent': 25.0})
  return overrides


@pytest.fixture(scope='module')
def family_runs(corpus_dir, wordnet_dir, tmp_path_factory):
  """Per config: an uninterrupted 6-step run, and one stopped at step 3 and resumed."""
  out = {}
  for name in FAMILY:
    folder = tmp_path_factory.mktemp(name)
    overrides = _overrides(name, corpus_dir, wordnet_dir)
    full = train_and_report(str(folder / 'full'), name, overrides)
    train_and_report(str(folder / 'resumed'), name, overrides, stop_at=3)
    resumed = train_and_report(str(folder / 'resumed'), name, overrides)
    out[name] = {'full': full, 'resumed': resumed, 'folder': folder,
                 'leaves': {k: dict(np.load(folder / k / 'final.npz'))
                            for k in ('full', 'resumed')}}
  return out


@pytest.mark.parametrize('name', FAMILY)
def test_each_config_trains_and_resumes_bit_identically(family_runs, name):
  run = family_runs[name]
  full, resumed = run['full'], run['resumed']
  assert len(full['losses']) == 6 and len(full['eval']) == 2
  assert np.isfinite(full['losses']).all() and full['losses'][-1] < full['losses'][0]
  assert full['losses'] == resumed['losses'] and full['eval'] == resumed['eval']
  a, b = run['leaves']['full'], run['leaves']['resumed']
  assert a.keys() == b.keys()
  for key in a:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  metrics = full['eval'][-1]
  assert {'loss', 'accuracy'} <= metrics.keys()
  assert ('macro_f1' in metrics) == (name == 'classify_text')
  assert ('perplexity' in metrics) == (name != 'classify_text')
  if name != 'classify_text':
    assert (run['folder'] / 'full' / 'tokenizer.model').is_file()
  else:
    assert (run['folder'] / 'full' / 'confusion.png').is_file()


def test_eight_devices_give_the_one_device_runs(family_runs, corpus_dir, wordnet_dir, tmp_path):
  jobs = [{'workdir': str(tmp_path / name), 'config': name,
           'overrides': dict(_overrides(name, corpus_dir, wordnet_dir),
                             **{'mesh.shape': [2, 2, 2]})} for name in FAMILY]
  result = run_module('tests.run_tiny', ['-', json.dumps(jobs)], env=device_env(8))
  assert result.returncode == 0, result.stderr[-2000:]
  reports = json.loads(result.stdout.strip().splitlines()[-1])
  for name, report in zip(FAMILY, reports):
    one = family_runs[name]['full']
    assert report['devices'] == 8
    np.testing.assert_allclose(report['losses'], one['losses'], rtol=0, atol=1e-5,
                               err_msg=name)
    for x, y in zip(report['eval'], one['eval']):
      np.testing.assert_allclose(x['loss'], y['loss'], atol=1e-5, err_msg=name)
    if name != 'lstm_lm':  # Transformer weights really are split over fsdp x tensor.
      shard = report['shards']['params/token_embed/embedding']
      assert shard['shard_shape'] == [shard['shape'][0] // 2, 32 // 2], name


def _config(name, corpus_dir, wordnet_dir, **extra):
  import importlib
  config = importlib.import_module(f'configs.{name}').get_config()
  return apply_overrides(config, {**_overrides(name, corpus_dir, wordnet_dir), **extra})


@pytest.fixture(scope='module')
def mlm_run(corpus_dir, tmp_path_factory):
  """A tiny masked-LM run whose encoder fits classify_text's tiny overrides."""
  from configs import mlm
  from bigmodels.train import loop
  workdir = tmp_path_factory.mktemp('mlm-source')
  overrides = {k: v for k, v in text_family_overrides(corpus_dir, 'causal_lm').items()
               if k not in ('eval_steps',)}
  config = apply_overrides(mlm.get_config(), dict(overrides, total_steps=2,
                                                  checkpoint_every=2, eval_every=2))
  loop.train_and_evaluate(config, workdir)
  return workdir


def test_init_from_loads_exactly_the_listed_parameters(mlm_run, corpus_dir, wordnet_dir,
                                                       tmp_path, capsys):
  from bigmodels.train import init_from, loop
  config = _config('classify_text', corpus_dir, wordnet_dir, init_from=str(mlm_run),
                   total_steps=1, checkpoint_every=1, eval_every=1,
                   **{'optimizer.learning_rate': 0.0})
  loop.train_and_evaluate(config, tmp_path / 'ft')
  out = capsys.readouterr().out
  assert f'init_from {mlm_run}' in out and 'starting in' in out
  source = init_from.load_source_params(init_from.newest_checkpoint(mlm_run))
  tuned = init_from.load_source_params(init_from.newest_checkpoint(tmp_path / 'ft'))
  fresh = {k for k in tuned if k.startswith(('pooler/', 'classifier/'))}
  assert fresh == {'pooler/kernel', 'pooler/bias', 'classifier/kernel', 'classifier/bias'}
  for key in tuned.keys() - fresh:  # learning rate 0: still the loaded values
    np.testing.assert_array_equal(tuned[key], source[key], err_msg=key)
  ignored = source.keys() - tuned.keys()
  assert ignored == {'mlm_dense/kernel', 'mlm_dense/bias', 'mlm_norm/scale', 'mlm_norm/bias',
                     'mlm_bias'}
  table = out[out.index('status'):]
  assert 'loaded   encoder/layer_*/attention/query/kernel' in table
  assert 'fresh    classifier/kernel' in table and 'ignored  mlm_bias' in table
  assert f'({len(tuned) - 4} loaded, 4 fresh, 5 ignored parameter arrays)' in table
  # The tokenizer came from the source run, and the classifier's checkpoint resumes as usual.
  assert (tmp_path / 'ft' / 'tokenizer.model').read_bytes() == (
      mlm_run / 'tokenizer.model').read_bytes()


def test_init_from_refuses_a_mismatched_shape_or_an_unlisted_new_parameter(
    mlm_run, corpus_dir, wordnet_dir, tmp_path):
  from bigmodels.train import loop
  wider = _config('classify_text', corpus_dir, wordnet_dir, init_from=str(mlm_run),
                  **{'model.mlp_dim': 48})
  with pytest.raises(UserError, match=r'^parameter encoder/layer_0/mlp/wi/bias has shape '
                                      r'\(48,\) here but \(64,\) in the init_from'):
    loop.train_and_evaluate(wider, tmp_path / 'a')
  unlisted = _config('classify_text', corpus_dir, wordnet_dir, init_from=str(mlm_run),
                     init_fresh=('classifier/*',))
  with pytest.raises(UserError, match='^parameter pooler/bias is not in the init_from '
                                      'checkpoint: add a pattern'):
    loop.train_and_evaluate(unlisted, tmp_path / 'b')
  missing = _config('classify_text', corpus_dir, wordnet_dir, init_from=str(tmp_path / 'nope'))
  with pytest.raises(UserError, match='is not a run folder'):
    loop.train_and_evaluate(missing, tmp_path / 'c')
  assert not any((tmp_path / d / 'checkpoints').exists() for d in 'abc')


def test_predict_generates_fills_spans_and_masks(family_runs, mlm_run):
  causal = family_runs['causal_lm']['folder'] / 'full'
  result = run_module('experiments.predict', [
      f'--workdir={causal}', '--prompt=the model reads', '--prompt=python', '--temperature=0',
      '--max_new_tokens=5'])
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.count('--- ') == 2 and '--- the model reads\nthe model reads' in (
      result.stdout)
  assert 'decoded 2 x 5 tokens' in result.stdout and 'with the key/value cache' in result.stdout
  result = run_module('experiments.predict', [
      f'--workdir={family_runs["t5_span"]["folder"] / "full"}', '--prompt=the [MASK] reads',
      '--max_new_tokens=4', '--num_samples=2', '--seed=1', '--top_k=3'])
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.count('--- the [MASK] reads') == 2
  result = run_module('experiments.predict', [f'--workdir={mlm_run}',
                                              '--text=the [MASK] reads [MASK] data', '--top_k=3'])
  assert result.returncode == 0, result.stderr[-2000:]
  lines = [l for l in result.stdout.splitlines() if l.startswith('[MASK]')]
  assert len(lines) == 2 and all(l.count(', ') == 2 for l in lines)
  result = run_module('experiments.predict', [f'--workdir={mlm_run}', '--prompt=x'])
  assert result.returncode == 2 and result.stderr.startswith('error: this is a masked-LM run')
