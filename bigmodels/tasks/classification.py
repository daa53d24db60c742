"""Image classification: cross-entropy with optional label smoothing, accuracy, and at eval
per-class precision / recall / F1, macro-F1 and a confusion matrix (PNG in the workdir)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from bigmodels.data import augment, images as images_lib, loader
from bigmodels.errors import UserError
from bigmodels.models import classifiers
from bigmodels.tasks.base import Batch, Task, TaskData


def classification_sums(logits: jax.Array, labels: jax.Array, weights: jax.Array,
                        with_confusion: bool) -> dict[str, jax.Array]:
  """Summed cross-entropy, correct predictions and weight (and the weighted confusion matrix,
  rows = true class, columns = predicted, when `with_confusion`)."""
  num_classes = logits.shape[-1]
  xent = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  predicted = jnp.argmax(logits, axis=-1)
  sums = {'loss_sum': jnp.sum(xent * weights),
          'correct': jnp.sum((predicted == labels) * weights),
          'weight': jnp.sum(weights)}
  if with_confusion:
    true = jax.nn.one_hot(labels, num_classes) * weights[:, None]
    sums['confusion'] = true.T @ jax.nn.one_hot(predicted, num_classes)
  return sums


def per_class_metrics(confusion: np.ndarray) -> dict[str, np.ndarray | float]:
  """Precision, recall and F1 per class and their macro average, from a confusion matrix.

  A class never predicted has precision 0; a class absent from the labels has recall 0 and is
  left out of the macro average.
  """
  confusion = np.asarray(confusion, np.float64)
  true_positive = np.diag(confusion)
  predicted = confusion.sum(axis=0)
  actual = confusion.sum(axis=1)
  precision = np.divide(true_positive, predicted, out=np.zeros_like(true_positive),
                        where=predicted > 0)
  recall = np.divide(true_positive, actual, out=np.zeros_like(true_positive), where=actual > 0)
  denominator = precision + recall
  f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(true_positive),
                 where=denominator > 0)
  present = actual > 0
  macro_f1 = float(f1[present].mean()) if present.any() else 0.0
  return {'precision': precision, 'recall': recall, 'f1': f1, 'macro_f1': macro_f1}


def _slug(name: str) -> str:
  return re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_') or 'class'


def summarize_classification(sums: dict, class_names: tuple[str, ...] | None
                             ) -> dict[str, float]:
  """loss and accuracy; with a confusion matrix (eval) also macro-F1 and per-class precision,
  recall and F1 (keyed by class name)."""
  weight = max(float(sums['weight']), 1.0)
  out = {'loss': float(sums['loss_sum']) / weight, 'accuracy': float(sums['correct']) / weight}
  if 'confusion' in sums:
    per_class = per_class_metrics(sums['confusion'])
    out['macro_f1'] = per_class['macro_f1']
    for i in range(len(per_class['f1'])):
      label = _slug(class_names[i]) if class_names and i < len(class_names) else str(i)
      for metric in ('precision', 'recall', 'f1'):
        out[f'{metric}/{label}'] = float(per_class[metric][i])
  return out


def write_confusion_report(sums: dict, class_names: tuple[str, ...], workdir: Path, step: int,
                           unit: str) -> None:
  """confusion.png and confusion.json in the workdir, from eval sums holding 'confusion'."""
  if 'confusion' not in sums:
    return
  from bigmodels.train import plots
  from bigmodels.train.reporting import write_json_atomic
  matrix = np.rint(np.asarray(sums['confusion'])).astype(np.int64)
  accuracy = float(np.trace(matrix)) / max(int(matrix.sum()), 1)
  plots.plot_confusion(matrix, class_names, workdir / 'confusion.png',
                       title=f'step {step}: accuracy {accuracy:.2%} on {int(matrix.sum())} '
                             f'{unit}')
  write_json_atomic(workdir / 'confusion.json',
                    {'step': step, 'class_names': list(class_names), 'matrix': matrix.tolist()})


class ClassificationTask(Task):
  """Supervised image classification on `data.*` images with the `model.name` preset."""

  display_metrics = ('loss', 'accuracy', 'macro_f1')

  def __init__(self, config):
    super().__init__(config)
    self._data: images_lib.ImageData | None = None

  def check_config(self) -> None:
    c = self.config
    try:
      classifiers.resolve_name(c.model.name)
    except KeyError:
      names = sorted(set(classifiers.PRESETS) | set(classifiers.ALIASES))
      raise UserError(f'unknown model.name={c.model.name!r}: choose one of '
                      f'{", ".join(names)}') from None
    if not 0.0 <= c.label_smoothing < 1.0:
      raise UserError(f'label_smoothing={c.label_smoothing} must be in [0, 1), e.g. 0.1')
    a = c.data.augment
    if a.crop_padding < 0:
      raise UserError(f'data.augment.crop_padding={a.crop_padding} must be >= 0 (0 = off)')
    if not 0.0 <= a.erase_prob <= 1.0:
      raise UserError(f'data.augment.erase_prob={a.erase_prob} must be in [0, 1]')
    if not 0.0 <= c.model.dropout_rate < 1.0:
      raise UserError(f'model.dropout_rate={c.model.dropout_rate} must be in [0, 1)')

  def _image_data(self) -> images_lib.ImageData:
    if self._data is None:
      self._data = images_lib.prepare_image_data(self.config.data)
    return self._data

  @property
  def class_names(self) -> tuple[str, ...]:
    return self._image_data().class_names

  def _check_data(self, data: images_lib.ImageData) -> None:
    c = self.config
    if tuple(data.image_shape) != tuple(c.data.image_shape):
      raise UserError(f'the images are {data.image_shape} but data.image_shape='
                      f'{tuple(c.data.image_shape)}: set --config.data.image_shape to match')
    if len(data.class_names) > c.model.num_classes:
      raise UserError(f'the data has {len(data.class_names)} classes but model.num_classes='
                      f'{c.model.num_classes}: set --config.model.num_classes to match')

  def augment(self, batch: Batch, rng: np.random.Generator) -> Batch:
    """Training transform: random crop with padding, flip, normalise, random erasing."""
    a, data = self.config.data.augment, self._image_data()
    images = augment.random_crop(batch['image'], a.crop_padding, rng)
    if a.flip:
      images = augment.random_flip(images, rng)
    images = augment.normalize(images, data.mean, data.std)
    images = augment.random_erasing(images, a.erase_prob, rng)
    return {'image': images, 'label': batch['label']}

  def preprocess_eval(self, batch: Batch, rng: np.random.Generator) -> Batch:
    """Eval transform: normalisation only (padding rows keep weight 0)."""
    del rng
    data = self._image_data()
    return {'image': augment.normalize(batch['image'], data.mean, data.std),
            'label': batch['label'], 'weight': batch['weight']}

  def prepare_data(self, process_index: int, process_count: int) -> TaskData:
    self.check_config()
    c = self.config
    data = self._image_data()
    self._check_data(data)
    train = loader.train_dataset(
        data.train, c.batch_size, c.seed, self.augment, process_index=process_index,
        process_count=process_count, num_threads=c.data.num_threads, prefetch=c.data.prefetch)
    eval_arrays = dict(data.eval, weight=np.ones(len(data.eval['label']), np.float32))
    evals = loader.eval_batches(eval_arrays, c.batch_size, c.seed + 1, self.preprocess_eval,
                                pad_row={'image': 0, 'label': 0, 'weight': 0.0},
                                max_batches=c.eval_steps, process_index=process_index,
                                process_count=process_count)
    steps_per_epoch = len(data.train['label']) / c.batch_size
    description = (f'{data.description}; {c.total_steps} steps = '
                   f'{c.total_steps / steps_per_epoch:.1f} epochs of batch {c.batch_size}; '
                   f'cache {data.prepared_dir}')
    return TaskData(train=train, eval=evals, description=description)

  def build_model(self) -> nn.Module:
    self.check_config()
    m = self.config.model
    try:
      return classifiers.build_classifier(
          m.name, m.num_classes, width=m.width, depth=m.depth, dropout_rate=m.dropout_rate,
          dtype=jnp.dtype(m.dtype))
    except ValueError as e:
      raise UserError(f'{e}: change model.depth or model.name') from None

  def synthetic_batch(self, batch_size: int, rng: np.random.Generator) -> Batch:
    h, w, c = self.config.data.image_shape
    return {'image': rng.standard_normal((batch_size, h, w, c)).astype(np.float32),
            'label': rng.integers(0, self.config.model.num_classes, batch_size).astype(np.int32)}

  def init_variables(self, model: nn.Module, rng: jax.Array, batch: Batch) -> dict:
    return model.init({'params': rng, 'dropout': rng}, batch['image'], train=False)

  def loss_and_metrics(self, model, variables, batch, rng, train):
    mutable = ['batch_stats'] if train and 'batch_stats' in variables else False
    out = model.apply(variables, batch['image'], train=train, rngs={'dropout': rng},
                      mutable=mutable)
    logits, new_state = out if mutable else (out, {})
    labels = batch['label']
    weights = batch.get('weight', jnp.ones(labels.shape, jnp.float32))
    sums = classification_sums(logits, labels, weights, with_confusion=not train)
    smoothing = self.config.label_smoothing
    if smoothing:
      targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), smoothing)
      objective = jnp.sum(optax.softmax_cross_entropy(logits, targets) * weights)
    else:
      objective = sums['loss_sum']
    return objective / jnp.maximum(sums['weight'], 1.0), sums, new_state

  def summarize(self, sums):
    return summarize_classification(sums, self.class_names if self._data is not None else None)

  def write_eval_report(self, sums, workdir: Path, step: int) -> None:
    """Saves the confusion matrix as confusion.png and confusion.json in the workdir."""
    write_confusion_report(sums, self.class_names, workdir, step, 'images')

  def train_flops_per_example(self, model: nn.Module) -> float | None:
    """3 x the forward pass's FLOPs as XLA counts them for one example (convolutions and
    matmuls dominate)."""
    h, w, c = self.config.data.image_shape
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, h, w, c))))
    forward = jax.jit(lambda v, x: model.apply(v, x, train=False))
    try:
      analysis = forward.lower(variables, jax.ShapeDtypeStruct((1, h, w, c), jnp.float32)
                               ).cost_analysis()
    except Exception:  # Cost analysis is best-effort and backend-dependent.
      return None
    if isinstance(analysis, list):
      analysis = analysis[0] if analysis else {}
    flops = (analysis or {}).get('flops')
    return 3.0 * float(flops) if flops and math.isfinite(flops) and flops > 0 else None
