"""Vision: idx data, augmentation, models with BatchNorm, metrics, end-to-end runs."""

import gzip
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bigmodels.data import augment
from bigmodels.data.idx_images import read_idx_split
from bigmodels.errors import UserError
from bigmodels.models import classifiers
from bigmodels.tasks.classification import classification_sums, per_class_metrics
from bigmodels.train import loop
from tests.helpers import (apply_overrides, device_env, hand_eval_metrics, progress_steps, rows,
                           run_module, saved_state, synthetic_images, vision_overrides, write_idx_dataset,
                           write_idx_files)

PNG = b'\x89PNG\r\n\x1a\n'


# --- metrics -------------------------------------------------------------------------------

def test_per_class_metrics_match_hand_computed_values():
  # rows = true class, columns = predicted
  confusion = np.array([[5, 1, 0],
                        [2, 3, 1],
                        [0, 0, 0]])
  m = per_class_metrics(confusion)
  # class 0: tp 5, predicted 7, actual 6; class 1: tp 3, predicted 4, actual 6;
  # class 2: never true, predicted once.
  np.testing.assert_allclose(m['precision'], [5 / 7, 3 / 4, 0.0])
  np.testing.assert_allclose(m['recall'], [5 / 6, 3 / 6, 0.0])
  f1_0 = 2 * (5 / 7) * (5 / 6) / (5 / 7 + 5 / 6)
  f1_1 = 2 * (3 / 4) * (1 / 2) / (3 / 4 + 1 / 2)
  np.testing.assert_allclose(m['f1'], [f1_0, f1_1, 0.0])
  assert m['macro_f1'] == pytest.approx((f1_0 + f1_1) / 2)  # absent class 2 left out


def test_classification_sums_build_the_weighted_confusion_matrix():
  logits = jnp.array([[3., 0, 0], [0, 2, 0], [0, 0, 1], [1, 0, 0], [0, 5, 0]])
  labels = jnp.array([0, 1, 1, 2, 0])
  weights = jnp.array([1., 1, 1, 1, 0])  # last row is padding
  sums = classification_sums(logits, labels, weights, with_confusion=True)
  assert float(sums['correct']) == 2 and float(sums['weight']) == 4
  np.testing.assert_array_equal(sums['confusion'], [[1, 0, 0], [0, 1, 1], [1, 0, 0]])
  assert 'confusion' not in classification_sums(logits, labels, weights, False)


# --- data ----------------------------------------------------------------------------------

@pytest.mark.parametrize('gz', [False, True])
def test_idx_files_round_trip(tmp_path, gz):
  images, labels = synthetic_images(30, size=12, seed=3)
  write_idx_files(tmp_path / 'idx', 'train', images, labels, gz=gz)
  read_images, read_labels = read_idx_split(str(tmp_path / 'idx'), 'train')
  assert read_images.shape == (30, 12, 12, 1) and read_images.dtype == np.uint8
  np.testing.assert_array_equal(read_images[..., 0], images)
  np.testing.assert_array_equal(read_labels, labels)


DAMAGES = {'missing': 'is missing', 'truncated_gz': 'truncated or corrupt',
           'short_data': 'is truncated', 'bad_magic': 'bad header',
           'count_mismatch': 'do not belong together'}


def _damage(folder, kind, prefix):
  """Damages PREFIX-images (or, for a count mismatch, PREFIX-labels) in one of five ways."""
  images = folder / f'{prefix}-images-idx3-ubyte.gz'
  raw = gzip.decompress(images.read_bytes())
  if kind == 'missing':
    images.unlink()
  elif kind == 'truncated_gz':
    images.write_bytes(images.read_bytes()[:len(images.read_bytes()) // 2])
  elif kind == 'short_data':
    images.write_bytes(gzip.compress(raw[:-50]))
  elif kind == 'bad_magic':
    images.write_bytes(gzip.compress(b'\x00\x00\x08\x01' + raw[4:]))
  else:
    labels = folder / f'{prefix}-labels-idx1-ubyte.gz'
    raw_labels = gzip.decompress(labels.read_bytes())
    count = int.from_bytes(raw_labels[4:8], 'big') - 1
    labels.write_bytes(gzip.compress(raw_labels[:4] + count.to_bytes(4, 'big') +
                                     raw_labels[8:-1]))


@pytest.mark.parametrize('damage', list(DAMAGES))
def test_damaged_image_files_are_clear_errors(tmp_path, damage):
  folder = write_idx_dataset(tmp_path / 'idx', n_train=30, n_test=20)
  _damage(folder, damage, 'train')
  with pytest.raises(UserError, match=DAMAGES[damage]) as info:
    read_idx_split(str(folder), 'train')
  assert 'train-' in str(info.value) and '\n' not in str(info.value)


@pytest.mark.parametrize('damage', list(DAMAGES))
def test_a_damaged_image_file_leaves_nothing_in_the_cache(tmp_path, monkeypatch, damage):
  from bigmodels.data import images as images_lib
  from configs import fashion_mnist
  folder = write_idx_dataset(tmp_path / 'idx', n_train=30, n_test=20)
  originals = {p: p.read_bytes() for p in folder.iterdir()}
  _damage(folder, damage, 't10k')  # the second split: the first one would read cleanly
  cache = tmp_path / 'cache'
  monkeypatch.setenv('BIGMODELS_CACHE', str(cache))
  config = apply_overrides(fashion_mnist.get_config('model=cnn'),
                           vision_overrides(folder)).data
  with pytest.raises(UserError, match=DAMAGES[damage]):
    images_lib.prepare_image_data(config)
  leftovers = [p for p in cache.rglob('*') if p.is_file() and p.parent.name != 'locks']
  assert not leftovers, leftovers
  for path, data in originals.items():  # repaired: prepared from scratch, nothing stale
    path.write_bytes(data)
  data = images_lib.prepare_image_data(config)
  assert data.eval['image'].shape == (20, 12, 12, 1)


def test_augmentation_is_deterministic_by_seed_and_changes_images():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (16, 12, 12, 1)).astype(np.uint8)
  mean, std = np.array([0.5], np.float32), np.array([0.25], np.float32)

  def pipeline(seed):
    g = np.random.default_rng(seed)
    x = augment.random_flip(augment.random_crop(images, 2, g), g)
    return augment.random_erasing(augment.normalize(x, mean, std), 0.5, g)

  np.testing.assert_array_equal(pipeline([0, 0, 3]), pipeline([0, 0, 3]))
  assert not np.array_equal(pipeline([0, 0, 3]), pipeline([0, 0, 4]))
  assert pipeline([0, 0, 3]).shape == images.shape and pipeline([0, 0, 3]).dtype == np.float32


def test_each_augmentation_does_what_it_says():
  g = np.random.default_rng(1)
  image = np.zeros((1, 8, 8, 1), np.uint8)
  image[0, 3, 4] = 200  # one bright pixel away from the border
  offsets = set()
  for _ in range(20):
    cropped = augment.random_crop(image, 2, g)
    assert cropped.shape == image.shape and cropped.sum() == 200  # moved, not lost
    (row, col), = np.argwhere(cropped[0, :, :, 0])
    assert abs(row - 3) <= 2 and abs(col - 4) <= 2
    offsets.add((row - 3, col - 4))
  assert len(offsets) > 3  # the crop does move the image
  batch = np.arange(64, dtype=np.uint8).reshape(1, 8, 8, 1).repeat(32, axis=0)
  flipped = augment.random_flip(batch, g)
  mirrored = [np.array_equal(f, batch[0][:, ::-1]) for f in flipped]
  kept = [np.array_equal(f, batch[0]) for f in flipped]
  assert all(a or b for a, b in zip(mirrored, kept)) and 0 < sum(mirrored) < 32
  ones = np.ones((200, 10, 10, 1), np.float32)
  erased = augment.random_erasing(ones, 0.5, g)
  zeros_per_image = (erased == 0).sum(axis=(1, 2, 3))
  assert 60 < (zeros_per_image > 0).sum() < 140  # about half the images
  assert zeros_per_image.max() <= 0.33 * 100 + 12  # area fraction at most ~1/3
  normalized = augment.normalize(np.full((2, 2, 2, 1), 255, np.uint8),
                                 np.array([0.5], np.float32), np.array([0.25], np.float32))
  np.testing.assert_allclose(normalized, 2.0)


# --- models --------------------------------------------------------------------------------

def test_batchnorm_statistics_update_in_train_and_stay_frozen_in_eval():
  model = classifiers.build_classifier('cnn_bn', 10, width=4)
  x = jax.random.normal(jax.random.key(0), (8, 12, 12, 1)) * 3 + 1
  variables = model.init(jax.random.key(1), x, train=False)
  stats = variables['batch_stats']
  _, updated = model.apply(variables, x, train=True, rngs={'dropout': jax.random.key(2)},
                           mutable=['batch_stats'])
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), stats, updated['batch_stats'])
  assert all(jax.tree.leaves(changed))
  # Eval uses the running statistics: no mutation, and an example's logits do not depend on
  # the rest of the batch.
  new_vars = {**variables, 'batch_stats': updated['batch_stats']}
  full = model.apply(new_vars, x, train=False)
  single = model.apply(new_vars, x[:1], train=False)
  np.testing.assert_allclose(full[:1], single, atol=1e-5)
  _, after_eval = model.apply(new_vars, x, train=False, mutable=['batch_stats'])
  for a, b in zip(jax.tree.leaves(after_eval['batch_stats']),
                  jax.tree.leaves(updated['batch_stats']), strict=True):
    np.testing.assert_array_equal(a, b)  # eval leaves the statistics as they were


def test_fast_max_pool_matches_flax_max_pool():
  from bigmodels.models.cnn import max_pool_2x2
  import flax.linen as nn
  x = jax.random.normal(jax.random.key(0), (2, 6, 8, 3))
  np.testing.assert_array_equal(max_pool_2x2(x), nn.max_pool(x, (2, 2), strides=(2, 2)))
  odd = x[:, :5]
  np.testing.assert_array_equal(max_pool_2x2(odd), nn.max_pool(odd, (2, 2), strides=(2, 2)))
  grad = jax.grad(lambda v: max_pool_2x2(v).sum())(x)
  reference = jax.grad(lambda v: nn.max_pool(v, (2, 2), strides=(2, 2)).sum())(x)
  np.testing.assert_array_equal(grad, reference)  # distinct values: one winner per window


@pytest.mark.parametrize('name, params_range', [
    ('cnn', (1.6e6, 1.7e6)), ('cnn_bn', (1.6e6, 1.7e6)), ('mlp', (0.6e6, 0.7e6)),
    ('resnet18', (11.0e6, 11.3e6)), ('wrn', (36.4e6, 36.6e6)), ('wrn40_4', (8.9e6, 9.0e6)),
])
def test_presets_have_the_published_sizes(name, params_range):
  model = classifiers.build_classifier(name, 10)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1))))
  n = sum(x.size for x in jax.tree.leaves(shapes['params']))
  assert params_range[0] <= n <= params_range[1], n


# --- end to end ----------------------------------------------------------------------------

@pytest.mark.parametrize('model', ['cnn', 'cnn_bn', 'mlp', 'resnet18', 'wrn'])
def test_each_model_family_trains_end_to_end(vision_config, tmp_path, model):
  vision_config.model.name = model
  if model == 'wrn':
    vision_config.model.depth = 10
  workdir = tmp_path / model
  final = loop.train_and_evaluate(vision_config, workdir)
  evals = rows(workdir, 'eval')
  assert [r['step'] for r in evals] == [4, 8]
  assert {'loss', 'accuracy', 'macro_f1', 'f1/0', 'precision/9', 'recall/3'} <= set(evals[-1])
  assert final['accuracy'] == evals[-1]['accuracy']
  assert 'examples_per_s' in rows(workdir, 'train')[-1]
  for png in ('confusion.png', 'curves.png'):
    data = (workdir / png).read_bytes()
    assert data.startswith(PNG) and len(data) > 5000
  confusion = json.loads((workdir / 'confusion.json').read_text())
  assert np.array(confusion['matrix']).sum() == 96  # every test image once, no padding rows
  assert np.trace(confusion['matrix']) / 96 == pytest.approx(evals[-1]['accuracy'])
  assert confusion['step'] == 8


def test_eval_counts_every_image_once_and_equals_a_hand_computation(tmp_path):
  folder = write_idx_dataset(tmp_path / 'idx', n_train=64, n_test=37)  # 37 = 2 x 16 + 5
  from configs import fashion_mnist
  config = apply_overrides(fashion_mnist.get_config('model=cnn_bn'), vision_overrides(folder))
  config.total_steps = 4
  final = loop.train_and_evaluate(config, tmp_path / 'run')
  loss, accuracy, n = hand_eval_metrics(config, tmp_path / 'run', 4, folder)
  confusion = np.array(json.loads((tmp_path / 'run' / 'confusion.json').read_text())['matrix'])
  assert n == 37 and confusion.sum() == 37
  assert final['accuracy'] == pytest.approx(accuracy, abs=1e-6)
  assert final['loss'] == pytest.approx(loss, rel=1e-5)


def test_a_small_cnn_learns_the_synthetic_classes(vision_config, tmp_path):
  vision_config.total_steps = 60
  vision_config.eval_every = 60
  vision_config.model.width = 8
  final = loop.train_and_evaluate(vision_config, tmp_path / 'run')
  assert final['accuracy'] > 0.5  # chance is 0.1


def test_the_train_step_updates_batchnorm_statistics(vision_config, tmp_path):
  from bigmodels.tasks import get_task
  task = get_task(vision_config)
  batch = task.synthetic_batch(2, np.random.default_rng(0))
  initial = task.init_variables(task.build_model(), jax.random.key(0), batch)['batch_stats']
  vision_config.total_steps = 2
  loop.train_and_evaluate(vision_config, tmp_path / 'run')
  trained = saved_state(tmp_path / 'run', 2)['model_state']['batch_stats']
  before, after = jax.tree.leaves(initial), jax.tree.leaves(trained)
  assert len(before) == len(after) == 6  # mean and var of three BatchNorm layers
  for x, y in zip(before, after):
    assert not np.allclose(x, y)  # every statistic moved towards the data's


def test_resume_with_batchnorm_is_bit_identical(vision_config, tmp_path, capsys):
  vision_config.checkpoint_every, vision_config.log_every = 100, 1
  loop.train_and_evaluate(vision_config, tmp_path / 'straight')
  loop.train_and_evaluate(vision_config, tmp_path / 'resumed', stop_at=3)
  capsys.readouterr()
  loop.train_and_evaluate(vision_config, tmp_path / 'resumed')
  out = capsys.readouterr().out
  assert 'resuming from checkpoint at step 3' in out
  assert progress_steps(out) == [4, 5, 6, 7, 8]
  a, b = saved_state(tmp_path / 'straight', 8), saved_state(tmp_path / 'resumed', 8)
  assert jax.tree.leaves(a['model_state'])
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


def test_vision_models_on_eight_devices_match_one_device_and_really_shard(image_dir, tmp_path):
  """Data parallel, and FSDP x tensor parallel over (2, 2, 2): the same losses, parameters and
  BatchNorm statistics as one device (statistics over the global batch, not per shard)."""
  overrides = vision_overrides(image_dir)
  overrides.update({'total_steps': 3, 'log_every': 1, 'eval_every': 100,
                    'checkpoint_every': 100, 'model.dropout_rate': 0.0})
  runs = {1: [('cnn_bn', None), ('resnet18', None)],
          8: [('cnn_bn', None), ('cnn_bn', [2, 2, 2]), ('resnet18', [2, 2, 2])]}
  out = {}
  for devices, jobs in runs.items():
    spec = [{'workdir': str(tmp_path / f'{devices}-{model}-{"x".join(map(str, mesh or [1]))}'),
             'config': f'fashion_mnist:model={model}',
             'overrides': dict(overrides, **({'mesh.shape': mesh} if mesh else {}))}
            for model, mesh in jobs]
    result = run_module('tests.run_tiny', ['-', json.dumps(spec)],
                        env=device_env(devices, xla_optimizations=True))
    assert result.returncode == 0, result.stderr[-2000:]
    for job, report in zip(spec, json.loads(result.stdout.strip().splitlines()[-1])):
      assert report['devices'] == devices
      report['leaves'] = dict(np.load(f"{job['workdir']}/final.npz"))
      out[job['workdir'].rsplit('/', 1)[1]] = report
  for name, reference in [('8-cnn_bn-1', '1-cnn_bn-1'),
                          ('8-cnn_bn-2x2x2', '1-cnn_bn-1'),
                          ('8-resnet18-2x2x2', '1-resnet18-1')]:
    a, b = out[name], out[reference]
    # ResNet: see below; its third loss already carries the first steps' noise (~1e-5).
    np.testing.assert_allclose(a['losses'], b['losses'], rtol=5e-5 if 'resnet' in name else 1e-5,
                               err_msg=name)
    assert set(a['leaves']) == set(b['leaves'])
    if 'resnet' in name:
      # Its zero-initialised last BatchNorm scale per block gives convolutions gradients of
      # ~0 at first, whose summation-order noise Adam turns into steps of +-learning rate: the
      # parameters are not comparable element by element; the losses above are.
      continue
    for key in b['leaves']:
      np.testing.assert_allclose(a['leaves'][key], b['leaves'][key], rtol=1e-5, atol=1e-6,
                                 err_msg=f'{name}: {key}')
  stats = [k for k in out['1-cnn_bn-1']['leaves'] if k.startswith('model_state/batch_stats/')]
  assert len(stats) == 6
  # Convolution kernels [kh, kw, in, out] split their channels over fsdp x tensor; the first
  # convolution's single input channel stays whole; the class logits are not split.
  shards = out['8-cnn_bn-2x2x2']['shards']
  assert out['8-resnet18-2x2x2']['shards']['params/BasicBlock_1/Conv_0/kernel'][
      'shard_shape'] == [3, 3, 4 // 2, 4 // 2]
  assert shards['params/Conv_1/kernel']['shard_shape'] == [3, 3, 4 // 2, 8 // 2]
  assert shards['params/Conv_0/kernel']['shard_shape'] == [3, 3, 1, 4 // 2]
  assert shards['params/Dense_1/kernel']['spec'] == ['fsdp', None]
  assert out['8-cnn_bn-1']['shards']['params/Conv_1/kernel']['shard_shape'] == [3, 3, 4, 8]
