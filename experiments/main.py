"""Train and evaluate a config: python -m experiments.main --config=configs/NAME.py --workdir=DIR.

Re-running the same command on the same DIR resumes from its latest checkpoint.
"""

from __future__ import annotations

import os

from absl import flags

from experiments import cli

WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Run folder (checkpoints/, metrics.jsonl, config.json, TensorBoard '
    'events). Default: runs/<config file name>.')


def main() -> None:
  """Trains the config in the workdir."""
  from bigmodels.train import loop  # Imported after flag parsing: JAX start-up is slow.
  config = cli.CONFIG.value
  workdir = WORKDIR.value or os.path.join(
      'runs', os.path.splitext(os.path.basename(cli.config_file()))[0])
  loop.train_and_evaluate(config, workdir)


if __name__ == '__main__':
  cli.run(main)
