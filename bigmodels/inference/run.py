"""Load a finished (or stopped) run folder for inference: config, task, model and parameters
of the newest checkpoint, and the tokenizer the run trained with."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import ml_collections

from bigmodels.data import tokenizer as tokenizer_lib
from bigmodels.errors import UserError
from bigmodels.tasks import get_task
from bigmodels.tasks.base import Task
from bigmodels.tasks.text_base import TOKENIZER_FILE
from bigmodels.train.init_from import newest_checkpoint, restore_params


@dataclasses.dataclass
class LoadedRun:
  """A run's config, task, parameters (host arrays), tokenizer and checkpoint step."""

  config: ml_collections.ConfigDict
  task: Task
  params: Any
  tokenizer: Any  # tokenizer_lib.Tokenizer, or hf.tokenizer.HFTokenizer.
  step: int


def _tokenizer(workdir: Path, config: Any) -> Any:
  from bigmodels.hf.tokenizer import RUN_FOLDER, HFTokenizer
  if (workdir / RUN_FOLDER).is_dir():  # A run started from a Hugging Face checkpoint.
    return HFTokenizer(workdir / RUN_FOLDER)
  path = workdir / TOKENIZER_FILE
  if path.is_file():
    return tokenizer_lib.Tokenizer(path.read_bytes())
  # Runs from before tokenizer.model was kept: the corpus tokenizer is deterministic.
  from bigmodels.data import text
  vocab = config.model.vocab_size - config.data.get('num_sentinels', 0)
  return text.corpus_tokenizer(config.data, vocab)


def read_run_config(workdir: Path, kind: str = 'training') -> ml_collections.ConfigDict:
  """The config a run folder was trained with (its config.json); UserError if the folder is
  not a run. `kind` names the run the caller expects, for the message."""
  config_path = workdir / 'config.json'
  if not config_path.is_file():
    raise UserError(f'{str(workdir)!r} is not a run folder (no config.json): pass the '
                    f'--workdir of a {kind} run')
  return ml_collections.ConfigDict(json.loads(config_path.read_text(encoding='utf-8')))


def load_run(workdir: str | Path) -> LoadedRun:
  """Loads the newest checkpoint of a text run; UserError if the folder is not one."""
  workdir = Path(workdir)
  config = read_run_config(workdir)
  config.init_from = ''  # Its model settings are in config.json; the source may be gone.
  task = get_task(config)
  state_dir = newest_checkpoint(workdir)
  params = restore_params(state_dir)
  return LoadedRun(config, task, params, _tokenizer(workdir, config),
                   int(state_dir.parent.name))
