"""Omniglot characters as 64×64 grey ink on white paper.

Files: `<data_dir>/omniglot/images_background.zip` and `images_evaluation.zip` (Lake et al.'s zips), or
the extracted folders `images_background/` and `images_evaluation/`. Splits: train = background set
(30 alphabets, 19,280 images), test = evaluation set (20 alphabets, 13,180 images) — disjoint
alphabets, as in the paper. Images are taken in sorted path order.
Conversion: the 105×105 one-bit PNGs already have white paper (1) and black ink (0), so no inversion;
area downsample 105 -> 64 (images.py), which turns the hard edges into grey anti-aliasing and keeps the
amount of ink.

Usage:
  characters = load(data_dir, 'test')     # uint8 [13180, 64, 64, 1], 255 = paper
"""

import concurrent.futures
import io
import os
import zipfile
import zlib

import numpy as np
from PIL import Image

from spiral_tf.data import cache
from spiral_tf.data import images
from spiral_tf.data import locations

SPLITS = {'train': 'images_background', 'test': 'images_evaluation'}
COUNTS = {'train': 19280, 'test': 13180}
HOW_TO_GET = (
    'download images_background.zip and images_evaluation.zip from '
    'https://github.com/brendenlake/omniglot (folder python/) into <data_dir>/omniglot/ '
    '(zipped or extracted).'
)
_VERSION = 1
_SIZE = 105


def load(data_dir=None, split='train', limit=None, cache_dir=None):
  """uint8 [N, 64, 64, 1] characters of `split`, ink on white (the first `limit` if given)."""
  locations.check_split('Omniglot', split, SPLITS)
  path = _find(data_dir, split)
  return cache.cached_split(
      'omniglot',
      split,
      [path],
      lambda: _decode(path, limit),
      version=_VERSION,
      limit=limit,
      cache_dir=cache_dir,
  )


def _find(data_dir, split):
  root, origin = locations.resolve_data_dir(data_dir)
  directory = os.path.join(root, 'omniglot')
  name = SPLITS[split]
  for candidate in (name + '.zip', name):
    path = os.path.join(directory, candidate)
    if os.path.exists(path):
      return path
  expected = [f'{SPLITS[s]}.zip (or folder {SPLITS[s]}/)' for s in SPLITS]
  missing = [
      SPLITS[s] + '.zip'
      for s in SPLITS
      if not any(os.path.exists(os.path.join(directory, SPLITS[s] + e)) for e in ('.zip', ''))
  ]
  raise locations.missing_files('Omniglot', directory, origin, expected, HOW_TO_GET, missing)


def _read_members(path, limit):
  """[(name, png bytes)] in sorted order, from a zip or an extracted folder."""
  if os.path.isdir(path):
    names = sorted(
        os.path.relpath(os.path.join(d, f), path)
        for d, _, fs in os.walk(path)
        for f in fs
        if f.endswith('.png')
    )[:limit]
    out = []
    for name in names:
      with open(os.path.join(path, name), 'rb') as f:
        out.append((os.path.join(path, name), f.read()))
    return out
  try:
    with zipfile.ZipFile(path) as archive:
      names = sorted(n for n in archive.namelist() if n.endswith('.png'))[:limit]
      return [(f'{path}:{n}', archive.read(n)) for n in names]
  except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
    raise locations.CorruptDataError(path, f'cannot read the zip archive ({e})') from None


def _decode_png(item):
  name, data = item
  try:
    with Image.open(io.BytesIO(data)) as image:
      pixels = np.asarray(image.convert('L'))  # one-bit PNG: True/white -> 255, False/ink -> 0
  except (OSError, ValueError, SyntaxError) as e:
    raise locations.CorruptDataError(name, f'cannot decode the PNG ({e})') from None
  if pixels.shape != (_SIZE, _SIZE):
    raise locations.CorruptDataError(name, f'image is {pixels.shape}, expected {_SIZE}×{_SIZE}')
  return pixels


def _decode(path, limit):
  members = _read_members(path, limit)
  if not members:
    raise locations.CorruptDataError(path, 'contains no .png images')
  # Pillow releases the GIL while decoding, so two threads use both cores.
  with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
    pixels = np.stack(list(pool.map(_decode_png, members, chunksize=256)))
  return images.resize(pixels[..., None], 64, 64, 'area')
