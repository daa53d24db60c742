"""A run's newest checkpoint as a Hugging Face checkpoint folder: config.json,
model.safetensors and the tokenizer files, loadable by transformers' AutoModelForMaskedLM
(masked-LM runs: BertForMaskedLM) or AutoModelForCausalLM (causal-LM runs: GPT2LMHeadModel)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bigmodels.errors import UserError
from bigmodels.hf import checkpoint as hf
from bigmodels.hf import tokenizer as hf_tokenizer
from bigmodels.inference.run import read_run_config
from bigmodels.tasks.text_base import TOKENIZER_FILE
from bigmodels.train.init_from import newest_checkpoint, param_paths, restore_params


def run_kind(config) -> str:
  """'bert' for a masked-LM run, 'gpt2' for a Transformer causal-LM run; UserError else."""
  if config.task == 'mlm':
    return 'bert'
  if config.task == 'causal_lm' and config.model.get('arch', 'transformer') == 'transformer':
    return 'gpt2'
  raise UserError(f'cannot export a {config.task!r} run (model.arch='
                  f'{config.model.get("arch", "-")}) to Hugging Face: only masked-LM (BERT) '
                  'and Transformer causal-LM (GPT-2) runs')


def export(workdir: str | Path, out: str | Path) -> str:
  """Writes the folder; returns a one-line summary. Never writes into a non-empty folder."""
  workdir, out = Path(workdir), Path(out)
  config = read_run_config(workdir)
  kind = run_kind(config)
  out_config = hf.hf_config(kind, config.model, config.model.vocab_size)
  if out.exists() and any(out.iterdir()):
    raise UserError(f'{out} exists and is not empty: choose a new --out (nothing was written)')
  state_dir = newest_checkpoint(workdir)
  params = hf.unstack_layers({k: np.asarray(v) for k, v in
                              param_paths(restore_params(state_dir)).items()})
  run_tokenizer = workdir / hf_tokenizer.RUN_FOLDER
  if run_tokenizer.is_dir():
    tok = hf_tokenizer.HFTokenizer(run_tokenizer)
    special = dict(pad_token_id=tok.pad_id, bos_token_id=tok.cls_id, eos_token_id=tok.sep_id)
  elif (workdir / TOKENIZER_FILE).is_file():
    tok = None
    from bigmodels.data import tokenizer as ours
    special = dict(pad_token_id=ours.PAD_ID, bos_token_id=ours.CLS_ID, eos_token_id=ours.SEP_ID)
  else:
    raise UserError(f'{workdir} keeps no tokenizer (tokenizer.model or hf_tokenizer/): runs '
                    'from before tokenizers were kept cannot be exported')
  out_config.update(special if kind == 'gpt2' else {'pad_token_id': special['pad_token_id']})
  hf.write_folder(out, kind, params, out_config)
  if tok is not None:
    tok.save(out)
  else:
    hf_tokenizer.write_sentencepiece_as_hf((workdir / TOKENIZER_FILE).read_bytes(), out,
                                           with_cls_sep=kind == 'bert',
                                           max_len=config.model.max_len)
  arch = out_config['architectures'][0]
  return (f'wrote {out}: {arch} from step {state_dir.parent.name} of {workdir} '
          f'(config.json, {hf.WEIGHTS_FILE}, tokenizer files)')
