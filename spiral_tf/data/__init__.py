"""Real images for SPIRAL (for D, and the targets of conditional agents), as 64×64 ink on white paper.

Datasets (docs/datasets.md says where each one goes and how to get it):
  strokes    procedural, painted by our libmypaint painter (no download; the embedded default)
  mnist      official train 60,000 / test 10,000
  omniglot   background set 19,280 (train) / evaluation set 13,180 (test)
  celeba     partition file: train / validation / test
  scenes     the procedural MuJoCo scenes' train / test shards

Conventions: uint8 arrays [N, 64, 64, C] with 255 = white paper and dark ink (MNIST is inverted to match;
Omniglot already is); float pipelines divide by 255. C = 1 (grey, BT.601 luma of colour data) or 3
(grey data repeated). Decoded arrays are cached on disk (cache.py), so only the first load decodes.

Usage:
  images = load_images('mnist', 'test', data_dir=flags.data_dir)       # uint8 [10000, 64, 64, 1]
  dataset = real_dataset('celeba', 'train', batch_size=64, channels=3)   # float32 batches for D
  env = targets.ConditionalTargets(LibMyPaint(use_color=False), load_images('strokes'), seed=0)
"""

from spiral_tf.data import celeba
from spiral_tf.data import images as _images
from spiral_tf.data import mnist
from spiral_tf.data import omniglot
from spiral_tf.data import scenes
from spiral_tf.data import strokes
from spiral_tf.data.locations import CorruptDataError  # noqa: F401  (re-exported)
from spiral_tf.data.locations import DatasetNotFoundError  # noqa: F401  (re-exported)

DATASETS = ('strokes', 'mnist', 'omniglot', 'celeba', 'scenes')
SPLITS = ('train', 'test')  # celeba also has 'validation'


# Each loader imports its heavy parts (the painter, MuJoCo, TensorFlow for TFRecords) only when it loads.
_LOADERS = {'mnist': mnist, 'omniglot': omniglot, 'celeba': celeba, 'scenes': scenes, 'strokes': strokes}


def _module(name):
  if name not in _LOADERS:
    raise ValueError(f'unknown dataset {name!r}; one of {DATASETS}')
  return _LOADERS[name]


def load_native(name, split='train', data_dir=None, *, cache_dir=None, limit=None, **options):
  """Like `load_images`, in the dataset's own channels (grey for mnist/omniglot, colour otherwise)."""
  module = _module(name)
  if name == 'strokes':  # rendered in the asked-for channels, so its native channels are the caller's
    return module.load(split, cache_dir=cache_dir, limit=limit, **options)
  if options:
    raise ValueError(f'dataset {name!r} takes no options {sorted(options)} (only strokes does)')
  return module.load(data_dir, split, limit=limit, cache_dir=cache_dir)


def load_images(name, split='train', data_dir=None, channels=1, *, cache_dir=None, limit=None, **options):
  """uint8 [N, 64, 64, channels] images of dataset `name`, ink on white (255 = paper).

  Args:
    name: one of DATASETS.
    split: 'train' or 'test' (the held-out split; celeba also 'validation').
    data_dir: the --data_dir flag; None: $SPIRAL_DATA_DIR, else ~/spiral_data. Unused by strokes.
    channels: 1 (grey) or 3 (colour).
    cache_dir: where decoded arrays are cached (None: $SPIRAL_CACHE_DIR, else ~/.cache/spiral_tf).
    limit: keep only the first `limit` images of the split (quick runs and tests).
    **options: strokes only: seed, num_images, paint_probability, max_brush_size and the painter
      settings (episode_length, grid_width, brush_sizes, use_pressure, ...) — pass the agent's.

  Raises:
    DatasetNotFoundError: files missing (the message says which, where, and how to get them).
    CorruptDataError: a file cannot be read (the message names it).
  """
  if channels not in (1, 3):
    raise ValueError(f'channels must be 1 (grey) or 3 (colour), got {channels!r}')
  if name == 'strokes':
    options['channels'] = channels
  return _images.convert_channels(
      load_native(name, split, data_dir, cache_dir=cache_dir, limit=limit, **options), channels
  )


def real_dataset(
    name, split, batch_size, data_dir=None, channels=1, seed=0, *, cache_dir=None, limit=None, **options
):
  """Endless shuffled float32 [batch_size, 64, 64, channels] batches in [0, 1] (see pipeline.py)."""
  # Lazy: TensorFlow; the supervisor reads dataset sizes through this package and must not load it.
  from spiral_tf.data import pipeline  # pylint: disable=g-import-not-at-top

  if channels not in (1, 3):
    raise ValueError(f'channels must be 1 (grey) or 3 (colour), got {channels!r}')
  if name == 'strokes':
    options['channels'] = channels
  native = load_native(name, split, data_dir, cache_dir=cache_dir, limit=limit, **options)
  return pipeline.image_batches(native, batch_size, channels=channels, seed=seed)
