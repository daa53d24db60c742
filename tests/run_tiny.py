"""Helper for subprocess tests: trains a config with JSON overrides and reports what it did.

  python -m tests.run_tiny WORKDIR '{"batch_size": 8, ...}' [CONFIG_MODULE[:ARG]] [STOP_AT]
  python -m tests.run_tiny - '[{"workdir": ..., "config": ..., "overrides": {...}}, ...]'

CONFIG_MODULE defaults to `mlm` (configs/mlm.py); e.g. `fashion_mnist:model=cnn_bn`. STOP_AT
ends the run early with a checkpoint, as a preemption would. Prints one JSON line (devices,
train and eval losses, and for every parameter its mesh partition spec and the shape of this
process's first shard) and writes every leaf of the final params and model state to
WORKDIR/final.npz under its path.
"""

import importlib
import json
import sys

import numpy as np

from tests.helpers import apply_overrides, rows


def _path_name(path) -> str:
  return '/'.join(str(getattr(k, 'key', getattr(k, 'name', k))) for k in path)


def train_and_report(workdir: str, config_spec: str, overrides: dict,
                     stop_at: int | None = None) -> dict:
  """Trains `config_spec` ('module[:arg]') with overrides in workdir; returns the report
  (devices, train losses, eval rows, shard layout) and writes WORKDIR/final.npz."""
  import jax
  from bigmodels.train import loop
  from bigmodels.train.checkpoint import Checkpointer
  module, _, arg = config_spec.partition(':')
  config = importlib.import_module(f'configs.{module}').get_config(arg or None)
  apply_overrides(config, overrides)

  loop.train_and_evaluate(config, workdir, stop_at=stop_at)
  setup = loop.build(config)
  step = stop_at or config.total_steps
  restored = Checkpointer(f'{workdir}/checkpoints').restore(step, setup.abstract_state)[0]
  leaves = {}
  shards = {}
  for group in ('params', 'model_state'):
    for path, leaf in jax.tree_util.tree_leaves_with_path(getattr(restored, group)):
      name = f'{group}/{_path_name(path)}'
      leaves[name] = np.asarray(jax.device_get(leaf))
      spec = [a if a is None or isinstance(a, str) else list(a) for a in leaf.sharding.spec]
      shards[name] = {'spec': spec,
                      'shard_shape': list(leaf.addressable_shards[0].data.shape),
                      'shape': list(leaf.shape)}
  np.savez(f'{workdir}/final.npz', **leaves)
  return {'devices': jax.device_count(),
          'losses': [r['loss'] for r in rows(workdir, 'train')],
          'eval': [{k: v for k, v in r.items() if isinstance(v, float)}
                   for r in rows(workdir, 'eval')],
          'shards': shards}


def main() -> None:
  """One run from the command line, or (a JSON list as argument 2) several runs in one
  process: [{"workdir": ..., "config": "module[:arg]", "overrides": {...}}, ...]."""
  spec = json.loads(sys.argv[2])
  if isinstance(spec, list):
    print(json.dumps([train_and_report(job['workdir'], job['config'], job['overrides'])
                      for job in spec]))
    return
  config_spec = sys.argv[3] if len(sys.argv) > 3 else 'mlm'
  stop_at = int(sys.argv[4]) if len(sys.argv) > 4 else None
  print(json.dumps(train_and_report(sys.argv[1], config_spec, spec, stop_at)))


if __name__ == '__main__':
  main()
