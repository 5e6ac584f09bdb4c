"""Tests of the package entry points: load_images and real_dataset (spiral_tf/data/__init__.py)."""

import numpy as np
import pytest

import dataset_files
from spiral_tf import data
from spiral_tf.data import images as image_ops
from spiral_tf.data import mnist
from spiral_tf.data import strokes


def test_load_images_converts_channels(tmp_path):
  # Grey MNIST and colour CelebA in their real formats (tests/dataset_files.py), a few images each.
  dataset_files.write_mnist(tmp_path, {'test': 20})
  dataset_files.write_celeba(tmp_path, {'train': 1, 'test': 4})
  data_dir, cache_dir = str(tmp_path), str(tmp_path / 'cache')
  grey = data.load_images('mnist', 'test', data_dir, channels=1, cache_dir=cache_dir, limit=20)
  np.testing.assert_array_equal(grey, mnist.load(data_dir, 'test', limit=20, cache_dir=cache_dir))
  colour = data.load_images('mnist', 'test', data_dir, channels=3, cache_dir=cache_dir, limit=20)
  assert colour.shape == (20, 64, 64, 3) and (colour == grey).all()
  faces = data.load_images('celeba', 'test', data_dir, channels=1, cache_dir=cache_dir, limit=4)
  faces_rgb = data.load_images('celeba', 'test', data_dir, channels=3, cache_dir=cache_dir, limit=4)
  assert faces.shape == (4, 64, 64, 1) and faces_rgb.shape == (4, 64, 64, 3)
  np.testing.assert_array_equal(faces, image_ops.convert_channels(faces_rgb, 1))


def test_strokes_take_painter_options(tmp_path):
  options = {'episode_length': 4, 'num_images': 6, 'seed': 2}
  loaded = data.load_images('strokes', 'train', channels=3, cache_dir=str(tmp_path), **options)
  rendered, _ = strokes.render(6, seed=2, split='train', channels=3, episode_length=4)
  np.testing.assert_array_equal(loaded, rendered)


def test_real_dataset_serves_the_loaded_images(tmp_path):
  options = {'episode_length': 4, 'num_images': 8}
  dataset = data.real_dataset(
      'strokes', 'test', batch_size=8, channels=1, seed=0, cache_dir=str(tmp_path), **options
  )
  batch = next(iter(dataset)).numpy()
  loaded = data.load_images('strokes', 'test', channels=1, cache_dir=str(tmp_path), **options)
  as_bytes = lambda x: sorted(map(bytes, x.reshape(len(x), -1)))
  assert batch.shape == (8, 64, 64, 1)
  assert as_bytes(np.rint(batch * 255).astype(np.uint8)) == as_bytes(loaded)


def test_bad_arguments_are_named(tmp_path):
  with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
    data.load_images('cifar')
  with pytest.raises(ValueError, match='channels must be 1'):
    data.load_images('mnist', channels=2)
  with pytest.raises(ValueError, match='episode_length'):
    data.load_images('mnist', data_dir=str(tmp_path), episode_length=3)  # before any file is read
  with pytest.raises(data.DatasetNotFoundError, match='configs/strokes.cfg'):
    data.real_dataset('omniglot', 'train', 8, data_dir=str(tmp_path))
  assert data.DATASETS == ('strokes', 'mnist', 'omniglot', 'celeba', 'scenes')
