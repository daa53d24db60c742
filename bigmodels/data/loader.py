"""Deterministic, checkpointable, per-process input pipelines built on grain.

Batch `i` of a process is a pure function of (seed, process, i): rows are shuffled per epoch by
grain, and the per-batch transform (e.g. dynamic masking, augmentation) gets a numpy Generator
seeded by (seed, process_index, i). The iterator's position is saved in checkpoints with
`get_state()` and restored with `set_state()`, so a resumed run sees exactly the batches an
uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

Batch = dict[str, np.ndarray]
Transform = Callable[[Batch, np.random.Generator], Batch]


class ArraySource:
  """Random-access grain source over a dict of equally long numpy arrays (one row each)."""

  def __init__(self, arrays: Mapping[str, np.ndarray]):
    lengths = {len(v) for v in arrays.values()}
    if len(lengths) != 1:
      raise ValueError(f'arrays have different lengths: {lengths}')
    self._arrays = dict(arrays)
    self._len = lengths.pop()

  def __len__(self) -> int:
    return self._len

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return {k: v[index] for k, v in self._arrays.items()}


def train_dataset(arrays: Mapping[str, np.ndarray], batch_size: int, seed: int,
                  transform: Transform | None = None, *, process_index: int = 0,
                  process_count: int = 1, num_threads: int = 2,
                  prefetch: int = 4) -> Any:
  """An endless grain IterDataset of shuffled per-process batches, optionally transformed."""
  import grain  # Imported here so that benchmarks and models need no input-pipeline packages.
  ds = grain.MapDataset.source(ArraySource(arrays))
  ds = ds[process_index::process_count]
  if len(ds) == 0:
    raise ValueError(f'no training rows for process {process_index} of {process_count}')
  ds = ds.shuffle(seed=seed).repeat(None).batch(batch_size, drop_remainder=True)
  if transform is not None:
    def apply(index: int, batch: Batch) -> Batch:
      return transform(batch, np.random.default_rng([seed, process_index, index]))
    ds = ds.map_with_index(apply)
  return ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads,
                                              prefetch_buffer_size=prefetch))


def eval_batches(arrays: Mapping[str, np.ndarray], batch_size: int, seed: int,
                 transform: Transform | None = None, *, pad_row: Mapping[str, Any],
                 max_batches: int = 0, process_index: int = 0,
                 process_count: int = 1) -> list[Batch]:
  """All of this process's eval rows in order, batched, the last batch filled with `pad_row`.

  The transform gets the same seed every time, so every evaluation sees identical batches.
  Padding rows must carry zero weight in the task's metrics (e.g. all-[PAD] rows have nothing
  to mask). `max_batches` > 0 keeps only the first batches.
  """
  local = {k: v[process_index::process_count] for k, v in arrays.items()}
  # Every process runs the same number of eval steps (they are collective): sized by the
  # largest shard, with padding rows filling the others.
  largest_shard = -(-len(next(iter(arrays.values()))) // process_count)
  n_batches = -(-largest_shard // batch_size)
  if max_batches > 0:
    n_batches = min(n_batches, max_batches)
  batches = []
  for i in range(n_batches):
    batch = {}
    for k, v in local.items():
      part = v[i * batch_size:(i + 1) * batch_size]
      missing = batch_size - len(part)
      if missing:
        filler = np.broadcast_to(np.asarray(pad_row[k], v.dtype), (missing,) + v.shape[1:])
        part = np.concatenate([part, filler])
      batch[k] = part
    if transform is not None:
      batch = transform(batch, np.random.default_rng([seed, process_index, i]))
    batches.append(batch)
  return batches

