"""Image classification data: local idx files or a TFDS catalog dataset, cached as arrays.

Sources, chosen by the data config:
- `data.tfds_name` set: a TFDS catalog dataset such as `fashion_mnist`, `mnist` or `cifar10`
  (needs TensorFlow and internet to prepare);
- otherwise `data.image_dir`, a folder of MNIST-format idx files prepared through the
  `idx_images` TFDS builder; left empty it is Fashion-MNIST as Debian's `dataset-fashion-mnist`
  package installs it.

Both splits are read once into uint8 arrays and cached beside the prepared TFDS data
in the data cache (`arrays-SPLIT.npz`, written under a temporary name and renamed), together with the training
split's per-channel mean and standard deviation used for normalisation.
"""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from bigmodels import atomic
from bigmodels.data import catalog
from bigmodels.data.cache import data_cache_dir
from bigmodels.errors import UserError

FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist'
FASHION_MNIST_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
                         'Shirt', 'Sneaker', 'Bag', 'Ankle boot')


@dataclasses.dataclass
class ImageData:
  """Train/eval arrays ({'image': uint8 [N, H, W, C], 'label': int32 [N]}) and their facts."""

  train: dict[str, np.ndarray]
  eval: dict[str, np.ndarray]
  class_names: tuple[str, ...]
  mean: np.ndarray  # Per channel, of the training images scaled to [0, 1].
  std: np.ndarray
  prepared_dir: Path
  description: str

  @property
  def image_shape(self) -> tuple[int, ...]:
    return tuple(self.train['image'].shape[1:])


def _local_builder(data_config: Any, cache_dir: str):
  from bigmodels.data.idx_images import IdxImages, idx_config
  image_dir = data_config.image_dir or FASHION_MNIST_DIR
  if not os.path.isdir(image_dir):
    hint = ('run `apt-get install -y dataset-fashion-mnist`' if not data_config.image_dir
            else 'check --config.data.image_dir')
    raise UserError(f'image folder {image_dir!r} does not exist: {hint}, or set '
                    '--config.data.tfds_name (needs TensorFlow and internet)')
  catalog.quiet_tfds()
  builder = catalog.prepare_local_builder(
      lambda: IdxImages(config=idx_config(image_dir), data_dir=os.path.join(cache_dir, 'tfds'),
                        file_format='array_record'), f'the images in {image_dir}')
  names = FASHION_MNIST_CLASSES if not data_config.image_dir else None  # Numbered classes.
  return builder, ('train', 'test'), names, f'idx images {image_dir}'


def _catalog_builder(data_config: Any, cache_dir: str):
  builder = catalog.prepare_catalog_builder(data_config, cache_dir,
                                            'the local Fashion-MNIST files')
  label = builder.info.features['label']
  names = tuple(getattr(label, 'names', None) or (str(i) for i in range(label.num_classes)))
  splits = (data_config.tfds_train_split, data_config.tfds_eval_split)
  return builder, splits, names, f'TFDS {data_config.tfds_name}'


def _read_split(builder: Any, split: str) -> dict[str, np.ndarray]:
  source = builder.as_data_source(split=split)
  images, labels = [], []
  for i in range(len(source)):
    example = source[i]
    images.append(np.asarray(example['image'], np.uint8))
    labels.append(int(example['label']))
  images = np.stack(images)
  if images.ndim == 3:
    images = images[..., None]
  return {'image': images, 'label': np.asarray(labels, np.int32)}


def _load_or_read(path: Path, builder: Any, split: str) -> dict[str, np.ndarray]:
  if path.exists():
    with np.load(path, allow_pickle=False) as f:
      return {k: f[k] for k in f.files}
  arrays = _read_split(builder, split)
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  atomic.write_bytes_atomic(path, buffer.getvalue())
  return arrays


def prepare_image_data(data_config: Any) -> ImageData:
  """Prepares (or loads from cache) both splits as arrays, with the normalisation statistics."""
  cache_dir = str(data_cache_dir())
  if data_config.tfds_name:
    builder, splits, names, description = _catalog_builder(data_config, cache_dir)
  else:
    builder, splits, names, description = _local_builder(data_config, cache_dir)
  prepared_dir = Path(builder.data_dir)
  train = _load_or_read(prepared_dir / 'arrays-train.npz', builder, splits[0])
  evals = _load_or_read(prepared_dir / f'arrays-{splits[1]}.npz', builder, splits[1])
  if not len(train['label']) or not len(evals['label']):
    raise UserError(f'{description} has an empty split: check the data source')
  num_classes = int(max(train['label'].max(), evals['label'].max())) + 1
  if names is None or len(names) < num_classes:
    names = tuple(str(i) for i in range(num_classes))
  pixels = train['image'].reshape(-1, train['image'].shape[-1]).astype(np.float64) / 255.0
  mean, std = pixels.mean(axis=0), pixels.std(axis=0)
  return ImageData(train, evals, names, mean.astype(np.float32),
                   np.maximum(std, 1e-3).astype(np.float32), prepared_dir,
                   f'{description}: {len(train["label"])} train / {len(evals["label"])} '
                   f'{splits[1]} images of {train["image"].shape[1:]}, {len(names)} classes')
