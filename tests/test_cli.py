"""The command line: --help, --print_config, every fault-table row with its exit code, and
the benchmark's JSON line."""

import json
import os

import pytest

from tests.helpers import (checkpoint_steps, cli_overrides, device_env, run_module,
                           tiny_overrides, vision_overrides)

EIGHT_DEVICES = device_env(8)


def _error_line(result):
  lines = [l for l in result.stderr.strip().splitlines() if l.strip()]
  assert lines, 'expected an error message on stderr'
  assert len(lines) == 1, result.stderr
  assert lines[0].startswith('error: ')
  return lines[0]


def test_help_lists_the_flags_and_how_to_see_config_keys():
  result = run_module('experiments.main', ['--help'])
  assert result.returncode == 0, result.stderr
  for text in ('--workdir', '--config', '--print_config', 'distributed', 'verbose',
               'Re-running the same command'):
    assert text in result.stdout, text


def test_print_config_shows_resolved_values_with_their_meaning(tmp_path):
  result = run_module('experiments.main', ['--config=configs/mlm.py:size=mini',
                                           f'--workdir={tmp_path / "run"}', '--print_config',
                                           '--config.model.num_heads=8'])
  assert result.returncode == 0, result.stderr
  lines = {l.split(' = ')[0]: l for l in result.stdout.splitlines() if ' = ' in l}
  assert "model.hidden_size = 256" in lines['model.hidden_size']  # from the 'mini' preset
  assert lines['model.num_heads'].startswith('model.num_heads = 8 ')
  assert '# peak learning rate' in lines['optimizer.learning_rate']
  assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('config_module, arg', [
    ('mlm', None), ('fashion_mnist', 'model=mlp'), ('causal_lm', None), ('lstm_lm', None),
    ('t5_span', None), ('classify_text', None)])
def test_every_config_key_has_a_one_line_meaning(config_module, arg):
  import importlib
  from configs import base
  from bigmodels.train.resume import flatten
  module = importlib.import_module(f'configs.{config_module}')
  keys = set(flatten(module.get_config(arg)))
  documented = set(base.BASE_HELP) | set(module.HELP)
  assert keys - documented == set()
  assert documented - keys == set()
  lines = {**base.BASE_HELP, **module.HELP}.values()
  assert all(line.strip() and '\n' not in line and len(line) < 120 for line in lines)


def _main(tmp_path, *flags, config='configs/mlm.py', env=None):
  return run_module('experiments.main', [f'--config={config}', f'--workdir={tmp_path / "run"}',
                                         *flags], env=env)


# Each row of the README's fault table that a user can cause from the command line: the
# flags, a fragment of the one-line error, and the environment. Every one exits with 2 and
# creates no workdir.
USER_ERRORS = {
    'unknown key': (['--config.model.vocab_sise=100'], "unknown key 'vocab_sise'", None),
    'misspelt top-level key': (['--config.batch_sizee=8'], "unknown key 'batch_sizee'", None),
    'wrong type': (['--config.batch_size=eight'],
                   "--config.batch_size=eight: invalid literal for int()", None),
    'negative batch': (['--config.batch_size=-3'], 'batch_size=-3 must be a positive', None),
    'zero interval': (['--config.log_every=0'], 'log_every=0 must be a positive', None),
    'batch not divisible': (['--config.batch_size=12'], 'batch_size=12 is not divisible by '
                            'the 8 batch shards', EIGHT_DEVICES),
    'mesh too large': (["--config.mesh.shape=(2, 1, 1)"], r'does not fit 1 devices', None),
    'seq_len over max_len': (['--config.data.seq_len=1024'],
                             'data.seq_len=1024 exceeds model.max_len=512', None),
    'mask rate': (['--config.data.mask_rate=1.5'], 'data.mask_rate=1.5 must be in (0, 1)', None),
    'optimizer name': (['--config.optimizer.name=sgdd'], "unknown optimizer.name='sgdd'", None),
    'catalog without TensorFlow': (['--config.data.tfds_name=lm1b'],
                                   "data.tfds_name='lm1b' needs TensorFlow", None),
}


@pytest.mark.parametrize('case', list(USER_ERRORS))
def test_user_errors_are_one_line_exit_2_and_write_nothing(tmp_path, case):
  flags, message, env = USER_ERRORS[case]
  result = _main(tmp_path, *flags, env=env)
  assert result.returncode == 2, result.stderr
  assert message in _error_line(result)
  assert not (tmp_path / 'run').exists()


def test_missing_config_file_and_bad_size_argument(tmp_path):
  result = _main(tmp_path, config='configs/nope.py')
  assert result.returncode == 2
  assert "No such file or directory: 'configs/nope.py'" in _error_line(result)
  result = _main(tmp_path, config='configs/mlm.py:size=huge')
  assert result.returncode == 2 and "unknown model.size='huge'" in _error_line(result)
  result = _main(tmp_path, '--config.batch_size=-3', '--verbose')  # --verbose: the traceback
  assert result.returncode != 0 and 'Traceback' in result.stderr
  assert not (tmp_path / 'run').exists()


def test_missing_or_empty_corpus_and_unwritable_workdir(tmp_path):
  result = _main(tmp_path, f'--config.data.corpus_dir={tmp_path / "missing"}')
  assert result.returncode == 2 and 'does not exist' in _error_line(result)
  empty = tmp_path / 'empty'
  empty.mkdir()
  (empty / 'blank.txt').write_text('\n')
  (empty / 'blank2.txt').write_text('\n')
  result = _main(tmp_path, f'--config.data.corpus_dir={empty}')
  assert result.returncode == 2 and 'no readable prose' in _error_line(result)
  assert not (tmp_path / 'run').exists()
  (empty / 'latin1.txt').write_bytes(b'caf\xe9 au lait, written in latin-1\n')
  result = _main(tmp_path, f'--config.data.corpus_dir={empty}')
  assert result.returncode == 2 and 'latin1.txt is not valid UTF-8' in _error_line(result)
  assert not (tmp_path / 'run').exists()
  (tmp_path / 'a-file').write_text('x')
  result = run_module('experiments.main', ['--config=configs/mlm.py',
                                           f'--workdir={tmp_path / "a-file" / "run"}'])
  assert result.returncode == 2 and 'is not writable' in _error_line(result)


@pytest.mark.parametrize('flags, message', [
    ([], 'does not exist'),  # data.image_dir below points at a missing folder
    (['--config.model.name=vgg'], "unknown model.name='vgg'"),
    (['--config.data.image_shape=(28, 28, 1)'], 'the images are (12, 12, 1) but '
                                                'data.image_shape=(28, 28, 1)'),
    (['--config.model.num_classes=5'], 'the data has 10 classes but model.num_classes=5'),
])
def test_vision_user_errors(image_dir, tmp_path, flags, message):
  overrides = vision_overrides(image_dir)
  if not flags:
    overrides['data.image_dir'] = str(tmp_path / 'none')
  if any('image_shape' in f for f in flags):
    del overrides['data.image_shape']  # the same key twice would be appended, not replaced
  result = _main(tmp_path, *cli_overrides(overrides), *flags,
                 config='configs/fashion_mnist.py:model=cnn')
  assert result.returncode == 2
  assert message in _error_line(result)
  assert not (tmp_path / 'run').exists()


def test_resume_refusals_and_divergence_through_the_command_line(corpus_dir, tmp_path):
  flags = cli_overrides(dict(tiny_overrides(corpus_dir), total_steps=3))
  assert _main(tmp_path, *flags).returncode == 0
  before = sorted(os.listdir(tmp_path / 'run' / 'checkpoints' / '3' / 'state'))
  result = _main(tmp_path, *flags, '--config.model.hidden_size=48')
  assert result.returncode == 2
  assert 'different config: model.hidden_size (32 -> 48)' in _error_line(result)
  for root, _, files in os.walk(tmp_path / 'run' / 'checkpoints' / '3' / 'state'):
    for name in files:
      with open(os.path.join(root, name), 'wb') as f:
        f.write(b'garbage')
  result = _main(tmp_path, *flags, '--config.total_steps=4')
  assert result.returncode == 2 and 'no readable checkpoint' in _error_line(result)
  assert sorted(os.listdir(tmp_path / 'run' / 'checkpoints' / '3' / 'state')) == before
  files = [p for p in (tmp_path / 'run' / 'checkpoints' / '3' / 'state').rglob('*')
           if p.is_file()]
  assert all(p.read_bytes() == b'garbage' for p in files)  # nothing overwritten
  result = run_module('experiments.main', [
      '--config=configs/mlm.py', f'--workdir={tmp_path / "diverged"}', *flags,
      '--config.optimizer.learning_rate=inf', '--config.checkpoint_every=1'])
  line = _error_line(result)
  assert result.returncode == 2 and '(update_norm) became' in line and 'at step 1:' in line
  assert checkpoint_steps(tmp_path / 'diverged') == []


def test_damaged_checkpoints_full_disk_and_skips_through_the_command_line(corpus_dir,
                                                                          tmp_path):
  flags = cli_overrides(dict(tiny_overrides(corpus_dir), log_every=1))
  full = run_module('tests.fault_main', ['--config=configs/mlm.py',
                                         f'--workdir={tmp_path / "run"}', *flags],
                    env={'DISK_FULL_AT_STEP': '6'})
  assert full.returncode == 2
  assert 'disk full while saving checkpoint 6' in _error_line(full)
  assert checkpoint_steps(tmp_path / 'run') == [3]
  result = _main(tmp_path, *flags)  # space freed: the same command resumes
  assert result.returncode == 0, result.stderr
  assert 'resuming from checkpoint at step 3' in result.stdout
  assert checkpoint_steps(tmp_path / 'run') == [3, 6]
  for root, _, files in os.walk(tmp_path / 'run' / 'checkpoints' / '6' / 'state'):
    for name in files:
      with open(os.path.join(root, name), 'wb') as f:
        f.write(b'garbage')
  result = _main(tmp_path, *flags, '--config.total_steps=7')
  assert result.returncode == 0, result.stderr
  assert 'resuming from older checkpoint at step 3' in result.stdout
  assert checkpoint_steps(tmp_path / 'run') == [3, 6, 7]
  result = run_module('experiments.main', [
      '--config=configs/mlm.py', f'--workdir={tmp_path / "skips"}', *flags,
      '--config.optimizer.learning_rate=inf', '--config.skip_nonfinite_steps=2'])
  assert result.returncode == 2 and 'at step 3' in _error_line(result)
  assert result.stdout.count('the step was skipped') == 2


def test_a_truncated_image_file_through_the_command_line(tmp_path):
  import gzip
  from tests.helpers import write_idx_dataset
  folder = write_idx_dataset(tmp_path / 'idx', n_train=32, n_test=16)
  images = folder / 'train-images-idx3-ubyte.gz'
  images.write_bytes(gzip.compress(gzip.decompress(images.read_bytes())[:-50]))
  result = _main(tmp_path, *cli_overrides(vision_overrides(folder)),
                 config='configs/fashion_mnist.py:model=cnn')
  assert result.returncode == 2 and 'is truncated' in _error_line(result)
  assert not (tmp_path / 'run').exists()


def test_benchmark_prints_one_json_line(corpus_dir):
  overrides = tiny_overrides(corpus_dir)
  result = run_module('experiments.benchmark', [
      '--config=configs/mlm.py', '--warmup=1', '--windows=3', '--steps_per_window=2',
      *cli_overrides(overrides)])
  assert result.returncode == 0, result.stderr[-2000:]
  row = json.loads(result.stdout.strip().splitlines()[-1])
  for key in ('tokens_per_s', 'step_ms', 'peak_mem_mb', 'mfu', 'devices', 'backend'):
    assert key in row
  assert row['backend'] == 'cpu' and row['devices'] == 1 and row['mfu'] is None
  assert len(row['windows_ms']) == 3 and row['step_ms'] == pytest.approx(
      sorted(row['windows_ms'])[1], rel=1e-3)  # the median window
  assert row['tokens_per_s'] == pytest.approx(8 * 32 / (row['step_ms'] / 1e3), rel=1e-3)


def test_bert_base_compiles_ahead_of_time_on_an_fsdp_by_tensor_mesh():
  """--compile_only: the full-size train step lowers and compiles on 8 devices from abstract
  shapes (nothing allocated or run)."""
  result = run_module('experiments.benchmark', [
      '--config=configs/mlm.py:size=base', "--config.mesh.shape=(1, 4, 2)",
      '--config.batch_size=8', '--compile_only'], env=EIGHT_DEVICES)
  assert result.returncode == 0, result.stderr[-2000:]
  row = json.loads(result.stdout.strip().splitlines()[-1])
  assert row['devices'] == 8 and row['mesh'] == {'data': 1, 'fsdp': 4, 'tensor': 2}
  assert 90 < row['params_m'] < 95 and row['xla_step_gflops'] > 0
  # Sharded 8 ways, a device holds far less than the 1.1 GB of fp32 parameters + Adam moments.
  assert row['estimated_mem_mb_per_device'] < 1100


def test_benchmark_times_the_real_input_pipeline_and_writes_a_profile(corpus_dir, tmp_path):
  result = run_module('experiments.benchmark', [
      '--config=configs/mlm.py', '--warmup=1', '--windows=3', '--steps_per_window=2',
      '--input', f'--profile={tmp_path / "trace"}', *cli_overrides(tiny_overrides(corpus_dir))])
  assert result.returncode == 0, result.stderr[-2000:]
  row = json.loads(result.stdout.strip().splitlines()[-1])
  assert 0.0 <= row['input_wait_share'] < 1.0
  assert len(row['input_windows_ms']) == 3 and row['input_step_ms'] == pytest.approx(
      sorted(row['input_windows_ms'])[1], abs=1e-3)  # the median window
  assert list((tmp_path / 'trace').glob('plugins/profile/*/*.xplane.pb'))
  summary = (tmp_path / 'trace' / 'op_summary.md').read_text()
  assert row['profile_summary'] == str(tmp_path / 'trace' / 'op_summary.md')
  assert '| matmul |' in summary and '| backward | BertMLM/encoder/layer_*/' in summary, summary
