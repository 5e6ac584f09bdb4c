"""The procedural MuJoCo scenes (the paper's 3-D targets) as 64×64 colour images.

Files: the shards that `scenes_dataset.generate` (spiral_tf/data/scenes_dataset.py) writes, in
`<data_dir>/scenes/` (`python launch/generate_scenes.py --out_dir=<data_dir>/scenes`). Splits: the
generator's fixed train and held-out (test) split. Images are rendered at 64×64 already, so no resize;
they are scenes, not ink on paper. Decoded arrays are cached like the other datasets.

Usage:
  scenes = load(data_dir, 'test')     # uint8 [N, 64, 64, 3]
"""

import glob
import os
import zipfile
import zlib

from spiral_tf.data import cache
from spiral_tf.data import locations

SPLITS = ('train', 'test')
HOW_TO_GET = (
    'generate them (no download) with `python launch/generate_scenes.py '
    '--out_dir=<data_dir>/scenes` (spiral_tf.data.scenes_dataset.generate).'
)
_VERSION = 1


def load(data_dir=None, split='train', limit=None, cache_dir=None):
  """uint8 [N, 64, 64, 3] scene renders of `split` (the first `limit` if given)."""
  locations.check_split('scenes', split, SPLITS)
  root, origin = locations.resolve_data_dir(data_dir)
  directory = os.path.join(root, 'scenes')
  metadata = os.path.join(directory, 'metadata.json')
  if not os.path.isfile(metadata):  # written last by the generator: without it the set is incomplete
    raise locations.missing_files(
        'scenes', directory, origin, ['metadata.json and the train-*.npz / test-*.npz shards'], HOW_TO_GET
    )
  sources = [metadata] + sorted(glob.glob(os.path.join(directory, '*.npz')))
  return cache.cached_split(
      'scenes',
      split,
      sources,
      lambda: _read(directory, split, limit),
      version=_VERSION,
      limit=limit,
      cache_dir=cache_dir,
  )


def _read(directory, split, limit):
  # Lazy: MuJoCo picks its GL backend when imported; only loading the scenes needs it.
  from spiral_tf.data import scenes_dataset  # pylint: disable=g-import-not-at-top

  try:
    images, _ = scenes_dataset.load(directory, split=split)
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:
    raise locations.CorruptDataError(directory, f'cannot read the {split} scenes ({e})') from None
  if images.ndim != 4 or images.shape[1:] != (64, 64, 3):
    raise locations.CorruptDataError(
        directory, f'scene images have shape {images.shape}, ' 'expected [N, 64, 64, 3]'
    )
  return images[:limit]
