"""Hugging Face BERT and GPT-2 checkpoints <-> our parameters.

A checkpoint folder holds `config.json` and `model.safetensors` (plus tokenizer files; see
bigmodels.hf.tokenizer). `read_architecture` turns config.json into our `model` config values
(post-LN and exact GELU for BERT, pre-LN and tanh GELU for GPT-2, their LayerNorm epsilons,
BERT's token-type table); `to_params` maps every tensor to our parameter path ({path: array},
paths as bigmodels.train.init_from.param_paths writes them); `from_params` and `write_folder`
go back. Only safetensors are read: a pickle (pytorch_model.bin) is refused, never loaded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from bigmodels.errors import UserError

PREFIX = 'hf:'  # init_from=hf:/path/to/folder
WEIGHTS_FILE = 'model.safetensors'
CONFIG_FILE = 'config.json'

# HF activation names -> our gelu_approximate.
_GELU = {'gelu': False, 'gelu_new': True, 'gelu_pytorch_tanh': True, 'gelu_fast': True}


def strip_prefix(init_from: str) -> Path | None:
  """The folder of an `hf:FOLDER` init_from value, else None."""
  return Path(init_from[len(PREFIX):]).expanduser() if init_from.startswith(PREFIX) else None


def read_config(folder: Path) -> dict[str, Any]:
  """config.json of a checkpoint folder; UserError if the folder or file is missing or bad."""
  path = Path(folder) / CONFIG_FILE
  if not Path(folder).is_dir():
    raise UserError(f'{str(folder)!r} is not a folder: point init_from=hf:FOLDER at a '
                    'downloaded Hugging Face checkpoint (config.json, model.safetensors)')
  try:
    return json.loads(path.read_text(encoding='utf-8'))
  except OSError:
    raise UserError(f'{folder} has no {CONFIG_FILE}: point init_from=hf: at a Hugging Face '
                    'checkpoint folder') from None
  except ValueError as e:
    raise UserError(f'{path} is not valid JSON ({e}): re-download the checkpoint') from None


def read_architecture(folder: Path) -> tuple[str, dict[str, Any]]:
  """('bert' | 'gpt2', our `model` config values) for a checkpoint's config.json; UserError
  for an architecture or option we do not reproduce exactly."""
  hf = read_config(folder)
  kind = hf.get('model_type')
  if kind == 'bert':
    act = hf.get('hidden_act', 'gelu')
    if act not in _GELU:
      raise UserError(f'{folder}: BERT with hidden_act={act!r} is not supported: only GELU '
                      f'variants ({", ".join(_GELU)})')
    if hf.get('position_embedding_type', 'absolute') != 'absolute':
      raise UserError(f'{folder}: position_embedding_type='
                      f'{hf["position_embedding_type"]!r} is not supported: only absolute')
    return 'bert', dict(
        vocab_size=hf['vocab_size'], hidden_size=hf['hidden_size'],
        num_layers=hf['num_hidden_layers'], num_heads=hf['num_attention_heads'],
        mlp_dim=hf['intermediate_size'], max_len=hf['max_position_embeddings'],
        type_vocab_size=hf.get('type_vocab_size', 2), layer_norm_eps=hf.get('layer_norm_eps',
                                                                            1e-12),
        gelu_approximate=_GELU[act], pre_ln=False, tied_embedding=True)
  if kind == 'gpt2':
    act = hf.get('activation_function', 'gelu_new')
    if act not in _GELU:
      raise UserError(f'{folder}: GPT-2 with activation_function={act!r} is not supported: '
                      f'only GELU variants ({", ".join(_GELU)})')
    for key in ('scale_attn_by_inverse_layer_idx', 'reorder_and_upcast_attn'):
      if hf.get(key):
        raise UserError(f'{folder}: GPT-2 with {key}=true is not supported')
    if not hf.get('scale_attn_weights', True):
      raise UserError(f'{folder}: GPT-2 with scale_attn_weights=false is not supported')
    hidden = hf['n_embd']
    return 'gpt2', dict(
        vocab_size=hf['vocab_size'], hidden_size=hidden, num_layers=hf['n_layer'],
        num_heads=hf['n_head'], mlp_dim=hf.get('n_inner') or 4 * hidden,
        max_len=hf['n_positions'], type_vocab_size=0,
        layer_norm_eps=hf.get('layer_norm_epsilon', 1e-5), gelu_approximate=_GELU[act],
        pre_ln=True, tied_embedding=hf.get('tie_word_embeddings', True))
  raise UserError(f'{folder}: model_type={kind!r} is not supported: init_from=hf: reads BERT '
                  "('bert') and GPT-2 ('gpt2') checkpoints")


def read_tensors(folder: Path) -> dict[str, np.ndarray]:
  """{name: float32 array} of model.safetensors; UserError for a pickle-only checkpoint."""
  from safetensors.numpy import load_file
  path = Path(folder) / WEIGHTS_FILE
  if not path.is_file():
    pickles = sorted(p.name for p in Path(folder).glob('*.bin'))
    if pickles:
      raise UserError(f'{folder} holds only {pickles[0]} (a pickle, which can run code when '
                      'loaded; we never read one): convert it to model.safetensors with '
                      'transformers first (save_pretrained(..., safe_serialization=True))')
    sharded = sorted(p.name for p in Path(folder).glob('model-*.safetensors'))
    if sharded:
      raise UserError(f'{folder} holds a sharded checkpoint ({sharded[0]}, ...): sharded '
                      'safetensors are not supported; save it as one model.safetensors')
    raise UserError(f'{folder} has no {WEIGHTS_FILE}: point init_from=hf: at a checkpoint '
                    'folder saved with safetensors')
  try:
    tensors = load_file(str(path))
  except Exception as e:  # safetensors raises its own error types for damaged files.
    raise UserError(f'cannot read {path} ({str(e)[:200]}): re-download the checkpoint') from None
  return {k: np.asarray(v, np.float32) for k, v in tensors.items()}


# ----------------------------------------------------------------------------------------------
# Tensor names. Each table row: (HF name with {i} for the layer, our path with {i}, kind).
# Kinds: 'linear' (torch [out, in] -> kernel [in, out]), 'conv1d' (GPT-2's [in, out]),
# 'heads_in' / 'heads_out' (attention projections split into heads), 'copy'.

_BERT_LAYER = [
    ('encoder.layer.{i}.attention.self.query.weight', 'encoder/layer_{i}/attention/query/kernel',
     'heads_in'),
    ('encoder.layer.{i}.attention.self.query.bias', 'encoder/layer_{i}/attention/query/bias',
     'heads_bias'),
    ('encoder.layer.{i}.attention.self.key.weight', 'encoder/layer_{i}/attention/key/kernel',
     'heads_in'),
    ('encoder.layer.{i}.attention.self.key.bias', 'encoder/layer_{i}/attention/key/bias',
     'heads_bias'),
    ('encoder.layer.{i}.attention.self.value.weight', 'encoder/layer_{i}/attention/value/kernel',
     'heads_in'),
    ('encoder.layer.{i}.attention.self.value.bias', 'encoder/layer_{i}/attention/value/bias',
     'heads_bias'),
    ('encoder.layer.{i}.attention.output.dense.weight', 'encoder/layer_{i}/attention/out/kernel',
     'heads_out'),
    ('encoder.layer.{i}.attention.output.dense.bias', 'encoder/layer_{i}/attention/out/bias',
     'copy'),
    ('encoder.layer.{i}.attention.output.LayerNorm.weight',
     'encoder/layer_{i}/attention_norm/scale', 'copy'),
    ('encoder.layer.{i}.attention.output.LayerNorm.bias',
     'encoder/layer_{i}/attention_norm/bias', 'copy'),
    ('encoder.layer.{i}.intermediate.dense.weight', 'encoder/layer_{i}/mlp/wi/kernel', 'linear'),
    ('encoder.layer.{i}.intermediate.dense.bias', 'encoder/layer_{i}/mlp/wi/bias', 'copy'),
    ('encoder.layer.{i}.output.dense.weight', 'encoder/layer_{i}/mlp/wo/kernel', 'linear'),
    ('encoder.layer.{i}.output.dense.bias', 'encoder/layer_{i}/mlp/wo/bias', 'copy'),
    ('encoder.layer.{i}.output.LayerNorm.weight', 'encoder/layer_{i}/mlp_norm/scale', 'copy'),
    ('encoder.layer.{i}.output.LayerNorm.bias', 'encoder/layer_{i}/mlp_norm/bias', 'copy'),
]
_BERT = [
    ('embeddings.word_embeddings.weight', 'token_embed/embedding', 'copy'),
    ('embeddings.position_embeddings.weight', 'position_embed', 'copy'),
    ('embeddings.token_type_embeddings.weight', 'type_embed', 'copy'),
    ('embeddings.LayerNorm.weight', 'embed_norm/scale', 'copy'),
    ('embeddings.LayerNorm.bias', 'embed_norm/bias', 'copy'),
    ('pooler.dense.weight', 'pooler/kernel', 'linear'),
    ('pooler.dense.bias', 'pooler/bias', 'copy'),
]
# Heads outside the `bert.` body (BertForMaskedLM / BertForSequenceClassification).
_BERT_HEADS = [
    ('cls.predictions.transform.dense.weight', 'mlm_dense/kernel', 'linear'),
    ('cls.predictions.transform.dense.bias', 'mlm_dense/bias', 'copy'),
    ('cls.predictions.transform.LayerNorm.weight', 'mlm_norm/scale', 'copy'),
    ('cls.predictions.transform.LayerNorm.bias', 'mlm_norm/bias', 'copy'),
    ('cls.predictions.bias', 'mlm_bias', 'copy'),
    ('classifier.weight', 'classifier/kernel', 'linear'),
    ('classifier.bias', 'classifier/bias', 'copy'),
]
# Tensors that are another tensor under a second name (tied) or buffers: never parameters.
_BERT_ALIASES = ('cls.predictions.decoder.weight', 'cls.predictions.decoder.bias',
                 'embeddings.position_ids')

_GPT2_LAYER = [
    ('h.{i}.ln_1.weight', 'decoder/layer_{i}/attention_norm/scale', 'copy'),
    ('h.{i}.ln_1.bias', 'decoder/layer_{i}/attention_norm/bias', 'copy'),
    ('h.{i}.attn.c_attn.weight', 'decoder/layer_{i}/attention/{qkv}/kernel', 'qkv_kernel'),
    ('h.{i}.attn.c_attn.bias', 'decoder/layer_{i}/attention/{qkv}/bias', 'qkv_bias'),
    ('h.{i}.attn.c_proj.weight', 'decoder/layer_{i}/attention/out/kernel', 'conv1d_heads_out'),
    ('h.{i}.attn.c_proj.bias', 'decoder/layer_{i}/attention/out/bias', 'copy'),
    ('h.{i}.ln_2.weight', 'decoder/layer_{i}/mlp_norm/scale', 'copy'),
    ('h.{i}.ln_2.bias', 'decoder/layer_{i}/mlp_norm/bias', 'copy'),
    ('h.{i}.mlp.c_fc.weight', 'decoder/layer_{i}/mlp/wi/kernel', 'copy'),
    ('h.{i}.mlp.c_fc.bias', 'decoder/layer_{i}/mlp/wi/bias', 'copy'),
    ('h.{i}.mlp.c_proj.weight', 'decoder/layer_{i}/mlp/wo/kernel', 'copy'),
    ('h.{i}.mlp.c_proj.bias', 'decoder/layer_{i}/mlp/wo/bias', 'copy'),
]
_GPT2 = [
    ('wte.weight', 'token_embed/embedding', 'copy'),
    ('wpe.weight', 'position_embed', 'copy'),
    ('ln_f.weight', 'decoder/final_norm/scale', 'copy'),
    ('ln_f.bias', 'decoder/final_norm/bias', 'copy'),
]
_GPT2_BUFFER = re.compile(r'^h\.\d+\.attn\.(masked_)?bias$')


def _normalise(name: str) -> str:
  """Old BERT checkpoints call LayerNorm parameters gamma and beta."""
  return re.sub(r'\.gamma$', '.weight', re.sub(r'\.beta$', '.bias', name))


def _table(kind: str, num_layers: int) -> list[tuple[str, str, str]]:
  """Every (HF body name, our path, kind) of an architecture."""
  layer, top = (_BERT_LAYER, _BERT) if kind == 'bert' else (_GPT2_LAYER, _GPT2)
  return top + [(h.format(i=i), o.replace('{i}', str(i)), k)
                for i in range(num_layers) for h, o, k in layer]


def to_params(kind: str, tensors: dict[str, np.ndarray], num_heads: int, num_layers: int
              ) -> tuple[dict[str, np.ndarray], list[str]]:
  """({our path: array}, HF names we do not use) of a checkpoint's tensors."""
  body_prefix = 'bert.' if kind == 'bert' else 'transformer.'
  body, heads = {}, {}
  for name, value in tensors.items():
    norm = _normalise(name)
    if norm.startswith(body_prefix):
      body[norm[len(body_prefix):]] = value
    elif kind == 'bert' and norm in (h for h, _, _ in _BERT_HEADS):
      heads[norm] = value
    elif kind == 'gpt2' and norm == 'lm_head.weight':
      heads[norm] = value
    else:
      body[norm] = value
  out: dict[str, np.ndarray] = {}
  used = set()
  for hf_name, path, how in _table(kind, num_layers):
    if hf_name not in body:
      continue
    used.add(hf_name)
    value = body[hf_name]
    if how == 'qkv_kernel':
      for part, chunk in zip(('query', 'key', 'value'), np.split(value, 3, axis=1)):
        out[path.format(qkv=part)] = chunk.reshape(chunk.shape[0], num_heads, -1)
    elif how == 'qkv_bias':
      for part, chunk in zip(('query', 'key', 'value'), np.split(value, 3)):
        out[path.format(qkv=part)] = chunk.reshape(num_heads, -1)
    else:
      out[path] = _to_ours(value, how, num_heads)
  if kind == 'bert':
    for hf_name, path, how in _BERT_HEADS:
      if hf_name in heads:
        out[path] = _to_ours(heads.pop(hf_name), how, num_heads)
  else:
    lm_head = heads.pop('lm_head.weight', None)
    if lm_head is not None and not np.array_equal(lm_head, out.get('token_embed/embedding')):
      out['lm_head/kernel'] = lm_head.T
  unused = [n for n in body if n not in used and n not in _BERT_ALIASES
            and not _GPT2_BUFFER.match(n)] + list(heads)
  return out, sorted(unused)


# How a tensor's layout differs between Hugging Face (torch Linear [out, in], heads flattened)
# and ours (Dense [in, out], heads a dimension of their own): (to ours, to HF) for each kind of
# table entry; `h` is the number of heads.
_LAYOUTS: dict[str, tuple[Any, Any]] = {
    'copy': (lambda v, h: v, lambda v: v),
    'linear': (lambda v, h: v.T, lambda v: v.T),
    # [heads*head_dim, hidden] <-> [hidden, heads, head_dim]
    'heads_in': (lambda v, h: v.T.reshape(v.shape[1], h, -1),
                 lambda v: v.reshape(v.shape[0], -1).T),
    'heads_bias': (lambda v, h: v.reshape(h, -1), lambda v: v.reshape(-1)),
    # [hidden, heads*head_dim] <-> [heads, head_dim, hidden]
    'heads_out': (lambda v, h: v.T.reshape(h, -1, v.shape[0]),
                  lambda v: v.reshape(-1, v.shape[-1]).T),
    # GPT-2's Conv1D is already [in, out]: [heads*head_dim, hidden] <-> [heads, head_dim, hidden]
    'conv1d_heads_out': (lambda v, h: v.reshape(h, -1, v.shape[1]),
                         lambda v: v.reshape(-1, v.shape[-1])),
}


def _to_ours(value: np.ndarray, how: str, num_heads: int) -> np.ndarray:
  return _LAYOUTS[how][0](value, num_heads)


def _to_hf(value: np.ndarray, how: str) -> np.ndarray:
  return _LAYOUTS[how][1](value)


def from_params(kind: str, params: dict[str, np.ndarray], num_layers: int
                ) -> dict[str, np.ndarray]:
  """HF tensor names -> arrays (BertForMaskedLM / GPT2LMHeadModel layout) of our parameters
  (unrolled layer paths). Parameters with no HF counterpart raise ValueError."""
  body_prefix = 'bert.' if kind == 'bert' else 'transformer.'
  out: dict[str, np.ndarray] = {}
  used = set()
  for hf_name, path, how in _table(kind, num_layers):
    if how in ('qkv_kernel', 'qkv_bias'):
      parts = [params[path.format(qkv=p)] for p in ('query', 'key', 'value')]
      used.update(path.format(qkv=p) for p in ('query', 'key', 'value'))
      flat = [p.reshape(p.shape[0], -1) if how == 'qkv_kernel' else p.reshape(-1)
              for p in parts]
      out[body_prefix + hf_name] = np.concatenate(flat, axis=-1)
    elif path in params:
      used.add(path)
      out[body_prefix + hf_name] = _to_hf(params[path], how)
  if kind == 'bert':
    for hf_name, path, how in _BERT_HEADS:
      if path in params:
        used.add(path)
        out[hf_name] = _to_hf(params[path], how)
  elif 'lm_head/kernel' in params:
    used.add('lm_head/kernel')
    out['lm_head.weight'] = params['lm_head/kernel'].T
  missing = sorted(set(params) - used)
  if missing:
    raise ValueError(f'parameters with no Hugging Face {kind} counterpart: {missing[:5]}')
  return {k: np.ascontiguousarray(v, np.float32) for k, v in out.items()}


def unstack_layers(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Scanned parameters (STACK/layers/... with a leading layer axis) as layer_i paths."""
  out = {}
  for path, value in params.items():
    match = re.match(r'^(.*?)/layers/(.*)$', path)
    if match:
      for i, row in enumerate(value):
        out[f'{match[1]}/layer_{i}/{match[2]}'] = row
    else:
      out[path] = value
  return out


def stack_layers(params: dict[str, np.ndarray], target: set[str]) -> dict[str, np.ndarray]:
  """layer_i paths stacked into the STACK/layers/... paths of `target` (a scanned model)."""
  if not any('/layers/' in p for p in target):
    return params
  out = {p: v for p, v in params.items() if not re.search(r'/layer_\d+/', p)}
  for path in target:
    match = re.match(r'^(.*?)/layers/(.*)$', path)
    if match:
      rows, i = [], 0
      while f'{match[1]}/layer_{i}/{match[2]}' in params:
        rows.append(params[f'{match[1]}/layer_{i}/{match[2]}'])
        i += 1
      if rows:
        out[path] = np.stack(rows)
  return out


def hf_config(kind: str, model: Any, vocab_size: int) -> dict[str, Any]:
  """config.json of our `model` config values as a BertForMaskedLM / GPT2LMHeadModel; UserError
  for a model Hugging Face's class cannot express."""
  act = 'gelu_new' if model.get('gelu_approximate', True) else 'gelu'
  eps = model.get('layer_norm_eps', 1e-6)
  common = dict(vocab_size=vocab_size, torch_dtype='float32', initializer_range=0.02)
  if kind == 'bert':
    if model.pre_ln:
      raise UserError('this BERT run has pre-LayerNorm blocks (model.pre_ln=True), which '
                      "Hugging Face's BertForMaskedLM cannot express (it is post-LN): train "
                      'with --config.model.pre_ln=False to export it')
    return dict(common, architectures=['BertForMaskedLM'], model_type='bert',
                hidden_size=model.hidden_size, num_hidden_layers=model.num_layers,
                num_attention_heads=model.num_heads, intermediate_size=model.mlp_dim,
                hidden_act=act, hidden_dropout_prob=model.dropout_rate,
                attention_probs_dropout_prob=model.dropout_rate,
                max_position_embeddings=model.max_len,
                type_vocab_size=max(model.get('type_vocab_size', 0), 1), layer_norm_eps=eps,
                pad_token_id=0, position_embedding_type='absolute')
  if not model.pre_ln:
    raise UserError('this causal LM has post-LayerNorm blocks (model.pre_ln=False), which '
                    "Hugging Face's GPT2LMHeadModel cannot express (it is pre-LN): train with "
                    '--config.model.pre_ln=True to export it')
  return dict(common, architectures=['GPT2LMHeadModel'], model_type='gpt2',
              n_embd=model.hidden_size, n_layer=model.num_layers, n_head=model.num_heads,
              n_inner=model.mlp_dim, n_positions=model.max_len, activation_function=act,
              layer_norm_epsilon=eps, resid_pdrop=model.dropout_rate,
              embd_pdrop=model.dropout_rate, attn_pdrop=model.dropout_rate,
              tie_word_embeddings=model.get('tied_embedding', True))


def write_folder(folder: Path, kind: str, params: dict[str, np.ndarray], config: dict[str, Any]
                 ) -> None:
  """Writes config.json and model.safetensors of our (unrolled-path) parameters into
  `folder` (created; files replaced atomically)."""
  from safetensors.numpy import save
  from bigmodels import atomic
  tensors = from_params(kind, params, config.get('num_hidden_layers', config.get('n_layer')))
  if kind == 'bert' and 'type_embed' not in params:  # Ours has no token types: type 0 adds 0.
    tensors['bert.embeddings.token_type_embeddings.weight'] = np.zeros(
        (1, config['hidden_size']), np.float32)
  folder.mkdir(parents=True, exist_ok=True)
  atomic.write_bytes_atomic(folder / WEIGHTS_FILE, save(tensors, metadata={'format': 'pt'}))
  atomic.write_text_atomic(folder / CONFIG_FILE, json.dumps(config, indent=2) + '\n')
