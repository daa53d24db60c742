"""Fine-tuning: initialise a fresh run's parameters from another run's newest checkpoint, or
from a Hugging Face checkpoint folder (`hf:FOLDER`, see bigmodels.hf).

Every parameter of the new model is either loaded (same path and shape in the source) or
freshly initialised because it matches one of the `init_fresh` glob patterns (e.g. a new
classification head); anything else is an error, so a typo or a changed size never silently
trains from scratch. Source parameters the new model lacks (e.g. the masked-LM head) are
ignored. One table says which is which.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from bigmodels.errors import UserError


def param_paths(tree: Any) -> dict[str, Any]:
  """{'encoder/layer_0/attention/query/kernel': leaf} for every leaf of a parameter tree."""
  return {'/'.join(str(getattr(k, 'key', k)) for k in path): leaf
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def newest_checkpoint(source: str | Path) -> Path:
  """The `state` folder of the newest complete checkpoint of a run folder."""
  source = Path(source)
  folder = source / 'checkpoints'
  if not folder.is_dir():
    raise UserError(f'{str(source)!r} is not a run folder (no checkpoints/ in it): point '
                    'at the --workdir of a finished or stopped run')
  steps = sorted(int(p.name) for p in folder.iterdir()
                 if p.name.isdigit() and (p / 'state').is_dir())
  if not steps:
    raise UserError(f'{str(source)!r} has no complete checkpoint: train that run first, or '
                    'choose another folder')
  return (folder / str(steps[-1]) / 'state').absolute()


def _read(state_dir: Path, what):
  """what(checkpointer) with orbax's many error types turned into one UserError."""
  import orbax.checkpoint as ocp
  checkpointer = ocp.StandardCheckpointer()
  try:
    return what(checkpointer)
  except Exception as e:  # Orbax raises many types for damaged or foreign folders.
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    raise UserError(f'cannot read the checkpoint {state_dir} ({reason}): choose another '
                    'run folder') from None
  finally:
    checkpointer.close()


def _params_of(state_dir: Path, tree: Any) -> Any:
  if 'params' not in tree:
    raise UserError(f'the checkpoint {state_dir} holds no parameters: choose another init_from')
  return tree['params']


def restore_state(state_dir: Path) -> dict[str, Any]:
  """The whole saved train-state tree of a checkpoint (params, model_state, optimizer state,
  step) as host arrays, whatever topology saved it."""
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])

  def restore(checkpointer):
    tree = checkpointer.metadata(state_dir).item_metadata.tree
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                          tree)
    return checkpointer.restore(state_dir, target)

  return jax.tree.map(np.asarray, _read(state_dir, restore))


def restore_params(state_dir: Path) -> Any:
  """The saved parameter tree of a checkpoint, as host arrays, whatever topology saved it."""
  return _params_of(state_dir, restore_state(state_dir))


def load_source_params(state_dir: Path) -> dict[str, np.ndarray]:
  """{path: host array} of a checkpoint's parameters."""
  return param_paths(restore_params(state_dir))


def source_shapes(state_dir: Path) -> dict[str, tuple[int, ...]]:
  """{path: shape} of a checkpoint's parameters, from its metadata (no arrays are read)."""
  tree = _read(state_dir, lambda c: c.metadata(state_dir).item_metadata.tree)
  return {k: tuple(v.shape) for k, v in param_paths(_params_of(state_dir, tree)).items()}


def _hf_source(folder: Path, target: dict[str, Any]) -> tuple[dict[str, np.ndarray], str]:
  """A Hugging Face checkpoint's parameters under our paths (stacked like `target` when its
  layers are scanned), and what to call the source."""
  from bigmodels.hf import checkpoint as hf
  kind, fields = hf.read_architecture(folder)
  params, _ = hf.to_params(kind, hf.read_tensors(folder), fields['num_heads'],
                           fields['num_layers'])
  return hf.stack_layers(params, set(target)), f'{hf.PREFIX}{folder}'


def _source(source_dir: str | Path, target: dict[str, Any]
            ) -> tuple[dict[str, np.ndarray], str]:
  """{path: host array} of an init_from value (a run folder or hf:FOLDER) and its label."""
  from bigmodels.hf import checkpoint as hf
  folder = hf.strip_prefix(str(source_dir))
  if folder is not None:
    return _hf_source(folder, target)
  state_dir = newest_checkpoint(source_dir)
  return load_source_params(state_dir), str(state_dir.parent)


def check(abstract_params: Any, source_dir: str | Path, fresh: tuple[str, ...]) -> None:
  """Raises the UserError `initialize_from` would, before anything is written or trained."""
  from bigmodels.hf import checkpoint as hf
  if hf.strip_prefix(str(source_dir)) is not None:
    source = _source(source_dir, param_paths(abstract_params))[0]
  else:
    source = {k: np.empty(v, np.int8) for k, v in
              source_shapes(newest_checkpoint(source_dir)).items()}
  plan(param_paths(abstract_params), source, tuple(fresh))


def plan(target: dict[str, Any], source: dict[str, Any], fresh: tuple[str, ...]
         ) -> dict[str, list[str]]:
  """{'loaded', 'fresh', 'ignored'} parameter paths; UserError on a missing or mismatched one
  that no `fresh` pattern lists."""
  out: dict[str, list[str]] = {'loaded': [], 'fresh': [], 'ignored': []}
  for path, leaf in target.items():
    if any(fnmatch.fnmatchcase(path, pattern) for pattern in fresh):
      out['fresh'].append(path)
    elif path not in source:
      raise UserError(f'parameter {path} is not in the init_from checkpoint: add a pattern '
                      f'for it to init_fresh (e.g. --config.init_fresh="{path.split("/")[0]}/*")'
                      ' or choose a matching init_from run')
    elif tuple(source[path].shape) != tuple(leaf.shape):
      raise UserError(f'parameter {path} has shape {tuple(leaf.shape)} here but '
                      f'{tuple(source[path].shape)} in the init_from checkpoint: use the same '
                      'model sizes (and vocabulary), or list it in init_fresh')
    else:
      out['loaded'].append(path)
  out['ignored'] = [path for path in source if path not in target]
  return out


def format_table(decisions: dict[str, list[str]], shapes: dict[str, tuple[int, ...]]) -> str:
  """One table: status, parameter (layers folded into layer_*), count and shape."""
  rows = []
  for status in ('loaded', 'fresh', 'ignored'):
    groups: dict[tuple[str, tuple[int, ...]], int] = {}
    for path in decisions[status]:
      key = (re.sub(r'layer_\d+', 'layer_*', path), shapes[path])
      groups[key] = groups.get(key, 0) + 1
    rows += [(status, name, count, 'x'.join(map(str, shape)) or 'scalar')
             for (name, shape), count in groups.items()]
  width = max([len(r[1]) for r in rows] + [9])
  lines = [f'{"status":8} {"parameter":{width}} {"count":>5}  shape']
  lines += [f'{s:8} {n:{width}} {c:>5}  {sh}' for s, n, c, sh in rows]
  totals = ', '.join(f'{len(v)} {k}' for k, v in decisions.items())
  return '\n'.join(lines + [f'({totals} parameter arrays)'])


def initialize_from(params: Any, source_dir: str | Path, fresh: tuple[str, ...],
                    log: Callable[[str], None] = print) -> Any:
  """`params` (freshly initialised, sharded) with every non-fresh leaf replaced by the source's
  value (a run's newest checkpoint, or a Hugging Face checkpoint for `hf:FOLDER`), cast to its
  dtype and placed in its sharding; logs the table."""
  target = param_paths(params)
  source, label = _source(source_dir, target)
  decisions = plan(target, source, tuple(fresh))
  shapes = {**{k: tuple(v.shape) for k, v in source.items()},
            **{k: tuple(v.shape) for k, v in target.items()}}
  log(f'init_from {label}:\n{format_table(decisions, shapes)}')
  loaded = set(decisions['loaded'])

  def replace(path, leaf):
    name = '/'.join(str(getattr(k, 'key', k)) for k in path)
    if name not in loaded:
      return leaf
    return jax.device_put(source[name].astype(leaf.dtype), leaf.sharding)

  return jax.tree_util.tree_map_with_path(replace, params)
