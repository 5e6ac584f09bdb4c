"""Small datasets in the real file formats, written by the tests, so a fresh clone tests every loader.

Each writer puts a few images under `root/<dataset>/` exactly as the official downloads lay them out
(docs/datasets.md) and returns what it wrote, for the tests to decode independently: MNIST's gzipped IDX
files, Omniglot's zips (or folders) of one-bit 105×105 PNGs, CelebA's 178×218 JPEGs in a zip or folder
with their partition file, and a tensorflow-datasets `celeb_a` directory of TFRecords. The images are
random but not noise: a few smooth shapes on paper, so that resizing and JPEG coding behave as on real
pictures. The tests on the real data are in the same files, run when tests/real_data.py finds it.

Usage:
  digits = dataset_files.write_mnist(tmp_path, {'train': 6, 'test': 4})       # {'test': (images, labels)}
  characters = dataset_files.write_omniglot(tmp_path, {'train': 5, 'test': 3})  # {'train': bool [5,105,105]}
  # {split: [(name, jpeg)]}
  faces = dataset_files.write_celeba(tmp_path, {'train': 3, 'validation': 1, 'test': 2})
  dataset_files.write_celeba_tfds(tmp_path, 'test', [jpeg, ...], version='2.0.1')
"""

import gzip
import io
import pathlib
import zipfile

import numpy as np
from PIL import Image

MNIST_FILES = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}
OMNIGLOT_DIRS = {'train': 'images_background', 'test': 'images_evaluation'}
CELEBA_SPLITS = {'train': 0, 'validation': 1, 'test': 2}
CELEBA_SHAPE = (218, 178, 3)  # rows, columns, RGB: aligned CelebA


def blobs(rng, shape, count=3):
  """float [rows, cols] in [0, 1]: `count` soft-edged discs of random place and size on 0."""
  rows, cols = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
  out = np.zeros(shape)
  for _ in range(count):
    y, x = rng.uniform(0.2, 0.8, 2) * shape
    radius = rng.uniform(0.08, 0.25) * min(shape)
    out = np.maximum(out, np.clip(radius - np.hypot(rows - y, cols - x), 0, 2) / 2)
  return out


def write_mnist(root, counts, seed=0, gzipped=True):
  """IDX3 images (ink 255 on black 0, 28×28) and IDX1 labels per split; {split: (uint8 images, labels)}."""
  rng = np.random.default_rng(seed)
  directory = pathlib.Path(root) / 'mnist'
  directory.mkdir(parents=True, exist_ok=True)
  out = {}
  for split, count in counts.items():
    images = np.stack([np.rint(255 * blobs(rng, (28, 28))) for _ in range(count)]).astype(np.uint8)
    labels = rng.integers(0, 10, count).astype(np.uint8)
    image_name, label_name = MNIST_FILES[split]
    _write(
        directory / image_name, np.array([2051, count, 28, 28], '>u4').tobytes() + images.tobytes(), gzipped
    )
    _write(directory / label_name, np.array([2049, count], '>u4').tobytes() + labels.tobytes(), gzipped)
    out[split] = images, labels
  return out


def _write(path, payload, gzipped):
  if gzipped:
    pathlib.Path(f'{path}.gz').write_bytes(gzip.compress(payload, compresslevel=1))
  else:
    pathlib.Path(path).write_bytes(payload)


def png(pixels):
  """PNG bytes of a bool (one-bit) or uint8 array."""
  out = io.BytesIO()
  Image.fromarray(pixels).save(out, format='PNG')
  return out.getvalue()


def write_omniglot(root, counts, seed=0, extracted=False):
  """One-bit 105×105 PNGs (True = paper) per split, as zips or folders; {split: bool [N, 105, 105]}.

  The members are `<set>/<alphabet>/character<k>/<image>.png`, as in Lake et al.'s zips; the returned
  images are in sorted member order, which is the loader's.
  """
  rng = np.random.default_rng(seed)
  directory = pathlib.Path(root) / 'omniglot'
  directory.mkdir(parents=True, exist_ok=True)
  out = {}
  for split, count in counts.items():
    top = OMNIGLOT_DIRS[split]
    members = {}
    for i in range(count):
      ink = blobs(rng, (105, 105), count=2) > 0.5
      members[f'{top}/Alphabet_{i % 2}/character{i // 2 + 1:02d}/{i:04d}_{i // 2 + 1:02d}.png'] = ~ink
    if extracted:
      for name, pixels in members.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(png(pixels))
    else:
      with zipfile.ZipFile(directory / f'{top}.zip', 'w') as archive:
        for name, pixels in members.items():
          archive.writestr(name, png(pixels))
    out[split] = np.stack([members[n] for n in sorted(members)])
  return out


def jpeg(pixels, quality=90):
  out = io.BytesIO()
  Image.fromarray(pixels).save(out, format='JPEG', quality=quality)
  return out.getvalue()


def face(rng):
  """uint8 [218, 178, 3]: a smooth colour picture of CelebA's size (a gradient and coloured discs)."""
  rows, cols = CELEBA_SHAPE[:2]
  gradient = np.linspace(0, 1, rows)[:, None, None] * rng.uniform(0, 1, 3)
  picture = 0.2 + 0.5 * gradient + np.zeros((rows, cols, 3))
  for _ in range(3):
    picture += blobs(rng, (rows, cols), count=1)[..., None] * rng.uniform(-0.5, 0.5, 3)
  return np.rint(255 * np.clip(picture, 0, 1)).astype(np.uint8)


def write_celeba(root, counts, seed=0, form='zip', subset_names=False):
  """Aligned-CelebA JPEGs and their partition file; {split: [(file name, jpeg bytes)]} in file order.

  form: 'zip' (`img_align_celeba.zip` of `img_align_celeba/NNNNNN.jpg`) or 'folder' (`img_align_celeba/`);
  subset_names: the names of the project's subset (`img_align_celeba_subset.zip`,
  `list_eval_partition_subset.txt`) instead of the official ones. The partition file interleaves the
  splits, as the official one does not, so that the loader's split selection is what is tested.
  """
  if form not in ('zip', 'folder'):
    raise ValueError(f"form must be 'zip' or 'folder', got {form!r}")
  rng = np.random.default_rng(seed)
  directory = pathlib.Path(root) / 'celeba'
  directory.mkdir(parents=True, exist_ok=True)
  splits = [s for s, n in counts.items() for _ in range(n)]
  rng.shuffle(splits)
  out = {split: [] for split in counts}
  lines = []
  for number, split in enumerate(splits, 1):
    name = f'{number:06d}.jpg'
    out[split].append((name, jpeg(face(rng))))
    lines.append(f'{name} {CELEBA_SPLITS[split]}\n')
  suffix = '_subset' if subset_names else ''
  (directory / f'list_eval_partition{suffix}.txt').write_text(''.join(lines))
  files = sorted(item for items in out.values() for item in items)  # 000001.jpg, 000002.jpg, ...
  if form == 'zip':
    with zipfile.ZipFile(directory / f'img_align_celeba{suffix}.zip', 'w') as archive:
      for name, data in files:
        archive.writestr(f'img_align_celeba/{name}', data)
  else:
    (directory / 'img_align_celeba').mkdir(exist_ok=True)
    for name, data in files:
      (directory / 'img_align_celeba' / name).write_bytes(data)
  return out


def write_celeba_tfds(root, split, jpegs, version='2.0.1', shards=2):
  """A prepared tensorflow-datasets celeb_a: `root/celeb_a/<version>/celeb_a-<split>.tfrecord-NNNNN-of-NNNNN`.

  tf.Examples whose 'image' feature holds the JPEG bytes, plus an attribute the loader must ignore; the
  records are split over `shards` files in order. Returns the shard paths.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (only this writer needs TensorFlow)

  folder = pathlib.Path(root) / 'celeb_a' / version
  folder.mkdir(parents=True, exist_ok=True)
  bounds = np.linspace(0, len(jpegs), shards + 1).astype(int)
  paths = []
  for shard in range(shards):
    path = folder / f'celeb_a-{split}.tfrecord-{shard:05d}-of-{shards:05d}'
    with tf.io.TFRecordWriter(str(path)) as writer:
      for data in jpegs[bounds[shard] : bounds[shard + 1]]:
        example = tf.train.Example(
            features=tf.train.Features(
                feature={
                    'image': tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
                    'attributes/Male': tf.train.Feature(int64_list=tf.train.Int64List(value=[1])),
                }
            )
        )
        writer.write(example.SerializeToString())
    paths.append(path)
  return paths
