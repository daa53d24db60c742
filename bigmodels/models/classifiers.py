"""Image classifier presets by name: the models of the vision configs, as data."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from bigmodels.models.cnn import SmallCNN
from bigmodels.models.mlp import MLP
from bigmodels.models.resnet import ResNet, WideResNet

# name -> (module class, constructor arguments).
PRESETS: dict[str, tuple[type[nn.Module], dict[str, Any]]] = {
    'cnn': (SmallCNN, dict(batch_norm=False)),
    'cnn_bn': (SmallCNN, dict(batch_norm=True)),
    'mlp': (MLP, dict(hidden=(512, 512))),
    'resnet18': (ResNet, dict(stage_sizes=(2, 2, 2, 2), width=64)),
    'resnet34': (ResNet, dict(stage_sizes=(3, 4, 6, 3), width=64)),
    'wrn28_10': (WideResNet, dict(depth=28, widen=10)),
    'wrn40_4': (WideResNet, dict(depth=40, widen=4)),
    'wrn16_4': (WideResNet, dict(depth=16, widen=4)),
}
ALIASES = {'wrn': 'wrn28_10'}


def resolve_name(name: str) -> str:
  """The preset a (possibly aliased) model name stands for; KeyError if unknown."""
  name = ALIASES.get(name, name)
  if name not in PRESETS:
    raise KeyError(name)
  return name


def build_classifier(name: str, num_classes: int, *, width: int = 0, depth: int = 0,
                     dropout_rate: float | None = None, dtype: Any = jnp.float32) -> nn.Module:
  """The named preset for `num_classes` classes.

  `width` > 0 rescales the channels (CNN: conv widths (w, 2w), dense 4w; MLP: hidden sizes;
  ResNet: the first stage's channels; WRN: the widening factor) and `depth` > 0 sets a Wide
  ResNet's depth, for small test models. `dropout_rate` applies to models that have dropout.
  """
  module, kwargs = PRESETS[resolve_name(name)]
  kwargs = dict(kwargs, num_classes=num_classes, dtype=dtype)
  if width > 0:
    if module is SmallCNN:
      kwargs.update(features=(width, 2 * width), dense_features=4 * width)
    elif module is MLP:
      kwargs['hidden'] = (width,) * len(kwargs['hidden'])
    elif module is ResNet:
      kwargs['width'] = width
    else:
      kwargs['widen'] = width
  if depth > 0:
    if module is not WideResNet:
      raise ValueError(f'model {name!r} has no depth setting (only Wide ResNets do)')
    kwargs['depth'] = depth
  fields = {f.name for f in dataclasses.fields(module)}
  if dropout_rate is not None and 'dropout_rate' in fields:
    kwargs['dropout_rate'] = dropout_rate
  return module(**kwargs)
