"""Tests of the CelebA loader: on a few JPEGs written here, and on the subset (9,343 aligned JPEGs) when
present.

The first half needs no data (tests/dataset_files.py writes 178×218 JPEGs as a zip, a folder and a
tensorflow-datasets directory, with the partition file); the second reads the project's subset found by
tests/real_data.py and is skipped, with the reason, on a fresh clone.
"""

import shutil
import zipfile

import numpy as np
import pytest
import tensorflow as tf

import dataset_files
import real_data
from spiral_tf.data import celeba
from spiral_tf.data import locations

LIMIT = 48  # decoding all 9,343 JPEGs takes ~10 s; the benchmark does that
COUNTS = {'train': 4, 'validation': 2, 'test': 3}


@pytest.fixture(scope='session')
def cache_dir(tmp_path_factory):
  return str(tmp_path_factory.getbasetemp() / 'spiral_data_cache')  # shared by the data tests


def _reference(jpeg):
  """The loader's conversion done independently: TensorFlow decodes, crops the centre square, area-resizes."""
  # Pillow decodes with libjpeg's accurate integer IDCT; TensorFlow's default is the fast one.
  pixels = tf.io.decode_jpeg(jpeg, dct_method='INTEGER_ACCURATE').numpy()
  assert pixels.shape == (218, 178, 3)
  square = pixels[20:198].astype(np.float32)
  return tf.image.resize(square[None], (64, 64), method='area').numpy()[0]


def _assert_decoded(faces, jpegs):
  assert faces.shape == (len(jpegs), 64, 64, 3) and faces.dtype == np.uint8
  for face, jpeg in zip(faces, jpegs):
    assert np.abs(face.astype(np.float64) - _reference(jpeg)).max() <= 0.5 + 1e-3


# --- on files written by the test -------------------------------------------------------------------


@pytest.mark.parametrize('form, subset_names', [('zip', False), ('folder', False), ('zip', True)])
def test_written_files_decode_per_the_partition_file(tmp_path, form, subset_names):
  written = dataset_files.write_celeba(tmp_path, COUNTS, form=form, subset_names=subset_names)
  for split, files in written.items():
    assert celeba.split_files(str(tmp_path), split) == [name for name, _ in files]
    faces = celeba.load(str(tmp_path), split, cache_dir=str(tmp_path / 'cache'))
    _assert_decoded(faces, [jpeg for _, jpeg in files])
  assert faces.std() > 10  # pictures, not a flat colour: the comparison above can fail


def test_limit_and_cache(tmp_path):
  written = dataset_files.write_celeba(tmp_path, COUNTS)
  cache = str(tmp_path / 'cache')
  train = celeba.load(str(tmp_path), 'train', cache_dir=cache)
  np.testing.assert_array_equal(celeba.load(str(tmp_path), 'train', cache_dir=cache), train)
  np.testing.assert_array_equal(celeba.load(str(tmp_path), 'train', limit=2, cache_dir=cache), train[:2])
  assert len(celeba.load(str(tmp_path), 'test', cache_dir=cache)) == len(written['test'])


def test_prepared_tensorflow_datasets_directory(tmp_path):
  # tensorflow-datasets' celeb_a layout: <dir>/celeb_a/<version>/celeb_a-<split>.tfrecord-NNNNN-of-NNNNN,
  # tf.Examples whose 'image' feature holds the JPEG bytes (plus attributes we ignore).
  jpegs = [jpeg for _, jpeg in dataset_files.write_celeba(tmp_path / 'files', {'test': 5})['test']]
  dataset_files.write_celeba_tfds(tmp_path, 'test', jpegs[:2], version='2.0.0')
  dataset_files.write_celeba_tfds(tmp_path, 'test', jpegs, version='2.0.1')  # the newest version is read
  faces = celeba.load(str(tmp_path), 'test', cache_dir=str(tmp_path / 'cache'))
  _assert_decoded(faces, jpegs)
  np.testing.assert_array_equal(
      faces, celeba.load(str(tmp_path / 'files'), 'test', cache_dir=str(tmp_path / 'cache'))
  )
  assert len(celeba.load(str(tmp_path), 'test', limit=2, cache_dir=str(tmp_path / 'cache'))) == 2
  with pytest.raises(locations.DatasetNotFoundError, match='tensorflow-datasets'):
    celeba.load(str(tmp_path), 'train')  # no train records, no CelebA files
  broken = tmp_path / 'celeb_a' / '2.0.1' / 'celeb_a-test.tfrecord-00000-of-00002'
  broken.write_bytes(broken.read_bytes()[:-100])
  with pytest.raises(locations.CorruptDataError, match='2.0.1'):
    celeba.load(str(tmp_path), 'test', cache_dir=str(tmp_path / 'cache2'))


def test_celeba_files_take_precedence_over_tensorflow_datasets(tmp_path):
  files = dataset_files.write_celeba(tmp_path, {'test': 2}, seed=1)['test']
  other = dataset_files.write_celeba(tmp_path / 'other', {'test': 2}, seed=2)['test']
  dataset_files.write_celeba_tfds(tmp_path, 'test', [jpeg for _, jpeg in other])
  _assert_decoded(
      celeba.load(str(tmp_path), 'test', cache_dir=str(tmp_path / 'cache')), [jpeg for _, jpeg in files]
  )


def test_missing_files_error(tmp_path):
  dataset_files.write_celeba(tmp_path, {'train': 1})
  (tmp_path / 'celeba' / 'img_align_celeba.zip').unlink()
  with pytest.raises(locations.DatasetNotFoundError) as error:
    celeba.load(str(tmp_path), 'train')
  message = str(error.value)
  for part in (
      'Missing: img_align_celeba.zip',
      str(tmp_path / 'celeba'),
      'mmlab.ie.cuhk.edu.hk',
      'non-commercial',
      'configs/strokes.cfg',
  ):
    assert part in message


def test_corrupt_files_are_named(tmp_path):
  written = dataset_files.write_celeba(tmp_path, {'train': 40}, seed=4)
  partition = tmp_path / 'celeba' / 'list_eval_partition.txt'
  archive_path = tmp_path / 'celeba' / 'img_align_celeba.zip'
  archive_path.write_bytes(archive_path.read_bytes()[: len(archive_path.read_bytes()) // 2])  # no directory
  partition.write_text('000001.jpg 0\n')
  with pytest.raises(locations.CorruptDataError, match=str(archive_path)):
    celeba.load(str(tmp_path), 'train', cache_dir=str(tmp_path / 'cache'))
  with zipfile.ZipFile(archive_path, 'w') as archive:
    archive.writestr('img_align_celeba/000001.jpg', b'\xff\xd8\xff not really a jpeg')
  with pytest.raises(locations.CorruptDataError, match='000001.jpg'):
    celeba.load(str(tmp_path), 'train', cache_dir=str(tmp_path / 'cache'))
  with zipfile.ZipFile(archive_path, 'w') as archive:  # a JPEG, but not of aligned CelebA's size
    archive.writestr('img_align_celeba/000001.jpg', dataset_files.jpeg(np.zeros((64, 64, 3), np.uint8)))
  with pytest.raises(locations.CorruptDataError, match=r'000001.jpg: image is \(64, 64, 3\)'):
    celeba.load(str(tmp_path), 'train', cache_dir=str(tmp_path / 'cache'))
  partition.write_text('000001.jpg 0\n000002.jpg 7\n')
  with pytest.raises(locations.CorruptDataError, match='line 2'):
    celeba.load(str(tmp_path), 'train', cache_dir=str(tmp_path / 'cache'))
  with zipfile.ZipFile(archive_path, 'w') as archive:
    archive.writestr('img_align_celeba/000001.jpg', written['train'][0][1])
  partition.write_text('000001.jpg 0\n000099.jpg 0\n')
  with pytest.raises(locations.CorruptDataError, match='000099.jpg'):
    celeba.load(str(tmp_path), 'train', cache_dir=str(tmp_path / 'cache'))


def test_folder_missing_an_image_is_named(tmp_path):
  written = dataset_files.write_celeba(tmp_path, {'train': 3}, form='folder')
  (tmp_path / 'celeba' / 'img_align_celeba' / written['train'][1][0]).unlink()
  with pytest.raises(locations.CorruptDataError, match=f'{written["train"][1][0]}, listed in the partition'):
    celeba.load(str(tmp_path), 'train', cache_dir=str(tmp_path / 'cache'))


def test_bad_split(tmp_path):
  with pytest.raises(ValueError, match='validation'):
    celeba.split_files(str(tmp_path), 'val')
  with pytest.raises(ValueError, match='validation'):
    celeba.load(str(tmp_path), 'val')


# --- on the project's real subset (tests/real_data.py) ----------------------------------------------


@pytest.fixture(scope='module')
def real_dir():
  return real_data.require('celeba')


def _subset_zip(real_dir):
  return real_dir / 'celeba' / 'img_align_celeba_subset.zip'


def test_real_split_counts_from_the_partition_file(real_dir):
  counts = {split: len(celeba.split_files(str(real_dir), split)) for split in celeba.SPLITS}
  assert counts == {'train': 7508, 'validation': 907, 'test': 928}
  files = {split: set(celeba.split_files(str(real_dir), split)) for split in celeba.SPLITS}
  assert not files['train'] & files['test'] and not files['train'] & files['validation']
  with zipfile.ZipFile(_subset_zip(real_dir)) as archive:
    in_zip = {n.split('/')[-1] for n in archive.namelist() if n.endswith('.jpg')}
  assert set().union(*files.values()) == in_zip


def test_real_shapes_range_and_independent_decoding(real_dir, cache_dir):
  faces = celeba.load(str(real_dir), 'test', limit=LIMIT, cache_dir=cache_dir)
  assert faces.shape == (LIMIT, 64, 64, 3) and faces.dtype == np.uint8
  assert faces.min() < 40 and faces.max() > 215 and faces.std() > 30  # real photographs
  names = celeba.split_files(str(real_dir), 'test')
  with zipfile.ZipFile(_subset_zip(real_dir)) as archive:
    _assert_decoded(
        faces[[0, LIMIT - 1]], [archive.read('img_align_celeba/' + names[i]) for i in (0, LIMIT - 1)]
    )


def test_real_split_is_fixed_and_cached(real_dir, cache_dir):
  first = celeba.load(str(real_dir), 'train', limit=8, cache_dir=cache_dir)
  np.testing.assert_array_equal(celeba.load(str(real_dir), 'train', limit=8, cache_dir=cache_dir), first)
  test = celeba.load(str(real_dir), 'test', limit=8, cache_dir=cache_dir)
  assert not np.array_equal(first, test)


def test_real_extracted_folder_and_official_names(real_dir, tmp_path):
  names = celeba.split_files(str(real_dir), 'train')[:3] + celeba.split_files(str(real_dir), 'test')[:2]
  folder = tmp_path / 'celeba' / 'img_align_celeba'
  folder.mkdir(parents=True)
  with zipfile.ZipFile(_subset_zip(real_dir)) as archive:
    for name in names:
      (folder / name).write_bytes(archive.read('img_align_celeba/' + name))
  lines = [f'{n} 0' for n in names[:3]] + [f'{n} 2' for n in names[3:]]
  (tmp_path / 'celeba' / 'list_eval_partition.txt').write_text('\n'.join(lines) + '\n')
  from_folder = celeba.load(str(tmp_path), 'test', cache_dir=str(tmp_path / 'cache'))
  from_zip = celeba.load(str(real_dir), 'test', limit=2, cache_dir=str(tmp_path / 'cache'))
  np.testing.assert_array_equal(from_folder, from_zip)


def test_real_missing_images_error(real_dir, tmp_path):
  (tmp_path / 'celeba').mkdir()
  shutil.copy(real_dir / 'celeba' / 'list_eval_partition_subset.txt', tmp_path / 'celeba')
  with pytest.raises(locations.DatasetNotFoundError, match='Missing: img_align_celeba.zip'):
    celeba.load(str(tmp_path), 'train')


def test_real_prepared_tensorflow_datasets_directory(real_dir, tmp_path):
  names = celeba.split_files(str(real_dir), 'test')[:5]
  with zipfile.ZipFile(_subset_zip(real_dir)) as archive:
    jpegs = [archive.read('img_align_celeba/' + n) for n in names]
  dataset_files.write_celeba_tfds(tmp_path, 'test', jpegs)
  faces = celeba.load(str(tmp_path), 'test', cache_dir=str(tmp_path / 'cache'))
  np.testing.assert_array_equal(
      faces, celeba.load(str(real_dir), 'test', limit=5, cache_dir=str(tmp_path / 'cache'))
  )
