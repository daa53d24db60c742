"""Keys every experiment config shares (the public contract in the README), with their meanings."""

from __future__ import annotations

import ml_collections


# One line per shared key; each config file adds its own in HELP. `--print_config` shows them.
BASE_HELP = {
    'task': 'task family: mlm, causal_lm, span_corruption, classification or '
            'text_classification (set by the config file)',
    'seed': 'random seed of initialisation, data order, masking, augmentation and dropout',
    'total_steps': 'optimizer steps of the whole run (raising it on resume extends the run)',
    'batch_size': 'global batch size, over all devices and processes',
    'grad_accum_steps': 'micro-batches per step (gradients summed: same update, less memory)',
    'log_every': 'steps between progress lines and train rows in metrics.jsonl',
    'eval_every': 'steps between evaluations (there is always one at the end)',
    'eval_steps': 'eval batches per evaluation; 0 = the whole eval split',
    'checkpoint_every': 'steps between checkpoints (there is always one at the end)',
    'keep_checkpoints': 'how many of the newest checkpoints to keep',
    'skip_nonfinite_steps': 'non-finite loss/gradient/update: 0 stops the run; K > 0 skips up '
                            'to K such steps, keeping the previous state',
    'allow_fresh_start': 'when no checkpoint in the workdir is readable: move them aside and '
                         'start over instead of stopping',
    'init_from': "fine-tune from this run folder's newest checkpoint ('' = random init)",
    'init_fresh': 'glob patterns of parameters init_from leaves freshly initialised (new heads)',
    'optimizer.name': 'adamw (decoupled weight decay on kernels and embeddings) or adam',
    'optimizer.learning_rate': 'peak learning rate, reached after the warm-up',
    'optimizer.schedule': 'decay after the warm-up: linear, cosine or constant',
    'optimizer.warmup_steps': 'steps of linear warm-up from learning_rate / warmup_steps',
    'optimizer.end_lr_fraction': 'final learning rate as a fraction of the peak',
    'optimizer.b1': 'Adam first-moment decay',
    'optimizer.b2': 'Adam second-moment decay',
    'optimizer.eps': 'Adam epsilon',
    'optimizer.weight_decay': 'AdamW decoupled weight decay (kernels and embeddings only)',
    'optimizer.grad_clip_norm': 'clip gradients to this global norm; 0 = no clipping',
    'mesh.axes': 'names of the device mesh axes',
    'mesh.shape': 'devices along each mesh axis; one -1 takes the remaining devices',
    'mesh.dcn_shape': 'multi-host: granules (slices/processes) each axis spans over DCN; () = 1',
    'mesh.rules': 'logical axis name -> mesh axis (or axes, or None = replicated)',
}


def parse_arg(arg: str | None, defaults: dict[str, str]) -> dict[str, str]:
  """Parses a config argument such as 'size=mini,other=x' (or just 'mini' for the first key)."""
  values = dict(defaults)
  for part in filter(None, (arg or '').split(',')):
    key, sep, value = part.partition('=')
    if not sep:
      key, value = next(iter(defaults)), key
    if key not in defaults:
      raise ValueError(f'unknown config argument {key!r}; known: {", ".join(defaults)}')
    values[key] = value
  return values


def steps_for_epochs(epochs: float, examples: int, batch_size: int) -> int:
  """Training steps that cover `epochs` passes over `examples` at a global batch size."""
  return max(1, round(epochs * examples / batch_size))


def base_config() -> ml_collections.ConfigDict:
  """Top-level keys: seed, durations, batch size, intervals, optimizer and data-parallel mesh."""
  config = ml_collections.ConfigDict()
  config.task = ''
  config.seed = 0
  config.total_steps = 1000
  config.batch_size = 64  # Global, over all devices and processes.
  # Each step's batch is split into this many micro-batches whose gradients are summed (the
  # same update as the whole batch; BatchNorm statistics are per micro-batch).
  config.grad_accum_steps = 1
  config.log_every = 50
  config.eval_every = 500
  config.eval_steps = 0  # Eval batches per evaluation; 0 = the whole eval split.
  config.checkpoint_every = 500
  config.keep_checkpoints = 3
  # Non-finite loss/gradient: 0 stops the run at once (keeping the last good checkpoint);
  # K > 0 skips up to K such steps, keeping the previous state.
  config.skip_nonfinite_steps = 0
  # Start over (moving unreadable checkpoints aside) when no checkpoint in the workdir reads.
  config.allow_fresh_start = False
  # Fine-tuning: start from another run's newest checkpoint, except the listed parameters.
  config.init_from = ''
  config.init_fresh = ()

  config.optimizer = ml_collections.ConfigDict(dict(
      name='adamw', learning_rate=1e-3, schedule='linear', warmup_steps=100,
      end_lr_fraction=0.0, b1=0.9, b2=0.999, eps=1e-6, weight_decay=0.01,
      grad_clip_norm=1.0))

  # Data parallel by default: the batch is split over every device; FSDP: set fsdp > 1;
  # tensor parallel: tensor > 1; no model change for any of them.
  # Rules map logical axis names onto mesh axes. Weights and activations have their own
  # names (as in MaxText): 'vocab', 'embed', 'mlp', 'heads', 'kv' and 'layers' (the stacked
  # axis of scanned layers) name weight dimensions; 'activation_*' name activation dimensions
  # and 'activation_batch' the batch of the inputs. Order is priority: for each array, flax
  # walks the rules top to bottom and gives a dimension the rule's mesh axes if that dimension
  # has none yet and no other dimension of the array already took them; a name can have several
  # rules (fallbacks). Dimensions left without mesh axes, or whose size the mesh axes do not
  # divide, are not split.
  config.mesh = ml_collections.ConfigDict(dict(
      axes=('data', 'fsdp', 'tensor'),
      shape=(-1, 1, 1),
      dcn_shape=(),
      rules=(('activation_batch', ('data', 'fsdp')), ('activation_length', None),
             ('activation_embed', None), ('activation_mlp', 'tensor'),
             ('vocab', 'tensor'), ('embed', 'fsdp'), ('mlp', 'tensor'), ('heads', 'tensor'),
             ('kv', None), ('layers', None))))
  return config


# Keys of the Transformer `model` block of the text configs.
TRANSFORMER_HELP = {
    'model.size': 'size preset: tiny, mini, small, medium, base or large (L2/H128 ... L24/H1024)',
    'model.vocab_size': 'tokenizer and embedding size (a corpus too small to fill it lowers '
                        'it; config.json records the size used)',
    'model.max_len': 'longest sequence the position table holds',
    'model.num_layers': 'Transformer layers (0 = from the size preset)',
    'model.hidden_size': 'hidden width (0 = from the size preset)',
    'model.num_heads': 'attention heads (0 = from the size preset)',
    'model.mlp_dim': 'feed-forward width (0 = 4 x hidden_size)',
    'model.dropout_rate': 'dropout after embeddings, attention and MLP blocks',
    'model.pre_ln': 'True: pre-LayerNorm blocks; False: post-LN (original BERT/Transformer)',
    'model.remat': "per-layer recompute in backprop: 'none', 'dots' (keep matmul outputs), "
                   "'full'",
    'model.scan_layers': 'nn.scan over the layers: compile time flat in depth (params under '
                         'layers/)',
    'model.tied_embedding': 'output layer shares the token embedding table',
    'model.dtype': 'compute dtype of activations: float32 or bfloat16',
    'model.param_dtype': 'dtype the parameters are stored and updated in',
    'model.attention_impl': "'' lets JAX choose; 'cudnn' or 'xla' forces an implementation",
    'model.layer_norm_eps': 'LayerNorm epsilon (BERT checkpoints: 1e-12, GPT-2: 1e-5)',
    'model.gelu_approximate': 'True: tanh GELU (GPT-2); False: exact erf GELU (BERT)',
    'model.type_vocab_size': 'BERT token-type embeddings (Hugging Face BERT: 2); 0 = none',
}

# Keys of the packed-text `data` block of the text configs.
TEXT_DATA_HELP = {
    'data.corpus_dir': "folder of .txt/.md/.rst documents; '' = the Python docs (python3-doc)",
    'data.tfds_name': 'TFDS catalog text dataset instead (needs TensorFlow and internet)',
    'data.tfds_train_split': 'TFDS split to train on',
    'data.tfds_eval_split': 'TFDS split to evaluate on',
    'data.text_key': 'TFDS feature holding the text',
    'data.max_documents': 'use only the first N documents; 0 = all',
    'data.heldout_percent': 'share of local documents held out for evaluation (by path hash)',
    'data.seq_len': 'tokens per packed row',
    'data.num_threads': 'input pipeline worker threads',
    'data.prefetch': 'batches prepared ahead of the device',
}


def transformer_model(size: str, **overrides) -> ml_collections.ConfigDict:
  """The `model` block of a Transformer text config; zero dimensions come from `size`."""
  return ml_collections.ConfigDict(dict(dict(
      size=size, vocab_size=8192, max_len=512,
      num_layers=0, hidden_size=0, num_heads=0, mlp_dim=0,  # 0 = from the size preset.
      dropout_rate=0.0, pre_ln=True, remat='none', scan_layers=False, tied_embedding=True,
      dtype='float32', param_dtype='float32', attention_impl='', layer_norm_eps=1e-6,
      gelu_approximate=True, type_vocab_size=0), **overrides))


def text_data(**overrides) -> ml_collections.ConfigDict:
  """The `data` block of packed text on the default corpus (the Python docs)."""
  return ml_collections.ConfigDict(dict(dict(
      corpus_dir='',  # '' = the Python docs from Debian's python3-doc.
      tfds_name='', tfds_train_split='train', tfds_eval_split='test', text_key='text',
      max_documents=0,  # 0 = all documents.
      heldout_percent=5.0, seq_len=128, num_threads=2, prefetch=4), **overrides))


def make_smoke_run(config: ml_collections.ConfigDict, max_documents: int = 60) -> None:
  """`runlocal=1`: a seconds-long run of the config (tiny model, few steps, few documents)."""
  config.total_steps = 8
  config.batch_size = 8
  config.log_every = 2
  config.eval_every = 4
  config.eval_steps = 2
  config.checkpoint_every = 4
  config.optimizer.warmup_steps = 2
  if 'max_documents' in config.data:
    config.data.max_documents = max_documents
    config.data.seq_len = 64
  config.model.vocab_size = min(config.model.vocab_size, 512)
  for key, value in dict(num_layers=1, hidden_size=32, num_heads=2, mlp_dim=64).items():
    if key in config.model:
      config.model[key] = value
