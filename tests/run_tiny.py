"""Helper for subprocess tests: trains a config with JSON overrides, prints the train losses
and a digest of the final parameters and model state.

  python -m tests.run_tiny WORKDIR '{"batch_size": 8, ...}' [CONFIG_MODULE[:ARG]]

CONFIG_MODULE defaults to `mlm` (configs/mlm.py); e.g. `fashion_mnist:model=cnn_bn`.
"""

import importlib
import json
import sys

from tests.conftest import apply_overrides


def main() -> None:
  from bigmodels.train import loop
  workdir, overrides = sys.argv[1], json.loads(sys.argv[2])
  module, _, arg = (sys.argv[3] if len(sys.argv) > 3 else 'mlm').partition(':')
  config = importlib.import_module(f'configs.{module}').get_config(arg or None)
  apply_overrides(config, overrides)
  loop.train_and_evaluate(config, workdir)
  rows = [json.loads(line) for line in open(f'{workdir}/metrics.jsonl')]
  import jax
  import orbax.checkpoint as ocp
  state = ocp.StandardCheckpointer().restore(
      f'{workdir}/checkpoints/{config.total_steps}/state')
  print(json.dumps({'devices': jax.device_count(),
                    'losses': [r['loss'] for r in rows if r['split'] == 'train'],
                    'model_state': [float(abs(x).sum()) for x in
                                    jax.tree.leaves(state.get('model_state', {}))],
                    'params': [float(abs(x).sum()) for x in jax.tree.leaves(state['params'])]}))


if __name__ == '__main__':
  main()
