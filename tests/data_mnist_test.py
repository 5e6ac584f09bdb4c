"""Tests of the MNIST loader: on small IDX files written here, and on the real ones when present.

The first half needs no data (tests/dataset_files.py writes IDX files in the official format); the second
reads the real files found by tests/real_data.py and is skipped, with the reason, on a fresh clone.
"""

import gzip

import numpy as np
import pytest
import tensorflow as tf

import dataset_files
import real_data
from spiral_tf.data import locations
from spiral_tf.data import mnist


@pytest.fixture(scope='session')
def cache_dir(tmp_path_factory):
  return str(tmp_path_factory.getbasetemp() / 'spiral_data_cache')  # shared by the data tests


def _reference(raw):
  """The loader's conversion done independently: invert, then TensorFlow's bilinear resize to 64×64."""
  paper = 255.0 - raw[..., None].astype(np.float32)
  return tf.image.resize(paper, (64, 64), method='bilinear').numpy()


# --- on IDX files written by the test ---------------------------------------------------------------


@pytest.mark.parametrize('gzipped', [True, False])  # The un-gzipped names work too (docs/datasets.md).
def test_written_idx_files_decode_as_ink_on_white(tmp_path, gzipped):
  written = dataset_files.write_mnist(tmp_path, {'train': 6, 'test': 4}, gzipped=gzipped)
  for split, (raw, labels) in written.items():
    digits = mnist.load(str(tmp_path), split, cache_dir=str(tmp_path / 'cache'))
    assert digits.shape == (len(raw), 64, 64, 1) and digits.dtype == np.uint8
    assert np.abs(digits.astype(np.float64) - _reference(raw)).max() <= 0.5 + 1e-3
    np.testing.assert_array_equal(mnist.load_labels(str(tmp_path), split), labels)
  np.testing.assert_array_equal(
      mnist.read_idx_images(
          str(tmp_path / 'mnist' / ('t10k-images-idx3-ubyte.gz' if gzipped else 't10k-images-idx3-ubyte'))
      ),
      written['test'][0],
  )


def test_limit_cache_and_environment(tmp_path, monkeypatch):
  dataset_files.write_mnist(tmp_path, {'train': 5, 'test': 3})
  cache = str(tmp_path / 'cache')
  everything = mnist.load(str(tmp_path), 'train', cache_dir=cache)
  np.testing.assert_array_equal(mnist.load(str(tmp_path), 'train', cache_dir=cache), everything)
  np.testing.assert_array_equal(mnist.load(str(tmp_path), 'train', limit=2, cache_dir=cache), everything[:2])
  assert not np.array_equal(mnist.load(str(tmp_path), 'test', cache_dir=cache), everything[:3])
  monkeypatch.setenv('SPIRAL_DATA_DIR', str(tmp_path))
  np.testing.assert_array_equal(mnist.load(None, 'train', limit=4, cache_dir=cache), everything[:4])
  # A rewritten file is a new source: the cache does not serve the old images.
  dataset_files.write_mnist(tmp_path, {'train': 5}, seed=1)
  assert not np.array_equal(mnist.load(str(tmp_path), 'train', cache_dir=cache), everything)


def test_missing_files_error(tmp_path):
  with pytest.raises(locations.DatasetNotFoundError) as error:
    mnist.load(str(tmp_path), 'train', cache_dir=str(tmp_path / 'cache'))
  message = str(error.value)
  for part in (
      'train-images-idx3-ubyte.gz',
      't10k-images-idx3-ubyte.gz',
      str(tmp_path / 'mnist'),
      'yann.lecun.com',
      'configs/strokes.cfg',
  ):
    assert part in message


@pytest.mark.parametrize('damage', ['truncate', 'garbage', 'short_payload', 'magic'])
def test_corrupt_file_error_names_the_file(tmp_path, damage):
  dataset_files.write_mnist(tmp_path, {'test': 3})
  path = tmp_path / 'mnist' / 't10k-images-idx3-ubyte.gz'
  with gzip.open(path, 'rb') as f:
    payload = f.read()
  if damage == 'truncate':
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
  elif damage == 'garbage':
    path.write_bytes(b'not a gzip file at all' * 10)
  elif damage == 'short_payload':  # a valid gzip whose IDX payload lost its last image
    path.write_bytes(gzip.compress(payload[:-784], compresslevel=1))
  else:  # the labels' magic number on an image file
    path.write_bytes(gzip.compress(np.array([2049], '>u4').tobytes() + payload[4:], compresslevel=1))
  with pytest.raises(locations.CorruptDataError) as error:
    mnist.load(str(tmp_path), 'test', cache_dir=str(tmp_path / 'cache'))
  assert str(path) in str(error.value)


def test_corrupt_labels_error_names_the_file(tmp_path):
  dataset_files.write_mnist(tmp_path, {'test': 3})
  path = tmp_path / 'mnist' / 't10k-labels-idx1-ubyte.gz'
  with gzip.open(path, 'rb') as f:
    payload = f.read()
  path.write_bytes(gzip.compress(payload[:-1], compresslevel=1))
  with pytest.raises(locations.CorruptDataError, match='promises 3 labels'):
    mnist.load_labels(str(tmp_path), 'test')


def test_bad_split(tmp_path):
  with pytest.raises(ValueError, match="'validation'"):
    mnist.load(str(tmp_path), 'validation')
  with pytest.raises(ValueError, match='validation'):
    mnist.load_labels(str(tmp_path), 'validation')


# --- on the real files (tests/real_data.py) ---------------------------------------------------------


@pytest.fixture(scope='module')
def real_dir():
  return real_data.require('mnist')


@pytest.fixture(scope='module')
def digits(real_dir, cache_dir):
  return {split: mnist.load(str(real_dir), split, cache_dir=cache_dir) for split in ('train', 'test')}


def test_real_counts_shapes_and_range(digits):
  assert digits['train'].shape == (60000, 64, 64, 1)
  assert digits['test'].shape == (10000, 64, 64, 1)
  for images in digits.values():
    assert images.dtype == np.uint8
    assert images.min() == 0 and images.max() == 255


def test_real_ink_on_white_paper(digits):
  test = digits['test']
  # MNIST's border is (almost always) empty: after inversion it is white paper.
  border = np.concatenate([test[:, :4].ravel(), test[:, -4:].ravel()])
  assert (border == 255).mean() > 0.98
  ink = (test < 128).mean(axis=(1, 2, 3))
  assert (ink > 0.01).all() and (ink < 0.5).all()  # every digit has dark ink, mostly paper


def test_real_matches_an_independent_decoding(digits, real_dir):
  with gzip.open(real_dir / 'mnist' / 't10k-images-idx3-ubyte.gz', 'rb') as f:
    raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(10000, 28, 28)
  index = [0, 1, 4321, 9999]
  assert np.abs(digits['test'][index].astype(np.float64) - _reference(raw[index])).max() <= 0.5 + 1e-3


def test_real_split_is_fixed_and_cached(digits, real_dir, cache_dir):
  again = mnist.load(str(real_dir), 'test', cache_dir=cache_dir)
  np.testing.assert_array_equal(again, digits['test'])
  limited = mnist.load(str(real_dir), 'test', limit=10, cache_dir=cache_dir)
  np.testing.assert_array_equal(limited, digits['test'][:10])
  assert not np.array_equal(digits['train'][:10000], digits['test'])


def test_real_data_dir_from_environment(monkeypatch, digits, real_dir, cache_dir):
  monkeypatch.setenv('SPIRAL_DATA_DIR', str(real_dir))
  np.testing.assert_array_equal(mnist.load(None, 'test', limit=5, cache_dir=cache_dir), digits['test'][:5])


def test_real_labels_match_an_independent_decoding(real_dir):
  for split, name, count in (
      ('train', 'train-labels-idx1-ubyte.gz', 60000),
      ('test', 't10k-labels-idx1-ubyte.gz', 10000),
  ):
    with gzip.open(real_dir / 'mnist' / name, 'rb') as f:
      raw = np.frombuffer(f.read(), np.uint8, offset=8)
    labels = mnist.load_labels(str(real_dir), split)
    assert labels.shape == (count,) and labels.max() == 9
    np.testing.assert_array_equal(labels, raw)
  assert mnist.load_labels(str(real_dir), 'test')[0] == 7  # The first test digit is a seven.
