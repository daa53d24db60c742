"""Predictions of an image-classification run: the newest checkpoint's parameters and model
state (BatchNorm statistics) applied to images normalised as in evaluation."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from bigmodels.data import augment, images as images_lib
from bigmodels.errors import UserError
from bigmodels.tasks import get_task
from bigmodels.inference.run import read_run_config
from bigmodels.train.init_from import newest_checkpoint, restore_state


@dataclasses.dataclass
class ImageRun:
  """A classification run's config, model, variables ({'params', 'batch_stats'...} as host
  arrays), checkpoint step and data (its training split's mean and std normalise inputs)."""

  config: ml_collections.ConfigDict
  model: nn.Module
  variables: dict[str, Any]
  step: int
  data: images_lib.ImageData

  @property
  def class_names(self) -> tuple[str, ...]:
    return self.data.class_names


def _restore_variables(state_dir: Path) -> dict[str, Any]:
  """{'params': ..., **model_state} of a saved train state, whatever topology saved it."""
  state = restore_state(state_dir)
  if 'params' not in state:
    raise UserError(f'the checkpoint {state_dir} holds no parameters: is it a training run?')
  return {'params': state['params'], **(state.get('model_state') or {})}


def load_image_run(workdir: str | Path) -> ImageRun:
  """Loads the newest checkpoint of a classification run and prepares its data (from the
  cache when it was prepared before); UserError if the folder is not such a run."""
  workdir = Path(workdir)
  config = read_run_config(workdir, 'image-classification')
  if config.task != 'classification':
    raise UserError(f'{str(workdir)!r} is a {config.task!r} run, not an image-classification '
                    'one')
  model = get_task(config).build_model()
  state_dir = newest_checkpoint(workdir)
  return ImageRun(config, model, _restore_variables(state_dir), int(state_dir.parent.name),
                  images_lib.prepare_image_data(config.data))


@functools.partial(jax.jit, static_argnames=('model',))
def _probabilities(model: nn.Module, variables: Any, images: jax.Array) -> jax.Array:
  logits = model.apply(variables, images, train=False)
  return jax.nn.softmax(logits.astype(np.float32), axis=-1)


def predict(run: ImageRun, images: np.ndarray, batch_size: int = 256
            ) -> tuple[np.ndarray, np.ndarray]:
  """(labels [N], class probabilities [N, classes]) of uint8 images [N, H, W, C] (or
  [N, H, W]) in eval mode: BatchNorm uses the saved statistics, dropout is off."""
  images = np.asarray(images)
  if images.ndim == 3:
    images = images[..., None]
  expected = tuple(run.config.data.image_shape)
  if images.shape[1:] != expected:
    raise UserError(f'images of shape {images.shape[1:]} given; this run takes {expected}')
  if not len(images):
    return np.zeros(0, np.int32), np.zeros((0, run.config.model.num_classes), np.float32)
  size = min(batch_size, len(images))
  out = []
  for start in range(0, len(images), size):
    chunk = images[start:start + size]
    real = len(chunk)
    if real < size:  # Padded to one shape, so one compilation serves every batch.
      chunk = np.concatenate([chunk, np.zeros((size - real, *expected), chunk.dtype)])
    x = augment.normalize(chunk, run.data.mean, run.data.std)
    out.append(np.asarray(_probabilities(run.model, run.variables, x))[:real])
  probabilities = np.concatenate(out)
  return probabilities.argmax(axis=-1).astype(np.int32), probabilities
