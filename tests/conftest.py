"""Shared fixtures: a small synthetic corpus and tiny configs that train in seconds."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORDS = ('the model reads data from a file and returns the value of each token in order while '
         'many functions call other modules to build lists of strings numbers and objects that '
         'python programs use when they run tests on small inputs quickly').split()


def write_corpus(folder: Path, n_docs: int = 24, seed: int = 0) -> Path:
  """Writes a deterministic mix of .rst, .txt and .md documents of simple English."""
  rng = random.Random(seed)
  folder.mkdir(parents=True, exist_ok=True)
  for i in range(n_docs):
    paragraphs = [' '.join(rng.choice(WORDS) for _ in range(rng.randint(20, 40))) + '.'
                  for _ in range(rng.randint(3, 6))]
    if i % 3 == 0:
      body = f'Title {i}\n========\n\n' + '\n\n'.join(paragraphs) + '\n\n.. code-block:: python\n\n   x = 1\n'
      (folder / f'doc{i:02d}.rst').write_text(body, encoding='utf-8')
    elif i % 3 == 1:
      (folder / f'doc{i:02d}.txt').write_text('\n\n'.join(paragraphs), encoding='utf-8')
    else:
      (folder / f'doc{i:02d}.md').write_text(f'# Heading {i}\n\n' + '\n\n'.join(paragraphs),
                                             encoding='utf-8')
  return folder


@pytest.fixture(scope='session')
def corpus_dir(tmp_path_factory) -> Path:
  return write_corpus(tmp_path_factory.mktemp('corpus'))


@pytest.fixture(scope='session', autouse=True)
def cache_dir(tmp_path_factory) -> Path:
  """One data cache for the session ($BIGMODELS_CACHE, inherited by subprocesses)."""
  path = tmp_path_factory.mktemp('cache')
  previous = os.environ.get('BIGMODELS_CACHE')
  os.environ['BIGMODELS_CACHE'] = str(path)
  yield path
  if previous is None:
    os.environ.pop('BIGMODELS_CACHE', None)
  else:
    os.environ['BIGMODELS_CACHE'] = previous


def tiny_overrides(corpus: Path) -> dict[str, object]:
  """Overrides that shrink configs/mlm.py to a model and data that run in seconds on CPU."""
  return {
      'total_steps': 6, 'batch_size': 8, 'log_every': 2, 'eval_every': 3,
      'checkpoint_every': 3, 'optimizer.warmup_steps': 2, 'optimizer.learning_rate': 3e-3,
      'model.vocab_size': 200, 'model.num_layers': 1, 'model.hidden_size': 32,
      'model.num_heads': 2, 'model.mlp_dim': 64, 'model.max_len': 64,
      'data.seq_len': 32, 'data.corpus_dir': str(corpus),
      'data.num_threads': 1, 'data.prefetch': 2,
  }


def apply_overrides(config, overrides: dict[str, object]):
  """Applies dotted overrides to a ConfigDict in place and returns it."""
  for key, value in overrides.items():
    *parents, leaf = key.split('.')
    node = config
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


@pytest.fixture
def tiny_config(corpus_dir):
  from configs import mlm
  return apply_overrides(mlm.get_config(), tiny_overrides(corpus_dir))


def run_module(module: str, args: list[str], env: dict[str, str] | None = None,
               timeout: int = 300) -> subprocess.CompletedProcess:
  """Runs `python -m module args` from the repository root and captures its output."""
  full_env = dict(os.environ)
  full_env.update(env or {})
  return subprocess.run([sys.executable, '-m', module, *args], cwd=ROOT, env=full_env,
                        capture_output=True, text=True, timeout=timeout)


def cli_overrides(overrides: dict[str, object]) -> list[str]:
  """--config.KEY=VALUE flags for a dict of overrides."""
  return [f'--config.{k}={v}' for k, v in overrides.items()]


def write_idx_dataset(folder: Path, n_train: int = 256, n_test: int = 96, size: int = 12,
                      num_classes: int = 10, seed: int = 0, gz: bool = True) -> Path:
  """Writes MNIST-format idx files of learnable synthetic images: class k is a bright 3x3
  square at a class-specific place, over noise."""
  import gzip

  import numpy as np
  rng = np.random.default_rng(seed)
  folder.mkdir(parents=True, exist_ok=True)
  for prefix, n in (('train', n_train), ('t10k', n_test)):
    labels = (np.arange(n) % num_classes).astype(np.uint8)
    rng.shuffle(labels)
    images = rng.integers(0, 60, (n, size, size)).astype(np.uint8)
    for i, k in enumerate(labels):
      r, c = divmod(int(k) * 5 % ((size - 3) ** 2), size - 3)
      images[i, r:r + 3, c:c + 3] = 250
    blobs = {'images-idx3': (0x803, images), 'labels-idx1': (0x801, labels)}
    for kind, (magic, array) in blobs.items():
      header = magic.to_bytes(4, 'big') + b''.join(d.to_bytes(4, 'big') for d in array.shape)
      data = header + array.tobytes()
      name = f'{prefix}-{kind}-ubyte'
      if gz:
        (folder / f'{name}.gz').write_bytes(gzip.compress(data))
      else:
        (folder / name).write_bytes(data)
  return folder


@pytest.fixture(scope='session')
def image_dir(tmp_path_factory) -> Path:
  return write_idx_dataset(tmp_path_factory.mktemp('images'))


def vision_overrides(images: Path) -> dict[str, object]:
  """Overrides that shrink configs/fashion_mnist.py to tiny models on the synthetic images."""
  return {
      'total_steps': 8, 'batch_size': 16, 'log_every': 4, 'eval_every': 4,
      'checkpoint_every': 4, 'optimizer.warmup_steps': 2, 'optimizer.learning_rate': 3e-3,
      'model.width': 4, 'data.image_dir': str(images),
      'data.image_shape': (12, 12, 1), 'data.num_threads': 1, 'data.prefetch': 2,
  }


@pytest.fixture
def vision_config(image_dir):
  from configs import fashion_mnist
  return apply_overrides(fashion_mnist.get_config('model=cnn_bn'),
                         vision_overrides(image_dir))
