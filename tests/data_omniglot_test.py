"""Tests of the Omniglot loader with the real zips in ../shared/data."""
import io
import pathlib
import zipfile

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from spiral_tf.data import locations
from spiral_tf.data import omniglot

DATA_DIR = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data'
BACKGROUND_ZIP = DATA_DIR / 'omniglot' / 'images_background.zip'


@pytest.fixture(scope='session')
def cache_dir(tmp_path_factory):
  return str(tmp_path_factory.getbasetemp() / 'spiral_data_cache')  # shared by the data tests


@pytest.fixture(scope='module')
def characters(cache_dir):
  return {split: omniglot.load(str(DATA_DIR), split, cache_dir=cache_dir)
          for split in ('train', 'test')}


def test_counts_shapes_and_range(characters):
  assert characters['train'].shape == (19280, 64, 64, 1)
  assert characters['test'].shape == (13180, 64, 64, 1)
  for images in characters.values():
    assert images.dtype == np.uint8 and images.min() == 0 and images.max() == 255


def test_ink_on_white_paper(characters):
  for images in characters.values():
    assert np.median(images) == 255  # mostly paper
    ink = (images < 128).mean(axis=(1, 2, 3))
    assert (ink > 0.001).all() and (ink < 0.4).all()  # every character has ink


def test_matches_an_independent_decoding(characters):
  with zipfile.ZipFile(BACKGROUND_ZIP) as archive:
    names = sorted(n for n in archive.namelist() if n.endswith('.png'))
    index = [0, 777, len(names) - 1]
    raw = np.stack([np.array(Image.open(io.BytesIO(archive.read(names[i])))) for i in index])
  assert raw.dtype == bool  # one-bit PNGs: True is paper
  paper = np.where(raw, 255.0, 0.0).astype(np.float32)[..., None]
  reference = tf.image.resize(paper, (64, 64), method='area').numpy()
  assert np.abs(characters['train'][index].astype(np.float64) - reference).max() <= 0.5 + 1e-3


def test_extracted_folder_gives_the_same_images(characters, tmp_path):
  with zipfile.ZipFile(BACKGROUND_ZIP) as archive:
    names = sorted(n for n in archive.namelist() if n.endswith('.png'))[:6]
    for name in names:
      archive.extract(name, tmp_path / 'omniglot')
  (tmp_path / 'omniglot' / 'images_evaluation').mkdir()
  images = omniglot.load(str(tmp_path), 'train', cache_dir=str(tmp_path / 'cache'))
  np.testing.assert_array_equal(images, characters['train'][:6])


def test_split_is_fixed(characters, cache_dir):
  np.testing.assert_array_equal(omniglot.load(str(DATA_DIR), 'test', limit=20, cache_dir=cache_dir),
                                characters['test'][:20])


def test_missing_files_error(tmp_path):
  (tmp_path / 'omniglot').mkdir()
  with pytest.raises(locations.DatasetNotFoundError) as error:
    omniglot.load(str(tmp_path), 'test')
  message = str(error.value)
  for part in ('images_background.zip', 'images_evaluation.zip', str(tmp_path / 'omniglot'),
               'brendenlake/omniglot', 'configs/strokes.cfg'):
    assert part in message


def test_truncated_zip_error_names_the_file(tmp_path):
  (tmp_path / 'omniglot').mkdir()
  copy = tmp_path / 'omniglot' / 'images_background.zip'
  copy.write_bytes(BACKGROUND_ZIP.read_bytes()[:1_000_000])
  with pytest.raises(locations.CorruptDataError) as error:
    omniglot.load(str(tmp_path), 'train', cache_dir=str(tmp_path / 'cache'))
  assert str(copy) in str(error.value)


def test_corrupt_png_error_names_the_member(tmp_path):
  (tmp_path / 'omniglot').mkdir()
  copy = tmp_path / 'omniglot' / 'images_background.zip'
  with zipfile.ZipFile(copy, 'w') as archive:
    archive.writestr('images_background/A/character01/good.png', _png(np.ones((105, 105), bool)))
    archive.writestr('images_background/A/character01/zbad.png', b'\x89PNG\r\n\x1a\n broken')
  with pytest.raises(locations.CorruptDataError, match='zbad.png'):
    omniglot.load(str(tmp_path), 'train', cache_dir=str(tmp_path / 'cache'))


def _png(pixels):
  out = io.BytesIO()
  Image.fromarray(pixels).save(out, format='PNG')
  return out.getvalue()
