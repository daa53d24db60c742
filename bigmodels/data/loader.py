"""Deterministic, checkpointable input pipelines built on grain, the same whatever the layout.

The global batch at step i is a pure function of (seed, i): rows are shuffled per epoch by
grain over the whole dataset (the same order on every process) and global batch i is rows
[i*B, (i+1)*B) of that stream; process p of P takes its contiguous slice of B/P rows. The
per-example transform (dynamic masking, augmentation) runs row by row with a numpy Generator
seeded by (seed, the row's position in the stream), so the same example gets the same mask or
crop whatever the number of processes and devices, and a run can resume on another layout. The
iterator's position (the number of global batches consumed) is saved in checkpoints with
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


def per_row(transform: Transform, batch: Batch, positions: np.ndarray, seed: int) -> Batch:
  """Applies `transform` to each row of `batch` alone, row r with a Generator seeded by
  (seed, positions[r]), and stacks the results."""
  rows = [transform({k: v[r:r + 1] for k, v in batch.items()},
                    np.random.default_rng([seed, int(position)]))
          for r, position in enumerate(positions)]
  return {k: np.concatenate([row[k] for row in rows]) for k in rows[0]}


def _local_batch(global_batch_size: int, process_count: int) -> int:
  if global_batch_size % process_count:
    raise ValueError(f'batch size {global_batch_size} does not split over {process_count} '
                     'processes')
  return global_batch_size // process_count


def train_dataset(arrays: Mapping[str, np.ndarray], global_batch_size: int, seed: int,
                  transform: Transform | None = None, *, process_index: int = 0,
                  process_count: int = 1, num_threads: int = 2,
                  prefetch: int = 4) -> Any:
  """An endless grain IterDataset of this process's slice of each shuffled global batch,
  transformed row by row (see the module docstring)."""
  import grain  # Imported here so that benchmarks and models need no input-pipeline packages.
  local = _local_batch(global_batch_size, process_count)
  source = ArraySource(arrays)
  if len(source) == 0:
    raise ValueError('no training rows')
  # Blocks of `local` consecutive rows of the shuffled, repeated stream; global batch i is
  # blocks i*P .. i*P + P - 1, and this process takes block i*P + p.
  ds = grain.MapDataset.source(source).shuffle(seed=seed).repeat(None)
  ds = ds.batch(local, drop_remainder=True)[process_index::process_count]
  if transform is not None:
    def apply(index: int, batch: Batch) -> Batch:
      first = index * global_batch_size + process_index * local
      return per_row(transform, batch, np.arange(first, first + local), seed)
    ds = ds.map_with_index(apply)
  return ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads,
                                              prefetch_buffer_size=prefetch))


def eval_batches(arrays: Mapping[str, np.ndarray], global_batch_size: int, seed: int,
                 transform: Transform | None = None, *, pad_row: Mapping[str, Any],
                 max_batches: int = 0, process_index: int = 0,
                 process_count: int = 1) -> list[Batch]:
  """This process's slices of the eval rows in order, in global batches, the last one filled
  with `pad_row`.

  Global batch i holds rows [i*B, (i+1)*B); process p takes its contiguous B/P of them (padding
  where the rows run out), so every process runs the same number of eval steps. The transform
  runs row by row seeded by the row's index, so every evaluation, on any layout, sees identical
  rows. Padding rows must carry zero weight in the task's metrics (e.g. all-[PAD] rows have
  nothing to mask). `max_batches` > 0 keeps only the first global batches.
  """
  local = _local_batch(global_batch_size, process_count)
  n_rows = len(next(iter(arrays.values())))
  n_batches = -(-n_rows // global_batch_size)
  if max_batches > 0:
    n_batches = min(n_batches, max_batches)
  batches = []
  for i in range(n_batches):
    first = i * global_batch_size + process_index * local
    batch = {}
    for k, v in arrays.items():
      part = v[first:first + local]
      missing = local - len(part)
      if missing:
        filler = np.broadcast_to(np.asarray(pad_row[k], v.dtype), (missing,) + v.shape[1:])
        part = np.concatenate([part, filler])
      batch[k] = part
    if transform is not None:
      batch = per_row(transform, batch, np.arange(first, first + local), seed)
    batches.append(batch)
  return batches
