"""Export a run's newest checkpoint to another format.

  python -m experiments.export --workdir=runs/mlm --format=hf --out=exported/mlm

--format=hf writes a Hugging Face checkpoint folder (config.json, model.safetensors, tokenizer
files): a masked-LM run as BertForMaskedLM (post-LN runs only: model.pre_ln=False), a
Transformer causal-LM run as GPT2LMHeadModel. Load it with
transformers.AutoModelForMaskedLM / AutoModelForCausalLM.from_pretrained(FOLDER).
"""

from __future__ import annotations

from absl import flags

from experiments import cli

WORKDIR = flags.DEFINE_string('workdir', None, 'Run folder to export (its newest checkpoint).')
FORMAT = flags.DEFINE_enum('format', 'hf', ['hf'], 'Output format (hf: Hugging Face).')
OUT = flags.DEFINE_string('out', None, 'Folder to write (must not exist or be empty).')


def main() -> None:
  """Exports the run."""
  from bigmodels.errors import UserError
  from bigmodels.inference import hf_export
  if not WORKDIR.value or not OUT.value:
    raise UserError('--workdir (a training run) and --out (a new folder) are required')
  print(hf_export.export(WORKDIR.value, OUT.value))


if __name__ == '__main__':
  cli.run(main, needs_config=False)
