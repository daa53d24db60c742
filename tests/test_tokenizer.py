"""Subword tokenizer training, determinism and caching."""

from bigmodels.data import tokenizer as tokenizer_lib

TEXTS = [
    'The quick brown fox jumps over the lazy dog.\nPacking documents makes training faster.',
    'Masking makes the task harder, and the model learns the words around each mask.',
] * 30


def test_training_is_deterministic_and_has_special_tokens():
  a = tokenizer_lib.train_tokenizer(TEXTS, vocab_size=120)
  b = tokenizer_lib.train_tokenizer(TEXTS, vocab_size=120)
  assert a.model_proto == b.model_proto
  assert [a.id_to_piece(i) for i in range(5)] == ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
  ids = a.encode('The quick fox')
  assert min(ids) >= 5
  assert a.decode(ids) == 'the quick fox'  # uncased


def test_small_corpus_gives_a_smaller_vocab_instead_of_failing():
  tok = tokenizer_lib.train_tokenizer(['tiny text'] * 3, vocab_size=5000)
  assert 5 < tok.vocab_size < 5000


def test_cache_is_written_once_and_reused(tmp_path, monkeypatch):
  path = tmp_path / 'tok.model'
  first = tokenizer_lib.load_or_train(path, TEXTS, vocab_size=120)
  assert path.exists() and not list(tmp_path.glob('.*tmp*'))
  mtime = path.stat().st_mtime_ns

  def fail(*args, **kwargs):
    raise AssertionError('the cached tokenizer must not be retrained')

  monkeypatch.setattr(tokenizer_lib, 'train_tokenizer', fail)
  second = tokenizer_lib.load_or_train(path, [], vocab_size=120)
  assert second.model_proto == first.model_proto
  assert path.stat().st_mtime_ns == mtime
