r"""Evaluate a run's newest checkpoint under a config: python -m experiments.evaluate
--config=configs/NAME.py --config.init_from=RUN [--workdir=OUT].

The config says what to evaluate on (data, masking, eval_steps) and must build the same model
as RUN (every parameter is loaded; a mismatch is a one-line error). Prints the held-out
metrics; with --workdir also writes OUT/metrics.jsonl (one eval row) and OUT/config.json.

  python -m experiments.evaluate --config=configs/mlm.py --config.init_from=runs/mlm \
      --config.data.eval_mask_rate=0.3   # held-out rows with 30% of the tokens [MASK]ed
"""

from __future__ import annotations

from absl import flags

from experiments import cli

WORKDIR = flags.DEFINE_string('workdir', None, 'Optional folder for metrics.jsonl and '
                              'config.json of the evaluation.')


def main() -> None:
  """Evaluates config.init_from's newest checkpoint."""
  from bigmodels.errors import UserError
  from bigmodels.train.evaluate import evaluate_checkpoint
  config = cli.CONFIG.value
  if not config.get('init_from'):
    raise UserError('--config.init_from=RUN is required: the run whose checkpoint to evaluate')
  evaluate_checkpoint(config, config.init_from, WORKDIR.value)


if __name__ == '__main__':
  cli.run(main)
