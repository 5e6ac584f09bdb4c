"""Tests of spiral_tf/data/cache.py: hits, invalidation, corrupt entries, unwritable directories."""

import os

import numpy as np

from spiral_tf.data import cache


def _builder(value, calls):
  def build():
    calls.append(value)
    return np.full((2, 3), value, np.uint8)

  return build


def test_second_call_reads_the_cache(tmp_path):
  calls = []
  first = cache.cached('x', {'k': 1}, _builder(7, calls), str(tmp_path))
  second = cache.cached('x', {'k': 1}, _builder(9, calls), str(tmp_path))
  assert calls == [7]
  np.testing.assert_array_equal(second, first)
  assert second.dtype == np.uint8 and second.shape == (2, 3)
  assert [f for f in os.listdir(tmp_path) if '.tmp' in f] == []  # No temporary file left (files.py).


def test_key_and_source_changes_rebuild(tmp_path):
  source = tmp_path / 'source.bin'
  source.write_bytes(b'abc')
  calls = []
  cache.cached('x', {'src': cache.fingerprint([source])}, _builder(1, calls), str(tmp_path))
  cache.cached('x', {'src': cache.fingerprint([source]), 'limit': 3}, _builder(2, calls), str(tmp_path))
  source.write_bytes(b'abcd')  # another size: a new file
  out = cache.cached('x', {'src': cache.fingerprint([source])}, _builder(3, calls), str(tmp_path))
  assert calls == [1, 2, 3] and out[0, 0] == 3


def test_directory_fingerprint_follows_its_files(tmp_path):
  (tmp_path / 'd').mkdir()
  (tmp_path / 'd' / 'a.png').write_bytes(b'1')
  before = cache.fingerprint([tmp_path / 'd'])
  (tmp_path / 'd' / 'b.png').write_bytes(b'2')
  assert cache.fingerprint([tmp_path / 'd']) != before


def test_corrupt_entry_is_rebuilt(tmp_path):
  calls = []
  cache.cached('x', {}, _builder(1, calls), str(tmp_path))
  path = cache.cache_path('x', {}, str(tmp_path))
  with open(path, 'r+b') as f:
    f.truncate(10)
  out = cache.cached('x', {}, _builder(2, calls), str(tmp_path))
  assert calls == [1, 2] and out[0, 0] == 2
  np.testing.assert_array_equal(np.load(path), out)


def test_unwritable_cache_still_returns_the_data(tmp_path):
  blocker = tmp_path / 'file'
  blocker.write_text('not a directory')
  calls = []
  out = cache.cached('x', {}, _builder(4, calls), str(blocker / 'cache'))
  assert calls == [4] and out[0, 0] == 4


def test_cache_dir_precedence(monkeypatch, tmp_path):
  monkeypatch.setenv('SPIRAL_CACHE_DIR', str(tmp_path / 'env'))
  assert cache.resolve_cache_dir(str(tmp_path / 'arg')) == str(tmp_path / 'arg')
  assert cache.resolve_cache_dir(None) == str(tmp_path / 'env')
  monkeypatch.delenv('SPIRAL_CACHE_DIR')
  monkeypatch.setenv('HOME', str(tmp_path))
  assert cache.resolve_cache_dir(None) == str(tmp_path / '.cache' / 'spiral_tf')


def _build_in_another_process(cache_dir, log):
  # Runs in a 'spawn' child: builds slowly, appending to `log` so the test sees how many builds ran.
  import time  # pylint: disable=g-import-not-at-top

  def build():
    with open(log, 'a') as f:
      f.write('built\n')
    time.sleep(0.5)
    return np.full((4,), 5, np.uint8)

  assert cache.cached('shared', {'k': 0}, build, cache_dir)[0] == 5


def test_concurrent_processes_build_once(tmp_path):
  import multiprocessing  # pylint: disable=g-import-not-at-top

  context = multiprocessing.get_context('spawn')  # never fork after TensorFlow may be imported
  log = tmp_path / 'log'
  workers = [
      context.Process(target=_build_in_another_process, args=(str(tmp_path / 'c'), str(log)))
      for _ in range(3)
  ]
  for worker in workers:
    worker.start()
  for worker in workers:
    worker.join(60)
  assert [w.exitcode for w in workers] == [0, 0, 0]
  assert log.read_text() == 'built\n'


def test_cached_split_is_the_loaders_key_so_existing_entries_stay_valid(tmp_path):
  source = tmp_path / 'source.bin'
  source.write_bytes(b'abc')
  calls = []
  key = {'version': 3, 'sources': cache.fingerprint([source]), 'limit': 5}
  cache.cached('mnist-test', key, _builder(1, calls), str(tmp_path))  # As the loaders used to spell it.
  images = cache.cached_split(
      'mnist', 'test', [source], _builder(2, calls), version=3, limit=5, cache_dir=str(tmp_path)
  )
  assert calls == [1] and images[0, 0] == 1
  cache.cached_split(
      'mnist', 'test', [source], _builder(3, calls), version=3, limit=6, cache_dir=str(tmp_path)
  )
  assert calls == [1, 3]  # Another limit is another entry.
