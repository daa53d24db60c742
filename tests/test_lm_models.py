"""The language models as functions: causal invariance, packed documents kept apart in every
model, next-token targets, and the KV-cache decode equal to the no-cache decode."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bigmodels.inference import generate
from bigmodels.models import bert, gpt, lstm, t5
from bigmodels.models.transformer import TransformerConfig, segment_positions
from bigmodels.tasks.causal_lm import next_token_targets

VOCAB = 61
CFG = TransformerConfig(vocab_size=VOCAB, hidden_size=32, num_layers=2, num_heads=4,
                        mlp_dim=64, max_len=64)


def _tokens(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).integers(5, VOCAB, shape), jnp.int32)


def _decoder(tied=True, decode=False):
  return gpt.DecoderLM(TransformerConfig(**{**CFG.__dict__, 'tied_embedding': tied,
                                            'decode': decode}))


@pytest.fixture(scope='module')
def decoder_params():
  return _decoder().init(jax.random.key(1), _tokens((1, 8)))['params']


@pytest.fixture(scope='module')
def seq2seq():
  model = t5.EncoderDecoder(CFG)
  x = _tokens((1, 8))
  return model, model.init(jax.random.key(2), x, jnp.ones_like(x), x, jnp.ones_like(x))['params']


def test_decoder_logits_at_t_ignore_every_later_token(decoder_params):
  tokens = _tokens((2, 16))
  changed = tokens.at[:, 9:].set(_tokens((2, 7), seed=5))
  a = _decoder().apply({'params': decoder_params}, tokens)
  b = _decoder().apply({'params': decoder_params}, changed)
  np.testing.assert_allclose(a[:, :9], b[:, :9], atol=1e-6)
  assert not np.allclose(a[:, 9:], b[:, 9:], atol=1e-3)  # later positions do see the change


def test_decoder_side_of_the_encoder_decoder_is_causal(seq2seq):
  model, params = seq2seq
  inputs, targets = _tokens((2, 12)), _tokens((2, 10), seed=3)
  changed = targets.at[:, 6:].set(_tokens((2, 4), seed=4))
  ones_in, ones_t = jnp.ones_like(inputs), jnp.ones_like(targets)
  a = model.apply({'params': params}, inputs, ones_in, targets, ones_t)
  b = model.apply({'params': params}, inputs, ones_in, changed, ones_t)
  np.testing.assert_allclose(a[:, :6], b[:, :6], atol=1e-6)
  assert not np.allclose(a[:, 6:], b[:, 6:], atol=1e-3)
  # ...while every target position sees the whole (bidirectional) input.
  c = model.apply({'params': params}, inputs.at[:, -1].set(7), ones_in, targets, ones_t)
  assert not np.allclose(a[:, 0], c[:, 0], atol=1e-4)


def _two_documents(length=16, split=7, seed=0):
  tokens = _tokens((1, length), seed)
  segments = jnp.asarray([[1] * split + [2] * (length - split)], jnp.int32)
  other_first = tokens.at[:, :split].set(_tokens((1, split), seed + 9))
  return tokens, other_first, segments, split


def test_packed_documents_never_see_each_other_in_any_model(decoder_params, seq2seq):
  tokens, other, segments, split = _two_documents()

  def second_document_unchanged(fn):
    a, b = fn(tokens), fn(other)
    np.testing.assert_allclose(a[:, split:], b[:, split:], atol=1e-6)
    assert not np.allclose(a[:, :split], b[:, :split], atol=1e-4)  # the first one did change

  second_document_unchanged(lambda t: _decoder().apply({'params': decoder_params}, t, segments))
  lstm_model = lstm.LSTMLM(VOCAB, 16, 2)
  lstm_params = lstm_model.init(jax.random.key(0), tokens, segments)
  second_document_unchanged(lambda t: lstm_model.apply(lstm_params, t, segments))
  encoder = bert.BertMLM(CFG)
  positions = jnp.arange(16)[None]
  enc_params = encoder.init(jax.random.key(0), tokens, segments, positions)
  second_document_unchanged(lambda t: encoder.apply(enc_params, t, segments, positions))
  model, params = seq2seq
  # Encoder-decoder: document 1 of the input changes; document 2's targets must not notice,
  # through the encoder or through cross-attention.
  targets = _tokens((1, 10), seed=6)
  target_segments = jnp.asarray([[1] * 4 + [2] * 6], jnp.int32)
  a = model.apply({'params': params}, tokens, segments, targets, target_segments)
  b = model.apply({'params': params}, other, segments, targets, target_segments)
  np.testing.assert_allclose(a[:, 4:], b[:, 4:], atol=1e-6)
  assert not np.allclose(a[:, :4], b[:, :4], atol=1e-4)


def test_a_packed_document_gives_the_logits_it_gives_alone(decoder_params):
  tokens, _, segments, split = _two_documents()
  packed = _decoder().apply({'params': decoder_params}, tokens, segments)
  alone = _decoder().apply({'params': decoder_params}, tokens[:, split:])
  np.testing.assert_allclose(packed[:, split:], alone, atol=1e-5)  # positions restart at 0
  np.testing.assert_array_equal(segment_positions(segments)[0],
                                list(range(split)) + list(range(16 - split)))


def test_next_token_targets_never_cross_documents_or_predict_padding():
  tokens = jnp.asarray([[2, 10, 11, 3, 2, 20, 21, 0, 0]])
  segments = jnp.asarray([[1, 1, 1, 1, 2, 2, 2, 0, 0]])
  labels, weights = next_token_targets(tokens, segments)
  np.testing.assert_array_equal(labels[0], [10, 11, 3, 2, 20, 21, 0, 0])
  # [SEP] -> next document's [CLS] is across a boundary; padding is never a target.
  np.testing.assert_array_equal(weights[0], [1, 1, 1, 0, 1, 1, 0, 0])


def test_untied_output_layer_has_its_own_weights():
  tokens = _tokens((1, 8))
  tied = _decoder(tied=True).init(jax.random.key(0), tokens)['params']
  untied = _decoder(tied=False).init(jax.random.key(0), tokens)['params']
  assert 'lm_head' not in tied and 'lm_head' in untied
  assert untied['lm_head']['kernel'].value.shape == (32, VOCAB)


PROMPTS = [[2, 7, 8], [2, 9], [2, 11, 12, 13, 14, 15, 16], [2]]


@pytest.mark.parametrize('sampling', [generate.Sampling(0.0),
                                      generate.Sampling(1.0, top_k=5, top_p=0.9)])
def test_cached_decoding_returns_exactly_the_no_cache_tokens(decoder_params, sampling):
  tokens, valid = generate.left_pad(PROMPTS, 0)
  rng = jax.random.key(3)
  cached = generate.decode_with_cache(_decoder(decode=True), decoder_params, tokens, valid, rng,
                                      12, sampling)
  full = generate.decode_without_cache(_decoder(), decoder_params, tokens, valid, rng, 12,
                                       sampling)
  np.testing.assert_array_equal(cached, full)
  assert len({tuple(r) for r in np.asarray(cached).tolist()}) > 1  # not a degenerate decode
  if sampling.temperature == 0:
    # Greedy decoding equals repeated argmax of the plain model over the growing unpadded
    # sequence: batching prompts of different lengths (left padding) changes nothing.
    i = 1
    sequence = list(PROMPTS[i])
    for _ in range(5):
      logits = _decoder().apply({'params': decoder_params}, jnp.asarray([sequence]))
      sequence.append(int(jnp.argmax(logits[0, -1])))
    assert sequence[len(PROMPTS[i]):] == np.asarray(cached[i, :5]).tolist()


def test_cached_seq2seq_decoding_equals_the_no_cache_decode(seq2seq):
  _, params = seq2seq
  inputs = jnp.asarray([[10, 11, 60, 12, 0], [20, 60, 21, 22, 23]], jnp.int32)
  segments = (inputs != 0).astype(jnp.int32)
  for sampling in (generate.Sampling(0.0), generate.Sampling(1.0, top_k=4)):
    args = (params, inputs, segments, jax.random.key(0), 2, 8, sampling)
    cached = generate.seq2seq_decode(t5.EncoderDecoder(
        TransformerConfig(**{**CFG.__dict__, 'decode': True})), *args, use_cache=True)
    full = generate.seq2seq_decode(t5.EncoderDecoder(CFG), *args, use_cache=False)
    np.testing.assert_array_equal(cached, full)


def test_sampling_options_behave():
  logits = jnp.log(jnp.asarray([[0.5, 0.3, 0.15, 0.05]] * 2000))
  keys = jax.random.key(0)
  greedy = generate.sample_logits(logits, keys, generate.Sampling(0.0))
  assert set(np.asarray(greedy).tolist()) == {0}
  top2 = generate.sample_logits(logits, keys, generate.Sampling(1.0, top_k=2))
  assert set(np.asarray(top2).tolist()) == {0, 1}
  nucleus = generate.sample_logits(logits, keys, generate.Sampling(1.0, top_p=0.7))
  assert set(np.asarray(nucleus).tolist()) == {0, 1}  # 0.5 + 0.3 reaches 0.7
  free = np.asarray(generate.sample_logits(logits, keys, generate.Sampling(1.0)))
  np.testing.assert_allclose(np.bincount(free, minlength=4) / 2000, [0.5, 0.3, 0.15, 0.05],
                             atol=0.04)
  other_seed = generate.sample_logits(logits, jax.random.key(1), generate.Sampling(1.0))
  assert not np.array_equal(free, other_seed)
