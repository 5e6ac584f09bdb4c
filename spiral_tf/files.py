"""Writing files so that no reader ever sees half of one: the one atomic-write helper of spiral_tf.

A file is written under a temporary name in its own directory and renamed onto its path only when the
writing succeeded (a rename within a directory is atomic on POSIX); on any error, KeyboardInterrupt
included, the temporary file is removed and the old file, if any, is left as it was. Used for images
(inference/image_io.py), the dataset cache (data/cache.py), the scenes' shards (data/scenes_dataset.py), a
run's config.json (components.py) and status.json (distributed/summaries.py), a population's state
(population/population.py) and the bind-address shim (distributed/listen.py).
No TensorFlow, no other spiral_tf module.

Usage:
  with atomic_output('out/painting.png') as tmp:   # '.painting.<random>.tmp.png' beside it
    image.save(tmp)
  write_json('out/results.json', {'mse': 0.05})    # the same, for a JSON value
"""

import contextlib
import json
import os
import tempfile


@contextlib.contextmanager
def atomic_output(path):
  """Yields a temporary path next to `path`; renames it onto `path` only if the block succeeds."""
  path = os.path.abspath(os.fspath(path))
  directory = os.path.dirname(path)
  os.makedirs(directory, exist_ok=True)
  base, ext = os.path.splitext(os.path.basename(path))
  fd, tmp = tempfile.mkstemp(prefix=f'.{base}.', suffix=f'.tmp{ext}', dir=directory)
  os.close(fd)
  os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions.
  try:
    yield tmp
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise


def write_json(path, value) -> str:
  """`value` as indented JSON in `path`, written atomically; returns the path."""
  with atomic_output(path) as tmp:
    with open(tmp, 'w', encoding='utf-8') as f:
      f.write(json.dumps(value, indent=1) + '\n')
  return os.fspath(path)


def _umask():
  mask = os.umask(0)
  os.umask(mask)
  return mask
