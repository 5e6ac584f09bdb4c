"""Tests of the Omniglot loader: on small zips of one-bit PNGs written here, and on the real zips when
present.

The first half needs no data (tests/dataset_files.py writes zips laid out as Lake et al.'s); the second
reads the real zips found by tests/real_data.py and is skipped, with the reason, on a fresh clone.
"""

import io
import zipfile

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

import dataset_files
import real_data
from spiral_tf.data import locations
from spiral_tf.data import omniglot


@pytest.fixture(scope='session')
def cache_dir(tmp_path_factory):
  return str(tmp_path_factory.getbasetemp() / 'spiral_data_cache')  # shared by the data tests


def _reference(raw):
  """The loader's conversion done independently: one-bit paper → 255, TensorFlow's area resize to 64×64."""
  paper = np.where(raw, 255.0, 0.0).astype(np.float32)[..., None]
  return tf.image.resize(paper, (64, 64), method='area').numpy()


# --- on zips written by the test --------------------------------------------------------------------


def test_written_zips_decode_as_ink_on_white(tmp_path):
  written = dataset_files.write_omniglot(tmp_path, {'train': 5, 'test': 3})
  for split, raw in written.items():
    characters = omniglot.load(str(tmp_path), split, cache_dir=str(tmp_path / 'cache'))
    assert characters.shape == (len(raw), 64, 64, 1) and characters.dtype == np.uint8
    assert np.abs(characters.astype(np.float64) - _reference(raw)).max() <= 0.5 + 1e-3
  with zipfile.ZipFile(tmp_path / 'omniglot' / 'images_background.zip') as archive:
    first = sorted(archive.namelist())[0]
    assert np.array(Image.open(io.BytesIO(archive.read(first)))).dtype == bool  # one-bit, as the real PNGs


def test_extracted_folders_give_the_same_images(tmp_path):
  zipped = dataset_files.write_omniglot(tmp_path / 'zips', {'train': 4, 'test': 2}, seed=3)
  extracted = dataset_files.write_omniglot(
      tmp_path / 'folders', {'train': 4, 'test': 2}, seed=3, extracted=True
  )
  for split in zipped:
    np.testing.assert_array_equal(zipped[split], extracted[split])
    np.testing.assert_array_equal(
        omniglot.load(str(tmp_path / 'folders'), split, cache_dir=str(tmp_path / 'cache')),
        omniglot.load(str(tmp_path / 'zips'), split, cache_dir=str(tmp_path / 'cache')),
    )


def test_limit_and_cache(tmp_path):
  dataset_files.write_omniglot(tmp_path, {'train': 4, 'test': 4})
  cache = str(tmp_path / 'cache')
  train = omniglot.load(str(tmp_path), 'train', cache_dir=cache)
  np.testing.assert_array_equal(omniglot.load(str(tmp_path), 'train', cache_dir=cache), train)
  np.testing.assert_array_equal(omniglot.load(str(tmp_path), 'train', limit=2, cache_dir=cache), train[:2])
  assert not np.array_equal(omniglot.load(str(tmp_path), 'test', cache_dir=cache), train)


def test_missing_files_error(tmp_path):
  (tmp_path / 'omniglot').mkdir()
  with pytest.raises(locations.DatasetNotFoundError) as error:
    omniglot.load(str(tmp_path), 'test')
  message = str(error.value)
  for part in (
      'images_background.zip',
      'images_evaluation.zip',
      str(tmp_path / 'omniglot'),
      'brendenlake/omniglot',
      'configs/strokes.cfg',
  ):
    assert part in message


def test_truncated_zip_error_names_the_file(tmp_path):
  dataset_files.write_omniglot(tmp_path, {'train': 6})
  path = tmp_path / 'omniglot' / 'images_background.zip'
  path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # no central directory
  with pytest.raises(locations.CorruptDataError) as error:
    omniglot.load(str(tmp_path), 'train', cache_dir=str(tmp_path / 'cache'))
  assert str(path) in str(error.value)


def test_corrupt_png_error_names_the_member(tmp_path):
  (tmp_path / 'omniglot').mkdir()
  copy = tmp_path / 'omniglot' / 'images_background.zip'
  with zipfile.ZipFile(copy, 'w') as archive:
    archive.writestr('images_background/A/character01/good.png', dataset_files.png(np.ones((105, 105), bool)))
    archive.writestr('images_background/A/character01/zbad.png', b'\x89PNG\r\n\x1a\n broken')
  with pytest.raises(locations.CorruptDataError, match='zbad.png'):
    omniglot.load(str(tmp_path), 'train', cache_dir=str(tmp_path / 'cache'))


def test_wrong_size_png_and_empty_zip_are_named(tmp_path):
  (tmp_path / 'omniglot').mkdir()
  path = tmp_path / 'omniglot' / 'images_background.zip'
  with zipfile.ZipFile(path, 'w') as archive:
    archive.writestr('images_background/A/character01/small.png', dataset_files.png(np.ones((64, 64), bool)))
  with pytest.raises(locations.CorruptDataError, match=r'small.png: image is \(64, 64\), expected 105×105'):
    omniglot.load(str(tmp_path), 'train', cache_dir=str(tmp_path / 'cache'))
  with zipfile.ZipFile(path, 'w') as archive:
    archive.writestr('images_background/README.txt', 'no images')
  with pytest.raises(locations.CorruptDataError, match='contains no .png images'):
    omniglot.load(str(tmp_path), 'train', cache_dir=str(tmp_path / 'cache'))


def test_bad_split(tmp_path):
  with pytest.raises(ValueError, match="'validation'"):
    omniglot.load(str(tmp_path), 'validation')


# --- on the real zips (tests/real_data.py) ----------------------------------------------------------


@pytest.fixture(scope='module')
def real_dir():
  return real_data.require('omniglot')


@pytest.fixture(scope='module')
def characters(real_dir, cache_dir):
  return {split: omniglot.load(str(real_dir), split, cache_dir=cache_dir) for split in ('train', 'test')}


def test_real_counts_shapes_and_range(characters):
  assert characters['train'].shape == (19280, 64, 64, 1)
  assert characters['test'].shape == (13180, 64, 64, 1)
  for images in characters.values():
    assert images.dtype == np.uint8 and images.min() == 0 and images.max() == 255


def test_real_ink_on_white_paper(characters):
  for images in characters.values():
    assert np.median(images) == 255  # mostly paper
    ink = (images < 128).mean(axis=(1, 2, 3))
    assert (ink > 0.001).all() and (ink < 0.4).all()  # every character has ink


def test_real_matches_an_independent_decoding(characters, real_dir):
  with zipfile.ZipFile(real_dir / 'omniglot' / 'images_background.zip') as archive:
    names = sorted(n for n in archive.namelist() if n.endswith('.png'))
    index = [0, 777, len(names) - 1]
    raw = np.stack([np.array(Image.open(io.BytesIO(archive.read(names[i])))) for i in index])
  assert raw.dtype == bool  # one-bit PNGs: True is paper
  assert np.abs(characters['train'][index].astype(np.float64) - _reference(raw)).max() <= 0.5 + 1e-3


def test_real_extracted_folder_gives_the_same_images(characters, real_dir, tmp_path):
  with zipfile.ZipFile(real_dir / 'omniglot' / 'images_background.zip') as archive:
    names = sorted(n for n in archive.namelist() if n.endswith('.png'))[:6]
    for name in names:
      archive.extract(name, tmp_path / 'omniglot')
  (tmp_path / 'omniglot' / 'images_evaluation').mkdir()
  images = omniglot.load(str(tmp_path), 'train', cache_dir=str(tmp_path / 'cache'))
  np.testing.assert_array_equal(images, characters['train'][:6])


def test_real_split_is_fixed(characters, real_dir, cache_dir):
  np.testing.assert_array_equal(
      omniglot.load(str(real_dir), 'test', limit=20, cache_dir=cache_dir), characters['test'][:20]
  )
