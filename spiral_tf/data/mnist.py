"""MNIST digits as 64×64 grey ink on white paper.

Files: `<data_dir>/mnist/train-images-idx3-ubyte.gz` and `t10k-images-idx3-ubyte.gz` (the official
IDX files; the un-gzipped names also work). Splits: the official ones, train 60,000 / test 10,000.
Conversion: inverted (MNIST stores ink as 255 on a black background; the painter draws dark ink on
white paper), then bilinear upsampling 28 -> 64 (images.py).

Labels (`load_labels`, for scoring generated digits with a classifier): `train-labels-idx1-ubyte.gz` and
`t10k-labels-idx1-ubyte.gz` beside the images.

Usage:
  digits = load(data_dir, 'train')        # uint8 [60000, 64, 64, 1], 255 = paper
  labels = load_labels(data_dir, 'train') # uint8 [60000], 0–9
"""

import gzip
import os
import zlib

import numpy as np

from spiral_tf.data import cache
from spiral_tf.data import images
from spiral_tf.data import locations

SPLITS = {'train': 'train-images-idx3-ubyte', 'test': 't10k-images-idx3-ubyte'}
COUNTS = {'train': 60000, 'test': 10000}
HOW_TO_GET = (
    'download the four IDX files (train/t10k images and labels, *.gz) from '
    'http://yann.lecun.com/exdb/mnist/ or a mirror such as '
    'https://storage.googleapis.com/cvdf-datasets/mnist/ into <data_dir>/mnist/.'
)
_VERSION = 1
_IDX_IMAGES_MAGIC = 2051
_IDX_LABELS_MAGIC = 2049
LABEL_FILES = {'train': 'train-labels-idx1-ubyte', 'test': 't10k-labels-idx1-ubyte'}


def load(data_dir=None, split='train', limit=None, cache_dir=None):
  """uint8 [N, 64, 64, 1] digits of `split`, ink on white (the first `limit` if given)."""
  locations.check_split('MNIST', split, SPLITS)
  path = _find(data_dir, split)
  return cache.cached_split(
      'mnist', split, [path], lambda: _decode(path, limit), version=_VERSION, limit=limit, cache_dir=cache_dir
  )


def load_labels(data_dir=None, split='train'):
  """uint8 [N] digit classes of `split`, in the order of `load`."""
  locations.check_split('MNIST', split, LABEL_FILES)
  path = _find(data_dir, split, LABEL_FILES)
  data = _read(path)
  if len(data) < 8:
    raise locations.CorruptDataError(path, f'only {len(data)} bytes, shorter than the IDX header')
  magic, count = np.frombuffer(data, '>u4', count=2)
  if magic != _IDX_LABELS_MAGIC:
    raise locations.CorruptDataError(path, f'IDX magic number {magic}, expected {_IDX_LABELS_MAGIC}')
  if len(data) != 8 + int(count):
    raise locations.CorruptDataError(path, f'header promises {count} labels, the file has {len(data) - 8}')
  return np.frombuffer(data, np.uint8, offset=8)


def _find(data_dir, split, files=SPLITS):
  root, origin = locations.resolve_data_dir(data_dir)
  directory = os.path.join(root, 'mnist')
  name = files[split]
  for candidate in (name + '.gz', name):
    path = os.path.join(directory, candidate)
    if os.path.isfile(path):
      return path
  expected = [files[s] + '.gz' for s in files]
  missing = [f for f in expected if not os.path.isfile(os.path.join(directory, f))]
  raise locations.missing_files('MNIST', directory, origin, expected, HOW_TO_GET, missing)


def read_idx_images(path):
  """uint8 [N, rows, cols] from an IDX3 image file (gzipped or not); CorruptDataError names it."""
  data = _read(path)
  if len(data) < 16:
    raise locations.CorruptDataError(path, f'only {len(data)} bytes, shorter than the IDX header')
  magic, count, rows, cols = np.frombuffer(data, '>u4', count=4)
  if magic != _IDX_IMAGES_MAGIC:
    raise locations.CorruptDataError(path, f'IDX magic number {magic}, expected {_IDX_IMAGES_MAGIC}')
  if len(data) != 16 + int(count) * rows * cols:
    raise locations.CorruptDataError(
        path,
        f'header promises {count} images of {rows}×{cols} ({16 + count * rows * cols} bytes), '
        f'the file has {len(data)} bytes',
    )
  return np.frombuffer(data, np.uint8, offset=16).reshape(count, rows, cols)


def _read(path):
  opener = gzip.open if path.endswith('.gz') else open
  try:
    with opener(path, 'rb') as f:
      return f.read()
  except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; truncation an EOFError
    raise locations.CorruptDataError(path, f'cannot decompress ({e})') from None


def _decode(path, limit):
  digits = read_idx_images(path)[:limit]
  paper = 255 - digits[..., None]  # ink on white
  return images.resize(paper, 64, 64, 'bilinear')
