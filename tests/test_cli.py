"""The command line: one-line errors for bad configs, and the benchmark's JSON line."""

import json

import pytest

from tests.conftest import cli_overrides, run_module, tiny_overrides


def _error_line(result):
  lines = [l for l in result.stderr.strip().splitlines() if l.strip()]
  assert lines, 'expected an error message on stderr'
  assert len(lines) == 1, result.stderr
  assert lines[0].startswith('error: ')
  return lines[0]


@pytest.mark.parametrize('flag, expected', [
    ('--config.model.vocab_sise=100', 'vocab_sise'),
    ('--config.batch_sizee=8', 'batch_sizee'),
    ('--config.batch_size=eight', 'batch_size'),
])
def test_config_typo_or_wrong_type_is_one_line_naming_the_key(tmp_path, flag, expected):
  result = run_module('experiments.main', ['--config=configs/mlm.py', f'--workdir={tmp_path}',
                                           flag])
  assert result.returncode != 0
  assert expected in _error_line(result)
  assert not (tmp_path / 'checkpoints').exists()


def test_missing_config_file_and_bad_size_argument(tmp_path):
  result = run_module('experiments.main', ['--config=configs/nope.py', f'--workdir={tmp_path}'])
  assert result.returncode != 0 and 'nope.py' in _error_line(result)
  result = run_module('experiments.main', ['--config=configs/mlm.py:size=huge',
                                           f'--workdir={tmp_path}'])
  assert result.returncode != 0 and 'huge' in _error_line(result)


def test_missing_corpus_is_a_clear_error(tmp_path):
  result = run_module('experiments.main', [
      '--config=configs/mlm.py', f'--workdir={tmp_path / "run"}',
      f'--config.data.corpus_dir={tmp_path / "missing"}'])
  assert result.returncode == 2
  assert 'does not exist' in _error_line(result)


def test_benchmark_prints_one_json_line(corpus_dir):
  overrides = tiny_overrides(corpus_dir)
  result = run_module('experiments.benchmark', [
      '--config=configs/mlm.py', '--warmup=1', '--windows=3', '--steps_per_window=2',
      *cli_overrides(overrides)])
  assert result.returncode == 0, result.stderr[-2000:]
  row = json.loads(result.stdout.strip().splitlines()[-1])
  for key in ('tokens_per_s', 'step_ms', 'peak_mem_mb', 'mfu', 'devices', 'backend'):
    assert key in row
  assert row['tokens_per_s'] > 0 and row['step_ms'] > 0 and row['backend'] == 'cpu'
  assert row['mfu'] is None  # no accelerator
  assert len(row['windows_ms']) == 3


def test_tfds_catalog_without_tensorflow_is_a_clear_error(tmp_path):
  pytest.importorskip('tensorflow_datasets')
  try:
    import tensorflow  # noqa: F401
    pytest.skip('TensorFlow is installed here')
  except ImportError:
    pass
  result = run_module('experiments.main', [
      '--config=configs/mlm.py', f'--workdir={tmp_path / "run"}', '--config.data.tfds_name=lm1b'])
  assert result.returncode == 2
  line = _error_line(result)
  assert 'lm1b' in line and 'tensorflow' in line.lower()


def test_batch_not_divisible_by_devices(corpus_dir, tmp_path):
  overrides = tiny_overrides(corpus_dir)
  overrides['batch_size'] = 12
  result = run_module('experiments.main', [
      '--config=configs/mlm.py', f'--workdir={tmp_path}', *cli_overrides(overrides)],
      env={'XLA_FLAGS': '--xla_force_host_platform_device_count=8', 'JAX_PLATFORMS': 'cpu'})
  assert result.returncode == 2
  assert 'batch_size=12 is not divisible by the 8 batch shards' in _error_line(result)
