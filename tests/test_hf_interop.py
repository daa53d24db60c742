"""Hugging Face interop against the real transformers (PyTorch, CPU): randomly initialised
BertForMaskedLM / GPT2LMHeadModel saved with save_pretrained, imported here; logits and losses
equal transformers' (fp32, eval mode); ours -> export -> transformers -> import is the identity.
Needs requirements-hf.txt (skipped without it)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

import jax.numpy as jnp  # noqa: E402
from flax import traverse_util  # noqa: E402

from bigmodels.errors import UserError  # noqa: E402
from bigmodels.hf import checkpoint as hf  # noqa: E402
from bigmodels.models.bert import BertMLM  # noqa: E402
from bigmodels.models.gpt import DecoderLM  # noqa: E402
from bigmodels.models.transformer import TransformerConfig  # noqa: E402
from bigmodels.train.init_from import param_paths  # noqa: E402

BERT_SHAPES = {
    'tiny': dict(vocab_size=1000, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=512, max_position_embeddings=64),
    'base': dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                 num_attention_heads=12, intermediate_size=3072, max_position_embeddings=512),
}
GPT2_SHAPES = dict(vocab_size=1000, n_embd=64, n_layer=3, n_head=4, n_positions=64)


def save_hf(model, folder):
  """A transformers model saved as a checkpoint folder (safetensors)."""
  model.eval()
  model.save_pretrained(folder, safe_serialization=True)
  return folder


def bert_folder(tmp_path, shape='tiny'):
  torch.manual_seed(0)
  config = transformers.BertConfig(**BERT_SHAPES[shape])
  return save_hf(transformers.BertForMaskedLM(config), tmp_path / f'bert_{shape}')


def gpt2_folder(tmp_path):
  torch.manual_seed(0)
  config = transformers.GPT2Config(**GPT2_SHAPES)
  return save_hf(transformers.GPT2LMHeadModel(config), tmp_path / 'gpt2')


def imported(folder):
  """(kind, our model, our parameter tree) of a checkpoint folder."""
  kind, fields = hf.read_architecture(folder)
  cfg = TransformerConfig(**fields)
  params, unused = hf.to_params(kind, hf.read_tensors(folder), cfg.num_heads, cfg.num_layers)
  assert unused == []
  model = BertMLM(cfg) if kind == 'bert' else DecoderLM(cfg)
  return kind, model, traverse_util.unflatten_dict(params, sep='/')


def padded_batch(vocab, lengths, seq=16, seed=0):
  """Token ids [len(lengths), seq] with each row's tail padded (id 0), and its mask."""
  rng = np.random.default_rng(seed)
  ids = rng.integers(5, vocab, (len(lengths), seq))
  mask = (np.arange(seq)[None] < np.array(lengths)[:, None]).astype(np.int64)
  return ids * mask, mask


@pytest.mark.parametrize('shape', ['tiny', 'base'])
def test_bert_logits_and_mlm_loss_equal_transformers(tmp_path, shape):
  folder = bert_folder(tmp_path, shape)
  _, model, params = imported(folder)
  ids, mask = padded_batch(BERT_SHAPES[shape]['vocab_size'], [16, 9, 4])
  positions = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)
  ours = np.asarray(model.apply({'params': params}, jnp.asarray(ids), jnp.asarray(mask),
                                jnp.asarray(positions)))
  reference = transformers.BertForMaskedLM.from_pretrained(folder).eval()
  labels = np.full(ids.shape, -100)
  labels[:, 1:4] = ids[:, 1:4]  # Every row scores 3 tokens (all real ones).
  with torch.no_grad():
    out = reference(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                    labels=torch.tensor(labels))
  theirs = out.logits.numpy()
  real = mask.astype(bool)
  np.testing.assert_allclose(ours[real], theirs[real], atol=1e-5, rtol=0)
  # Our masked-LM loss (the MLM task's: mean cross-entropy over the weighted prediction slots).
  from bigmodels.tasks.text_base import token_loss_sums
  sums = token_loss_sums(jnp.asarray(ours[:, 1:4]), jnp.asarray(ids[:, 1:4]),
                         jnp.ones((3, 3), jnp.float32))
  assert float(sums['loss_sum'] / sums['weight']) == pytest.approx(out.loss.item(), abs=1e-5)


def test_gpt2_logits_and_causal_lm_loss_equal_transformers(tmp_path):
  folder = gpt2_folder(tmp_path)
  _, model, params = imported(folder)
  ids, mask = padded_batch(GPT2_SHAPES['vocab_size'], [16, 11, 3])
  ours = np.asarray(model.apply({'params': params}, jnp.asarray(ids), jnp.asarray(mask)))
  reference = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
  labels = np.where(mask.astype(bool), ids, -100)
  with torch.no_grad():
    out = reference(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                    labels=torch.tensor(labels))
  real = mask.astype(bool)
  np.testing.assert_allclose(ours[real], out.logits.numpy()[real], atol=1e-5, rtol=0)
  from bigmodels.tasks.causal_lm import next_token_targets
  from bigmodels.tasks.text_base import token_loss_sums
  targets, weights = next_token_targets(jnp.asarray(ids), jnp.asarray(mask))
  sums = token_loss_sums(jnp.asarray(ours[:, :-1]), targets, weights)
  assert float(sums['loss_sum'] / sums['weight']) == pytest.approx(out.loss.item(), abs=1e-5)


@pytest.mark.parametrize('kind', ['bert', 'gpt2'])
def test_export_loads_in_transformers_without_warnings_and_round_trips(tmp_path, kind):
  folder = bert_folder(tmp_path) if kind == 'bert' else gpt2_folder(tmp_path)
  _, model, params = imported(folder)
  ours = {k: np.asarray(v) for k, v in param_paths(params).items()}
  model_config = _model_block(hf.read_architecture(folder)[1])
  exported = tmp_path / 'exported'
  hf.write_folder(exported, kind, ours, hf.hf_config(kind, model_config,
                                                     model_config.vocab_size))
  auto = (transformers.AutoModelForMaskedLM if kind == 'bert'
          else transformers.AutoModelForCausalLM)
  loaded, info = auto.from_pretrained(exported, output_loading_info=True)
  assert {k: v for k, v in info.items() if v} == {}  # No missing, unexpected or mismatched.
  again = save_hf(loaded, tmp_path / 'again')
  _, _, back = imported(again)
  back = param_paths(back)
  assert set(back) == set(ours)
  for path, value in ours.items():
    np.testing.assert_array_equal(np.asarray(back[path]), value, err_msg=path)


def _model_block(fields):
  import ml_collections
  return ml_collections.ConfigDict(dict(fields, dropout_rate=0.0))


def test_unsupported_checkpoints_fail_with_one_line_errors(tmp_path):
  torch.manual_seed(0)
  roberta = save_hf(transformers.RobertaForMaskedLM(transformers.RobertaConfig(
      vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
      intermediate_size=64)), tmp_path / 'roberta')
  with pytest.raises(UserError, match="model_type='roberta' is not supported"):
    hf.read_architecture(roberta)
  folder = bert_folder(tmp_path)
  (folder / 'model.safetensors').rename(folder / 'pytorch_model.bin')
  with pytest.raises(UserError, match='pickle'):
    hf.read_tensors(folder)
  with pytest.raises(UserError, match='no config.json'):
    hf.read_architecture(tmp_path)


# ----------------------------------------------------------------------------------------------
# Training from an imported checkpoint, with the checkpoint's own tokenizer.

def bert_with_tokenizer(tmp_path):
  """A tiny BertForMaskedLM whose WordPiece vocabulary covers the test corpus and glosses."""
  from tests.helpers import WORDS
  folder = tmp_path / 'bert_tok'
  folder.mkdir()
  vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', '.', ','] + sorted(set(WORDS))
  (tmp_path / 'vocab.txt').write_text('\n'.join(vocab) + '\n')
  transformers.BertTokenizerFast(vocab_file=str(tmp_path / 'vocab.txt')).save_pretrained(folder)
  torch.manual_seed(0)
  config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, intermediate_size=64,
                                   max_position_embeddings=64)
  return save_hf(transformers.BertForMaskedLM(config), folder)


def gpt2_with_tokenizer(tmp_path):
  """A tiny GPT2LMHeadModel with a byte-level BPE tokenizer trained on the test words."""
  from tokenizers import ByteLevelBPETokenizer
  from tests.helpers import WORDS
  folder = tmp_path / 'gpt2_tok'
  folder.mkdir()
  bpe = ByteLevelBPETokenizer()
  bpe.train_from_iterator([' '.join(WORDS)] * 20, vocab_size=300,
                          special_tokens=['<|endoftext|>'])
  bpe.save_model(str(tmp_path))
  transformers.GPT2TokenizerFast(vocab_file=str(tmp_path / 'vocab.json'),
                                 merges_file=str(tmp_path / 'merges.txt')).save_pretrained(folder)
  torch.manual_seed(0)
  config = transformers.GPT2Config(vocab_size=300, n_embd=32, n_layer=2, n_head=2,
                                   n_positions=64)
  return save_hf(transformers.GPT2LMHeadModel(config), folder)


def test_fine_tuning_from_hf_bert_trains_checkpoints_and_resumes(tmp_path, corpus_dir, capfd):
  from tests.helpers import text_family_overrides, write_wordnet
  from tests.run_tiny import train_and_report
  folder = bert_with_tokenizer(tmp_path)
  overrides = text_family_overrides(corpus_dir, 'causal_lm')
  del overrides['data.corpus_dir']
  overrides.update({'data.wordnet_dir': str(write_wordnet(tmp_path / 'wordnet')),
                    'data.seq_len': 16, 'data.heldout_percent': 25.0,
                    'init_from': f'hf:{folder}'})
  full = train_and_report(str(tmp_path / 'full'), 'classify_text', overrides)
  train_and_report(str(tmp_path / 'resumed'), 'classify_text', overrides, stop_at=3)
  resumed = train_and_report(str(tmp_path / 'resumed'), 'classify_text', overrides)
  assert len(full['losses']) == 6 and np.isfinite(full['losses']).all()
  assert full['losses'] == resumed['losses'] and full['eval'] == resumed['eval']
  log = capfd.readouterr().out
  assert f'init_from hf:{folder}' in log and 'resuming from checkpoint at step 3' in log
  assert 'data: ' in log and 'Hugging Face bert' in log  # The checkpoint's tokenizer.
  assert (tmp_path / 'full' / 'hf_tokenizer' / 'vocab.txt').is_file()
  # The encoder came from the checkpoint: at step 0 the embeddings equal its tensors.
  import json
  config = json.loads((tmp_path / 'full' / 'config.json').read_text())
  assert config['model']['num_layers'] == 2 and config['model']['layer_norm_eps'] == 1e-12
  assert config['model']['pre_ln'] is False and config['model']['gelu_approximate'] is False


@pytest.mark.parametrize('kind', ['bert', 'gpt2'])
def test_continued_pretraining_from_hf_starts_from_its_weights(tmp_path, corpus_dir, kind,
                                                              capfd):
  """mlm from BERT, causal_lm from GPT-2, on our corpus with the checkpoint's tokenizer: at
  learning rate 0 the trained parameters are exactly the checkpoint's, every one loaded."""
  from tests.helpers import text_family_overrides
  from tests.run_tiny import train_and_report
  folder = bert_with_tokenizer(tmp_path) if kind == 'bert' else gpt2_with_tokenizer(tmp_path)
  name = 'mlm' if kind == 'bert' else 'causal_lm'
  overrides = text_family_overrides(corpus_dir, 'causal_lm')
  overrides.update({'init_from': f'hf:{folder}', 'optimizer.learning_rate': 0.0})
  report = train_and_report(str(tmp_path / 'run'), name, overrides)
  assert len(report['losses']) == 6 and np.isfinite(report['losses']).all()
  log = capfd.readouterr().out
  assert f'init_from hf:{folder}' in log and ' 0 fresh, 0 ignored' in log
  assert (tmp_path / 'run' / 'hf_tokenizer').is_dir()
  kind_, fields = hf.read_architecture(folder)
  expected, _ = hf.to_params(kind_, hf.read_tensors(folder), fields['num_heads'],
                             fields['num_layers'])
  final = dict(np.load(tmp_path / 'run' / 'final.npz'))
  final = {k[len('params/'):]: v for k, v in final.items() if k.startswith('params/')}
  assert set(final) == set(expected)
  for path, value in expected.items():
    np.testing.assert_array_equal(final[path], value, err_msg=path)
  # predict works on such a run with the checkpoint's tokenizer (mask fill / generation).
  from tests.helpers import run_module
  args = (['--text=the model [MASK] data'] if kind == 'bert' else
          ['--prompt=the model reads', '--max_new_tokens=4', '--temperature=0'])
  result = run_module('experiments.predict', [f'--workdir={tmp_path / "run"}', *args])
  assert result.returncode == 0, result.stderr[-2000:]


# ----------------------------------------------------------------------------------------------
# experiments.export on runs trained here (our SentencePiece tokenizer).

@pytest.mark.parametrize('name', ['mlm', 'causal_lm'])
def test_export_of_a_run_loads_in_transformers_with_equal_logits_and_tokens(
    tmp_path, corpus_dir, name):
  from tests.helpers import run_module, text_family_overrides
  from tests.run_tiny import train_and_report
  overrides = text_family_overrides(corpus_dir, 'causal_lm')
  overrides.update({'model.pre_ln': name != 'mlm', 'model.dropout_rate': 0.0})
  workdir = tmp_path / 'run'
  train_and_report(str(workdir), name, overrides)
  out = tmp_path / 'exported'
  result = run_module('experiments.export', [f'--workdir={workdir}', f'--out={out}'])
  assert result.returncode == 0, result.stderr[-2000:]
  auto = transformers.AutoModelForMaskedLM if name == 'mlm' else transformers.AutoModelForCausalLM
  theirs, info = auto.from_pretrained(out, output_loading_info=True)
  assert {k: v for k, v in info.items() if v} == {}
  # Tokens: transformers' tokenizer from the folder encodes the corpus as our tokenizer does.
  from bigmodels.inference.run import load_run
  run = load_run(workdir)
  hf_tok = transformers.AutoTokenizer.from_pretrained(out)
  lines = [l for f in sorted(corpus_dir.iterdir()) for l in f.read_text().splitlines()
           if l.strip()][:40]
  for line in lines:
    expected = run.tokenizer.encode(line)
    if name == 'mlm':
      expected = [2] + expected + [3]  # [CLS] ... [SEP]
    assert hf_tok(line)['input_ids'] == expected, line
  # Logits of the exported model equal our run's on the same ids.
  ids = np.array([hf_tok(lines[0])['input_ids'][:24], hf_tok(lines[1])['input_ids'][:24]])
  ones = np.ones_like(ids)
  model = run.task.build_model()
  variables = {'params': run.params}
  if name == 'mlm':
    positions = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)
    ours = model.apply(variables, jnp.asarray(ids), jnp.asarray(ones), jnp.asarray(positions))
  else:
    ours = model.apply(variables, jnp.asarray(ids), jnp.asarray(ones))
  with torch.no_grad():
    reference = theirs.eval()(input_ids=torch.tensor(ids)).logits.numpy()
  np.testing.assert_allclose(np.asarray(ours), reference, atol=1e-5, rtol=0)
  # A second export into the same folder is refused; the first is untouched.
  before = (out / 'model.safetensors').read_bytes()
  again = run_module('experiments.export', [f'--workdir={workdir}', f'--out={out}'])
  assert again.returncode != 0 and 'not empty' in again.stderr
  assert (out / 'model.safetensors').read_bytes() == before


def test_export_refuses_models_transformers_cannot_express(tmp_path, corpus_dir):
  from tests.helpers import run_module, text_family_overrides
  from tests.run_tiny import train_and_report
  workdir = tmp_path / 'preln'
  train_and_report(str(workdir), 'mlm', text_family_overrides(corpus_dir, 'causal_lm'))
  result = run_module('experiments.export', [f'--workdir={workdir}', f'--out={tmp_path / "o"}'])
  assert result.returncode != 0 and 'model.pre_ln=False' in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / 'o').exists()


def test_scanned_layers_load_the_same_checkpoint(tmp_path):
  import dataclasses
  folder = bert_folder(tmp_path)
  _, model, params = imported(folder)
  scanned = BertMLM(dataclasses.replace(model.config, scan_layers=True))
  ids, mask = padded_batch(BERT_SHAPES['tiny']['vocab_size'], [16, 7])
  positions = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)
  args = (jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(positions))
  import jax
  import flax.linen as nn
  target = param_paths(nn.unbox(
      jax.eval_shape(lambda: scanned.init(jax.random.key(0), *args))['params']))
  stacked = hf.stack_layers({k: np.asarray(v) for k, v in param_paths(params).items()},
                            set(target))
  assert set(stacked) == set(target)
  out = scanned.apply({'params': traverse_util.unflatten_dict(stacked, sep='/')}, *args)
  expected = model.apply({'params': params}, *args)
  np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=1e-5, rtol=0)
  assert hf.unstack_layers(stacked).keys() == param_paths(params).keys()


def test_wrong_checkpoint_for_the_task_and_missing_tokenizer_are_one_line_errors(tmp_path):
  from tests.helpers import run_module
  folder = gpt2_folder(tmp_path)  # No tokenizer files saved with it.
  result = run_module('experiments.main', ['--config=configs/mlm.py:runlocal=1',
                                           f'--workdir={tmp_path / "a"}',
                                           f'--config.init_from=hf:{folder}'])
  assert result.returncode != 0 and 'holds a gpt2 checkpoint' in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1
  result = run_module('experiments.main', ['--config=configs/causal_lm.py:runlocal=1',
                                           f'--workdir={tmp_path / "b"}',
                                           f'--config.init_from=hf:{folder}'])
  assert result.returncode != 0 and 'has no tokenizer' in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1
  assert not (tmp_path / 'b' / 'checkpoints').exists()


def test_peer_comparison_times_every_implementation_side_by_side():
  from tests.helpers import run_module
  result = run_module('experiments.compare_peers', [
      '--shapes=bert-test,gpt2-test', '--windows=2', '--steps_per_window=1', '--warmup=1'])
  assert result.returncode == 0, result.stderr[-2000:]
  import json
  rows = [json.loads(l) for l in result.stdout.splitlines() if l.startswith('{')]
  assert [(r['shape'], r['implementation']) for r in rows] == [
      (s, i) for s in ('bert-test', 'gpt2-test') for i in ('ours', 'hf_flax', 'pytorch')]
  assert all(r['tokens_per_s'] > 0 and len(r['windows_ms']) == 2 for r in rows)
  assert '| ours | ' in result.stdout and 'ours speed-up' in result.stdout
  flops = {(r['shape'], r['implementation']): r['gflop_per_step'] for r in rows}
  assert all(f > 0 for f in flops.values())
  for s in ('bert-test', 'gpt2-test'):  # PyTorch counted as its Flax twin.
    assert flops[s, 'pytorch'] == flops[s, 'hf_flax']
  # Ours projects only the masked positions onto the vocabulary; Hugging Face's every one.
  assert flops['bert-test', 'ours'] < 0.8 * flops['bert-test', 'hf_flax']
