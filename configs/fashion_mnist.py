r"""Fashion-MNIST image classification (offline: Debian's dataset-fashion-mnist package).

Models (`configs/fashion_mnist.py:model=NAME`); test accuracy on the 10,000 test images,
measured on a 2-core CPU (wall time includes start-up, compile and an eval per epoch):

  model=cnn_bn    2 conv + pool + BatchNorm   18 epochs   8.5 min CPU   0.941 (published 0.934)
  model=cnn       2 conv + pool               18 epochs   8.5 min CPU   0.935 (published 0.916)
  model=mlp       784-512-512-10              20 epochs   48 s CPU      0.896 (published 0.883)
  model=resnet18  ResNet-18 (CIFAR stem)      30 epochs   needs a GPU (CPU: 62 ex/s, ~8 h); not
                                                          measured yet (published 0.949)
  model=wrn       WRN-28-10; model=wrn40_4: WRN-40-4, 50 epochs, need a GPU; not measured yet

Run one:

  python -m experiments.main --config=configs/fashion_mnist.py:model=cnn_bn --workdir=runs/fm_cnn_bn

Reproduce the benchmark table (trains every CPU row; add --gpu_rows on a GPU machine):

  python -m experiments.reproduce fashion_mnist --workdir=runs/reproduce

`runlocal=1` gives a seconds-long smoke run of the chosen model (tiny width, few steps).
Other data: --config.data.image_dir=/folder/of/idx/files, or (TensorFlow + internet)
--config.data.tfds_name=mnist|fashion_mnist|cifar10 with matching data.image_shape.
"""

from __future__ import annotations

import ml_collections

from configs import base

TRAIN_EXAMPLES = 60_000

# Per model: epochs, batch, peak learning rate, weight decay, dropout, label smoothing,
# augmentation (crop padding, flip, random-erasing probability), needs a GPU to finish.
RECIPES = {
    'cnn': dict(epochs=18, batch=64, lr=2e-3, wd=0.05, dropout=0.25, smoothing=0.1,
                crop=0, flip=True, erase=0.0, gpu=False),
    'cnn_bn': dict(epochs=18, batch=64, lr=2e-3, wd=0.05, dropout=0.25, smoothing=0.1,
                   crop=0, flip=True, erase=0.0, gpu=False),
    'mlp': dict(epochs=20, batch=128, lr=1e-3, wd=0.05, dropout=0.3, smoothing=0.0,
                crop=0, flip=True, erase=0.0, gpu=False),
    'resnet18': dict(epochs=30, batch=128, lr=2e-3, wd=0.05, dropout=0.0, smoothing=0.1,
                     crop=2, flip=True, erase=0.5, gpu=True),
    'wrn': dict(epochs=50, batch=128, lr=2e-3, wd=0.05, dropout=0.3, smoothing=0.1,
                crop=2, flip=True, erase=0.5, gpu=True),
    'wrn40_4': dict(epochs=50, batch=128, lr=2e-3, wd=0.05, dropout=0.3, smoothing=0.1,
                    crop=2, flip=True, erase=0.5, gpu=True),
}

# The published rows of the Fashion-MNIST benchmark table this config reproduces:
# model -> (published row, test accuracy).
PUBLISHED = {
    'cnn': ('2 Conv+pooling (TensorFlow docs)', 0.916),
    'cnn_bn': ('2 Conv+pooling+BN', 0.934),
    'mlp': ('MLP 256-128-100', 0.883),
    'resnet18': ('ResNet18', 0.949),
    'wrn': ('WRN-28-10', 0.959),
    'wrn40_4': ('WRN40-4', 0.967),
}


HELP = {
    'label_smoothing': 'label smoothing of the training loss (0 = off)',
    'model.name': 'classifier preset: cnn, cnn_bn, mlp, resnet18, resnet34, wrn (WRN-28-10), '
                  'wrn28_10, wrn40_4, wrn16_4',
    'model.num_classes': 'classifier outputs (at least the classes in the data)',
    'model.dropout_rate': 'dropout of the models that have it',
    'model.dtype': 'compute dtype: float32 or bfloat16',
    'model.width': '> 0 rescales the preset (CNN/MLP/ResNet width, WRN widening); 0 = preset',
    'model.depth': '> 0 sets a Wide ResNet\'s depth (6n + 4); 0 = preset',
    'data.image_dir': "folder of MNIST-format idx files; '' = Debian's dataset-fashion-mnist",
    'data.tfds_name': 'TFDS catalog image dataset instead (needs TensorFlow and internet)',
    'data.tfds_train_split': 'TFDS split to train on',
    'data.tfds_eval_split': 'TFDS split to evaluate on',
    'data.image_shape': '(height, width, channels) the data must have',
    'data.num_threads': 'input pipeline worker threads',
    'data.prefetch': 'batches prepared ahead of the device',
    'data.augment.crop_padding': 'random crop after zero padding by this many pixels (0 = off)',
    'data.augment.flip': 'random horizontal flips',
    'data.augment.erase_prob': 'probability of random erasing per image (0 = off)',
}


def reproduce_rows() -> list[dict]:
  """The benchmark rows `experiments.reproduce` trains: config argument, published figure,
  and whether the row needs a GPU to finish in reasonable time."""
  return [dict(name=name, arg=f'model={name}', published=label, published_accuracy=accuracy,
               needs_gpu=RECIPES[name]['gpu'])
          for name, (label, accuracy) in PUBLISHED.items()]


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The Fashion-MNIST config; `arg` picks the model ('model=resnet18') and 'runlocal=1'."""
  args = base.parse_arg(arg, {'model': 'cnn_bn', 'runlocal': '0'})
  name = args['model']
  if name not in RECIPES:
    raise ValueError(f'unknown model {name!r}; choose one of {", ".join(RECIPES)}')
  recipe = RECIPES[name]
  runlocal = args['runlocal'] not in ('0', '', 'False', 'false')

  config = base.base_config()
  config.task = 'classification'
  config.batch_size = recipe['batch']
  config.total_steps = base.steps_for_epochs(recipe['epochs'], TRAIN_EXAMPLES, config.batch_size)
  steps_per_epoch = TRAIN_EXAMPLES // config.batch_size
  config.log_every = 100
  config.eval_every = steps_per_epoch
  config.checkpoint_every = steps_per_epoch
  config.label_smoothing = recipe['smoothing']

  config.optimizer.learning_rate = recipe['lr']
  config.optimizer.schedule = 'cosine'
  config.optimizer.warmup_steps = steps_per_epoch // 2
  config.optimizer.weight_decay = recipe['wd']
  config.optimizer.b2 = 0.999
  config.optimizer.eps = 1e-8

  config.model = ml_collections.ConfigDict(dict(
      name=name, num_classes=10, dropout_rate=recipe['dropout'], dtype='float32',
      # > 0 overrides the preset (small test models): channel width, Wide ResNet depth.
      width=0, depth=0))

  config.data = ml_collections.ConfigDict(dict(
      image_dir='',  # '' = /usr/share/datasets/fashion-mnist (Debian dataset-fashion-mnist).
      tfds_name='', tfds_train_split='train', tfds_eval_split='test',
      image_shape=(28, 28, 1), num_threads=2, prefetch=4,
      augment=dict(crop_padding=recipe['crop'], flip=recipe['flip'],
                   erase_prob=recipe['erase'])))

  if runlocal:
    config.total_steps = 20
    config.batch_size = 32
    config.log_every = config.eval_every = config.checkpoint_every = 10
    config.eval_steps = 2
    config.optimizer.warmup_steps = 2
    config.model.width = 4
    config.model.depth = 10 if name.startswith('wrn') else 0
  return config
