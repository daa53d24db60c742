"""Fixtures: a small synthetic corpus and image set, one data cache per session, tiny configs.

Helpers shared by several test files live in tests/helpers.py. Compilation dominates the
tiny runs, so XLA's optimisations are mostly off (as in the flax examples' tests); every
subprocess inherits that through the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault('JAX_DISABLE_MOST_OPTIMIZATIONS', '1')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')

import shutil  # noqa: E402
import tempfile  # noqa: E402

import pytest  # noqa: E402

from tests.helpers import (apply_overrides, tiny_overrides, vision_overrides,  # noqa: E402
                           write_corpus, write_idx_dataset)


_OWN_CACHE = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
  """One persistent XLA compilation cache for the whole run, shared by both xdist workers and
  every subprocess: most tests compile the same tiny models, and compiling dominates them.
  Set in the controller before the workers start, so they and their subprocesses inherit it;
  a cache dir the user set is left alone."""
  if hasattr(config, 'workerinput') or 'JAX_COMPILATION_CACHE_DIR' in os.environ:
    return
  config.stash[_OWN_CACHE] = tempfile.mkdtemp(prefix='bigmodels-tests-xla-cache-')
  os.environ['JAX_COMPILATION_CACHE_DIR'] = config.stash[_OWN_CACHE]
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'


def pytest_unconfigure(config: pytest.Config) -> None:
  if _OWN_CACHE in config.stash:
    shutil.rmtree(config.stash[_OWN_CACHE], ignore_errors=True)


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


@pytest.fixture
def tiny_config(corpus_dir):
  from configs import mlm
  return apply_overrides(mlm.get_config(), tiny_overrides(corpus_dir))


@pytest.fixture(scope='session')
def image_dir(tmp_path_factory) -> Path:
  return write_idx_dataset(tmp_path_factory.mktemp('images'))


@pytest.fixture
def vision_config(image_dir):
  from configs import fashion_mnist
  return apply_overrides(fashion_mnist.get_config('model=cnn_bn'),
                         vision_overrides(image_dir))
