"""Tests of the CelebA loader with the subset in ../shared/data (9,343 aligned JPEGs)."""
import pathlib
import shutil
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from spiral_tf.data import celeba
from spiral_tf.data import locations

DATA_DIR = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data'
SUBSET_ZIP = DATA_DIR / 'celeba' / 'img_align_celeba_subset.zip'
PARTITION = DATA_DIR / 'celeba' / 'list_eval_partition_subset.txt'
LIMIT = 48  # decoding all 9,343 JPEGs takes ~10 s; the benchmark does that


@pytest.fixture(scope='session')
def cache_dir(tmp_path_factory):
  return str(tmp_path_factory.getbasetemp() / 'spiral_data_cache')  # shared by the data tests


def test_split_counts_from_the_partition_file():
  counts = {split: len(celeba.split_files(str(DATA_DIR), split)) for split in celeba.SPLITS}
  assert counts == {'train': 7508, 'validation': 907, 'test': 928}
  files = {split: set(celeba.split_files(str(DATA_DIR), split)) for split in celeba.SPLITS}
  assert not files['train'] & files['test'] and not files['train'] & files['validation']
  with zipfile.ZipFile(SUBSET_ZIP) as archive:
    in_zip = {n.split('/')[-1] for n in archive.namelist() if n.endswith('.jpg')}
  assert set().union(*files.values()) == in_zip


def test_shapes_range_and_independent_decoding(cache_dir):
  faces = celeba.load(str(DATA_DIR), 'test', limit=LIMIT, cache_dir=cache_dir)
  assert faces.shape == (LIMIT, 64, 64, 3) and faces.dtype == np.uint8
  assert faces.min() < 40 and faces.max() > 215 and faces.std() > 30  # real photographs
  names = celeba.split_files(str(DATA_DIR), 'test')
  with zipfile.ZipFile(SUBSET_ZIP) as archive:
    for i in (0, LIMIT - 1):
      # Pillow decodes with libjpeg's accurate integer IDCT; TensorFlow's default is the fast one.
      pixels = tf.io.decode_jpeg(archive.read('img_align_celeba/' + names[i]),
                                 dct_method='INTEGER_ACCURATE').numpy()
      assert pixels.shape == (218, 178, 3)
      square = pixels[20:198].astype(np.float32)
      reference = tf.image.resize(square[None], (64, 64), method='area').numpy()[0]
      assert np.abs(faces[i].astype(np.float64) - reference).max() <= 0.5 + 1e-3


def test_split_is_fixed_and_cached(cache_dir):
  first = celeba.load(str(DATA_DIR), 'train', limit=8, cache_dir=cache_dir)
  np.testing.assert_array_equal(celeba.load(str(DATA_DIR), 'train', limit=8, cache_dir=cache_dir), first)
  test = celeba.load(str(DATA_DIR), 'test', limit=8, cache_dir=cache_dir)
  assert not np.array_equal(first, test)


def test_extracted_folder_and_official_names(tmp_path):
  names = celeba.split_files(str(DATA_DIR), 'train')[:3] + celeba.split_files(str(DATA_DIR), 'test')[:2]
  folder = tmp_path / 'celeba' / 'img_align_celeba'
  folder.mkdir(parents=True)
  with zipfile.ZipFile(SUBSET_ZIP) as archive:
    for name in names:
      (folder / name).write_bytes(archive.read('img_align_celeba/' + name))
  lines = [f'{n} 0' for n in names[:3]] + [f'{n} 2' for n in names[3:]]
  (tmp_path / 'celeba' / 'list_eval_partition.txt').write_text('\n'.join(lines) + '\n')
  from_folder = celeba.load(str(tmp_path), 'test', cache_dir=str(tmp_path / 'cache'))
  from_zip = celeba.load(str(DATA_DIR), 'test', limit=2, cache_dir=str(tmp_path / 'cache'))
  np.testing.assert_array_equal(from_folder, from_zip)


def test_missing_files_error(tmp_path):
  (tmp_path / 'celeba').mkdir()
  shutil.copy(PARTITION, tmp_path / 'celeba')
  with pytest.raises(locations.DatasetNotFoundError) as error:
    celeba.load(str(tmp_path), 'train')
  message = str(error.value)
  for part in ('Missing: img_align_celeba.zip', str(tmp_path / 'celeba'), 'mmlab.ie.cuhk.edu.hk',
               'non-commercial', 'configs/strokes.cfg'):
    assert part in message


def test_corrupt_files_are_named(tmp_path):
  (tmp_path / 'celeba').mkdir()
  partition = tmp_path / 'celeba' / 'list_eval_partition.txt'
  archive_path = tmp_path / 'celeba' / 'img_align_celeba.zip'
  archive_path.write_bytes(SUBSET_ZIP.read_bytes()[:300_000])  # truncated: no central directory
  partition.write_text('000001.jpg 0\n')
  with pytest.raises(locations.CorruptDataError, match=str(archive_path)):
    celeba.load(str(tmp_path), 'train', cache_dir=str(tmp_path / 'cache'))
  with zipfile.ZipFile(archive_path, 'w') as archive:
    archive.writestr('img_align_celeba/000001.jpg', b'\xff\xd8\xff not really a jpeg')
  with pytest.raises(locations.CorruptDataError, match='000001.jpg'):
    celeba.load(str(tmp_path), 'train', cache_dir=str(tmp_path / 'cache'))
  partition.write_text('000001.jpg 0\n000002.jpg 7\n')
  with pytest.raises(locations.CorruptDataError, match='line 2'):
    celeba.load(str(tmp_path), 'train', cache_dir=str(tmp_path / 'cache'))
  partition.write_text('000001.jpg 0\n000099.jpg 0\n')
  with pytest.raises(locations.CorruptDataError, match='000099.jpg'):
    celeba.load(str(tmp_path), 'train', cache_dir=str(tmp_path / 'cache'))


def test_bad_split():
  with pytest.raises(ValueError, match='validation'):
    celeba.split_files(str(DATA_DIR), 'val')


def test_prepared_tensorflow_datasets_directory(tmp_path):
  # tensorflow-datasets' celeb_a layout: <dir>/celeb_a/<version>/celeb_a-<split>.tfrecord-NNNNN-of-NNNNN,
  # tf.Examples whose 'image' feature holds the JPEG bytes (plus attributes we ignore).
  names = celeba.split_files(str(DATA_DIR), 'test')[:5]
  with zipfile.ZipFile(SUBSET_ZIP) as archive:
    jpegs = [archive.read('img_align_celeba/' + n) for n in names]
  for version, count in (('2.0.0', 2), ('2.0.1', 5)):  # the newest version is the one read
    folder = tmp_path / 'celeb_a' / version
    folder.mkdir(parents=True)
    for shard, part in enumerate((jpegs[:3][:count], jpegs[3:count])):
      path = folder / f'celeb_a-test.tfrecord-{shard:05d}-of-00002'
      with tf.io.TFRecordWriter(str(path)) as writer:
        for jpeg in part:
          example = tf.train.Example(features=tf.train.Features(feature={
              'image': tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])),
              'attributes/Male': tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))}))
          writer.write(example.SerializeToString())
  faces = celeba.load(str(tmp_path), 'test', cache_dir=str(tmp_path / 'cache'))
  from_zip = celeba.load(str(DATA_DIR), 'test', limit=5, cache_dir=str(tmp_path / 'cache'))
  np.testing.assert_array_equal(faces, from_zip)
  assert len(celeba.load(str(tmp_path), 'test', limit=2, cache_dir=str(tmp_path / 'cache'))) == 2
  with pytest.raises(locations.DatasetNotFoundError, match='tensorflow-datasets'):
    celeba.load(str(tmp_path), 'train')  # no train records, no CelebA files
  broken = tmp_path / 'celeb_a' / '2.0.1' / 'celeb_a-test.tfrecord-00000-of-00002'
  broken.write_bytes(broken.read_bytes()[:-100])
  with pytest.raises(locations.CorruptDataError, match='2.0.1'):
    celeba.load(str(tmp_path), 'test', cache_dir=str(tmp_path / 'cache2'))
