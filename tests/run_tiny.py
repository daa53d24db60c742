"""Helper for subprocess tests: trains configs/mlm.py with JSON overrides, prints train losses.

  python -m tests.run_tiny WORKDIR '{"batch_size": 8, ...}'
"""

import json
import sys

from configs import mlm
from tests.conftest import apply_overrides


def main() -> None:
  from bigmodels.train import loop
  workdir, overrides = sys.argv[1], json.loads(sys.argv[2])
  config = apply_overrides(mlm.get_config(), overrides)
  loop.train_and_evaluate(config, workdir)
  rows = [json.loads(line) for line in open(f'{workdir}/metrics.jsonl')]
  import jax
  print(json.dumps({'devices': jax.device_count(),
                    'losses': [r['loss'] for r in rows if r['split'] == 'train']}))


if __name__ == '__main__':
  main()
