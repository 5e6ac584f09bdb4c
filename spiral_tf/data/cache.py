"""A disk cache of decoded image arrays, so each dataset is decoded and resized only once.

The cache is a directory of `.npy` files (uint8 [N, 64, 64, C]): the `cache_dir` argument, else
$SPIRAL_CACHE_DIR, else ~/.cache/spiral_tf — outside the repository and outside the (possibly read-only)
data directory. A file's name hashes everything its content depends on: the dataset, the loader's
version, its options and each source file's path, size and modification time, so replacing a source
file or changing a loader invalidates its entries. An unreadable entry is rebuilt; an unwritable cache
directory only costs the caching.

Usage:
  images = cached('mnist-train', {'version': 1, 'sources': fingerprint(paths)}, decode_fn, cache_dir)
  images = cached_split('mnist', 'train', paths, decode_fn, version=1, limit=None)   # a loader's split
"""

import fcntl
import hashlib
import json
import logging
import os

import numpy as np

from spiral_tf import files

CACHE_DIR_ENV = 'SPIRAL_CACHE_DIR'
DEFAULT_CACHE_DIR = os.path.join('~', '.cache', 'spiral_tf')


def resolve_cache_dir(cache_dir=None):
  path = cache_dir or os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR
  return os.path.abspath(os.path.expanduser(str(path)))


def fingerprint(paths):
  """[(path, size, mtime_ns)] of files (or of every file under a directory)."""
  out = []
  for path in paths:
    path = os.path.abspath(path)
    if os.path.isdir(path):  # an extracted folder: its entries' names and sizes
      entries = sorted(os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs)
      digest = hashlib.sha1('\n'.join(f'{e}:{os.path.getsize(e)}' for e in entries).encode()).hexdigest()
      out.append((path, len(entries), digest))
    else:
      stat = os.stat(path)
      out.append((path, stat.st_size, stat.st_mtime_ns))
  return out


def cache_path(name, key, cache_dir=None):
  digest = hashlib.sha1(json.dumps([name, key], sort_keys=True, default=str).encode()).hexdigest()
  return os.path.join(resolve_cache_dir(cache_dir), f'{name}-{digest[:16]}.npy')


def cached_split(dataset, split, sources, decode, *, version, limit=None, cache_dir=None):
  """One split of a file-backed loader: `decode()` on a miss, cached as `<dataset>-<split>`.

  The key every such loader uses: its `version`, the fingerprint of its `sources` and `limit`, so a
  changed source file, a new loader version or another limit decodes again.
  """
  key = {'version': version, 'sources': fingerprint(sources), 'limit': limit}
  return cached(f'{dataset}-{split}', key, decode, cache_dir)


def cached(name, key, build, cache_dir=None):
  """Returns the array cached under (name, key), calling `build()` and storing it on a miss.

  Processes that miss the same entry at once (the actors and the learner of a fresh run) take turns
  through a lock file: one builds, the others then read its result instead of building it again.
  """
  path = cache_path(name, key, cache_dir)
  array = _read(path)
  if array is not None:
    return array
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lock = open(path + '.lock', 'a+b')  # pylint: disable=consider-using-with
  except OSError as e:
    logging.warning(
        'Could not cache %s in %s (%s); it will be decoded again next time.', name, os.path.dirname(path), e
    )
    return build()
  with lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
    array = _read(path)  # built by another process while we waited
    if array is None:
      array = build()
      _write(path, array)
  return array


def _read(path):
  if not os.path.exists(path):
    return None
  try:
    return np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:  # e.g. a file damaged on disk
    logging.warning('Rebuilding unreadable cache entry %s (%s)', path, e)
    return None


def _write(path, array):
  # Write then rename, so readers that do not take the lock never see a partial file.
  try:
    with files.atomic_output(path) as tmp:
      with open(tmp, 'wb') as f:
        np.save(f, array, allow_pickle=False)
  except OSError as e:
    logging.warning('Could not write the cache entry %s (%s)', path, e)
