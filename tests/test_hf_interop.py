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
