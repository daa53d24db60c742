"""Preparing text data: splits by document, caching, and cache keys."""

import os
import subprocess
import sys

from bigmodels.data import text
from bigmodels.data.text_corpus import text_corpus
from tests.helpers import ROOT


def test_split_is_by_document_and_deterministic():
  paths = [f'library/mod{i}.rst.txt' for i in range(2000)]
  heldout = [p for p in paths if text_corpus.is_heldout(p, 5.0)]
  # A hash of the path alone: the same documents in every process, run and machine.
  assert heldout[:4] == ['library/mod28.rst.txt', 'library/mod58.rst.txt',
                         'library/mod106.rst.txt', 'library/mod116.rst.txt']
  assert 60 < len(heldout) < 140  # about 5%
  assert set(heldout) < set(p for p in paths if text_corpus.is_heldout(p, 10.0))


def test_prepared_rows_are_cached_and_keyed_by_what_changes_them(tiny_config):
  data = tiny_config.data
  first = text.prepare_text_data(data, vocab_size=200)
  for name in ('packed-200-32-eval.npz', 'packed-200-32-train.npz', 'tokenizer-bpe-200.model'):
    assert (first.prepared_dir / name).exists()
  assert not list(first.prepared_dir.glob('.*tmp*'))  # no temporary files left behind
  files = sorted(first.prepared_dir.glob('packed-200-32-*.npz')) + [
      first.prepared_dir / 'tokenizer-bpe-200.model']
  stamps = [p.stat().st_mtime_ns for p in files]
  again = text.prepare_text_data(data, vocab_size=200)
  assert (again.train['tokens'] == first.train['tokens']).all()
  assert [p.stat().st_mtime_ns for p in files] == stamps  # read back, not rebuilt
  data.max_documents = 5
  fewer = text.prepare_text_data(data, vocab_size=200)
  assert len(fewer.train['tokens']) < len(first.train['tokens'])
  assert (fewer.prepared_dir / 'packed-200-docs5-32-train.npz').exists()


def test_eval_batches_have_equal_counts_on_every_process():
  import numpy as np
  from bigmodels.data import loader
  arrays = {'tokens': np.arange(1, 22).reshape(21, 1), 'segment_ids': np.ones((21, 1), int)}
  pad = {'tokens': 0, 'segment_ids': 0}
  per_process = [loader.eval_batches(arrays, 16, 0, pad_row=pad, process_index=i,
                                     process_count=4) for i in range(4)]
  assert [len(b) for b in per_process] == [2, 2, 2, 2]  # global batches of 16: 16 + 5 rows
  assert [int(t) for t in per_process[1][0]['tokens'][:, 0]] == [5, 6, 7, 8]  # its slice
  seen = sorted(int(t) for batches in per_process for b in batches for t in b['tokens'][:, 0]
                if t)
  assert seen == list(range(1, 22))  # every row once; the rest is padding


def test_batches_and_their_random_transforms_are_the_same_on_any_number_of_processes():
  """Global batch i is the same rows with the same masks whether 1, 2 or 4 processes take
  their slices of it (train and eval)."""
  import numpy as np
  from bigmodels.data import loader
  arrays = {'x': np.arange(1, 31).reshape(30, 1)}

  def noisy(batch, rng):
    return {'x': batch['x'] * 1000 + rng.integers(0, 1000, batch['x'].shape)}

  def global_batches(processes, steps=5):
    iters = [iter(loader.train_dataset(arrays, 8, 3, noisy, process_index=p,
                                       process_count=processes, num_threads=1))
             for p in range(processes)]
    return [np.concatenate([next(it)['x'] for it in iters]) for _ in range(steps)]

  one = global_batches(1)
  assert len({tuple(b[:, 0] // 1000) for b in one}) == 5  # shuffled, different batches
  for processes in (2, 4):
    np.testing.assert_array_equal(np.stack(global_batches(processes)), np.stack(one))
  evals = {n: [np.concatenate([loader.eval_batches(arrays, 8, 3, noisy, pad_row={'x': 0},
                                                   process_index=p, process_count=n)[i]['x']
                               for p in range(n)]) for i in range(4)] for n in (1, 2, 4)}
  np.testing.assert_array_equal(np.stack(evals[2]), np.stack(evals[1]))
  np.testing.assert_array_equal(np.stack(evals[4]), np.stack(evals[1]))


def test_preparation_is_reproducible_from_scratch(tiny_config, tmp_path, monkeypatch):
  import numpy as np
  results = []
  for name in ('a', 'b'):
    monkeypatch.setenv('BIGMODELS_CACHE', str(tmp_path / name))
    results.append(text.prepare_text_data(tiny_config.data, vocab_size=200))
  a, b = results
  assert a.tokenizer.model_proto == b.tokenizer.model_proto
  np.testing.assert_array_equal(a.train['tokens'], b.train['tokens'])
  np.testing.assert_array_equal(a.eval['segment_ids'], b.eval['segment_ids'])


PREPARE = '''
import hashlib, sys
import os
import subprocess
import sys

from bigmodels.data import text
from configs import mlm
config = mlm.get_config()
config.data.corpus_dir = sys.argv[1]
data = text.prepare_text_data(config.data, 300)
print(hashlib.sha1(data.tokenizer.model_proto + data.train['tokens'].tobytes()).hexdigest())
'''


def test_processes_preparing_a_fresh_cache_at_once_build_it_once(corpus_dir, tmp_path):
  """A parallel sweep on a fresh cache: both processes get the same data, neither fails."""
  env = {**os.environ, 'BIGMODELS_CACHE': str(tmp_path / 'cache')}
  processes = [subprocess.Popen([sys.executable, '-c', PREPARE, str(corpus_dir)], cwd=ROOT,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
  outputs = [p.communicate(timeout=300) for p in processes]
  assert [p.returncode for p in processes] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
  digests = [out.strip().splitlines()[-1] for out, _ in outputs]
  assert digests[0] == digests[1]
  assert sum('preparing the text corpus' in out for out, _ in outputs) == 1
