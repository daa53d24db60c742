"""The task interface: what a batch means, the model to build, the loss and the metrics.

A task is model + data + loss + metrics. The one training loop (bigmodels.train.loop) drives
any task through this interface and knows nothing task-specific.
"""

from __future__ import annotations

import abc
import dataclasses
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import numpy as np

Batch = dict[str, np.ndarray]


@dataclasses.dataclass
class TaskData:
  """A task's prepared inputs for one process.

  train: endless iterator dataset of per-process batches (checkpointable via get/set_state).
  eval: the fixed list of per-process eval batches, identical at every evaluation.
  description: one line for the run log (source, sizes).
  """

  train: Any  # a grain.IterDataset
  eval: list[Batch]
  description: str


class Task(abc.ABC):
  """Base class of task families; subclasses implement every abstract method."""

  # Metrics shown on progress lines (all summarized metrics go to metrics.jsonl).
  display_metrics: tuple[str, ...] = ('loss',)

  def __init__(self, config: Any):
    self.config = config

  def check_config(self) -> None:
    """Raises UserError for a task config key with an impossible value (checked before any
    data is prepared or file written). Default: nothing to check."""

  @abc.abstractmethod
  def prepare_data(self, process_index: int, process_count: int) -> TaskData:
    """Prepares (or loads cached) data and returns this process's train and eval inputs."""

  @abc.abstractmethod
  def build_model(self) -> nn.Module:
    """The Flax module for this config."""

  @abc.abstractmethod
  def synthetic_batch(self, batch_size: int, rng: np.random.Generator) -> Batch:
    """A random batch with the real batch's shapes and dtypes (for init and benchmarks)."""

  @abc.abstractmethod
  def init_variables(self, model: nn.Module, rng: jax.Array, batch: Batch) -> dict:
    """Calls model.init on a batch; returns the variables ({'params': ..., other collections})."""

  @abc.abstractmethod
  def loss_and_metrics(self, model: nn.Module, variables: dict, batch: Batch, rng: jax.Array,
                       train: bool) -> tuple[jax.Array, dict[str, jax.Array], dict]:
    """Returns (scalar loss to minimise, metric sums over the batch, updated mutable state).

    Metric sums (e.g. loss_sum, correct, weight) add up across batches and devices; summarize()
    turns totals into the reported metrics.
    """

  @abc.abstractmethod
  def summarize(self, sums: dict[str, Any]) -> dict[str, float]:
    """Reported metrics (always including 'loss') from summed metric totals (Python floats
    in training windows; numpy scalars or arrays, e.g. a confusion matrix, at eval)."""

  def write_eval_report(self, sums: dict[str, np.ndarray], workdir: Path, step: int) -> None:
    """Writes task-specific eval artifacts (e.g. a confusion-matrix PNG) into the workdir;
    called on process 0 after each evaluation. Default: nothing."""

  def save_assets(self, workdir: Path) -> None:
    """Writes files a later command needs beside the checkpoints (e.g. the tokenizer), on
    process 0 once the workdir exists. Default: nothing."""

  def train_flops_per_example(self, model: nn.Module) -> float | None:
    """Analytic FLOPs of one training example (forward + backward = 3x forward matmuls), for
    MFU; None if the task does not define them."""
    return None

  def tokens_per_example(self) -> int | None:
    """Tokens in one example, for tokens/s; None for non-sequence tasks (examples/s)."""
    return None
