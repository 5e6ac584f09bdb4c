"""CelebA faces (aligned and cropped) as 64×64 colour images.

Files under `<data_dir>/celeba/`: the images as the folder `img_align_celeba/` or the zip
`img_align_celeba.zip` (official names), and the partition file `list_eval_partition.txt`
(`000001.jpg 0` lines). The project's test subset names, `img_align_celeba_subset.zip` and
`list_eval_partition_subset.txt`, are accepted too. Splits come from the partition file:
train = 0, validation = 1 (kept apart; nothing trains or reports on it by default), test = 2, the
held-out split. Images are taken in partition-file order.
Alternatively, when `<data_dir>/celeba/` has no images, a tensorflow-datasets directory that already
holds a prepared `celeb_a` (`<data_dir>/celeb_a/<version>/celeb_a-<split>.tfrecord-*`, same three
splits) is read directly, without tensorflow-datasets: the JPEG bytes of each record's `image`
feature, in record order.
Conversion: the largest centred square (the 178×218 images lose 20 rows top and bottom), then an area
downsample 178 -> 64 (images.py).

Usage:
  faces = load(data_dir, 'train', limit=1000)    # uint8 [1000, 64, 64, 3]
  n = len(split_files(data_dir, 'test'))          # count without decoding
"""

import concurrent.futures
import glob
import io
import os
import zipfile
import zlib

import numpy as np
from PIL import Image

from spiral_tf.data import cache
from spiral_tf.data import images
from spiral_tf.data import locations

SPLITS = {'train': 0, 'validation': 1, 'test': 2}
IMAGE_SOURCES = ('img_align_celeba', 'img_align_celeba.zip', 'img_align_celeba_subset.zip')
PARTITION_FILES = ('list_eval_partition.txt', 'list_eval_partition_subset.txt')
HOW_TO_GET = (
    'CelebA is for non-commercial research only: accept its terms and download '
    '"Align&Cropped Images" (img_align_celeba.zip) and list_eval_partition.txt from '
    'https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html into <data_dir>/celeba/ '
    '(the zip may be extracted to img_align_celeba/).'
)
_VERSION = 1
_SHAPE = (218, 178, 3)
_CHUNK = 1024  # images decoded at full size at a time


def load(data_dir=None, split='train', limit=None, cache_dir=None):
  """uint8 [N, 64, 64, 3] faces of `split` (the first `limit` if given)."""
  locations.check_split('CelebA', split, SPLITS)
  records = _tfds_records(data_dir, split)
  if records:
    return cache.cached_split(
        'celeba-tfds',
        split,
        records,
        lambda: _decode_tfds(records, limit),
        version=_VERSION,
        limit=limit,
        cache_dir=cache_dir,
    )
  source, partition = _find(data_dir)
  files = split_files(data_dir, split)[:limit]
  return cache.cached_split(
      'celeba',
      split,
      [source, partition],
      lambda: _decode(source, files),
      version=_VERSION,
      limit=limit,
      cache_dir=cache_dir,
  )


def split_files(data_dir=None, split='train'):
  """Image file names (e.g. '000001.jpg') of `split`, in partition-file order."""
  locations.check_split('CelebA', split, SPLITS)
  _, partition = _find(data_dir)
  wanted = str(SPLITS[split])
  names = []
  with open(partition, encoding='utf-8') as f:
    for number, line in enumerate(f, 1):
      fields = line.split()
      if not fields:
        continue
      if len(fields) != 2 or fields[1] not in ('0', '1', '2'):
        raise locations.CorruptDataError(
            partition, f'line {number} is {line.strip()!r}, expected "<image>.jpg <0|1|2>"'
        )
      if fields[1] == wanted:
        names.append(fields[0])
  return names


def _tfds_records(data_dir, split):
  """TFRecord shards of a prepared tensorflow-datasets celeb_a, if there are no CelebA files."""
  root, _ = locations.resolve_data_dir(data_dir)
  if any(os.path.exists(os.path.join(root, 'celeba', s)) for s in IMAGE_SOURCES):
    return []
  versions = sorted(glob.glob(os.path.join(root, 'celeb_a', '*', f'celeb_a-{split}.tfrecord-*')))
  newest = max((os.path.dirname(p) for p in versions), default=None, key=_version_key)
  return [p for p in versions if os.path.dirname(p) == newest]


def _version_key(directory):
  return tuple(int(x) if x.isdigit() else -1 for x in os.path.basename(directory).split('.'))


def _decode_tfds(records, limit):
  # Lazy: TensorFlow only for TFRecords; the supervisor reads CelebA's file list without it.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  feature = {'image': tf.io.FixedLenFeature([], tf.string)}
  dataset = tf.data.TFRecordDataset(records)
  if limit is not None:
    dataset = dataset.take(limit)
  try:
    jpegs = [
        (f'{records[0]} (record {i})', tf.io.parse_single_example(r, feature)['image'].numpy())
        for i, r in enumerate(dataset)
    ]
  except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
    raise locations.CorruptDataError(
        os.path.dirname(records[0]), f'cannot read the celeb_a TFRecords ({e.message})'
    ) from None
  return _decode_items(jpegs)


def _find(data_dir):
  root, origin = locations.resolve_data_dir(data_dir)
  directory = os.path.join(root, 'celeba')
  source = next(
      (os.path.join(directory, s) for s in IMAGE_SOURCES if os.path.exists(os.path.join(directory, s))), None
  )
  partition = next(
      (os.path.join(directory, p) for p in PARTITION_FILES if os.path.isfile(os.path.join(directory, p))),
      None,
  )
  if source and partition:
    return source, partition
  expected = ['img_align_celeba.zip (or folder img_align_celeba/)', 'list_eval_partition.txt']
  missing = [e for e, found in zip(expected, (source, partition)) if not found]
  how = HOW_TO_GET + (
      ' Or point --data_dir at a tensorflow-datasets directory holding a prepared '
      'celeb_a (<data_dir>/celeb_a/<version>/celeb_a-<split>.tfrecord-*).'
  )
  raise locations.missing_files('CelebA', directory, origin, expected, how, missing)


def _read_chunks(source, files):
  """Yields lists of (name for errors, jpeg bytes) for consecutive chunks of `files`."""
  if os.path.isdir(source):
    for start in range(0, len(files), _CHUNK):
      chunk = []
      for name in files[start : start + _CHUNK]:
        path = os.path.join(source, name)
        if not os.path.isfile(path):
          raise locations.CorruptDataError(source, f'{name}, listed in the partition file, is missing')
        with open(path, 'rb') as f:
          chunk.append((path, f.read()))
      yield chunk
    return
  try:
    with zipfile.ZipFile(source) as archive:
      members = {os.path.basename(n): n for n in archive.namelist() if n.endswith('.jpg')}
      absent = [name for name in files if name not in members]
      if absent:
        raise locations.CorruptDataError(
            source,
            f'{len(absent)} images listed in the partition file are not in it '
            f'(e.g. {absent[0]}); use the partition file that belongs to this archive',
        )
      for start in range(0, len(files), _CHUNK):
        yield [(f'{source}:{members[n]}', archive.read(members[n])) for n in files[start : start + _CHUNK]]
  except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
    raise locations.CorruptDataError(source, f'cannot read the zip archive ({e})') from None


def _decode_face(item):
  name, data = item
  try:
    with Image.open(io.BytesIO(data)) as image:
      pixels = np.asarray(image.convert('RGB'))
  except (OSError, ValueError, SyntaxError) as e:
    raise locations.CorruptDataError(name, f'cannot decode the JPEG ({e})') from None
  if pixels.shape != _SHAPE:
    raise locations.CorruptDataError(name, f'image is {pixels.shape}, expected aligned CelebA {_SHAPE}')
  return images.centre_crop(pixels[None])[0]


def _decode(source, files):
  return _decode_items(item for chunk in _read_chunks(source, files) for item in chunk)


def _decode_items(items):
  """uint8 [N, 64, 64, 3] from an iterable of (name for errors, jpeg bytes)."""
  out = []
  # Pillow releases the GIL while decoding JPEGs, so two threads use both cores. Chunks bound the
  # memory of the full-size crops (the whole of CelebA would need 15 GB at 178²).
  with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
    for chunk in _chunks(items, _CHUNK):
      squares = np.stack(list(pool.map(_decode_face, chunk, chunksize=32)))
      out.append(images.resize(squares, 64, 64, 'area'))
  return np.concatenate(out) if out else np.zeros((0, 64, 64, 3), np.uint8)


def _chunks(iterable, size):
  chunk = []
  for item in iterable:
    chunk.append(item)
    if len(chunk) == size:
      yield chunk
      chunk = []
  if chunk:
    yield chunk
