"""TFDS catalog datasets (`data.tfds_name`): prepared with TensorFlow and internet, or a
one-line error saying what is missing."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from typing import Any

from bigmodels.errors import UserError


def quiet_tfds():
  """tensorflow_datasets, imported lazily (it is slow to import), without progress bars."""
  import tensorflow_datasets as tfds
  tfds.disable_progress_bar()
  return tfds


def prepare_local_builder(make_builder: Callable[[], Any], what: str) -> Any:
  """The TFDS builder over local files that `make_builder` constructs, prepared: the first
  time, under a cache lock (so concurrent runs prepare it once) and with our own line (TFDS's
  "Downloading and preparing dataset ..." would be wrong: nothing is downloaded)."""
  builder = make_builder()
  if builder.is_prepared():
    return builder
  from bigmodels.data.cache import exclusive
  with exclusive(f'tfds-{builder.name}'):
    builder = make_builder()  # Re-read: another process may have prepared it meanwhile.
    if not builder.is_prepared():
      _prepare_quietly(builder, what)
  return builder


def _prepare_quietly(builder: Any, what: str) -> None:
  print(f'preparing {what} into the data cache {builder.data_dir} (first use only; nothing '
        'is downloaded)', flush=True)
  with contextlib.redirect_stdout(io.StringIO()):
    builder.download_and_prepare()


def prepare_catalog_builder(data_config: Any, cache_dir: str, local_alternative: str) -> Any:
  """The prepared TFDS builder named by data.tfds_name, holding both configured splits.

  `local_alternative` completes the hint when TensorFlow is missing, e.g. 'a local corpus'.
  """
  name = data_config.tfds_name
  try:
    import tensorflow  # noqa: F401  (TFDS catalog builders need it to prepare and decode.)
  except ImportError:
    raise UserError(f'data.tfds_name={name!r} needs TensorFlow and internet access to prepare: '
                    f'pip install tensorflow-cpu, or unset data.tfds_name to use '
                    f'{local_alternative}') from None
  tfds = quiet_tfds()
  from bigmodels.data.cache import exclusive
  try:
    builder = tfds.builder(name, data_dir=os.path.join(cache_dir, 'tfds'),
                           file_format='array_record')
    with exclusive(f'tfds-{builder.name}'):
      builder.download_and_prepare()
  except Exception as e:  # TFDS raises many types for unknown names and failed downloads.
    raise UserError(f'could not prepare TFDS dataset {name!r} ({type(e).__name__}: '
                    f'{str(e).splitlines()[0] if str(e) else ""}): check the name and your '
                    'internet connection') from None
  for split in (data_config.tfds_train_split, data_config.tfds_eval_split):
    if split not in builder.info.splits:
      raise UserError(f'TFDS dataset {name!r} has no split {split!r}; it has '
                      f'{sorted(builder.info.splits)}')
  return builder
