"""Where datasets live, and the two errors every loader raises: files missing, or a file corrupt.

The data directory is, in order: the `data_dir` argument (the `--data_dir` flag), else $SPIRAL_DATA_DIR,
else ~/spiral_data. Each dataset has its own sub-directory (`<data_dir>/mnist`, `<data_dir>/omniglot`,
`<data_dir>/celeba`, `<data_dir>/scenes`); docs/datasets.md says what goes where and how to get it.

Usage:
  root, origin = resolve_data_dir(data_dir)            # origin says which rule chose it
  raise missing_files('mnist', root, origin, expected=[...], missing=[...], how_to_get='...')
  raise CorruptDataError(path, 'truncated gzip stream')
  check_split('MNIST', split, SPLITS)                  # ValueError naming the splits there are
"""

import os

DATA_DIR_ENV = 'SPIRAL_DATA_DIR'
DEFAULT_DATA_DIR = os.path.join('~', 'spiral_data')
NO_DOWNLOAD_HINT = (
    'The embedded default needs no download: configs/strokes.cfg (--dataset=strokes) '
    'renders its procedural stroke targets with the painter.'
)


class DatasetNotFoundError(FileNotFoundError):
  """A dataset's files are not where they are expected; the message says where and how to get them."""


class CorruptDataError(ValueError):
  """A dataset file exists but cannot be read (truncated, wrong format); `path` names it."""

  def __init__(self, path, reason):
    self.path = str(path)
    super().__init__(
        f'{self.path}: {reason}. The file looks corrupt or truncated; replace it with a '
        f'fresh copy (see docs/datasets.md).'
    )


def check_split(dataset, split, splits):
  """Raises ValueError unless `split` is one of `splits` (a loader's names or its split table)."""
  if split not in splits:
    raise ValueError(f'{dataset} split must be one of {tuple(splits)}, got {split!r}')


def resolve_data_dir(data_dir=None):
  """Returns (absolute data directory, a phrase saying where it came from)."""
  if data_dir:
    path, origin = data_dir, '--data_dir'
  elif os.environ.get(DATA_DIR_ENV):
    path, origin = os.environ[DATA_DIR_ENV], f'${DATA_DIR_ENV}'
  else:
    path, origin = DEFAULT_DATA_DIR, f'the default (no --data_dir, no ${DATA_DIR_ENV})'
  return os.path.abspath(os.path.expanduser(str(path))), origin


def missing_files(dataset, directory, origin, expected, how_to_get, missing=None):
  """The one error for absent data: which files were expected where, and how to obtain them."""
  lines = [
      f'{dataset} not found: expected {", ".join(expected)} in {directory} '
      f'(data directory from {origin}; pass --data_dir or set ${DATA_DIR_ENV}).'
  ]
  if missing:
    lines.append(f'Missing: {", ".join(missing)}.')
  lines.append(f'How to get it: {how_to_get}')
  lines.append(NO_DOWNLOAD_HINT)
  return DatasetNotFoundError(' '.join(lines))
