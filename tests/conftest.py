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


@pytest.fixture(scope='session')
def cache_dir(tmp_path_factory) -> Path:
  return tmp_path_factory.mktemp('cache')


def tiny_overrides(corpus: Path, cache: Path) -> dict[str, object]:
  """Overrides that shrink configs/mlm.py to a model and data that run in seconds on CPU."""
  return {
      'total_steps': 6, 'batch_size': 8, 'log_every': 2, 'eval_every': 3,
      'checkpoint_every': 3, 'optimizer.warmup_steps': 2, 'optimizer.learning_rate': 3e-3,
      'model.vocab_size': 200, 'model.num_layers': 1, 'model.hidden_size': 32,
      'model.num_heads': 2, 'model.mlp_dim': 64, 'model.max_len': 64,
      'data.seq_len': 32, 'data.corpus_dir': str(corpus), 'data.cache_dir': str(cache),
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
def tiny_config(corpus_dir, cache_dir):
  from configs import mlm
  return apply_overrides(mlm.get_config(), tiny_overrides(corpus_dir, cache_dir))


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
