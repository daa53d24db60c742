"""`idx_images`: a TFDS builder over a folder of MNIST-format idx files (e.g. Fashion-MNIST).

The folder holds `train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`,
`t10k-images-idx3-ubyte[.gz]` and `t10k-labels-idx1-ubyte[.gz]`, as Debian's
`dataset-fashion-mnist` package installs them. Splits are 'train' and 'test'. Features are
`tfds.features.Tensor`s written as array_record, which needs no TensorFlow to write or to read.

Every file is checked before anything is written: a missing, truncated or malformed file is a
UserError naming the file, never a half-prepared dataset.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from bigmodels.errors import UserError

# idx magic numbers: 0x0803 = unsigned bytes, 3 dimensions; 0x0801 = unsigned bytes, 1 dimension.
IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801
SPLIT_PREFIXES = {'train': 'train', 'test': 't10k'}


@dataclasses.dataclass
class IdxConfig(tfds.core.BuilderConfig):
  """Which folder to read; the image shape and class count are read from its files."""

  image_dir: str = ''
  height: int = 28
  width: int = 28
  num_classes: int = 10


def split_files(image_dir: str, split: str) -> tuple[Path, Path]:
  """(images file, labels file) of a split, gzipped or not; UserError if either is missing."""
  root = Path(image_dir)
  found = []
  for kind in ('images-idx3-ubyte', 'labels-idx1-ubyte'):
    name = f'{SPLIT_PREFIXES[split]}-{kind}'
    candidates = [root / name, root / f'{name}.gz']
    existing = [p for p in candidates if p.is_file()]
    if not existing:
      raise UserError(f'image file {root / name}[.gz] is missing: run `apt-get install -y '
                      'dataset-fashion-mnist`, or set --config.data.image_dir to a folder of '
                      'MNIST-format idx files')
    found.append(existing[0])
  return found[0], found[1]


def _read_bytes(path: Path) -> bytes:
  try:
    if path.suffix == '.gz':
      with gzip.open(path, 'rb') as f:
        return f.read()
    return path.read_bytes()
  except (EOFError, gzip.BadGzipFile, zlib.error) as e:
    raise UserError(f'image file {path} is truncated or corrupt ({e}): reinstall it (`apt-get '
                    'install --reinstall -y dataset-fashion-mnist`) or replace it') from None
  except OSError as e:
    raise UserError(f'cannot read image file {path} ({e.strerror}): check its permissions') \
        from None


def _parse_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
  data = _read_bytes(path)
  header = 4 + 4 * ndim
  if len(data) < header or struct.unpack('>I', data[:4])[0] != magic:
    raise UserError(f'{path} is not an idx file of {ndim}-D unsigned bytes (bad header): '
                    'replace it with the original file')
  shape = struct.unpack(f'>{ndim}I', data[4:header])
  expected = int(np.prod(shape))
  if len(data) - header != expected:
    raise UserError(f'image file {path} is truncated: its header promises {expected} bytes of '
                    f'data for shape {shape}, it holds {len(data) - header}; reinstall or '
                    'replace it')
  return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def read_idx_split(image_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 [N, H, W, 1], labels int64 [N]) of a split, validated."""
  images_path, labels_path = split_files(image_dir, split)
  images = _parse_idx(images_path, IMAGES_MAGIC, 3)
  labels = _parse_idx(labels_path, LABELS_MAGIC, 1)
  if len(images) != len(labels):
    raise UserError(f'{images_path} holds {len(images)} images but {labels_path} holds '
                    f'{len(labels)} labels: the files do not belong together')
  return images[..., None], labels.astype(np.int64)


def idx_config(image_dir: str) -> IdxConfig:
  """A builder config whose name changes whenever the folder's files change."""
  digest = hashlib.sha256()
  shape = None
  for split in SPLIT_PREFIXES:
    for path in split_files(image_dir, split):
      stat = path.stat()
      digest.update(f'{path.name}|{stat.st_size}|{stat.st_mtime_ns}'.encode())
    if split == 'train':
      images_path, _ = split_files(image_dir, split)
      shape = _idx_image_shape(images_path)
  slug = ''.join(c if c.isalnum() else '_' for c in Path(image_dir).resolve().name)[-24:]
  return IdxConfig(name=f'{slug or "root"}_{digest.hexdigest()[:12]}',
                   description=f'idx images under {image_dir}',
                   image_dir=str(Path(image_dir).resolve()), height=shape[0], width=shape[1])


def _idx_image_shape(path: Path) -> tuple[int, int]:
  """(height, width) from an idx3 header, reading only its first bytes."""
  opener = gzip.open if path.suffix == '.gz' else open
  try:
    with opener(path, 'rb') as f:
      header = f.read(16)
  except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
    raise UserError(f'image file {path} is unreadable ({e}): reinstall or replace it') from None
  if len(header) < 16 or struct.unpack('>I', header[:4])[0] != IMAGES_MAGIC:
    raise UserError(f'{path} is not an idx image file (bad header): replace it with the '
                    'original file')
  return struct.unpack('>2I', header[8:16])


class IdxImages(tfds.core.GeneratorBasedBuilder):
  """Grey-scale images with integer labels from MNIST-format idx files; splits train/test."""

  VERSION = tfds.core.Version('1.0.0')
  BUILDER_CONFIGS = []  # Made per folder by idx_config(); see __init__.

  def __init__(self, *, config: IdxConfig, **kwargs):
    super().__init__(config=config, **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    c = self.builder_config
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Tensor(shape=(c.height, c.width, 1), dtype=np.uint8),
            'label': tfds.features.Tensor(shape=(), dtype=np.int64),
        }),
        supervised_keys=('image', 'label'),
        description='MNIST-format idx images from a local folder.')

  def _split_generators(self, dl_manager):
    del dl_manager
    # Read and validate both splits before TFDS writes anything.
    splits = {split: read_idx_split(self.builder_config.image_dir, split)
              for split in SPLIT_PREFIXES}
    return {split: self._generate_examples(*arrays) for split, arrays in splits.items()}

  def _generate_examples(self, images: np.ndarray, labels: np.ndarray):
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {'image': image, 'label': label}
