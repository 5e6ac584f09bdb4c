"""Tests of the scenes loader on a tiny set generated with the real MuJoCo renderer."""

import numpy as np
import pytest

from spiral_tf.data import images as image_ops
from spiral_tf.data import load_images
from spiral_tf.data import locations
from spiral_tf.data import scenes
from spiral_tf.data import scenes_dataset


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp('scenes_data')
  scenes_dataset.generate(str(root / 'scenes'), num_scenes=12, seed=1, shard_size=5, test_fraction=0.5)
  return root


def test_loads_the_generated_splits(data_dir, tmp_path):
  for split in scenes.SPLITS:
    images = scenes.load(str(data_dir), split, cache_dir=str(tmp_path))
    expected, _ = scenes_dataset.load(str(data_dir / 'scenes'), split)
    assert images.dtype == np.uint8 and images.shape[1:] == (64, 64, 3) and len(images) > 0
    np.testing.assert_array_equal(images, expected)
  grey = load_images('scenes', 'test', str(data_dir), channels=1, cache_dir=str(tmp_path))
  np.testing.assert_array_equal(grey, image_ops.convert_channels(expected, 1))
  assert len(scenes.load(str(data_dir), 'train', limit=2, cache_dir=str(tmp_path))) == 2


def test_missing_and_corrupt(data_dir, tmp_path):
  with pytest.raises(locations.DatasetNotFoundError) as error:
    scenes.load(str(tmp_path), 'train')
  assert 'generate_scenes.py' in str(error.value) and 'configs/strokes.cfg' in str(error.value)
  broken = tmp_path / 'broken' / 'scenes'
  broken.mkdir(parents=True)
  for path in (data_dir / 'scenes').iterdir():
    content = path.read_bytes()
    (broken / path.name).write_bytes(content[: len(content) // 2] if path.suffix == '.npz' else content)
  with pytest.raises(locations.CorruptDataError, match=str(broken)):
    scenes.load(str(tmp_path / 'broken'), 'train', cache_dir=str(tmp_path / 'cache'))
