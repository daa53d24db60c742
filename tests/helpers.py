"""Helpers shared by the tests (fixtures live in conftest.py): synthetic data, tiny configs,
subprocess runs, and readers of what a run wrote."""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORDS = ('the model reads data from a file and returns the value of each token in order while '
         'many functions call other modules to build lists of strings numbers and objects that '
         'python programs use when they run tests on small inputs quickly').split()


def device_env(devices: int, xla_optimizations: bool = False) -> dict[str, str]:
  """Environment for a subprocess that sees `devices` CPU devices.

  Runs compared with each other must share the XLA optimisation setting (Adam's first steps
  amplify rounding differences). BatchNorm runs over several devices or processes need the
  optimisations on: with them off, XLA's CPU backend gives NaN gradients for BatchNorm over 8
  fake devices (1 device is fine; seen with jax 0.10.2).
  """
  return {'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}',
          'JAX_DISABLE_MOST_OPTIMIZATIONS': '0' if xla_optimizations else '1'}


def write_corpus(folder: Path, n_docs: int = 24, seed: int = 0) -> Path:
  """Writes a deterministic mix of .rst, .txt and .md documents of simple English."""
  rng = random.Random(seed)
  folder.mkdir(parents=True, exist_ok=True)
  for i in range(n_docs):
    paragraphs = [' '.join(rng.choice(WORDS) for _ in range(rng.randint(20, 40))) + '.'
                  for _ in range(rng.randint(3, 6))]
    if i % 3 == 0:
      body = (f'Title {i}\n========\n\n' + '\n\n'.join(paragraphs) +
              '\n\n.. code-block:: python\n\n   x = 1\n')
      (folder / f'doc{i:02d}.rst').write_text(body, encoding='utf-8')
    elif i % 3 == 1:
      (folder / f'doc{i:02d}.txt').write_text('\n\n'.join(paragraphs), encoding='utf-8')
    else:
      (folder / f'doc{i:02d}.md').write_text(f'# Heading {i}\n\n' + '\n\n'.join(paragraphs),
                                             encoding='utf-8')
  return folder


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


def synthetic_images(n: int, size: int = 12, num_classes: int = 10,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Learnable images [n, size, size] uint8 and labels [n]: class k is a bright 3x3 square at
  a class-specific place, over noise."""
  rng = np.random.default_rng(seed)
  labels = (np.arange(n) % num_classes).astype(np.uint8)
  rng.shuffle(labels)
  images = rng.integers(0, 60, (n, size, size)).astype(np.uint8)
  for i, k in enumerate(labels):
    r, c = divmod(int(k) * 5 % ((size - 3) ** 2), size - 3)
    images[i, r:r + 3, c:c + 3] = 250
  return images, labels


def write_idx_files(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray,
                    gz: bool = True) -> None:
  """Writes PREFIX-images-idx3-ubyte and PREFIX-labels-idx1-ubyte (gzipped if `gz`)."""
  folder.mkdir(parents=True, exist_ok=True)
  for kind, (magic, array) in {'images-idx3': (0x803, images),
                               'labels-idx1': (0x801, labels)}.items():
    header = magic.to_bytes(4, 'big') + b''.join(d.to_bytes(4, 'big') for d in array.shape)
    data = header + array.tobytes()
    name = f'{prefix}-{kind}-ubyte'
    if gz:
      (folder / f'{name}.gz').write_bytes(gzip.compress(data))
    else:
      (folder / name).write_bytes(data)


def write_idx_dataset(folder: Path, n_train: int = 256, n_test: int = 96, size: int = 12,
                      num_classes: int = 10, seed: int = 0, gz: bool = True) -> Path:
  """Writes a train and a test split of synthetic_images as MNIST-format idx files."""
  for prefix, n, split_seed in (('train', n_train, seed), ('t10k', n_test, seed + 1)):
    write_idx_files(folder, prefix, *synthetic_images(n, size, num_classes, split_seed), gz=gz)
  return folder


def vision_overrides(images: Path) -> dict[str, object]:
  """Overrides that shrink configs/fashion_mnist.py to tiny models on the synthetic images."""
  return {
      'total_steps': 8, 'batch_size': 16, 'log_every': 4, 'eval_every': 4,
      'checkpoint_every': 4, 'optimizer.warmup_steps': 2, 'optimizer.learning_rate': 3e-3,
      'model.width': 4, 'data.image_dir': str(images),
      'data.image_shape': (12, 12, 1), 'data.num_threads': 1, 'data.prefetch': 2,
  }


def rows(workdir: Path, split: str | None = None) -> list[dict[str, Any]]:
  """The rows of workdir/metrics.jsonl (of one split if given)."""
  path = Path(workdir) / 'metrics.jsonl'
  out = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
  return [r for r in out if split is None or r['split'] == split]


def checkpoint_steps(workdir: Path) -> list[int]:
  """Steps of the complete checkpoints in workdir/checkpoints."""
  folder = Path(workdir) / 'checkpoints'
  if not folder.exists():
    return []
  return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


def saved_state(workdir: Path, step: int) -> dict[str, Any]:
  """The train state saved at `step` (numpy arrays, as orbax restores it without a target)."""
  import jax
  import orbax.checkpoint as ocp
  path = Path(workdir) / 'checkpoints' / str(step) / 'state'
  checkpointer = ocp.StandardCheckpointer()
  # Restored onto this process's first device, whatever topology saved it.
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                        checkpointer.metadata(path).item_metadata.tree)
  return jax.tree.map(np.asarray, checkpointer.restore(path, target))


def progress_steps(output: str) -> list[int]:
  """The steps of the progress lines ('step N/T | ...') in a run's console output."""
  return [int(line.split()[1].split('/')[0]) for line in output.splitlines()
          if line.startswith('step ') and '/' in line.split()[1]]


def hand_eval_metrics(config: Any, workdir: Path, step: int,
                      image_folder: Path) -> tuple[float, float, int]:
  """Eval loss and accuracy of the checkpoint at `step`, computed in one batch over every
  test image (normalised with the training split's statistics)."""
  import jax
  from bigmodels.data import augment
  from bigmodels.data.idx_images import read_idx_split
  from bigmodels.tasks import get_task
  task = get_task(config)
  model = task.build_model()
  train, _ = read_idx_split(str(image_folder), 'train')
  images, labels = read_idx_split(str(image_folder), 'test')
  pixels = train.reshape(-1, 1).astype(np.float64) / 255.0
  std = np.maximum(pixels.std(axis=0), 1e-3)
  x = augment.normalize(images, pixels.mean(axis=0).astype(np.float32), std.astype(np.float32))
  state = saved_state(workdir, step)
  logits = model.apply({'params': state['params'], **state['model_state']}, x, train=False)
  logp = jax.nn.log_softmax(logits)
  loss = -float(np.mean(np.take_along_axis(np.asarray(logp), labels[:, None].astype(int), 1)))
  accuracy = float(np.mean(np.argmax(logits, -1) == labels))
  return loss, accuracy, len(labels)


def write_wordnet(folder: Path, per_class: int = 12, seed: int = 0) -> Path:
  """A small WordNet in the data.{noun,verb,adj,adv} format: 4 lexicographer categories whose
  glosses use different words (so a model can learn them)."""
  rng = random.Random(seed)
  folder.mkdir(parents=True, exist_ok=True)
  header = '  1 This software and database is being provided to you, the LICENSEE\n'
  classes = {'noun': 5, 'verb': 38, 'adj': 0, 'adv': 2}  # animal, motion, adj.all, adv.all
  for index, (pos, lex_file) in enumerate(classes.items()):
    words = WORDS[index * 8:(index + 1) * 8]
    lines = [header]
    for i in range(per_class):
      gloss = ' '.join(rng.choice(words) for _ in range(rng.randint(4, 10)))
      lines.append(f'{i + 1:08d} {lex_file:02d} {pos[0]} 01 word{i} 0 000 | {gloss}  \n')
    (folder / f'data.{pos}').write_text(''.join(lines), encoding='utf-8')
  return folder


def text_family_overrides(corpus: Path, config: str) -> dict[str, object]:
  """Overrides that shrink a text config (causal_lm, lstm_lm, t5_span) to a seconds-long run
  on the test corpus, dropout on."""
  overrides = {
      'total_steps': 6, 'batch_size': 8, 'log_every': 1, 'eval_every': 3, 'eval_steps': 2,
      'checkpoint_every': 3, 'optimizer.warmup_steps': 2, 'optimizer.learning_rate': 3e-3,
      'model.vocab_size': 200, 'model.num_layers': 1, 'model.hidden_size': 32,
      'model.dropout_rate': 0.1, 'data.seq_len': 32, 'data.corpus_dir': str(corpus),
      'data.num_threads': 1, 'data.prefetch': 2}
  if config != 'lstm_lm':
    overrides.update({'model.num_heads': 2, 'model.mlp_dim': 64, 'model.max_len': 64})
  if config == 't5_span':
    overrides['model.vocab_size'] = 200 + 32  # the tokenizer's 200 + the sentinels
  return overrides
