"""Tests of the MNIST loader with the real IDX files in ../shared/data."""
import gzip
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf

from spiral_tf.data import locations
from spiral_tf.data import mnist

DATA_DIR = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data'


@pytest.fixture(scope='session')
def cache_dir(tmp_path_factory):
  return str(tmp_path_factory.getbasetemp() / 'spiral_data_cache')  # shared by the data tests


@pytest.fixture(scope='module')
def digits(cache_dir):
  return {split: mnist.load(str(DATA_DIR), split, cache_dir=cache_dir) for split in ('train', 'test')}


def test_counts_shapes_and_range(digits):
  assert digits['train'].shape == (60000, 64, 64, 1)
  assert digits['test'].shape == (10000, 64, 64, 1)
  for images in digits.values():
    assert images.dtype == np.uint8
    assert images.min() == 0 and images.max() == 255


def test_ink_on_white_paper(digits):
  test = digits['test']
  # MNIST's border is (almost always) empty: after inversion it is white paper.
  border = np.concatenate([test[:, :4].ravel(), test[:, -4:].ravel()])
  assert (border == 255).mean() > 0.98
  ink = (test < 128).mean(axis=(1, 2, 3))
  assert (ink > 0.01).all() and (ink < 0.5).all()  # every digit has dark ink, mostly paper


def test_matches_an_independent_decoding(digits):
  with gzip.open(DATA_DIR / 'mnist' / 't10k-images-idx3-ubyte.gz', 'rb') as f:
    raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(10000, 28, 28)
  index = [0, 1, 4321, 9999]
  reference = tf.image.resize(255.0 - raw[index, :, :, None].astype(np.float32), (64, 64),
                              method='bilinear').numpy()
  assert np.abs(digits['test'][index].astype(np.float64) - reference).max() <= 0.5 + 1e-3


def test_split_is_fixed_and_cached(digits, cache_dir):
  again = mnist.load(str(DATA_DIR), 'test', cache_dir=cache_dir)
  np.testing.assert_array_equal(again, digits['test'])
  limited = mnist.load(str(DATA_DIR), 'test', limit=10, cache_dir=cache_dir)
  np.testing.assert_array_equal(limited, digits['test'][:10])
  assert not np.array_equal(digits['train'][:10000], digits['test'])


def test_data_dir_from_environment(monkeypatch, digits, cache_dir):
  monkeypatch.setenv('SPIRAL_DATA_DIR', str(DATA_DIR))
  np.testing.assert_array_equal(mnist.load(None, 'test', limit=5, cache_dir=cache_dir),
                                digits['test'][:5])


def test_missing_files_error(tmp_path):
  with pytest.raises(locations.DatasetNotFoundError) as error:
    mnist.load(str(tmp_path), 'train', cache_dir=str(tmp_path / 'cache'))
  message = str(error.value)
  for part in ('train-images-idx3-ubyte.gz', 't10k-images-idx3-ubyte.gz', str(tmp_path / 'mnist'),
               'yann.lecun.com', 'configs/strokes.cfg'):
    assert part in message


@pytest.mark.parametrize('damage', ['truncate', 'garbage', 'short_payload'])
def test_corrupt_file_error_names_the_file(tmp_path, damage):
  (tmp_path / 'mnist').mkdir()
  copy = tmp_path / 'mnist' / 't10k-images-idx3-ubyte.gz'
  shutil.copy(DATA_DIR / 'mnist' / 't10k-images-idx3-ubyte.gz', copy)
  data = copy.read_bytes()
  if damage == 'truncate':
    copy.write_bytes(data[:len(data) // 2])
  elif damage == 'garbage':
    copy.write_bytes(b'not a gzip file at all' * 10)
  else:  # a valid gzip whose IDX payload lost its last image
    with gzip.open(DATA_DIR / 'mnist' / 't10k-images-idx3-ubyte.gz', 'rb') as f:
      payload = f.read()
    copy.write_bytes(gzip.compress(payload[:-784], compresslevel=1))
  with pytest.raises(locations.CorruptDataError) as error:
    mnist.load(str(tmp_path), 'test', cache_dir=str(tmp_path / 'cache'))
  assert str(copy) in str(error.value)


def test_bad_split():
  with pytest.raises(ValueError, match="'validation'"):
    mnist.load(str(DATA_DIR), 'validation')


def test_labels_match_an_independent_decoding():
  for split, name, count in (('train', 'train-labels-idx1-ubyte.gz', 60000),
                             ('test', 't10k-labels-idx1-ubyte.gz', 10000)):
    with gzip.open(DATA_DIR / 'mnist' / name, 'rb') as f:
      raw = np.frombuffer(f.read(), np.uint8, offset=8)
    labels = mnist.load_labels(str(DATA_DIR), split)
    assert labels.shape == (count,) and labels.max() == 9
    np.testing.assert_array_equal(labels, raw)
  assert mnist.load_labels(str(DATA_DIR), 'test')[0] == 7  # The first test digit is a seven.
  with pytest.raises(ValueError, match='validation'):
    mnist.load_labels(str(DATA_DIR), 'validation')
